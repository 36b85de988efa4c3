"""Receiving a webhook delivery: check it, store it, queue it, answer.

The views (``syncengine.views``) hand over the raw delivery; everything here
happens before the answer, so it must stay fast (Zenduty gives 3 s, Xurrent
10 s) and make no outbound call. The order is fixed:

1. body too large → 413, recorded as rejected (without the body);
2. signature on the raw body → 401, recorded as rejected;
3. malformed JSON / not a delivery (or nested more than
   ``sanitize.MAX_NESTING`` levels) → 400, recorded as rejected.
   A rejected body keeps only its first ``REJECTED_BODY_KEPT`` bytes, with
   its size and sha256, and its headers at most ``REJECTED_HEADERS_KEPT``
   bytes (those that say who sent it first), so unsigned junk cannot fill
   the table;
4. a repeated delivery → 200, the stored event counts one more duplicate.
   Xurrent: the same signed token (its ``jti``, else its hash) whatever
   headers came with it, or a retry naming the first delivery as its origin;
5. an event type the portal does not handle, or a disabled integration
   → 200, stored as ignored with the reason;
6. anything else → 200, stored as received and queued once the row is
   committed (``syncengine.tasks.process_inbound_event``).

Odd text does not refuse a delivery: lone UTF-16 surrogates and ``\\u0000``
become U+FFFD and NaN / ±Infinity the strings ``"NaN"`` / ``"Infinity"`` /
``"-Infinity"`` in everything stored but the raw body, which keeps them as
sent (``syncengine.sanitize``); both databases refuse them otherwise. A
body that the server could not read (sent in chunks to a server that does
not de-chunk) → 411, recorded as rejected.

Xurrent deliveries come to the tenant's address (``TenantWebhooks``: one
set of webhooks per tenant) and are stored with the tenant and no
integration: the job routes them (``syncengine.routing``). Integrations
provisioned before that still have their own address until their webhooks
are moved (``manage.py move_xurrent_webhooks``); those deliveries are stored
with the integration, as before.

Unknown ``public_id`` (404) is decided by the view and recorded nowhere:
without an integration there is no key to check a signature with, so
storing would let anyone fill the table by guessing addresses. It is logged.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from connections.models import XurrentTenant
from connections.xurrent import hosts as xurrent_hosts
from connections.xurrent.webhooks import VERIFY_EVENT, InvalidDelivery, read_signed_delivery
from connections.zenduty import webhooks as zenduty_webhooks
from integrations.models import OutgoingIntegration, TenantWebhooks
from syncengine import dispatch, jobs
from syncengine.models import MAX_BODY_BYTES, EventStatus, InboundEvent, Source
from syncengine.outcomes import INTEGRATION_DISABLED
from syncengine.sanitize import TooDeep, for_storage, storable_text

logger = logging.getLogger("syncengine.intake")


# Headers never stored: credentials (Xurrent allows basic auth in the webhook
# URI, Zenduty offers basic auth) and anything named like one.
_DROPPED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_DROPPED_WORDS = ("token", "secret", "password", "api-key", "apikey", "auth")
_KEPT_SIGNATURE_HEADERS = frozenset({"x-signature"})  # an HMAC of this body: useless for anything else
MAX_HEADER_VALUE = 1024
MAX_HEADERS = 50
# What a rejected delivery keeps of its body (enough to tell a wrong key from junk).
REJECTED_BODY_KEPT = 4096
# ... and of its headers, names and values counted: 50 headers of 1 KB each let anyone who knows
# a webhook address store ~50 KB of junk per request. Those that say who sent what come first.
REJECTED_HEADERS_KEPT = 4096

DELIVERY_HEADERS = ("x-xurrent-delivery", "x-4me-delivery")
ORIGIN_HEADERS = ("x-xurrent-delivery-origin", "x-4me-delivery-origin")
# Kept first, in this order, when a rejected delivery's headers are cut.
_TELLING_HEADERS = {name: rank for rank, name in enumerate((
    "content-type", "content-length", "user-agent", zenduty_webhooks.SIGNATURE_HEADER.lower(), *DELIVERY_HEADERS,
    *ORIGIN_HEADERS, "x-forwarded-for", "x-real-ip", "x-request-id"))}


@dataclass
class RawDelivery:
    """What the view read from the request.

    ``body`` is None when it was too large (``size`` is then the declared
    length, or the bytes read before giving up when ``chunked``: the body came
    without a Content-Length and was read to its end) or could not be read at
    all (``unreadable`` says why).
    """

    headers: dict[str, str]
    body: bytes | None
    size: int
    chunked: bool = False
    unreadable: str = ""


@dataclass
class Intake:
    """The answer for the sender, and the row stored (None only for a 404)."""

    http_status: int
    body: dict[str, Any]
    event: InboundEvent | None = None


@dataclass
class _Checked:
    """A delivery whose signature and shape are fine."""

    payload: dict
    event_type: str
    object_id: str
    delivery_id: str
    dedupe_id: str
    # The signed message's own identity (Xurrent: jti or token hash); headers are not signed.
    replay_id: str = ""
    extra: dict = field(default_factory=dict)


class _Refused(Exception):
    def __init__(self, http_status: int, reason: str, *, signature_ok: bool | None, code: str = ""):
        self.http_status = http_status
        self.reason = reason
        self.signature_ok = signature_ok
        self.code = code
        super().__init__(reason)


# Who a delivery is for: an integration (Zenduty; Xurrent webhooks of before the tenant's set),
# or a tenant's set of Xurrent webhooks.
Target = OutgoingIntegration | TenantWebhooks


# Only what the intake reads (the verification keys, the issuer's host, whether enabled): the
# models are wide, and building the SQL for all their columns and the tenant's took half of a
# delivery's time (bench/intake.py). A field left out is loaded when touched, at a query's cost.
_INTEGRATION_FIELDS = ("public_id", "enabled", "zenduty_signing_secret", "xurrent_policy_alg",
                       "xurrent_policy_audience", "xurrent_policy_public_key", "tenant__account_id",
                       "tenant__region", "tenant__environment")
_TENANT_WEBHOOKS_FIELDS = ("public_id", "xurrent_policy_alg", "xurrent_policy_audience", "xurrent_policy_public_key",
                           "tenant__account_id", "tenant__region", "tenant__environment")


class _RecentTargets:
    """Webhook targets this process looked up in the last ``LOOKUP_TTL`` seconds.

    Building the ORM query for a webhook address cost a fifth of a delivery's
    time (bench/intake.py), and senders post to the same few addresses, so
    each process keeps what it found. A copy that went stale is harmless:
    a save or delete in this process forgets it at once (the signals below);
    in another process it lives at most ``LOOKUP_TTL`` seconds, during which
    a refused signature is checked again against a fresh read (a rotated key
    or secret, a policy provisioned a moment ago: never a false 401), a
    disabled integration's delivery is stored as received and its job
    ignores it (``dispatch`` checks ``enabled`` again), and a deleted
    target's delivery is answered 404 when its row cannot be stored. What it
    does allow: a secret or key replaced in another process still verifies
    for up to ``LOOKUP_TTL`` seconds there. Addresses that name nothing are
    never kept, so guessing cannot fill it.
    """

    MAX_KEPT = 1000

    def __init__(self):
        self._found: dict[tuple[type, str], tuple[float, Target]] = {}

    def get(self, model: type, public_id, load) -> Target | None:
        key = (model, str(public_id))
        hit = self._found.get(key)
        now = time.monotonic()
        if hit is not None and hit[0] > now:
            return hit[1]
        target = load()
        if target is None:
            self._found.pop(key, None)
        else:
            if len(self._found) >= self.MAX_KEPT:
                self._found.clear()
            self._found[key] = (now + LOOKUP_TTL, target)
        return target

    def forget(self, model: type, public_id) -> None:
        self._found.pop((model, str(public_id)), None)

    def clear(self, **kwargs) -> None:
        self._found.clear()


LOOKUP_TTL = 5.0
_recent = _RecentTargets()


def find_integration(public_id, *, fresh: bool = False) -> OutgoingIntegration | None:
    """The integration a webhook URL names, with what verification needs
    (a copy at most ``LOOKUP_TTL`` seconds old unless ``fresh``)."""
    return _find(OutgoingIntegration, _INTEGRATION_FIELDS, public_id, fresh)


def find_tenant_webhooks(public_id, *, fresh: bool = False) -> TenantWebhooks | None:
    """The tenant's set of Xurrent webhooks a webhook URL names, with what verification needs
    (a copy at most ``LOOKUP_TTL`` seconds old unless ``fresh``)."""
    return _find(TenantWebhooks, _TENANT_WEBHOOKS_FIELDS, public_id, fresh)


def _find(model: type, fields: tuple[str, ...], public_id, fresh: bool) -> Target | None:
    def load():
        try:
            return model.objects.select_related("tenant").only(*fields).get(public_id=public_id)
        except model.DoesNotExist:
            return None
    if fresh:
        _recent.forget(model, public_id)
    return _recent.get(model, public_id, load)


def _find_again(target: Target) -> Target | None:
    """``target`` read again from the database (None when it was deleted)."""
    finder = find_tenant_webhooks if isinstance(target, TenantWebhooks) else find_integration
    return finder(target.public_id, fresh=True)


def _forget_target(sender, instance, **kwargs) -> None:
    _recent.forget(sender, instance.public_id)


# A save or delete in this process is seen by its next delivery. A tenant's
# account, region or environment make the issuer a token is checked against.
for _model in (OutgoingIntegration, TenantWebhooks):
    post_save.connect(_forget_target, sender=_model, dispatch_uid=f"intake-forget-{_model.__name__}")
    post_delete.connect(_forget_target, sender=_model, dispatch_uid=f"intake-forget-deleted-{_model.__name__}")
post_save.connect(_recent.clear, sender=XurrentTenant, dispatch_uid="intake-forget-tenant")
post_delete.connect(_recent.clear, sender=XurrentTenant, dispatch_uid="intake-forget-deleted-tenant")


def filtered_headers(headers: dict[str, str]) -> dict[str, str]:
    """A copy of the request headers fit for the history: no credentials, values capped."""
    kept: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key in _DROPPED_HEADERS:
            continue
        if key not in _KEPT_SIGNATURE_HEADERS and any(word in key for word in _DROPPED_WORDS):
            continue
        kept[storable_text(key)] = storable_text(str(value)[:MAX_HEADER_VALUE])
        if len(kept) >= MAX_HEADERS:
            break
    return kept


def receive(source: str, integration: Target, delivery: RawDelivery) -> Intake:
    """Check, store and queue one delivery for ``integration`` (or a tenant's set of Xurrent
    webhooks, stored with the tenant and routed by the job); see the module docstring."""
    try:
        return _receive(source, integration, delivery)
    except IntegrityError:
        # Not a duplicate (_store answers those): the target's row is gone, deleted by
        # another process since this one looked it up (_RecentTargets).
        if _find_again(integration) is not None:
            raise
        return _unknown(integration)


def _receive(source: str, integration: Target, delivery: RawDelivery) -> Intake:
    # Lookups use every header; the stored copy is filtered and capped.
    headers = {name.lower(): str(value) for name, value in delivery.headers.items()}
    if delivery.unreadable:
        return _reject(_base(source, integration, headers, delivery),
                       _Refused(411, delivery.unreadable, signature_ok=None, code="length_required"),
                       target=integration)
    if delivery.body is None:
        size = f"more than {MAX_BODY_BYTES}" if delivery.chunked else str(delivery.size)
        return _reject(_base(source, integration, headers, delivery), _Refused(
            413, f"The body has {size} bytes; at most {MAX_BODY_BYTES} bytes are accepted.",
            signature_ok=None, code="too_large"), target=integration)
    try:
        checked = _check(source, integration, delivery.body, headers)
    except _Refused as refused:
        if refused.signature_ok is not False:
            return _reject(_base(source, integration, headers, delivery), refused, delivery.body, integration)
        # The copy this process keeps may predate a new key, secret or policy: a refused
        # signature is checked once more against the stored row before it is answered.
        fresh = _find_again(integration)
        if fresh is None:
            return _unknown(integration)
        integration = fresh
        try:
            checked = _check(source, integration, delivery.body, headers)
        except _Refused as refused_again:
            return _reject(_base(source, integration, headers, delivery), refused_again, delivery.body,
                           integration)
    base = _base(source, integration, headers, delivery)
    base["body"] = _as_text(delivery.body)
    return _store(base, checked, integration)


def _unknown(target: Target) -> Intake:
    """The view's answer for an address that names nothing (stored nowhere, as there)."""
    whose = "tenant" if isinstance(target, TenantWebhooks) else "integration"
    logger.warning("syncengine.webhook.unknown-%s %s (deleted since it was looked up)", whose, target.public_id)
    return Intake(404, {"status": "unknown", "reason": f"No {whose} has this address."})


