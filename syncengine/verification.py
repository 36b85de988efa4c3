"""Xurrent's ``webhook.verify`` handshake, and keeping its one-time code out of the history.

Xurrent sends ``webhook.verify`` to each new webhook; calling the message's
callback address verifies it (https://developer.xurrent.com/v1/webhooks/).
The callback carries a one-time ``code`` that lets whoever holds it verify the
webhook: it is needed until the event is finished (a scheduled retry calls it
again), then removed from the stored message and raw body, which view-only
staff read.
"""
from __future__ import annotations

import copy
import json
from urllib.parse import unquote_plus, urlsplit, urlunsplit

from jwt.utils import base64url_decode, base64url_encode

from connections.xurrent.webhooks import VERIFY_EVENT
from integrations.models import OutgoingIntegration
from syncengine.models import EventStatus, InboundEvent, Source
from syncengine.outcomes import EventError, Outcome


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
    with XurrentClient.for_tenant(tenant) as client:
        client.call_verification_callback(callback.strip())
    return webhook_id


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


def without_verification_code(event: InboundEvent) -> dict:
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
