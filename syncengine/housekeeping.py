"""Housekeeping: events left behind, and history older than the retention period.

Both run as django-q2 schedules (``syncengine.tasks``): the sweep of stalled
events every minute, the pruning daily.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Min
from django.db.models.functions import Coalesce
from django.utils import timezone

from syncengine import metrics, pairs
from syncengine.jobs import MAX_ATTEMPTS, enqueue
from syncengine.models import CLAIMABLE, EventStatus, InboundEvent, LinkedPair, OutboundCall, PairNote
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
    ``SYNC_EVENT_LEASE_SECONDS`` + about a minute after it was claimed (one
    interval, plus the cluster's look for due schedules, every
    ``Q_SCHEDULE_LOOK_SECONDS``). Returns how
    many events were queued again.
    """
    now = now or timezone.now()
    lease = event_lease()
    revived: list[int] = []
    dead = InboundEvent.objects.filter(status=EventStatus.PROCESSING, claimed_at__lt=now - lease)
    for event in dead.only("pk", "attempts", "source", "event_type", "payload", "body", "pair_id"):
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
        elif updated:
            pairs.give_up_claim(event.pair_id, f"Its event #{event.pk}: the worker stopped while processing it; "
                                               f"gave up after {event.attempts} attempts.")
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

    Events still waiting or running are kept whatever their age. A pair that
    loses rows gets a note saying what was pruned (notes are never pruned, and
    the pair keeps when it was created, last changed and closed), so its page
    still tells its story. Returns (events deleted, calls deleted). Run daily
    (schedule created by migration 0004).
    """
    days = days if days is not None else settings.SYNC_HISTORY_RETENTION_DAYS
    cutoff = (now or timezone.now()) - timedelta(days=days)
    finished = [EventStatus.PROCESSED, EventStatus.IGNORED, EventStatus.REJECTED, EventStatus.FAILED]
    per_pair: dict[int, dict] = {}
    calls = _delete_in_batches(OutboundCall.objects.filter(created_at__lt=cutoff), batch, "calls", "created_at",
                               per_pair)
    events = _delete_in_batches(InboundEvent.objects.filter(received_at__lt=cutoff, status__in=finished), batch,
                                "events", "received_at", per_pair)
    _note_pruned(per_pair, days)
    if events or calls:
        logger.info("syncengine.pruned %d events and %d calls older than %d days", events, calls, days)
    return events, calls


def _delete_in_batches(queryset, batch: int, kind: str, at: str, per_pair: dict[int, dict]) -> int:
    total = 0
    while ids := list(queryset.values_list("pk", flat=True)[:batch]):
        # Short statements: no long lock on a table the receivers write to.
        doomed = queryset.model.objects.filter(pk__in=ids)
        with transaction.atomic():
            # The Prometheus counters are counted from these rows: keep what they counted.
            metrics.tally_pruned(**{kind: doomed})
            for row in doomed.exclude(pair=None).values("pair").annotate(n=Count("pk"), first=Min(at), last=Max(at)):
                seen = per_pair.setdefault(row["pair"], {"events": 0, "calls": 0, "first": row["first"],
                                                         "last": row["last"]})
                seen[kind] += row["n"]
                seen["first"], seen["last"] = min(seen["first"], row["first"]), max(seen["last"], row["last"])
            total += doomed.delete()[0]
    return total


def _note_pruned(per_pair: dict[int, dict], days: int) -> None:
    """One line per pair that lost rows: what was pruned, and from when to when."""
    existing = set(LinkedPair.objects.filter(pk__in=list(per_pair)).values_list("pk", flat=True))
    PairNote.objects.bulk_create([PairNote(pair_id=pair_id, text=(
        f"History older than {days} days was pruned: {seen['events']} events and {seen['calls']} calls of this pair, "
        f"from {seen['first']:%Y-%m-%d %H:%M} to {seen['last']:%Y-%m-%d %H:%M} UTC.")) for pair_id, seen in
        per_pair.items() if pair_id in existing], batch_size=1000)
