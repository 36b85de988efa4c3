"""A call budget shared by every process: the service's rate limits, kept before the call.

Zenduty documents its limits per account ("Incident GET 3/s, 30/min; Incident
POST 1/s, 15/min", https://zenduty.com/docs/rate-limits) and sends no
rate-limit headers, so the portal cannot learn them from answers: it keeps to
them itself. Every caller — webhook jobs, sweeps, pollers, admin pages, in any
web process or worker — takes a slot from the same row of
:class:`connections.models.ApiBudget` before it calls.

The row holds the send times of the calls in the longest window (a sliding
log). A call may go when fewer than ``limit`` calls were sent in each of the
last windows; at most ``limit`` calls in any sliding window also means at
most ``limit`` in any fixed window the service may count in, whatever its
alignment. Each window is lengthened by ``WINDOW_MARGIN`` for the time a
call takes to arrive.

Taking a slot is one short transaction (a row lock on PostgreSQL, SQLite's
write lock), never held across the HTTP call.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from django.db import transaction

from connections import errors
from connections.models import ApiBudget

# Seconds added to every window: two calls sent a window apart may arrive
# closer together (network jitter, a slow first call) and must not count in
# one window. 0.1 s was too little on a busy test machine (a 429 in one run of
# tests/connections/test_zenduty_budget.py in three).
WINDOW_MARGIN = 0.25


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


def try_take(key: str, limits: tuple[Limit, ...], *, now: Callable[[], float] = time.time) -> float:
    """Take a slot for one call now if the budget allows; returns 0 when taken,
    else the seconds to wait before trying again (nothing taken)."""
    longest = max(limit.seconds for limit in limits) + WINDOW_MARGIN
    with transaction.atomic():
        budget, _ = ApiBudget.objects.select_for_update().get_or_create(key=key)
        at = now()
        recent = [t for t in budget.recent if t > at - longest]
        wait = _free_in(recent, limits, at)
        if wait <= 0:
            recent.append(at)
        budget.recent = recent
        budget.save(update_fields=["recent", "updated_at"])
    return wait


def take(key: str, limits: tuple[Limit, ...], *, max_wait: float, service: str,
         sleep: Callable[[float], None] = time.sleep, what: str = "this call") -> None:
    """Take a slot, waiting for one when that takes at most ``max_wait`` seconds.

    :raises errors.RateLimitedError: (with ``retry_after``) when the wait
        would be longer: nothing was called, and the job layer reschedules.
    """
    waited = 0.0
    while True:
        wait = try_take(key, limits)
        if wait <= 0:
            return
        if waited + wait > max_wait:
            raise errors.RateLimitedError(
                f"the portal keeps to {service.capitalize()}'s rate limits: {what} would wait another "
                f"{wait:.1f} s", retry_after=wait, service=service)
        sleep(wait)
        waited += wait
