"""The run that the Zenduty poller and the note sweep share (``syncengine.sweep_runs``)."""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta

import pytest
from django.core.cache import cache

from syncengine.sweep_runs import StopPart, run_parts

pytestmark = pytest.mark.django_db  # the cache is a database table (portal_cache)

LOCK = "test:sweep-runs:lock"


@dataclass
class Report:
    owners: int = 0
    stopped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Owner:
    pk: int

    def __str__(self) -> str:
        return f"owner {self.pk}"


@pytest.fixture(autouse=True)
def _clear_lock():
    cache.delete(LOCK)
    yield
    cache.delete(LOCK)


def run(owners, part, backing_off=lambda pk: 0.0):
    return run_parts(owners, report=Report(), counter="owners", lock_key=LOCK, lock_margin=30,
                     time_budget=timedelta(seconds=50), busy="another run is running",
                     backing_off_until=backing_off, run_part=part, logger=logging.getLogger("test.sweep"),
                     word="owner")


def test_each_part_runs_with_the_runs_deadline_and_one_that_stops_leaves_the_others_going(caplog):
    seen = []

    def part(owner, deadline):
        seen.append((owner.pk, round(deadline - time.monotonic())))
        if owner.pk == 1:
            raise StopPart("its reads are used")

    caplog.set_level(logging.INFO, logger="test.sweep")
    report = run([Owner(1), Owner(2)], part)
    assert seen == [(1, 50), (2, 50)]
    assert report.owners == 2 and report.stopped == ["owner 1: its reads are used"]
    assert "test.sweep.stopped owner=1: its reads are used" in caplog.text and "test.sweep.done" in caplog.text
    assert cache.get(LOCK) is None  # released for the next run


def test_an_owner_backing_off_after_a_429_is_skipped():
    ran = []
    report = run([Owner(1), Owner(2)], lambda owner, deadline: ran.append(owner.pk),
                 backing_off=lambda pk: time.time() + 120 if pk == 1 else 0.0)
    assert ran == [2] and report.owners == 2
    assert report.stopped[0].startswith("owner 1: backing off after a 429 for another 1")


def test_a_run_while_another_holds_the_lock_does_nothing_and_leaves_the_lock():
    cache.add(LOCK, "the other run", timeout=60)
    ran = []
    report = run([Owner(1)], lambda owner, deadline: ran.append(owner.pk))
    assert ran == [] and report.owners == 0 and report.stopped == ["another run is running"]
    assert cache.get(LOCK) == "the other run"


def test_an_unexpected_error_releases_the_lock_and_is_raised():
    def part(owner, deadline):
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError):
        run([Owner(1)], part)
    assert cache.get(LOCK) is None
