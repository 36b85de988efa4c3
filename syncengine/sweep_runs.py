"""What the scheduled sweeps over every account share: the Zenduty poller (``syncengine.polling``, one
part per Zenduty account) and the note sweep (``syncengine.note_sweep``, one part per Xurrent tenant).

One run at a time across every process (a cache lock: a run that outlasts
its schedule's interval is not joined by the next), a time budget for the
whole run, and parts that stop on their own: a part whose share of the
budget is used, whose API answered 429 (it then backs off for a while, kept
in the cache) or whose time is up raises :class:`StopPart`, and the run
goes on with the next. A run never raises for an API's error; what stopped
is in its report.
"""
from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from django.core.cache import cache


class StopPart(Exception):
    """Stop this account's (or tenant's) part of the run; the message says why, for the run's report."""


def run_parts(owners: Iterable[Any], *, report: Any, counter: str, lock_key: str, lock_margin: float,
              time_budget: timedelta, busy: str, backing_off_until: Callable[[int], float],
              run_part: Callable[[Any, float], None], logger: logging.Logger, word: str) -> Any:
    """Run ``run_part(owner, deadline)`` for each of ``owners`` (evaluated once the lock is held), unless
    another run holds ``lock_key`` (``busy`` is then the report's only stop) or the owner backs off.

    ``report`` has a ``stopped`` list and a ``counter`` attribute counting the owners seen;
    ``deadline`` is a ``time.monotonic()`` time, ``time_budget`` from the start. ``word`` names an
    owner in the log (``account``, ``tenant``). Returns ``report``.
    """
    token = uuid.uuid4().hex
    if not cache.add(lock_key, token, timeout=int(time_budget.total_seconds() + lock_margin)):
        report.stopped.append(busy)
        return report
    try:
        deadline = time.monotonic() + time_budget.total_seconds()
        for owner in owners:
            setattr(report, counter, getattr(report, counter) + 1)
            until = backing_off_until(owner.pk)
            if until > time.time():
                report.stopped.append(f"{owner}: backing off after a 429 for another {until - time.time():.0f} s")
                continue
            try:
                run_part(owner, deadline)
            except StopPart as stop:
                report.stopped.append(f"{owner}: {stop}")
                logger.info("%s.stopped %s=%s: %s", logger.name, word, owner.pk, stop)
    finally:
        if cache.get(lock_key) == token:
            cache.delete(lock_key)
    logger.info("%s.done %s", logger.name, report.as_dict())
    return report
