"""Linked pairs: claiming, the per-pair lease, lookups and recorded state.

Exactly one counterpart: a pair row is inserted (state ``creating``) before
the counterpart is created remotely; the unique constraints on each side's
id turn a second claim into an ``IntegrityError``, i.e. "already claimed".

Per-pair serialisation: ``lease_until`` / ``lease_owner`` are taken with a
conditional UPDATE (free, run out, or already ours) and released after the
work. No database transaction or lock is ever held across an HTTP call; the
lease outlives the longest run of calls a handler makes, so a worker that
dies holding it only delays the pair by the lease (``SYNC_PAIR_LEASE_SECONDS``).
"""
from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import timedelta
from typing import Iterator

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Case, Q, When
from django.utils import timezone

from connections import errors
from connections import attribution as context
from syncengine.models import InboundEvent, LinkedPair, PairState



def lease() -> timedelta:
    """How long a claim or lease on a pair holds (``settings.SYNC_PAIR_LEASE_SECONDS``, 120 s): longer
    than one handler's calls can take (timeouts 5 + 15 s, two retries, a few calls), shorter than anyone
    should wait for a dead worker's claim."""
    return timedelta(seconds=settings.SYNC_PAIR_LEASE_SECONDS)

# How soon an event that found its pair busy is tried again.
BUSY_RETRY_SECONDS = 5.0


class PairBusy(errors.RetryableError):
    """Another event holds the pair's lease (or its live claim): try again in a few seconds."""

    default_message = "Another event of this pair is being processed."

    def __init__(self, pair: LinkedPair):
        self.pair_id = pair.pk
        until = pair.lease_until or timezone.now()
        super().__init__(f"Another event of {pair} is being processed (its lease runs until "
                         f"{until:%H:%M:%S} UTC at the latest); trying again shortly.", service="portal")
        # A few seconds, and never much past the lease: a dead holder's lease runs out then.
        left = (until - timezone.now()).total_seconds()
        self.retry_after = max(1.0, min(BUSY_RETRY_SECONDS, left + 1.0))


def new_owner(event_id: int | None) -> str:
    """A lease owner name: the event, plus a nonce so two runs of one event are told apart."""
    return f"event-{event_id}-{uuid.uuid4().hex[:8]}"


# -- lookups ------------------------------------------------------------------------------------
# A record's pair: the one that holds it, else the latest that was unlinked by hand (whose
# records the flows leave alone rather than create a new counterpart for).
HOLDING_FIRST = (Case(When(state=PairState.UNLINKED, then=1), default=0), "-pk")


def by_request(tenant_id: int, request_id) -> LinkedPair | None:
    """The pair of a Xurrent request (ids are unique per tenant; see ``HOLDING_FIRST``)."""
    if request_id in (None, ""):
        return None
    return LinkedPair.objects.filter(tenant_id=tenant_id, xurrent_request_id=str(request_id)).order_by(
        *HOLDING_FIRST).first()


def by_incident(account_id: int, unique_id) -> LinkedPair | None:
    """The pair of a Zenduty incident (unique_ids are unique per account; see ``HOLDING_FIRST``)."""
    if unique_id in (None, ""):
        return None
    return LinkedPair.objects.filter(zenduty_account_id=account_id, zenduty_incident_unique_id=str(unique_id)).order_by(
        *HOLDING_FIRST).first()


# -- claiming ---------------------------------------------------------------------------------------
def claim(integration, *, origin: str, owner: str, request_id: str = "", incident_unique_id: str = "",
          incident_number: int | None = None) -> LinkedPair | None:
    """Insert a pair in state ``creating`` with its lease held by ``owner``.

    Returns the new pair, or None when the source record is already claimed
    (the unique constraint said so: another event or worker got there first).
    """
    now = timezone.now()
    try:
        with transaction.atomic():
            return LinkedPair.objects.create(
                integration=integration, tenant_id=integration.tenant_id,
                zenduty_account_id=integration.zenduty_account_id, origin=origin, state=PairState.CREATING,
                xurrent_request_id=str(request_id or ""), zenduty_incident_unique_id=str(incident_unique_id or ""),
                zenduty_incident_number=incident_number, lease_owner=owner, lease_until=now + lease())
    except IntegrityError:
        return None


