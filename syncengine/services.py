"""Processing of stored inbound events (the django-q2 jobs call these).

``process_inbound_event`` claims an event with a conditional UPDATE, so a
second or concurrent run of the same job does nothing; it then dispatches on
(source, event type) with the event's integration and id set as the
context of every outbound call (``syncengine.context``).

Outcomes:

* a handler returns processed / ignored with a sentence saying why;
* ``RetryableError`` (rate limit, 5xx, network) → retry_scheduled, run again
  later by a django-q2 ONCE schedule with exponential backoff that honours
  ``retry_after``; after ``MAX_ATTEMPTS`` → failed;
* ``PermanentError`` or a message that cannot be acted on → failed.

Handlers: the ``webhook.verify`` handshake here; request and incident events
in ``syncengine.flows`` (one module per direction).
"""
from __future__ import annotations

import copy
import json
import logging
import random
import time
import uuid
from datetime import timedelta
from typing import Callable
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_q.models import Schedule
from jwt.utils import base64url_decode, base64url_encode
from django_q.tasks import async_task, schedule

from connections import errors, secrets
from connections.zenduty.constants import EVENT_TYPES as ZENDUTY_EVENTS
from integrations.models import XURRENT_EVENTS, OutgoingIntegration
from integrations.services import describe_api_error
from syncengine.context import sync_context
from syncengine import routing
from syncengine.flows import xurrent_to_zenduty, zenduty_to_xurrent
from syncengine.intake import VERIFY_EVENT
from syncengine.models import CLAIMABLE, REPLAYABLE, EventStatus, InboundEvent, LinkedPair, OutboundCall, Source
from syncengine.outcomes import EventError, Outcome
from syncengine.pairs import PairBusy

logger = logging.getLogger("syncengine.services")

TASK = "syncengine.tasks.process_inbound_event"
MAX_ATTEMPTS = 5
RETRY_BASE_SECONDS = 30
RETRY_MAX_SECONDS = 3600
# Up to this share is added to each delay, so that events rate-limited together
# do not all come back in the same second.
RETRY_JITTER = 0.1
# An event whose pair another event holds waits in place this long for the lease before
# it schedules a retry: django-q2's scheduler looks at due schedules only every 30 s, so
# a retry "in 5 s" really came 5-35 s later. Two events of one pair close together are
# common (Xurrent sends request.update and request.status-changed for one status change;
# an incident acknowledged and resolved within a second), and the holder is usually done
# in well under a second.
BUSY_WAIT_SECONDS = 5.0
BUSY_POLL_SECONDS = 0.1
# A received / retry_scheduled event this late was not picked up (lost enqueue, broker down).
LOST_AFTER = timedelta(minutes=5)

MAX_TEXT = 2000


# -- queueing ------------------------------------------------------------------------------------
def enqueue(event_id: int) -> None:
    """Queue the processing of an event. A broker failure is logged, not raised:
    the event stays "received" and :func:`recover_stalled_events` queues it later."""
    try:
        async_task(TASK, event_id, task_name=f"syncengine-event-{event_id}-{uuid.uuid4().hex[:8]}")
    except Exception:  # noqa: BLE001 - the delivery is stored; the sweeper retries
        logger.exception("syncengine.enqueue-failed event=%s", event_id)


def replay_event(event_id: int, *, by: str = "") -> bool:
    """Queue a failed, ignored or processed event again, with a fresh attempt count.

    Rejected events are never replayed (their signature did not hold), nor
    events already waiting or running. Returns whether the event was queued.
    """
    who = f" by {by}" if by else ""
    updated = InboundEvent.objects.filter(pk=event_id, status__in=REPLAYABLE).update(
        # next_attempt_at: "due since", for recover_stalled_events.
        status=EventStatus.RECEIVED, attempts=0, next_attempt_at=timezone.now(), processed_at=None,
        claimed_at=None,
        reason=f"Replay requested{who} at {timezone.now():%Y-%m-%d %H:%M:%S} UTC.")
    if updated:
        transaction.on_commit(lambda: enqueue(event_id))
        logger.info("syncengine.replay event=%s%s", event_id, who)
    return bool(updated)


def retry_delay(attempt: int, retry_after: float | None = None) -> float:
    """Seconds before attempt ``attempt + 1``: 30 s doubling per attempt (cap 1 h),
    plus jitter, and never less than the API's ``retry_after``."""
    delay = min(RETRY_BASE_SECONDS * 2 ** max(attempt - 1, 0), RETRY_MAX_SECONDS)
    delay *= 1 + random.uniform(0, RETRY_JITTER)
    if retry_after:
        delay = max(delay, float(retry_after))
    return delay


