"""The audit trail: one OutboundCall row per CallRecord, and words for events.

:func:`record_call` is registered as a ``connections.http.call_observers``
entry in ``SyncEngineConfig.ready()``. One INSERT per call, in its own
savepoint, and every failure swallowed: losing a history row is better than
failing a sync. :func:`describe_event` says what a stored event is about.
"""
from __future__ import annotations

import logging

from django.db import transaction

from connections import secrets
from connections.http import CallRecord
from connections import attribution as context
from syncengine.models import InboundEvent, OutboundCall, Source, status_class_of

logger = logging.getLogger("syncengine.history")

MAX_URL_LENGTH = 500
MAX_ERROR_LENGTH = 2000


RATE_LIMIT_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after")


def _rate_limit(extra: dict) -> dict:
    """The rate-limit headers of a CallRecord's ``extra``, and nothing else, bounded in size."""
    return {name: str(extra[name])[:40] for name in RATE_LIMIT_HEADERS if name in (extra or {})}


def record_call(record: CallRecord) -> None:
    """Store one outbound call; never raises."""
    try:
        ctx = context.current()
        # A savepoint: on PostgreSQL a failed INSERT would otherwise poison the
        # caller's transaction.
        with transaction.atomic():
            OutboundCall.objects.create(
                service=record.service[:16], method=record.method[:8],
                # CallRecord URLs carry no query (Xurrent's callback code stays out).
                url=record.url[:MAX_URL_LENGTH], status=record.status,
                status_class=status_class_of(record.status), duration_ms=max(0, record.duration_ms),
                attempt=record.attempt,
                # Clients promise secret-free messages; redact() is the belt to those braces.
                error=secrets.redact(record.error or "")[:MAX_ERROR_LENGTH], error_kind=record.error_kind[:32],
                rate_limit=_rate_limit(record.extra),
                integration_id=ctx.integration_id if ctx else None,
                inbound_event_id=ctx.inbound_event_id if ctx else None,
                pair_id=ctx.pair_id if ctx else None,
            )
    except Exception as exc:  # noqa: BLE001 - the audit trail must never break a sync
        logger.warning("syncengine.history.write-failed %s %s: %s", record.method, record.url, type(exc).__name__)


def register() -> None:
    """Add :func:`record_call` to the observers once (``ready()`` may run twice in tests)."""
    from connections import http

    if record_call not in http.call_observers:
        http.call_observers.append(record_call)


MAX_DESCRIPTION = 120
ZENDUTY_STATUSES = {1: "triggered", 2: "acknowledged", 3: "resolved"}


def describe_event(event: InboundEvent) -> str:
    """One line on what a stored event is about, from its (trusted) message; '' when it has none.

    Xurrent's messages carry ids and the changed fields, not the request's
    subject (reference: webhook payloads); Zenduty's carry the incident.
    """
    message = event.payload if isinstance(event.payload, dict) else {}
    if not message:
        return ""
    if event.source == Source.ZENDUTY:
        incident = message.get("incident") if isinstance(message.get("incident"), dict) else {}
        number = incident.get("incident_number") or event.object_id
        title = f" “{incident['title']}”" if incident.get("title") else ""
        state = event.event_type or ZENDUTY_STATUSES.get(incident.get("status"), "")
        text = f"Incident #{number}{title}" + (f" — {state}" if state else "")
    elif event.event_type == "webhook.verify":
        text = f"Verification of Xurrent webhook {message.get('webhook_id', '?')}"
    else:
        changes = message.get("payload") if isinstance(message.get("payload"), dict) else {}
        kind = event.event_type.split(".", 1)[0] if event.event_type else "record"
        what = {"request.note-added": "note added", "request.create": "created",
                "request.status-changed": "status changed"}.get(event.event_type, "updated")
        status = str(changes.get("status") or "").replace("_", " ")
        by = f" by {message['person_name']}" if message.get("person_name") else ""
        text = f"{kind.capitalize()} {event.object_id or '?'} — {what}{by}" + (f"; status {status}" if status else "")
    return text if len(text) <= MAX_DESCRIPTION else text[:MAX_DESCRIPTION - 1] + "…"
