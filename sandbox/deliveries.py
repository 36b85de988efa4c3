"""Asynchronous webhook deliveries of the simulated services.

The real Xurrent and Zenduty send webhooks some time after the change that
caused them, never inside the API call. So does the sandbox: ``enqueue()``
stores an :class:`OutboundDelivery`; a background thread in the web process
(started on first use, woken after commit) sends due deliveries, retrying
failures with backoff up to ``max_attempts``. Tests turn the thread off
(``SANDBOX_DELIVERY_THREAD=false``) and call :func:`flush`.

Nothing stalls across restarts: the first request a process serves starts the
thread when deliveries are waiting (:func:`resume_on_first_request`), and a
delivery claimed for sending holds a lease (``SENDING_LEASE_SECONDS``) after
which :func:`recover_stalled` returns it to pending, should its sender have
died mid-send.

Delivery faults (sandbox.faults): drop, duplicate, or hold back a delivery so
that a later one overtakes it. A held delivery stays unsent until a later
delivery to the same address has gone out, or until its hold time
(``SANDBOX_REORDER_HOLD_SECONDS``, default 5 s) has passed when none comes.

A simulated service that needs to know how its deliveries fare (the simulated
Xurrent disables a webhook after a streak of failures) registers a listener
with :func:`on_attempt`; it is told the outcome of every attempt.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import requests
from django.conf import settings
from django.db import DatabaseError, close_old_connections, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from sandbox.faults import take_delivery_fault
from sandbox.models import DeliveryState, FaultKind, OutboundDelivery

logger = logging.getLogger("sandbox.deliveries")

MAX_BACKOFF_SECONDS = 300
# How long a claimed ("sending") delivery belongs to its sender. Far longer
# than any delivery timeout (10 s at most), so only a dead sender's run out.
SENDING_LEASE_SECONDS = 60

AttemptListener = Callable[[OutboundDelivery, bool], None]
# Per service: called after each attempt has been recorded. Registered from
# the service app's ready(), so the outbox needs no knowledge of webhooks.
_attempt_listeners: dict[str, list[AttemptListener]] = {}


def on_attempt(service: str, listener: AttemptListener) -> None:
    """Have ``listener(delivery, ok)`` called after each attempt of a ``service`` delivery.

    ``ok`` is True for a 2xx; ``delivery`` carries ``attempts``, ``last_status``,
    ``last_error`` and the ``meta`` given to :func:`enqueue`. Registering the
    same listener twice has no effect.
    """
    listeners = _attempt_listeners.setdefault(service, [])
    if listener not in listeners:
        listeners.append(listener)


def _tell_listeners(delivery: OutboundDelivery, ok: bool) -> None:
    for listener in _attempt_listeners.get(delivery.service, ()):
        try:
            listener(delivery, ok)
        except Exception:
            # The attempt is already recorded; a listener's bug must not stop
            # the outbox from sending the rest.
            logger.exception("sandbox.delivery-listener-failed %s %s", delivery.service, delivery.pk)


def enqueue(service: str, url: str, body: str, *, headers: dict | None = None, fresh_id_header: str = "",
            timeout_seconds: float = 10.0, max_attempts: int = 5, description: str = "",
            meta: dict | None = None) -> list[OutboundDelivery]:
    """Queue a webhook message; returns the rows created (two when duplicated, one dropped row when dropped)."""
    headers = dict(headers or {})
    if fresh_id_header and fresh_id_header not in headers:
        headers[fresh_id_header] = str(uuid.uuid4())
    fault = take_delivery_fault(service)
    fields = dict(service=service, url=url, body=body, headers=headers, fresh_id_header=fresh_id_header,
                  timeout_seconds=timeout_seconds, max_attempts=max_attempts, description=description[:200],
                  meta=meta or {})
    if fault == FaultKind.DROP_DELIVERY:
        return [OutboundDelivery.objects.create(state=DeliveryState.DROPPED, **fields)]
    if fault == FaultKind.REORDER_DELIVERY:
        # Not due until a later delivery to the same address has gone out
        # (_release_overtaken) or the hold time is over.
        hold = settings.SANDBOX_REORDER_HOLD_SECONDS
        rows = [OutboundDelivery.objects.create(held=True, next_attempt_at=timezone.now() + timedelta(seconds=hold),
                                                **fields)]
    else:
        rows = [OutboundDelivery.objects.create(**fields)]
    if fault == FaultKind.DUPLICATE_DELIVERY:
        # A true duplicate: the same message with the same delivery id, as an
        # at-least-once sender produces after a lost acknowledgement.
        rows.append(OutboundDelivery.objects.create(**fields))
    transaction.on_commit(_wake)
    return rows


def _claim(delivery_id: int) -> bool:
    # While sending, next_attempt_at is the lease's end: the next attempt, should this one never finish.
    lease_end = timezone.now() + timedelta(seconds=SENDING_LEASE_SECONDS)
    return bool(OutboundDelivery.objects.filter(pk=delivery_id, state=DeliveryState.PENDING)
                .update(state=DeliveryState.SENDING, next_attempt_at=lease_end))


def recover_stalled() -> int:
    """Return deliveries whose sender died mid-send (lease run out) to pending, due now. Returns how many."""
    now = timezone.now()
    stalled = OutboundDelivery.objects.filter(state=DeliveryState.SENDING, next_attempt_at__lte=now)
    # A read first: SQLite's write lock is taken only when there is something to do.
    if not stalled.exists():
        return 0
    count = stalled.update(state=DeliveryState.PENDING, next_attempt_at=now)
    logger.warning("sandbox.delivery-recovered %d stalled deliveries back to pending", count)
    return count


def send_one(delivery: OutboundDelivery) -> bool:
    """Send one claimed delivery; record the outcome and tell the service's listeners. Returns True on a 2xx."""
    headers = dict(delivery.headers)
    if delivery.attempts and delivery.fresh_id_header:
        # Each retry is a new delivery id; the first one is named as origin.
        origin = f"{delivery.fresh_id_header}-origin"
        headers.setdefault(origin, headers.get(delivery.fresh_id_header, ""))
        headers[delivery.fresh_id_header] = str(uuid.uuid4())
    delivery.attempts += 1
    error = ""
    status = None
    try:
        response = requests.post(delivery.url, data=delivery.body.encode(), headers=headers,
                                 timeout=delivery.timeout_seconds, allow_redirects=False)
        status = response.status_code
        if not 200 <= status < 300:
            error = f"HTTP {status}"
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}"
    now = timezone.now()
    delivery.headers = headers
    delivery.last_status = status
    delivery.last_error = error
    if not error:
        delivery.state = DeliveryState.DELIVERED
        delivery.delivered_at = now
    elif delivery.attempts >= delivery.max_attempts:
        delivery.state = DeliveryState.FAILED
    else:
        delivery.state = DeliveryState.PENDING
        delivery.next_attempt_at = now + timedelta(seconds=min(2 ** delivery.attempts, MAX_BACKOFF_SECONDS))
    delivery.save(update_fields=["headers", "attempts", "last_status", "last_error", "state", "delivered_at",
                                 "next_attempt_at"])
    logger.info("sandbox.delivery %s %s attempt %d -> %s", delivery.service, delivery.description,
                delivery.attempts, status or error)
    _tell_listeners(delivery, not error)
    return not error