# -- the job ---------------------------------------------------------------------------------------
def process_inbound_event(event_id: int) -> str | None:
    """Process one stored event; safe to call twice or concurrently.

    Returns the status it left the event in, or None when there was nothing
    to claim (already done, running elsewhere, deleted).
    """
    now = timezone.now()
    claimed = InboundEvent.objects.filter(pk=event_id, status__in=CLAIMABLE).update(
        status=EventStatus.PROCESSING, attempts=F("attempts") + 1, claimed_at=now, next_attempt_at=None)
    if not claimed:
        logger.info("syncengine.process.not-claimed event=%s", event_id)
        return None
    event = InboundEvent.objects.select_related("integration__tenant").get(pk=event_id)
    with sync_context(integration_id=event.integration_id, inbound_event_id=event.pk):
        try:
            outcome = _dispatch_when_pair_free(event)
        except errors.RetryableError as exc:
            return _retry_or_fail(event, exc)
        except errors.ApiError as exc:  # permanent: retrying cannot help
            return _finish(event, EventStatus.FAILED, describe_api_error(exc, _action(event)), error=str(exc))
        except EventError as exc:
            return _finish(event, EventStatus.FAILED, str(exc), error=str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug must not leave the event "processing"
            logger.exception("syncengine.process.crashed event=%s", event.pk)
            message = f"Unexpected error ({type(exc).__name__}); see the worker log."
            return _finish(event, EventStatus.FAILED, message, error=message)
    return _finish(event, outcome.status, outcome.reason)


def _dispatch_when_pair_free(event: InboundEvent) -> Outcome:
    """:func:`dispatch`; when the pair is busy, again once its lease is free, for up to ``BUSY_WAIT_SECONDS``.

    Raises :class:`PairBusy` when the other event still holds the pair by then
    (a slow call, or a worker that died holding it): the retry is scheduled.
    """
    deadline = time.monotonic() + BUSY_WAIT_SECONDS
    while True:
        try:
            return dispatch(event)
        except PairBusy as exc:
            if not _wait_for_lease(exc.pair_id, deadline):
                raise


def _wait_for_lease(pair_id: int, deadline: float) -> bool:
    """Wait until the pair's lease is given back or runs out; False when ``deadline`` comes first."""
    while time.monotonic() + BUSY_POLL_SECONDS < deadline:
        time.sleep(BUSY_POLL_SECONDS)
        if not LinkedPair.objects.filter(pk=pair_id, lease_until__gt=timezone.now()).exists():
            return True
    return False


def _finish(event: InboundEvent, status: str, reason: str, *, error: str | None = None) -> str:
    fields = {"status": status, "reason": _clean(reason), "processed_at": timezone.now(),
              **_without_verification_code(event)}
    if error is not None:
        fields["last_error"] = _clean(error)
    InboundEvent.objects.filter(pk=event.pk, status=EventStatus.PROCESSING).update(**fields)
    log = logger.warning if status == EventStatus.FAILED else logger.info
    log("syncengine.process.%s event=%s %s %s: %s", status, event.pk, event.source, event.event_type, reason)
    return status


def _retry_or_fail(event: InboundEvent, exc: errors.RetryableError) -> str:
    attempts = event.attempts
    if isinstance(exc, PairBusy):
        # Waiting for another event of the same pair is no failed attempt: it
        # ends when that event does, or when its lease runs out.
        attempts -= 1
        InboundEvent.objects.filter(pk=event.pk).update(attempts=attempts)
    if attempts >= MAX_ATTEMPTS:
        return _finish(event, EventStatus.FAILED,
                       f"Gave up after {attempts} attempts. {describe_api_error(exc, _action(event))}",
                       error=str(exc))
    busy = isinstance(exc, PairBusy)
    delay = exc.retry_after if busy else retry_delay(attempts, getattr(exc, "retry_after", None))
    next_run = timezone.now() + timedelta(seconds=delay)
    why = exc.message if busy else describe_api_error(exc, _action(event))
    reason = (f"Attempt {attempts} of {MAX_ATTEMPTS}: {why} "
              f"Next attempt in {delay:.0f} s, at {next_run:%H:%M:%S} UTC.")
    with transaction.atomic():
        updated = InboundEvent.objects.filter(pk=event.pk, status=EventStatus.PROCESSING).update(
            status=EventStatus.RETRY_SCHEDULED, next_attempt_at=next_run, reason=_clean(reason),
            last_error=_clean(str(exc)))
        if updated:
            schedule(TASK, event.pk, schedule_type=Schedule.ONCE, next_run=next_run, repeats=-1,
                     name=f"syncengine event {event.pk} attempt {attempts + 1} ({uuid.uuid4().hex[:6]})")
    logger.info("syncengine.process.retry event=%s attempt=%s in %.0fs: %s", event.pk, attempts, delay, exc)
    return EventStatus.RETRY_SCHEDULED


def _action(event: InboundEvent) -> str:
    """What the job was doing, completing "Could not …"."""
    if event.source == Source.XURRENT and event.event_type == VERIFY_EVENT:
        return "answer Xurrent's webhook verification"
    return f"process the {Source(event.source).label} '{event.event_type}' event"


# -- dispatch --------------------------------------------------------------------------------------
Handler = Callable[..., Outcome]  # (event, integration, **extra) -> Outcome


def dispatch(event: InboundEvent) -> Outcome:
    """Run the handler for (source, event type) and return its outcome.

    A delivery to a tenant's Xurrent webhooks (tenant, no integration) is
    routed first (``syncengine.routing``); the integration found is stored on
    the event, and the outbound calls from then on are tied to it.
    """
    integration, extra = event.integration, {}
    if integration is None and event.tenant_id is not None and event.source == Source.XURRENT:
        if event.event_type == VERIFY_EVENT:
            return handle_tenant_webhook_verify(event)
        routed = routing.route(event)
        if routed.outcome is not None:
            return routed.outcome
        integration = routed.integration
        InboundEvent.objects.filter(pk=event.pk).update(integration=integration)
        event.integration = integration
        if routed.request is not None:
            extra["request"] = routed.request  # read by the routing: the flow does not read it again
        with sync_context(integration_id=integration.pk, inbound_event_id=event.pk):
            return _run_handler(event, integration, extra)
    if integration is None:
        return Outcome(EventStatus.IGNORED, "The integration was deleted after the event arrived; nothing to do.")
    if event.source == Source.XURRENT and event.event_type == VERIFY_EVENT:
        # Even when disabled: the handshake only completes provisioning.
        return handle_webhook_verify(event, integration)
    return _run_handler(event, integration, extra)


def _run_handler(event: InboundEvent, integration: OutgoingIntegration, extra: dict) -> Outcome:
    if not integration.enabled:
        return Outcome(EventStatus.IGNORED, "The integration is disabled; the event was stored but not processed.")
    handler = HANDLERS.get((event.source, event.event_type))
    if handler is None:
        return Outcome(EventStatus.IGNORED, f"No handler for {event.source} '{event.event_type}' events.")
    return handler(event, integration, **extra)


def handle_webhook_verify(event: InboundEvent, integration: OutgoingIntegration) -> Outcome:
    """Answer Xurrent's ``webhook.verify``: GET the callback, then record the webhook as verified.

    The callback is only called on the tenant's own account host (the client
    checks), and the message was signed with the policy's key (checked on receipt).
    """
    from integrations.provisioning import mark_webhook_verified

    webhook_id = _answer_verification(event, integration.tenant)
    mark_webhook_verified(integration.pk, webhook_id)
    return Outcome(EventStatus.PROCESSED, f"Xurrent webhook {webhook_id} verified: the callback was answered.")


def handle_tenant_webhook_verify(event: InboundEvent) -> Outcome:
    """Answer Xurrent's ``webhook.verify`` for one of a tenant's webhooks (``TenantWebhooks``)."""
    from integrations.provisioning import mark_tenant_webhook_verified

    webhook_id = _answer_verification(event, event.tenant)
    if not mark_tenant_webhook_verified(event.tenant_id, webhook_id):
        return Outcome(EventStatus.PROCESSED, f"Xurrent webhook {webhook_id}: the callback was answered, but the "
                                              f"tenant's set of webhooks was removed meanwhile.")
    return Outcome(EventStatus.PROCESSED, f"Xurrent webhook {webhook_id} of the tenant verified: the callback "
                                          f"was answered.")


def _answer_verification(event: InboundEvent, tenant) -> str:
    """Call the verification callback of a ``webhook.verify`` message; returns the webhook id."""
    from connections.xurrent import XurrentClient

    message = event.payload or {}
    callback = (message.get("payload") or {}).get("callback") if isinstance(message.get("payload"), dict) else None
    webhook_id = message.get("webhook_id")
    if not isinstance(callback, str) or not callback.strip():
        raise EventError("The webhook.verify message has no payload.callback address; nothing to call.")
    if webhook_id in (None, ""):
        raise EventError("The webhook.verify message has no webhook_id; cannot tell which webhook it verifies.")
    if not _has_code(callback):
        raise EventError("The webhook.verify callback has no verification code: it is removed from the stored "
                         "message once the event is finished, so it cannot be called again. If the webhook is "
                         "still unverified, \"Retry provisioning\" on the integration makes Xurrent send a fresh "
                         "webhook.verify.")
    client = XurrentClient.for_tenant(tenant)
    try:
        client.call_verification_callback(callback.strip())
    finally:
        client.session.close()
    return webhook_id


# -- the verification code -------------------------------------------------------------------------
# The callback's one-time ``code`` lets whoever holds it verify the webhook. It
# is needed until the event is finished (a scheduled retry calls it again),
# then removed from the stored message and raw body, which view-only staff read.
VERIFY_CODE_PARAM = "code"


def _query_without_code(query: str) -> str:
    return "&".join(part for part in query.split("&")
                    if part and unquote_plus(part.split("=", 1)[0]).strip().lower() != VERIFY_CODE_PARAM)


def _has_code(url: str) -> bool:
    return any(unquote_plus(part.split("=", 1)[0]).strip().lower() == VERIFY_CODE_PARAM and "=" in part
               and part.split("=", 1)[1] for part in urlsplit(url).query.split("&"))


def callback_without_code(url: str) -> str:
    """``url`` without its ``code`` query parameter (other parameters kept as they were)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query=_query_without_code(parts.query)))


def _message_without_code(message):
    """A copy of a webhook.verify message whose ``payload.callback`` has no code, or None when it had none."""
    if not isinstance(message, dict) or not isinstance(message.get("payload"), dict):
        return None
    callback = message["payload"].get("callback")
    if not isinstance(callback, str) or not _has_code(callback):
        return None
    message = copy.deepcopy(message)
    message["payload"]["callback"] = callback_without_code(callback)
    return message


def _body_without_code(body: str) -> str:
    """The raw ``{"jwt": …}`` body with the code removed from the token's data claim.

    The token's signature no longer applies, so it is dropped (it was checked
    on receipt). A body that cannot be read is not kept at all: it may hold the code.
    """
    if not body:
        return body
    try:
        outer = json.loads(body)
        header, claims_segment, _signature = outer["jwt"].split(".")
        claims = json.loads(base64url_decode(claims_segment))
        data = _message_without_code(claims.get("data"))
        if data is None:
            return body
        claims["data"] = data
        encoded = base64url_encode(json.dumps(claims, separators=(",", ":")).encode()).decode()
        outer["jwt"] = f"{header}.{encoded}."
        outer["note"] = ("The verification code was removed from payload.callback once the event was finished; "
                         "the token's signature went with it.")
        return json.dumps(outer)
    except (ValueError, RecursionError, KeyError, TypeError, AttributeError):
        return ""


def _without_verification_code(event: InboundEvent) -> dict:
    """The fields to update so that a finished webhook.verify event keeps no code ({} for other events)."""
    if event.source != Source.XURRENT or event.event_type != VERIFY_EVENT:
        return {}
    fields = {}
    payload = _message_without_code(event.payload)
    if payload is not None:
        fields["payload"] = payload
    body = _body_without_code(event.body)
    if body != event.body:
        fields["body"] = body
    return fields


def handle_zenduty_incident(event: InboundEvent, integration: OutgoingIntegration) -> Outcome:
    """Zenduty incident events. A signed delivery proves that Zenduty's webhook URL and
    signing key were entered, so the manual step is confirmed; then the incident is synced."""
    confirmed = ""
    if integration.zenduty_step_confirmed_at is None:
        from integrations.provisioning import confirm_zenduty_step

        confirm_zenduty_step(integration.pk)
        confirmed = " This signed delivery confirmed the Zenduty webhook setup of the integration."
    outcome = zenduty_to_xurrent.handle(event, integration)
    return Outcome(outcome.status, outcome.reason + confirmed) if confirmed else outcome


HANDLERS: dict[tuple[str, str], Handler] = {
    (Source.XURRENT, VERIFY_EVENT): handle_webhook_verify,
    **{(Source.XURRENT, name): xurrent_to_zenduty.handle for name in XURRENT_EVENTS},
    **{(Source.ZENDUTY, name): handle_zenduty_incident for name in ZENDUTY_EVENTS},
}


# -- housekeeping ----------------------------------------------------------------------------------
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
            **(_without_verification_code(event) if give_up else {}),
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
    calls = _delete_in_batches(OutboundCall.objects.filter(created_at__lt=cutoff), batch)
    events = _delete_in_batches(InboundEvent.objects.filter(received_at__lt=cutoff, status__in=finished), batch)
    if events or calls:
        logger.info("syncengine.pruned %d events and %d calls older than %d days", events, calls, days)
    return events, calls


def _delete_in_batches(queryset, batch: int) -> int:
    total = 0
    while ids := list(queryset.values_list("pk", flat=True)[:batch]):
        # Short statements: no long lock on a table the receivers write to.
        total += queryset.model.objects.filter(pk__in=ids).delete()[0]
    return total


def _clean(text: str) -> str:
    return secrets.redact(text or "")[:MAX_TEXT]
