"""Housekeeping: events left behind, and history older than the retention period.

Both run as django-q2 schedules (``syncengine.tasks``): the sweep of stalled
events every minute, the pruning daily.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from syncengine import metrics
from syncengine.jobs import MAX_ATTEMPTS, enqueue
from syncengine.models import CLAIMABLE, EventStatus, InboundEvent, OutboundCall
from syncengine.verification import without_verification_code

logger = logging.getLogger("syncengine.housekeeping")
# A received / retry_scheduled event this late was not picked up (lost enqueue, broker down).
LOST_AFTER = timedelta(minutes=5)


def event_lease() -> timedelta:
    """How long a claimed event may stay "processing" before its worker counts as dead
    (``settings.SYNC_EVENT_LEASE_SECONDS``, longer than the job timeout)."""
    return timedelta(seconds=settings.SYNC_EVENT_LEASE_SECONDS)


def recover_stalled_events(now=None) -> int:
    """Queue events a lost enqueue, a lost schedule or a dead worker left behind.

    Run every minute (schedule created by migration 0002, interval set by
    0007): an event whose worker died is queued again at most
    ``SYNC_EVENT_LEASE_SECONDS`` + about 90 s after it was claimed (one
    interval, plus django-q2's scheduler looking every 30 s). Returns how
    many events were queued again.
    """
    now = now or timezone.now()
    lease = event_lease()
    revived: list[int] = []
    dead = InboundEvent.objects.filter(status=EventStatus.PROCESSING, claimed_at__lt=now - lease)
    for event in dead.only("pk", "attempts", "source", "event_type", "payload", "body"):
        give_up = event.attempts >= MAX_ATTEMPTS
        # The lease is checked again in the UPDATE: another sweep may have
        # revived the event since it was read, and a worker claimed it afresh.
        updated = dead.filter(pk=event.pk).update(
            **(without_verification_code(event) if give_up else {}),
            status=EventStatus.FAILED if give_up else EventStatus.RETRY_SCHEDULED,
            next_attempt_at=None if give_up else now, processed_at=now if give_up else None,
            last_error=f"The worker stopped while processing this event (no result within the "
                       f"{lease.total_seconds():.0f} s lease: killed, timed out or restarted).",
            reason="The worker stopped while processing this event; " +
                   (f"gave up after {event.attempts} attempts." if give_up else "it is queued again."))
        if updated and not give_up:
            revived.append(event.pk)
    # Due since: next_attempt_at (retries, replays), else the arrival.
    lost = (InboundEvent.objects.filter(status__in=CLAIMABLE)
            .alias(due=Coalesce("next_attempt_at", "received_at"))
            .filter(due__lt=now - LOST_AFTER).order_by("due"))
    ids = revived + [pk for pk in lost.values_list("pk", flat=True)[:500] if pk not in revived]
    for event_id in ids:
        enqueue(event_id)
    if ids:
        logger.warning("syncengine.recovered %d events", len(ids))
    return len(ids)


def prune_history(*, days: int | None = None, now=None, batch: int = 5000) -> tuple[int, int]:
    """Delete finished events and outbound calls older than ``days``
    (``settings.SYNC_HISTORY_RETENTION_DAYS``, default 90), in batches.

    Events still waiting or running are kept whatever their age. Returns
    (events deleted, calls deleted). Run daily (schedule created by migration 0004).
    """
    days = days if days is not None else settings.SYNC_HISTORY_RETENTION_DAYS
    cutoff = (now or timezone.now()) - timedelta(days=days)
    finished = [EventStatus.PROCESSED, EventStatus.IGNORED, EventStatus.REJECTED, EventStatus.FAILED]
    calls = _delete_in_batches(OutboundCall.objects.filter(created_at__lt=cutoff), batch, "calls")
    events = _delete_in_batches(InboundEvent.objects.filter(received_at__lt=cutoff, status__in=finished), batch,
                                "events")
    if events or calls:
        logger.info("syncengine.pruned %d events and %d calls older than %d days", events, calls, days)
    return events, calls


def _delete_in_batches(queryset, batch: int, kind: str) -> int:
    total = 0
    while ids := list(queryset.values_list("pk", flat=True)[:batch]):
        # Short statements: no long lock on a table the receivers write to.
        doomed = queryset.model.objects.filter(pk__in=ids)
        with transaction.atomic():
            # The Prometheus counters are counted from these rows: keep what they counted.
            metrics.tally_pruned(**{kind: doomed})
            total += doomed.delete()[0]
    return total
