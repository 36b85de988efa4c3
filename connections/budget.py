"""A call budget shared by every process: the service's rate limits, kept before the call.

Zenduty documents its limits per account ("Incident GET 3/s, 30/min; Incident
POST 1/s, 15/min", https://zenduty.com/docs/rate-limits) and sends no
rate-limit headers, so the portal cannot learn them from answers: it keeps to
them itself. Every caller — webhook jobs, sweeps, pollers, admin pages, in any
web process or worker — takes a slot from the same row of
:class:`connections.models.ApiBudget` before it calls.

The row holds the times of the calls in the longest window (a sliding log):
each call's send time, replaced by the time its answer came (``answered``,
from the client once the call is over), since the service counted it when it
arrived, somewhere in between. A call may go when fewer than ``limit`` calls
are in each of the last windows; at most ``limit`` calls in any sliding
window also means at most ``limit`` in any fixed window the service may
count in, whatever its alignment. Each window is lengthened by
``WINDOW_MARGIN`` for a call still under way (counted from its send time
until it is answered).

Taking a slot is one short transaction (a row lock on PostgreSQL, SQLite's
write lock), never held across the HTTP call.

Turns for callers that come back: a job that finds the budget spent for
longer than it may wait in place is rescheduled (``syncengine.jobs``). Told
only "the next slot frees in 40 s", every such job of a backlog came back
at the same moment, one got the slot and the rest were rescheduled again,
round after round (bench/backlog.py: a backlog of 200 incidents took 2.4×
the time the limits allow). So a caller that will come back (``book``) is
given a turn of its own: the earliest time one more call fits the limits
counting the calls sent *and* the turns already given, kept in the row's
``booked``. Turns only spread the comebacks: whether a call may go is still
decided by the calls sent (``recent``) alone, so a caller that comes late,
early or never costs nobody a 429. A turn that has come is forgotten when
a job takes a slot (the oldest turn come goes first, whichever job it was
given to), or ``TURN_GRACE`` seconds later.

Work that can wait (``yield_to_turns``: the Zenduty poller, the sweeps, a
backfill) leaves room for those turns: it takes a slot only when, counting
the turns given as calls, the call fits and still leaves each turn within a
window of it room for its own. Without that, a poller reading for many
active pairs took the slots the turns were counted on, each job that came
back found none and was given a turn at the end of the line again (in a
reviewer's ``make run``, 40 incidents at once beside ~80 active pairs took
142 s instead of 66; bench/backlog.py has a backlog beside the poller).
A person waiting on an admin page does not yield: a backlog must not take a
page down for minutes.
"""
from __future__ import annotations

import bisect
import time
from dataclasses import dataclass
from typing import Callable

from django.db import transaction

from connections import errors
from connections.models import ApiBudget

# Seconds added to every window: two calls sent a window apart may arrive
# closer together (network jitter, a slow first call) and must not count in
# one window. 0.1 s was too little on a busy test machine (a 429 in one run of
# tests/connections/test_zenduty_budget.py in three). A call is counted from
# its answer once it has one (``answered``), so the margin is left to cover a
# call still under way.
WINDOW_MARGIN = 0.25
# At most this many turns given out ahead per row; past it a caller is told
# only when the next slot frees (the row stays small whatever the backlog).
MAX_BOOKED = 1000
# A turn that has come is kept this long for callers that yield: the job it was given to comes
# back through django-q2's schedule look (Q_SCHEDULE_LOOK_SECONDS, 1 s) and the broker, a moment
# after its time, and its slot must still be free then.
TURN_GRACE = 5.0
# How far ahead a caller that yields to turns looks for a time its call fits (the search runs
# under the row's lock, so it is bounded); past it the caller is told to ask again then.
YIELD_LOOKAHEAD_WINDOWS = 1


@dataclass(frozen=True)
class Limit:
    """At most ``calls`` in any ``seconds``."""

    calls: int
    seconds: float


def _free_in(recent: list[float], limits: tuple[Limit, ...], now: float) -> float:
    """Seconds until one more call fits every limit (0: it fits now)."""
    wait = 0.0
    for limit in limits:
        window = limit.seconds + WINDOW_MARGIN
        inside = sorted(t for t in recent if t > now - window)
        if len(inside) >= limit.calls:
            # The oldest call that must leave the window before one more fits.
            wait = max(wait, inside[len(inside) - limit.calls] + window - now)
    return wait


def _next_turn(entries: list[float], limits: tuple[Limit, ...], start: float) -> float:
    """The earliest time from ``start`` (no earlier than any entry: turns are given in order) at which one
    more call fits every limit, counting ``entries`` (calls sent and turns given) as calls."""
    turn = start
    for _ in range(len(entries) * len(limits) + 1):  # each step lets at least one entry leave a window
        later = turn + _free_in(entries, limits, turn)
        if later <= turn:
            break
        turn = later
    return turn


def _room_beside_turns(entries: list[float], limits: tuple[Limit, ...], at: float) -> bool:
    """Whether one more call at ``at`` fits every limit counting ``entries`` (calls sent and turns
    given, sorted) as calls, and leaves every later turn within a window of it room for its own."""
    for limit in limits:
        window = limit.seconds + WINDOW_MARGIN
        low, high = bisect.bisect_right(entries, at - window), bisect.bisect_left(entries, at + window)
        near = entries[low:high]
        # Windows ending at ``at``, and at each turn after it that the call would share a window with.
        for end in [at, *(t for t in near if t > at)]:
            inside = bisect.bisect_right(near, end) - bisect.bisect_right(near, end - window) + 1
            if inside > limit.calls:
                return False
    return True


