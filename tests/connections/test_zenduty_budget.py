"""Zenduty's rate limits, kept by the portal before each call and shared by every caller.

Zenduty documents per-account limits (incident GET 3/s and 30/min, incident
POST 1/s and 15/min) and sends no rate-limit headers, so the portal keeps to
them itself: connections.budget, one database row per account and kind of
call, taken before every attempt.
"""
from __future__ import annotations

import threading
import time

import pytest
from django.db import connection

from connections import budget, errors, http
from connections.budget import Limit
from connections.models import ApiBudget, ConnectionStatus, ZendutyAccount
from connections.zenduty import ZendutyClient

pytestmark = pytest.mark.django_db(transaction=True)


# -- the sliding log -------------------------------------------------------------------------------
class Clock:
    def __init__(self, at: float = 1_000_000.0):
        self.at = at

    def __call__(self) -> float:
        return self.at


def test_a_slot_is_taken_while_every_window_has_room_and_the_wait_says_when_the_next_fits():
    clock, limits = Clock(), (Limit(2, 1), Limit(3, 60))
    assert [budget.try_take("k", limits, now=clock) for _ in range(2)] == [0, 0]
    wait = budget.try_take("k", limits, now=clock)  # a third in the same second
    assert wait == pytest.approx(1 + budget.WINDOW_MARGIN)
    clock.at += wait
    assert budget.try_take("k", limits, now=clock) == 0  # the third of the minute
    clock.at += 5
    minute_wait = budget.try_take("k", limits, now=clock)  # a fourth must wait for the first to leave the minute
    assert minute_wait == pytest.approx(60 + budget.WINDOW_MARGIN - (wait + 5))
    assert len(ApiBudget.objects.get(key="k").recent) == 3  # refused tries take nothing


def test_a_wait_longer_than_allowed_is_a_rate_limited_error_without_a_call():
    budget.take("k", (Limit(1, 60),), max_wait=0, service="zenduty")
    slept = []
    with pytest.raises(errors.RateLimitedError) as caught:
        budget.take("k", (Limit(1, 60),), max_wait=5, service="zenduty", sleep=slept.append)
    assert caught.value.retry_after == pytest.approx(60 + budget.WINDOW_MARGIN, abs=1)
    assert slept == [] and caught.value.retryable


# -- a call counts from its answer -------------------------------------------------------------------
def test_a_call_counts_from_its_answer_so_a_slow_one_cannot_share_a_window_with_the_next():
    clock, limits = Clock(), (Limit(1, 1),)
    sent = clock.at
    assert budget.try_take("k", limits, now=clock) == 0
    budget.answered("k", sent, sent + 0.5)  # it took half a second: Zenduty counted it somewhere in there
    clock.at = sent + 1 + budget.WINDOW_MARGIN
    assert budget.try_take("k", limits, now=clock) == pytest.approx(0.5)  # a window after the answer
    clock.at += 0.5
    assert budget.try_take("k", limits, now=clock) == 0


def test_an_answer_for_a_slot_no_longer_kept_changes_nothing():
    clock, limits = Clock(), (Limit(2, 1),)
    budget.try_take("k", limits, now=clock)
    budget.answered("k", clock.at - 100, clock.at)  # left the window meanwhile
    budget.answered("nobody", clock.at, clock.at + 1)  # no such row
    assert ApiBudget.objects.get(key="k").recent == [clock.at]
    assert not ApiBudget.objects.filter(key="nobody").exists()


def test_the_client_records_each_read_at_its_answer(zenduty, monkeypatch):
    _, account = zenduty
    real_send = http.send

    def slow_send(*args, **kwargs):  # the network (or a busy Zenduty) takes 0.3 s to answer
        time.sleep(0.3)
        return real_send(*args, **kwargs)

    monkeypatch.setattr(http, "send", slow_send)
    client = ZendutyClient.for_account(account)
    before = time.time()
    list(client.iter_incidents(status=0))
    [counted] = ApiBudget.objects.get(key=f"{client.budget_key}:incident-reads").recent
    assert counted >= before + 0.3


def test_a_call_made_keeps_its_answer_when_its_answer_time_cannot_be_recorded(zenduty, monkeypatch, caplog):
    """The call was made (a create, perhaps): the bookkeeping failing after it must not lose its answer."""
    from django.db import OperationalError

    _, account = zenduty

    def database_locked(*args):
        raise OperationalError("database is locked")

    from sandbox.zenduty import operations
    from sandbox.zenduty.models import Service

    website = Service.objects.get(name="Website")
    incident = operations.create_incident(service=website, title="Disk full", summary="/var at 100%",
                                          team_priority=website.team.priorities.get(name="P1"))
    monkeypatch.setattr(budget, "answered", database_locked)
    read = ZendutyClient.for_account(account).get_incident(incident.unique_id)
    assert read["title"] == "Disk full"  # answered, although its time could not be recorded
    assert "zenduty.budget-answer-not-recorded" in caplog.text