def _release_overtaken(now) -> int:
    """Make held deliveries due once a later delivery to the same address has gone out."""
    overtaken = OutboundDelivery.objects.filter(service=OuterRef("service"), url=OuterRef("url"),
                                                pk__gt=OuterRef("pk"), attempts__gt=0)
    # A read first: the sender polls every second and must not take SQLite's write lock for nothing.
    ids = list(OutboundDelivery.objects.filter(state=DeliveryState.PENDING, held=True, attempts=0,
                                               next_attempt_at__gt=now)
               .filter(Exists(overtaken)).values_list("pk", flat=True))
    if not ids:
        return 0
    return OutboundDelivery.objects.filter(pk__in=ids, state=DeliveryState.PENDING).update(next_attempt_at=now)


def deliver_due(*, ignore_schedule: bool = False, limit: int = 100) -> int:
    """Send pending deliveries that are due (held ones after the others). Returns how many were attempted."""
    qs = OutboundDelivery.objects.filter(state=DeliveryState.PENDING)
    if not ignore_schedule:
        now = timezone.now()
        _release_overtaken(now)
        qs = qs.filter(next_attempt_at__lte=now)
    ids = list(qs.order_by("held", "id").values_list("id", flat=True)[:limit])
    sent = 0
    for delivery_id in ids:
        if not _claim(delivery_id):
            continue  # another thread or process took it
        send_one(OutboundDelivery.objects.get(pk=delivery_id))
        sent += 1
    return sent