def unfinished_claim(pair: LinkedPair | None) -> LinkedPair | None:
    """``pair`` when it is a claim whose counterpart was never recorded (state ``creating``), else None.

    Its creator stopped half-way (a 429, a lost answer, a dead worker); whoever
    takes its lease next looks the counterpart up before creating it.
    """
    return pair if pair is not None and pair.state == PairState.CREATING else None


def take_lease(pair: LinkedPair, owner: str) -> LinkedPair:
    """Take the pair's lease (free, run out, or already ``owner``'s) and return the pair as stored now.

    :raises PairBusy: when another owner holds a live lease.
    """
    now = timezone.now()
    free = Q(lease_until__isnull=True) | Q(lease_until__lte=now) | Q(lease_owner=owner)
    taken = LinkedPair.objects.filter(pk=pair.pk).filter(free).update(lease_owner=owner, lease_until=now + lease())
    fresh = LinkedPair.objects.get(pk=pair.pk)
    if not taken:
        raise PairBusy(fresh)
    return fresh


def release(pair: LinkedPair, owner: str) -> None:
    """Give the lease back (only if still ``owner``'s)."""
    LinkedPair.objects.filter(pk=pair.pk, lease_owner=owner).update(lease_owner="", lease_until=None)


@contextmanager
def working_on(pair: LinkedPair, owner: str, *, event: InboundEvent | None = None,
               held: bool = False) -> Iterator[LinkedPair]:
    """Work on one pair: hold its lease (taken here, unless ``held``: a fresh claim has it
    already), tie ``event`` and every call made meanwhile to the pair, give the lease back at
    the end. Yields the pair as stored when the lease was taken.

    :raises PairBusy: when another owner holds a live lease.
    """
    if not held:
        pair = take_lease(pair, owner)
    if event is not None:
        attach_event(event, pair)
    with context.pair_context(pair.pk):
        try:
            yield pair
        finally:
            release(pair, owner)


# -- recording ---------------------------------------------------------------------------------------
def update(pair: LinkedPair, **fields) -> LinkedPair:
    """Write ``fields`` to the pair (and the object); ``updated_at`` too."""
    fields["updated_at"] = timezone.now()
    LinkedPair.objects.filter(pk=pair.pk).update(**fields)
    for name, value in fields.items():
        setattr(pair, name, value)
    return pair


def record_written(pair: LinkedPair, side: str, **values) -> LinkedPair:
    """Remember what the portal wrote to ``side`` ("xurrent" / "zenduty")."""
    written = dict(pair.last_written or {})
    written[side] = {**written.get(side, {}), **values}
    return update(pair, last_written=written)


def describe_written(pair: LinkedPair) -> list[tuple[str, str]]:
    """What the portal last wrote to each side (``last_written``), in words for the pair's page:
    ``[("Xurrent request", "status in_progress · impact high"), ...]``; a key of a later version is
    shown as it is stored."""
    from integrations.team_priorities import snapshot_of
    from syncengine.mapping import ZENDUTY_STATUS_NAMES

    def priority_name(unique_id) -> str:
        named = {key: entry.get("name") for key, entry in (pair.integration.priority_mapping or {}).items()
                 if isinstance(entry, dict)}
        if unique_id not in named:
            snapshot = snapshot_of(pair.integration)
            named.update({str(p.get("id")): p.get("name") for p in (snapshot.priorities if snapshot else None) or []
                          if isinstance(p, dict)})
        return named.get(unique_id) or str(unique_id)

    words = {
        "xurrent": ("Xurrent request", {
            "status": lambda v: f"status {v}", "impact": lambda v: f"impact {v}",
            "reopen_noted": lambda v: f"reopening noted (reopen count {v})"}),
        "zenduty": ("Zenduty incident", {
            "status": lambda v: f"status {ZENDUTY_STATUS_NAMES.get(v, v)}",
            "team_priority": lambda v: f"priority {priority_name(v)}"}),
    }
    # In this order, not the stored one: PostgreSQL's jsonb keeps keys by length, then bytes.
    stored = pair.last_written or {}
    lines = []
    for side in [side for side in words if side in stored] + sorted(side for side in stored if side not in words):
        label, say = words.get(side, (side, {}))
        values = stored[side] or {}
        keys = [key for key in say if key in values] + sorted(key for key in values if key not in say)
        said = [say[key](values[key]) if key in say else f"{key} {values[key]}" for key in keys
                if values[key] not in (None, "")]
        if said:
            lines.append((label, " · ".join(said)))
    return lines