# -- turns for callers that come back ------------------------------------------------------------
def test_callers_that_will_come_back_get_turns_of_their_own_in_order():
    clock, limits = Clock(), (Limit(3, 60),)
    start = clock.at
    for _ in range(3):  # three calls a second apart: the minute is spent
        assert budget.try_take("k", limits, now=clock) == 0
        clock.at += 1
    turns = [clock.at + budget.try_take("k", limits, now=clock, book_beyond=0) - start for _ in range(4)]
    window = 60 + budget.WINDOW_MARGIN
    # Each has the slot that one of the sent calls frees; the fourth the one the first turn's call frees.
    assert turns == pytest.approx([window, window + 1, window + 2, 2 * window])
    assert len(ApiBudget.objects.get(key="k").booked) == 4


def test_turns_keep_to_every_limit_at_once():
    """Zenduty's 30 reads a minute all free at the same moment; its 3 a second spread the turns then."""
    clock, limits = Clock(), (Limit(3, 1), Limit(30, 60))
    budget.ApiBudget.objects.create(key="k", recent=[clock.at] * 30)
    turns = [budget.try_take("k", limits, now=clock, book_beyond=0) for _ in range(7)]
    minute, second = 60 + budget.WINDOW_MARGIN, 1 + budget.WINDOW_MARGIN
    assert turns == pytest.approx([minute] * 3 + [minute + second] * 3 + [minute + 2 * second])


def test_without_book_beyond_every_waiter_is_told_the_same_next_free_slot():
    clock, limits = Clock(), (Limit(1, 60),)
    budget.try_take("k", limits, now=clock)
    assert budget.try_take("k", limits, now=clock) == budget.try_take("k", limits, now=clock)
    assert ApiBudget.objects.get(key="k").booked == []


def test_a_wait_within_book_beyond_takes_no_turn():
    clock, limits = Clock(), (Limit(1, 1),)
    budget.try_take("k", limits, now=clock)
    assert budget.try_take("k", limits, now=clock, book_beyond=5) == pytest.approx(1 + budget.WINDOW_MARGIN)
    assert ApiBudget.objects.get(key="k").booked == []  # it waits in place


def test_turns_only_spread_comebacks_a_call_may_go_when_the_calls_sent_allow():
    clock, limits = Clock(), (Limit(1, 60),)
    budget.try_take("k", limits, now=clock)
    first = budget.try_take("k", limits, now=clock, book_beyond=0)
    second = budget.try_take("k", limits, now=clock, book_beyond=0)
    assert second > first
    # The holder of the first turn came late, or never: at the first turn anyone may have the slot.
    clock.at += first
    assert budget.try_take("k", limits, now=clock) == 0
    # A turn that has come is kept a moment for its job (TURN_GRACE), then forgotten; the later one stays.
    assert ApiBudget.objects.get(key="k").booked == [pytest.approx(Clock().at + first),
                                                     pytest.approx(Clock().at + second)]
    clock.at += budget.TURN_GRACE + 0.1
    budget.try_take("k", limits, now=clock)
    assert ApiBudget.objects.get(key="k").booked == [pytest.approx(Clock().at + second)]


def test_a_job_that_comes_at_its_turn_takes_it():
    clock, limits = Clock(), (Limit(1, 60),)
    budget.try_take("k", limits, now=clock)
    turn = budget.try_take("k", limits, now=clock, book_beyond=0)
    clock.at += turn + 0.5  # it comes back through the schedule look, a moment after its turn
    assert budget.try_take("k", limits, now=clock, book_beyond=0) == 0
    assert ApiBudget.objects.get(key="k").booked == []


# -- work that can wait yields to the turns ------------------------------------------------------
def spent_with_turns(clock: Clock, limits) -> list[float]:
    """Three calls a second apart fill ``Limit(3, 60)``; three jobs refused then get turns."""
    for _ in range(3):
        assert budget.try_take("k", limits, now=clock) == 0
        clock.at += 1
    return [clock.at + budget.try_take("k", limits, now=clock, book_beyond=0) for _ in range(3)]