def _yield_wait(recent: list[float], booked: list[float], limits: tuple[Limit, ...], at: float) -> float:
    """Seconds from ``at`` until a call fits beside the turns given (0: now), or the look-ahead
    (``YIELD_LOOKAHEAD_WINDOWS``) when no time that soon does."""
    entries = sorted(recent + booked)
    if _room_beside_turns(entries, limits, at):
        return 0.0
    horizon = at + YIELD_LOOKAHEAD_WINDOWS * max(limit.seconds + WINDOW_MARGIN for limit in limits)
    # Room appears only when an entry leaves a window (or a turn comes and goes: the same times).
    moments = {t + limit.seconds + WINDOW_MARGIN for t in entries for limit in limits} | set(booked)
    for moment in sorted(m for m in moments if at < m <= horizon):
        if _room_beside_turns(entries, limits, moment):
            return moment - at
    return horizon - at


def try_take(key: str, limits: tuple[Limit, ...], *, now: Callable[[], float] = time.time,
             book_beyond: float | None = None, yield_to_turns: bool = False) -> float:
    """Take a slot for one call now if the budget allows; returns 0 when taken,
    else the seconds to wait before trying again (nothing taken).

    ``book_beyond``: when the wait is longer than that many seconds, the
    caller will come back later and is given a turn (see the module
    docstring); the seconds returned are until that turn.
    ``yield_to_turns``: work that can wait takes no slot a turn is counted
    on (module docstring).
    """
    return _take_once(key, limits, now=now, book_beyond=book_beyond, yield_to_turns=yield_to_turns)[0]


def _take_once(key: str, limits: tuple[Limit, ...], *, now: Callable[[], float],
               book_beyond: float | None, yield_to_turns: bool = False) -> tuple[float, float]:
    """:func:`try_take`, also returning the time the slot was taken at."""
    longest = max(limit.seconds for limit in limits) + WINDOW_MARGIN
    with transaction.atomic():
        budget, _ = ApiBudget.objects.select_for_update().get_or_create(key=key)
        at = now()
        recent = [t for t in budget.recent if t > at - longest]
        # Turns to come, and turns come but not yet taken (their jobs are on the way: TURN_GRACE).
        due = sorted(t for t in budget.booked if at - TURN_GRACE < t <= at)
        booked = sorted(t for t in budget.booked if t > at)
        wait = _free_in(recent, limits, at)
        if wait <= 0 and yield_to_turns and (due or booked):
            wait = _yield_wait(recent, due + booked, limits, at)
        if wait <= 0:
            recent.append(at)
            if book_beyond is not None and due:
                due.pop(0)  # a job came: the turn it had (or the oldest one come) is taken
        elif book_beyond is not None and wait > book_beyond and len(booked) < MAX_BOOKED:
            turn = _next_turn(recent + booked, limits, max([at + wait, *booked[-1:]]))
            booked.append(turn)
            wait = turn - at
        budget.recent = recent
        budget.booked = due + booked
        budget.save(update_fields=["recent", "booked", "updated_at"])
    return wait, at


def answered(key: str, sent_at: float, at: float) -> None:
    """The call whose slot was taken at ``sent_at`` got its answer (or gave up) at ``at``: it counts
    from then on. The service counted it when it arrived, somewhere in between; counted from its
    send time, a call that took long to arrive could share a window with one sent a window later
    (a 429 on a loaded machine, ``WINDOW_MARGIN``). Counted from its answer it never can."""
    with transaction.atomic():
        budget = ApiBudget.objects.select_for_update().filter(key=key).first()
        if budget is None or sent_at not in budget.recent:
            return  # left the window meanwhile (a very slow call), or the row was reset
        recent = list(budget.recent)
        recent[recent.index(sent_at)] = max(at, sent_at)
        budget.recent = recent
        budget.save(update_fields=["recent", "updated_at"])


def take(key: str, limits: tuple[Limit, ...], *, max_wait: float, service: str,
         sleep: Callable[[float], None] = time.sleep, what: str = "this call", book: bool = False,
         yield_to_turns: bool = False) -> float:
    """Take a slot, waiting for one when that takes at most ``max_wait`` seconds; returns the time it
    was taken at (for :func:`answered`).

    ``book``: the caller comes back when told to (a job, rescheduled); a
    longer wait is then until a turn of its own (module docstring).
    ``yield_to_turns``: the caller's work can wait (a poller, a sweep); it
    takes no slot a turn is counted on.

    :raises errors.RateLimitedError: (with ``retry_after``) when the wait
        would be longer: nothing was called, and the job layer reschedules.
    """
    waited = 0.0
    while True:
        wait, at = _take_once(key, limits, now=time.time, book_beyond=max_wait - waited if book else None,
                              yield_to_turns=yield_to_turns)
        if wait <= 0:
            return at
        if waited + wait > max_wait:
            raise errors.RateLimitedError(
                f"the portal keeps to {service.capitalize()}'s rate limits: {what} would wait another "
                f"{wait:.1f} s", retry_after=wait, service=service)
        sleep(wait)
        waited += wait