def _base(source: str, integration: Target, headers: dict, delivery: RawDelivery) -> dict:
    """The fields every stored delivery has, accepted or rejected."""
    for_tenant = isinstance(integration, TenantWebhooks)
    return {"source": source, "integration": None if for_tenant else integration,
            "tenant": integration.tenant if for_tenant else None, "headers": filtered_headers(headers),
            "body_size": delivery.size,
            "delivery_id": storable_text(_first_header(headers, DELIVERY_HEADERS)[:128])}


def _check(source: str, integration: Target, body: bytes, headers: dict) -> _Checked:
    checked = _check_xurrent(integration, body, headers) if source == Source.XURRENT \
        else _check_zenduty(integration, body, headers)
    return _storable(checked)


# -- checks ------------------------------------------------------------------------------------
def _check_xurrent(integration: Target, body: bytes, headers: dict) -> _Checked:
    """A signed Xurrent delivery: ``{"jwt": …}`` under the tenant's (or integration's) webhook policy."""
    if not integration.xurrent_policy_public_key:
        whose = "The tenant's set of Xurrent webhooks" if isinstance(integration, TenantWebhooks) \
            else "This integration"
        raise _Refused(401, f"{whose} has no Xurrent webhook policy key yet, so no delivery can be "
                            f"verified. Provision the integration first.", signature_ok=False, code="no_key")
    if not _is_json(body):
        raise _Refused(400, "The body is not JSON.", signature_ok=False, code="malformed")
    tenant = integration.tenant
    issuer = xurrent_hosts.account_url(tenant.account_id, tenant.region, tenant.environment)
    try:
        signed = read_signed_delivery(body, public_key_pem=integration.xurrent_policy_public_key,
                                      jwt_alg=integration.xurrent_policy_alg,
                                      audience=integration.xurrent_policy_audience, issuer=issuer)
    except InvalidDelivery as exc:
        # JSON without a valid token (no jwt property, wrong key, audience,
        # issuer, expired): the sender is not proven to be Xurrent.
        raise _Refused(401, str(exc), signature_ok=False, code=exc.reason) from None
    data = signed.data
    event_type = data.get("event")
    if not isinstance(event_type, str) or not event_type.strip():
        raise _Refused(400, "The signed message names no event.", signature_ok=True, code="no_event")
    delivery_id = _first_header(headers, DELIVERY_HEADERS)
    # A retry carries a fresh delivery id and names the first one as origin:
    # both are the same message. These headers are not signed, so the token's
    # own identity (replay_id) catches a captured body posted with fresh ones.
    dedupe_id = _first_header(headers, ORIGIN_HEADERS) or delivery_id or _sha256(body)
    return _Checked(payload=data, event_type=event_type.strip(), object_id=_text(data.get("object_id")),
                    delivery_id=delivery_id, dedupe_id=dedupe_id, replay_id=signed.message_id)