def flush(*, rounds: int = 1, service: str | None = None) -> list[OutboundDelivery]:
    """Deliver everything pending now, ignoring backoff (tests and the by-hand page).

    ``rounds`` > 1 also retries deliveries that failed in an earlier round.
    Returns the deliveries attempted, in order.
    """
    attempted: list[OutboundDelivery] = []
    for _ in range(rounds):
        qs = OutboundDelivery.objects.filter(state=DeliveryState.PENDING)
        if service:
            qs = qs.filter(service=service)
        ids = list(qs.order_by("held", "id").values_list("id", flat=True))
        if not ids:
            break
        for delivery_id in ids:
            if _claim(delivery_id):
                delivery = OutboundDelivery.objects.get(pk=delivery_id)
                send_one(delivery)
                attempted.append(delivery)
    return attempted


def pending(service: str | None = None):
    """Pending deliveries (for tests and pages)."""
    qs = OutboundDelivery.objects.filter(Q(state=DeliveryState.PENDING) | Q(state=DeliveryState.SENDING))
    return qs.filter(service=service) if service else qs


# --- Background sender -----------------------------------------------------------
_wakeup = threading.Event()
_thread: threading.Thread | None = None
_thread_lock = threading.Lock()
POLL_SECONDS = 1.0


_resume_checked = False
_resume_lock = threading.Lock()


def _wake() -> None:
    if not settings.SANDBOX_DELIVERY_THREAD:
        return
    _ensure_thread()
    _wakeup.set()


def resume_on_first_request(**kwargs) -> None:
    """``request_started`` receiver: on a process's first request, start the sender if deliveries wait.

    Otherwise retries queued before a restart, or rows a crash left
    "sending", would wait for the next new delivery. Only serving processes
    get requests, so migrations and other management commands start nothing;
    nor do tests, which turn the thread off.
    """
    global _resume_checked
    if not settings.SANDBOX_DELIVERY_THREAD or _resume_checked:
        return
    with _resume_lock:
        if _resume_checked:
            return
        _resume_checked = True
    try:
        waiting = pending().exists()
    except DatabaseError:  # e.g. not migrated yet: look again on the next request
        _resume_checked = False
        logger.warning("sandbox.delivery-resume-check-failed", exc_info=True)
        return
    if waiting:
        logger.info("sandbox.delivery-resume deliveries are waiting; starting the sender")
        _wake()


def _ensure_thread() -> None:
    global _thread
    with _thread_lock:
        if _thread is None or not _thread.is_alive():
            _thread = threading.Thread(target=_run, name="sandbox-deliveries", daemon=True)
            _thread.start()


def run_once() -> int:
    """One wake-up of the background sender: send what is due until nothing is. Returns how many were attempted."""
    attempted = 0
    while sent := deliver_due():
        attempted += sent
    return attempted


def _run() -> None:
    next_recovery = 0.0  # at once, then once per lease
    while True:
        _wakeup.wait(POLL_SECONDS)
        _wakeup.clear()
        try:
            close_old_connections()
            if time.monotonic() >= next_recovery:
                recover_stalled()
                next_recovery = time.monotonic() + SENDING_LEASE_SECONDS
            run_once()
        except Exception:  # keep the sender alive; the rows keep their state
            logger.exception("sandbox.delivery-loop-failed")
        finally:
            close_old_connections()
