"""Zenduty's outgoing webhooks: the HMAC signature and the payload.

The per-service "Outgoing Webhooks" integration POSTs
``{"payload": {"event_type": …, "incident": {…}}}`` on triggered,
acknowledged and resolved only: no note or priority events exist, so those
changes are polled (https://www.zenduty.com/docs/outgoingwebhooks-integration/).

When signing is on, the ``X-SIGNATURE`` header carries
base64(HMAC-SHA256(signing key, raw request body)), as Xurrent's own IMR
connector verifies it. There is no timestamp or event id, so receivers
deduplicate on (incident, event_type) themselves.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from connections.zenduty.constants import EVENT_TYPES

SIGNATURE_HEADER = "X-SIGNATURE"

__all__ = ["EVENT_TYPES", "SIGNATURE_HEADER", "compute_signature", "parse_outgoing_webhook", "verify_signature"]


def compute_signature(secret: str | bytes, body_bytes: bytes) -> str:
    """The ``X-SIGNATURE`` value for a body: base64 of its HMAC-SHA256.

    ``body_bytes`` must be the raw request body: re-serialised JSON differs
    in spacing and key order and would never match.
    """
    key = secret.encode() if isinstance(secret, str) else secret
    return base64.b64encode(hmac.new(key, body_bytes, hashlib.sha256).digest()).decode("ascii")


def verify_signature(secret: str | bytes, body_bytes: bytes, header_value: str | None) -> bool:
    """Whether ``header_value`` is the signature of the raw body under ``secret``.

    False when either the secret or the header is missing: an unsigned
    delivery to an integration that has a signing key is refused, not waved
    through. The comparison takes constant time.
    """
    if not secret or not header_value:
        return False
    expected = compute_signature(secret, body_bytes)
    return hmac.compare_digest(expected.encode("ascii"), header_value.strip().encode("utf-8"))


def parse_outgoing_webhook(body: Any) -> dict:
    """``{"event_type": …, "incident": {…}}`` from a decoded delivery.

    Takes the documented ``{"payload": {…}}`` envelope and the unwrapped form
    alike (Xurrent's IMR connector accepts both). An event type this module
    does not know is returned as it is, for the caller to ignore; compare it
    with ``EVENT_TYPES``. The incident keeps the webhook's own shape:
    ``service`` and ``assigned_to`` are objects here, unlike the REST API's
    UUID and username.

    :raises ValueError: with the reason, when the body cannot be a delivery.
    """
    if not isinstance(body, dict):
        raise ValueError("The webhook body is not a JSON object.")
    inner = body.get("payload", body)
    if not isinstance(inner, dict):
        raise ValueError("The webhook's 'payload' is not a JSON object.")
    event_type = inner.get("event_type")
    if not isinstance(event_type, str) or not event_type.strip():
        raise ValueError("The webhook has no 'event_type'.")
    incident = inner.get("incident")
    if not isinstance(incident, dict):
        raise ValueError("The webhook has no 'incident' object.")
    if incident.get("unique_id") in (None, "") and incident.get("incident_number") in (None, ""):
        raise ValueError("The webhook's incident has neither a 'unique_id' nor an 'incident_number'.")
    return {"event_type": event_type, "incident": incident}