def _check_zenduty(integration: OutgoingIntegration, body: bytes, headers: dict) -> _Checked:
    """A Zenduty outgoing webhook signed with ``X-SIGNATURE`` (base64 HMAC-SHA256 of the body)."""
    signature = headers.get(zenduty_webhooks.SIGNATURE_HEADER.lower())
    if not signature:
        raise _Refused(401, "The delivery has no X-SIGNATURE header; this integration accepts only deliveries "
                            "signed with its signing key.", signature_ok=False, code="no_signature")
    if not zenduty_webhooks.verify_signature(integration.zenduty_signing_secret, body, signature):
        raise _Refused(401, "The X-SIGNATURE header does not match the body signed with this integration's "
                            "signing key.", signature_ok=False, code="bad_signature")
    try:
        decoded = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply
        raise _Refused(400, "The body is not JSON.", signature_ok=True, code="malformed") from None
    try:
        message = zenduty_webhooks.parse_outgoing_webhook(decoded)
    except ValueError as exc:
        raise _Refused(400, str(exc), signature_ok=True, code="malformed") from None
    incident = message["incident"]
    incident_id = _text(incident.get("unique_id")) or _text(incident.get("incident_number"))
    # Zenduty sends no delivery id: the same incident in the same state is the same message.
    fingerprint = _sha256(json.dumps([incident_id, message["event_type"], incident.get("status"),
                                      incident.get("acknowledged_date"), incident.get("resolved_date")],
                                     sort_keys=True, default=str).encode())
    return _Checked(payload=message, event_type=message["event_type"].strip(), object_id=incident_id,
                    delivery_id=fingerprint, dedupe_id=fingerprint)