def mark_linked(pair: LinkedPair, **fields) -> LinkedPair:
    """The counterpart exists and is recorded."""
    return update(pair, state=PairState.LINKED, last_error="", **fields)


def mark_failed(pair: LinkedPair, error: str) -> LinkedPair:
    """Creating the counterpart failed permanently; a replay of the event tries again."""
    return update(pair, state=PairState.FAILED, last_error=error[:2000], lease_owner="", lease_until=None)


def give_up_claim(pair_id: int | None, error: str) -> bool:
    """The event that claimed pair ``pair_id`` gave up retrying: a claim still creating its
    counterpart, whose lease nobody holds, fails as after a permanent error (its state says so, and
    the pairs list finds it under Failed); a replay of the event tries again. True when it did."""
    if pair_id is None:
        return False
    now = timezone.now()
    free = Q(lease_until__isnull=True) | Q(lease_until__lte=now)
    return bool(LinkedPair.objects.filter(free, pk=pair_id, state=PairState.CREATING).update(
        state=PairState.FAILED, last_error=error[:2000], lease_owner="", lease_until=None, updated_at=now))


def refresh_state(pair: LinkedPair) -> LinkedPair:
    """Linked ⇄ closed: closed while the request is completed and the incident resolved."""
    if pair.state not in (PairState.LINKED, PairState.CLOSED):
        return pair
    done = pair.xurrent_status == "completed" and pair.zenduty_status == 3
    if done and pair.state != PairState.CLOSED:
        return update(pair, state=PairState.CLOSED, closed_at=timezone.now())
    if not done and pair.state == PairState.CLOSED:
        return update(pair, state=PairState.LINKED, closed_at=None)
    return pair


def record_incident(pair: LinkedPair, incident: dict) -> LinkedPair:
    """Record the Zenduty incident's ids and status from an API answer."""
    from syncengine.mapping import zenduty_status

    return update(pair, zenduty_incident_unique_id=str(incident.get("unique_id") or ""),
                  zenduty_incident_number=incident.get("incident_number"),
                  zenduty_status=zenduty_status(incident.get("status")), zenduty_seen_at=timezone.now())


def record_request(pair: LinkedPair, request: dict) -> LinkedPair:
    """Record the Xurrent request's id, status and ``updated_at`` from an API answer."""
    from syncengine.mapping import parse_time

    return update(pair, xurrent_request_id=str(request.get("id") or pair.xurrent_request_id),
                  xurrent_status=str(request.get("status") or ""),
                  xurrent_updated_at=parse_time(request.get("updated_at")) or pair.xurrent_updated_at)


def attach_event(event: InboundEvent, pair: LinkedPair) -> None:
    """Tie the event to the pair (the pair's timeline)."""
    if event.pair_id != pair.pk:
        InboundEvent.objects.filter(pk=event.pk).update(pair=pair)
        event.pair_id = pair.pk
        # Someone works on the pair: the Zenduty poller reads its notes first (syncengine.polling).
        LinkedPair.objects.filter(pk=pair.pk).update(active_at=timezone.now())