def test_a_caller_that_yields_takes_no_slot_a_turn_counts_on():
    clock, limits = Clock(), (Limit(3, 60),)
    start = clock.at
    turns = spent_with_turns(clock, limits)
    clock.at = turns[0] + 0.2
    assert budget.try_take("k", limits, now=clock, book_beyond=0) == 0  # the first job, at its turn
    # The second turn has come and its job is on its way; the oldest call has left the window.
    clock.at = turns[1] + 0.05
    assert budget._free_in(ApiBudget.objects.get(key="k").recent, limits, clock.at) == 0  # room, by calls sent
    wait = budget.try_take("k", limits, now=clock, yield_to_turns=True)  # the poller
    assert wait > 0
    # It is told when a call fits beside every turn: once the first job's call leaves the window.
    assert clock.at + wait == pytest.approx(turns[0] + 0.2 + 60 + budget.WINDOW_MARGIN)
    clock.at += 0.4
    assert budget.try_take("k", limits, now=clock, book_beyond=0) == 0  # so the second job finds its slot
    clock.at = turns[2] + 0.1
    assert budget.try_take("k", limits, now=clock, book_beyond=0) == 0  # and the third
    assert clock.at - start < 2 * 60  # nobody was sent to the end of the line


def test_without_yielding_the_same_caller_takes_the_slot_and_the_job_goes_to_the_end_of_the_line():
    clock, limits = Clock(), (Limit(3, 60),)
    turns = spent_with_turns(clock, limits)
    clock.at = turns[0] + 0.2
    budget.try_take("k", limits, now=clock, book_beyond=0)
    clock.at = turns[1] + 0.05
    assert budget.try_take("k", limits, now=clock) == 0  # an admin page: a person is waiting
    clock.at += 0.4
    again = budget.try_take("k", limits, now=clock, book_beyond=0)
    assert clock.at + again > turns[2]  # the second job's new turn comes after the third's


def test_a_caller_that_yields_goes_at_once_when_no_turn_is_given_or_none_is_near():
    clock, limits = Clock(), (Limit(3, 1), Limit(30, 60))
    assert budget.try_take("k", limits, now=clock, yield_to_turns=True) == 0
    # A turn a minute and more ahead shares no window with a call now.
    budget.ApiBudget.objects.filter(key="k").update(booked=[clock.at + 61])
    assert budget.try_take("k", limits, now=clock, yield_to_turns=True) == 0


def test_a_caller_that_yields_is_told_to_ask_again_within_a_window_when_turns_fill_it():
    clock, limits = Clock(), (Limit(1, 1), Limit(30, 60))
    ApiBudget.objects.create(key="k", booked=[clock.at + 1.5 * i for i in range(1, 200)])  # a backlog's turns
    wait = budget.try_take("k", limits, now=clock, yield_to_turns=True)
    assert wait == pytest.approx(60 + budget.WINDOW_MARGIN)
    assert ApiBudget.objects.get(key="k").recent == []


def test_turns_given_out_ahead_are_capped(monkeypatch):
    monkeypatch.setattr(budget, "MAX_BOOKED", 2)
    clock, limits = Clock(), (Limit(1, 60),)
    budget.try_take("k", limits, now=clock)
    waits = [budget.try_take("k", limits, now=clock, book_beyond=0) for _ in range(3)]
    assert waits[1] > waits[0] and waits[2] == pytest.approx(60 + budget.WINDOW_MARGIN)  # no turn: the next slot
    assert len(ApiBudget.objects.get(key="k").booked) == 2


def test_a_booking_take_raises_with_the_turn_as_retry_after():
    limits = (Limit(1, 60),)
    budget.take("k", limits, max_wait=0, service="zenduty")
    retry_afters = []
    for _ in range(3):
        with pytest.raises(errors.RateLimitedError) as caught:
            budget.take("k", limits, max_wait=5, service="zenduty", book=True, sleep=pytest.fail)
        retry_afters.append(caught.value.retry_after)
    window = 60 + budget.WINDOW_MARGIN
    assert retry_afters == pytest.approx([window, 2 * window, 3 * window], abs=1)


def test_a_job_gets_a_turn_and_other_callers_do_not(zenduty, statuses):
    from connections.attribution import sync_context

    _, account = zenduty
    client = ZendutyClient.for_account(account)
    key = f"{client.budget_key}:incident-reads"
    ApiBudget.objects.create(key=key, recent=[time.time()] * 30)  # the minute's 30 reads are spent
    incident = "1"  # refused before sending: which incident does not matter
    with pytest.raises(errors.RateLimitedError):  # an admin page: told when the next slot frees
        client.get_incident(incident)
    assert ApiBudget.objects.get(key=key).booked == []
    with sync_context(inbound_event_id=1), pytest.raises(errors.RateLimitedError) as caught:  # a job
        client.get_incident(incident)
    assert ApiBudget.objects.get(key=key).booked == [pytest.approx(time.time() + caught.value.retry_after, abs=1)]
    assert statuses == []  # nothing was sent