# -- storing -------------------------------------------------------------------------------------
def _storable(checked: _Checked) -> _Checked:
    """``checked`` as both databases store it (see ``syncengine.sanitize``).

    The identities (dedupe_id, replay_id) were computed from the message as
    sent, so two messages that differ only in a replaced character stay two.
    """
    try:
        payload = for_storage(checked.payload)
    except TooDeep as exc:
        raise _Refused(400, str(exc), signature_ok=True, code="malformed") from None
    return replace(checked, payload=payload, event_type=storable_text(checked.event_type),
                   object_id=storable_text(checked.object_id), delivery_id=storable_text(checked.delivery_id),
                   dedupe_id=storable_text(checked.dedupe_id), replay_id=storable_text(checked.replay_id))


def _store(base: dict, checked: _Checked, integration: Target) -> Intake:
    source = base["source"]
    status, reason = EventStatus.RECEIVED, ""
    if not dispatch.handles(source, checked.event_type):
        status = EventStatus.IGNORED
        reason = f"The portal does not handle {Source(source).label} '{checked.event_type}' events; stored only."
    elif isinstance(integration, OutgoingIntegration) and not integration.enabled \
            and checked.event_type != VERIFY_EVENT:
        # webhook.verify is still answered: it completes provisioning, syncs
        # nothing, and spares a new handshake when the integration is enabled.
        status = EventStatus.IGNORED
        reason = INTEGRATION_DISABLED
    now = timezone.now()
    # A tenant's deliveries are keyed apart from any integration's.
    owner = f"tenant-{integration.tenant_id}" if isinstance(integration, TenantWebhooks) else integration.pk
    dedupe_key = f"{source}:{owner}:{checked.dedupe_id}"[:255]
    replay_key = f"{source}:{owner}:{checked.replay_id}"[:255] if checked.replay_id else None
    fields = {**base, "delivery_id": checked.delivery_id[:128], "event_type": checked.event_type[:100],
              "object_id": checked.object_id[:100], "payload": checked.payload, "signature_ok": True,
              "status": status, "reason": reason, "received_at": now, "dedupe_key": dedupe_key,
              "replay_key": replay_key, "processed_at": now if status == EventStatus.IGNORED else None}
    try:
        event = _insert(fields)
    except IntegrityError:
        same = Q(dedupe_key=dedupe_key) | Q(replay_key=replay_key) if replay_key else Q(dedupe_key=dedupe_key)
        existing = InboundEvent.objects.filter(same).order_by("pk").only("pk", "status").first()
        if existing is None:
            raise
        InboundEvent.objects.filter(pk=existing.pk).update(duplicates=F("duplicates") + 1)
        logger.info("syncengine.webhook.duplicate %s %s event=%s", source, checked.event_type, existing.pk)
        return Intake(200, {"status": "duplicate", "event": existing.pk}, existing)

    if status == EventStatus.IGNORED:
        logger.info("syncengine.webhook.ignored %s %s event=%s: %s", source, checked.event_type, event.pk, reason)
        return Intake(200, {"status": "ignored", "event": event.pk, "reason": reason}, event)

    event_id = event.pk
    transaction.on_commit(lambda: jobs.enqueue(event_id))
    logger.info("syncengine.webhook.accepted %s %s event=%s", source, checked.event_type, event.pk)
    return Intake(200, {"status": "accepted", "event": event.pk}, event)


def _insert(fields: dict) -> InboundEvent:
    """Store a delivery's row. A request runs in autocommit, so the INSERT is its own
    transaction: SQLite's write lock is held while the statement runs, not while Python
    builds it (with several web processes, waiting for that lock was most of the intake's
    time under load). Inside a caller's transaction a savepoint keeps a duplicate's
    IntegrityError from spoiling it."""
    if transaction.get_connection().in_atomic_block:
        with transaction.atomic():
            return InboundEvent.objects.create(**fields)
    return InboundEvent.objects.create(**fields)


def _reject(base: dict, refused: _Refused, body: bytes | None = None, target: Target | None = None) -> Intake:
    now = timezone.now()
    reason = refused.reason
    headers, left_out = _capped_headers(base["headers"])
    if left_out:
        base = {**base, "headers": headers}
        reason += (f" Its headers are stored up to {REJECTED_HEADERS_KEPT} bytes: {left_out} more were left "
                   f"out.")
    if body is not None:
        base = {**base, "body": _as_text(body[:REJECTED_BODY_KEPT])}
        if len(body) > REJECTED_BODY_KEPT:
            reason += (f" The body was rejected, so only its first {REJECTED_BODY_KEPT} of {len(body)} bytes are "
                       f"stored (sha256 {_sha256(body)}).")
    event = InboundEvent.objects.create(**base, status=EventStatus.REJECTED, reason=reason,
                                        signature_ok=refused.signature_ok, received_at=now, processed_at=now)
    logger.warning("syncengine.webhook.rejected %s %s -> %s (%s) event=%s", base["source"],
                   target.public_id if target is not None else "?", refused.http_status, refused.code, event.pk)
    return Intake(refused.http_status, {"status": "rejected", "reason": refused.reason, "event": event.pk}, event)


def _capped_headers(headers: dict[str, str]) -> tuple[dict[str, str], int]:
    """``headers`` within ``REJECTED_HEADERS_KEPT`` bytes (names and values), those that tell who sent
    the delivery first, and how many were left out."""
    if sum(len(name) + len(value) for name, value in headers.items()) <= REJECTED_HEADERS_KEPT:
        return headers, 0
    order = sorted(headers, key=lambda name: _TELLING_HEADERS.get(name, len(_TELLING_HEADERS)))
    kept: dict[str, str] = {}
    room = REJECTED_HEADERS_KEPT
    for name in order:
        size = len(name) + len(headers[name])
        if size <= room:
            kept[name] = headers[name]
            room -= size
    return kept, len(headers) - len(kept)


# -- helpers ---------------------------------------------------------------------------------------
def _first_header(headers: dict, names: tuple[str, ...]) -> str:
    for name in names:
        value = (headers.get(name) or "").strip()
        if value:
            return value
    return ""


def _as_text(body: bytes) -> str:
    """The body as stored: UTF-8 (invalid bytes replaced), without NUL (PostgreSQL text cannot hold it)."""
    return body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; RecursionError: nested too deeply
        return False
    return True