def test_background_work_yields_to_the_turns_and_a_job_or_an_admin_page_does_not(zenduty, statuses):
    from connections.attribution import sync_context

    _, account = zenduty
    client = ZendutyClient.for_account(account, max_inline_wait=0)
    key = f"{client.budget_key}:incident-reads"
    # Room for reads by the calls sent, but jobs have turns through the next seconds.
    now = time.time()
    ApiBudget.objects.create(key=key, recent=[now - 30] * 27, booked=[now + 1, now + 2, now + 3])
    with sync_context(integration_id=None, background=True), pytest.raises(errors.RateLimitedError):  # the poller
        list(client.iter_incidents(status=0))
    assert statuses == []  # nothing was sent
    list(client.iter_incidents(status=0))  # an admin page: a person is waiting
    with sync_context(inbound_event_id=1):  # a job: the slot is there now
        list(client.iter_incidents(status=0))
    assert statuses == [200, 200]


# -- through the simulated Zenduty ----------------------------------------------------------------
@pytest.fixture
def zenduty(sandbox):
    from sandbox.zenduty import demo
    from sandbox.zenduty.models import SimulatorSettings

    world = demo.seed()
    switches = SimulatorSettings.load()
    switches.rate_limits = switches.per_second_limits = True  # as the real service: both windows
    switches.save()
    account = ZendutyAccount.objects.create(name="Zenduty", api_token=demo.DEMO_TOKEN,
                                            status=ConnectionStatus.ACTIVE)
    return world, account


@pytest.fixture
def statuses():
    seen = []

    def observe(record):
        seen.append(record.status)
    http.call_observers.append(observe)
    yield seen
    http.call_observers.remove(observe)


def read_incidents(account, count, errors_seen):
    with ZendutyClient.for_account(account, max_inline_wait=10) as client:
        for _ in range(count):
            try:
                list(client.iter_incidents(status=0))
            except errors.ApiError as exc:  # noqa: PERF203 - counted, not raised, to compare both runs
                errors_seen.append(exc)


def burst(account, errors_seen, *, workers=2, reads=6):
    """Workers at once, each with its own client: twelve reads, four times the per-second limit."""
    threads = [threading.Thread(target=read_incidents, args=(account, reads, errors_seen)) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)


def test_calls_keep_to_the_per_second_limit_and_get_no_429(zenduty, statuses):
    _, account = zenduty
    failures = []
    burst(account, failures, workers=1, reads=10)
    assert failures == []
    assert statuses.count(200) == 10 and 429 not in statuses


def test_without_the_budget_the_same_burst_is_throttled(zenduty, statuses, settings):
    # What the budget prevents (and proof that the simulator counts per second).
    settings.ZENDUTY_INCIDENT_READS_PER_SECOND = 1000
    _, account = zenduty
    burst(account, [], workers=1, reads=10)
    assert 429 in statuses


@pytest.mark.skipif(connection.vendor == "sqlite",
                    reason="the in-memory SQLite test database locks whole tables between threads "
                           "('database table is locked'); CI runs this on PostgreSQL")
def test_two_workers_keep_to_the_per_second_limit_together_and_get_no_429(zenduty, statuses):
    _, account = zenduty
    failures = []
    burst(account, failures)
    assert failures == []
    assert statuses.count(200) == 12 and 429 not in statuses


def test_a_call_past_the_minutes_budget_is_not_made_and_asks_to_come_back(zenduty, statuses, settings):
    settings.ZENDUTY_INCIDENT_READS_PER_MINUTE = 2
    _, account = zenduty
    with ZendutyClient.for_account(account) as client:
        list(client.iter_incidents(status=0))
        list(client.iter_incidents(status=0))
        with pytest.raises(errors.RateLimitedError) as caught:
            list(client.iter_incidents(status=0))
    assert caught.value.retry_after > 50
    assert len(statuses) == 2  # the third was never sent
    # Other calls (teams, services) have no documented limit and are not held back.
    with ZendutyClient.for_account(account) as client:
        assert client.list_teams()


@pytest.mark.parametrize("method, path, kind", [
    ("GET", "/api/incidents/12/", "incident-reads"),
    ("GET", "/api/incidents/12/note/", "incident-reads"),
    ("POST", "/api/incidents/filter/", "incident-reads"),
    ("POST", "/api/incidents/", "incident-creates"),
    ("PATCH", "/api/incidents/uJVWfdAeoPDm3pk2gG2URn/", None),  # a status change: no documented limit
    ("POST", "/api/incidents/12/note/", None),
    ("GET", "/api/account/teams/", None),
])
def test_which_calls_count_against_which_documented_limit(method, path, kind):
    client = ZendutyClient("token-for-the-test")
    counted = client.budget_for(method, f"https://www.zenduty.com{path}")
    assert (counted[0] if counted else None) == kind
