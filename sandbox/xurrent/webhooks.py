"""What the simulated Xurrent sends to webhooks: messages, signatures, verification.

* Messages have the documented shape (§6.3): webhook_id/_nodeID, account_id,
  account (the account URL), name, event, object_id/_nodeID, person_id/
  _nodeID/person_name (who caused the change) and a ``payload``.
* A webhook with an enabled policy gets ``{"jwt": …}`` signed with the
  policy's private key (§7.2): claims iss, aud, exp, iat, nbf, jti, sub, data.
* Every message leaves through the sandbox outbox (sandbox.deliveries), never
  inside the call that caused it, with a fresh ``x-xurrent-delivery`` per
  attempt, a 10-second timeout and retries (§6.4).
* A new webhook (or one whose URI changed) is inactive until the receiver
  calls back the URL in a ``webhook.verify`` message, valid for 24 hours,
  unless another verified webhook of the account has exactly that URI (§6.2).
* The outbox tells :func:`record_attempt` how each attempt fared: failures
  build a streak, kept with ``last_error``; a streak of
  ``SANDBOX_XURRENT_WEBHOOK_DISABLE_AFTER_FAILURES`` (20) attempts whose first
  is older than ``SANDBOX_XURRENT_WEBHOOK_DISABLE_AFTER_SECONDS`` (a week)
  disables the webhook (§6.4).
"""
from __future__ import annotations

import json
import logging
import secrets
import time
from datetime import timedelta
from http import HTTPStatus
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sandbox import deliveries
from sandbox.models import OutboundDelivery
from sandbox.xurrent import vocabulary as v
from sandbox.xurrent.conventions import Origin
from sandbox.xurrent.models import Account, AuditLine, Note, Person, Request, Webhook, WebhookPolicy, token_digest
from sandbox.xurrent.shapes import payload_ref

logger = logging.getLogger("sandbox.xurrent")

VERIFICATION_VALIDITY = timedelta(hours=24)  # §6.2
DELIVERY_TIMEOUT_SECONDS = 10  # §6.4
DELIVERY_MAX_ATTEMPTS = 5  # the real schedule is undocumented (§6.4)
TEST_OBJECT_ID = 12345  # §6.1: /webhooks/:id/test always names object 12345

_CURVES = {"es256": ec.SECP256R1, "es384": ec.SECP384R1, "es512": ec.SECP521R1}


# -- keys -----------------------------------------------------------------------------------------------
def generate_key_pair(jwt_alg: str) -> tuple[str, str]:
    """A new (private PEM, public PEM) pair for ``jwt_alg``: RSA 2048 for rs*, the matching curve for es*."""
    if jwt_alg.startswith("rs"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(_CURVES[jwt_alg]())
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private_pem, public_pem


def key_family(jwt_alg: str) -> str:
    """Algorithms that can share one key: all RS* share an RSA key; each ES* needs its own curve."""
    return "rsa" if jwt_alg.startswith("rs") else jwt_alg


# -- messages --------------------------------------------------------------------------------------------
def message(webhook: Webhook, event: str, *, object_id: int, object_node_id: str, actor: Person | None,
            payload: dict, origin: Origin) -> dict:
    """The webhook JSON of §6.3 (unsigned form)."""
    return {
        "webhook_id": webhook.pk, "webhook_nodeID": webhook.node_id,
        "account_id": webhook.account.account_id, "account": origin.account_url,
        "name": webhook.name or webhook.event, "event": event,
        "object_id": object_id, "object_nodeID": object_node_id,
        # Empty for system-triggered events (§6.3).
        "person_id": actor.pk if actor else None, "person_nodeID": actor.node_id if actor else None,
        "person_name": actor.name if actor else "",
        "payload": payload,
    }


def sign(policy: WebhookPolicy, webhook: Webhook, data: dict, origin: Origin) -> str:
    """The compact JWS of a delivery (§7.2): ``data`` plus iss/aud/exp/iat/nbf/jti/sub."""
    now = int(time.time())
    claims = {"data": data, "iss": origin.account_url, "iat": now, "nbf": now, "jti": secrets.token_hex(32),
              "sub": str(webhook.pk)}
    if policy.jwt_audience:
        claims["aud"] = policy.jwt_audience
    if policy.jwt_claim_expires_in:
        claims["exp"] = now + policy.jwt_claim_expires_in * 60  # the policy's duration is in minutes
    return jwt.encode(claims, policy.private_key_pem, algorithm=policy.jwt_alg.upper(), headers={"typ": "JWT"})


def deliver(webhook: Webhook, data: dict, *, links: list[tuple[str, str]], origin: Origin, description: str,
            meta: dict | None = None) -> None:
    """Queue one message to ``webhook.uri``, signed when the webhook has an enabled policy."""
    policy = webhook.webhook_policy
    if policy is not None and not policy.disabled:
        body = json.dumps({"jwt": sign(policy, webhook, data, origin)})
    else:
        # No (enabled) policy: the plain JSON (a disabled policy is treated as none — undocumented).
        body = json.dumps(data)
    headers = {
        "content-type": "application/json; charset=utf-8",
        "user-agent": v.WEBHOOK_USER_AGENT,
        "link": ", ".join(f'<{url}>; rel="{rel}"' for url, rel in links),
    }
    deliveries.enqueue("xurrent", webhook.uri, body, headers=headers, fresh_id_header="x-xurrent-delivery",
                       timeout_seconds=DELIVERY_TIMEOUT_SECONDS, max_attempts=DELIVERY_MAX_ATTEMPTS,
                       description=description,
                       meta={"account_id": webhook.account.account_id, "webhook_id": webhook.pk,
                             "event": data["event"], "object_id": data["object_id"], **(meta or {})})


def active_webhooks(account: Account, event: str):
    """The webhooks that receive ``event``: enabled and verified (§6.2)."""
    return (Webhook.objects.filter(account=account, event=event, disabled=False, verified=True)
            .select_related("webhook_policy", "account").order_by("id"))


def request_payload(request: Request, *, previous_status: str | None = None, note: Note | None = None,
                    audit_line: AuditLine | None = None) -> dict:
    """``payload`` of request events (§6.3): status, and only when set: audit_line_id (a create or
    field change made an audit entry), note_id, source, sourceID, previous_status (status changes),
    team and member. Xurrent leaves out what is not set rather than sending null or blank."""
    payload: dict = {}
    if audit_line is not None:
        payload["audit_line_id"] = audit_line.pk
        payload["audit_line_nodeID"] = audit_line.node_id
    if note is not None:
        payload["note_id"] = note.pk
        payload["note_nodeID"] = note.node_id
    if request.source:
        payload["source"] = request.source
    if request.sourceID:
        payload["sourceID"] = request.sourceID
    payload["status"] = request.status
    if previous_status is not None:
        payload["previous_status"] = previous_status
    if request.team is not None:
        payload["team"] = payload_ref(request.team)
    if request.member is not None:
        payload["member"] = payload_ref(request.member)
    return payload


def emit_request_event(request: Request, event: str, actor: Person | None, origin: Origin, *,
                       previous_status: str | None = None, note: Note | None = None,
                       audit_line: AuditLine | None = None) -> int:
    """Send ``event`` about ``request`` to every active webhook of its account. Returns how many."""
    payload = request_payload(request, previous_status=previous_status, note=note, audit_line=audit_line)
    links = [(f"{origin.account_url}/requests/{request.pk}", "canonical"),
             (f"{origin.api_base}/requests/{request.pk}", "resource")]
    if note is not None:
        links.append((f"{origin.api_base}/requests/{request.pk}/notes/{note.pk}", "related"))
    sent = 0
    for webhook in active_webhooks(request.account, event):
        data = message(webhook, event, object_id=request.pk, object_node_id=request.node_id, actor=actor,
                       payload=payload, origin=origin)
        deliver(webhook, data, links=links, origin=origin, description=f"{event} #{request.pk}",
                meta={"request_id": request.pk, **({"note_id": note.pk} if note else {})})
        sent += 1
    return sent


# -- verification (§6.2) -----------------------------------------------------------------------------------
def has_verified_twin(webhook: Webhook) -> bool:
    """Whether another verified webhook of the account has exactly this URI (then no verification is needed)."""
    return Webhook.objects.filter(account=webhook.account, uri=webhook.uri, verified=True) \
        .exclude(pk=webhook.pk).exists()


def require_verification(webhook: Webhook, actor: Person | None, origin: Origin) -> bool:
    """After a create, a URI change, or any update of an unverified webhook: verify it.

    Returns True when a ``webhook.verify`` message was queued, False when the
    URI was already trusted (the webhook is then verified at once).
    """
    now = timezone.now()
    if has_verified_twin(webhook):
        Webhook.objects.filter(pk=webhook.pk).update(verified=True, verified_at=now, verification_code_hash="",
                                                     verification_expires_at=None)
        webhook.verified, webhook.verified_at = True, now
        return False
    code = secrets.token_urlsafe(24)
    expires_at = now + VERIFICATION_VALIDITY
    # A fresh code invalidates the previous one.
    Webhook.objects.filter(pk=webhook.pk).update(verified=False, verified_at=None,
                                                 verification_code_hash=token_digest(code),
                                                 verification_expires_at=expires_at)
    webhook.verified, webhook.verification_expires_at = False, expires_at
    query = urlencode({"code": code, "expires_at": int(expires_at.timestamp())})
    callback = f"{origin.account_url}/webhooks/{webhook.pk}/verify?{query}"
    data = message(webhook, "webhook.verify", object_id=webhook.pk, object_node_id=webhook.node_id, actor=actor,
                   payload={"callback": callback}, origin=origin)
    deliver(webhook, data, links=[(f"{origin.account_url}/webhooks/{webhook.pk}", "canonical"),
                                  (f"{origin.api_base}/webhooks/{webhook.pk}", "resource")],
            origin=origin, description=f"webhook.verify #{webhook.pk}")
    return True


def verify(webhook: Webhook, code: str) -> str:
    """Check a callback's code. Returns "ok", "invalid" or "expired"; "ok" verifies the webhook.

    The stored expiry counts, not the ``expires_at`` in the URL. Calling a
    valid callback again answers "ok" again (deliveries may arrive twice).
    """
    if not webhook.check_verification_code(code):
        return "invalid"
    if webhook.verification_expires_at is None or webhook.verification_expires_at <= timezone.now():
        return "expired"
    if not webhook.verified:
        webhook.verified, webhook.verified_at = True, timezone.now()
        webhook.save(update_fields=["verified", "verified_at"])
    return "ok"


def send_test(webhook: Webhook, actor: Person | None, origin: Origin) -> bool:
    """``POST /webhooks/:id/test`` (§6.1): a sample message about object 12345, even when disabled.

    An unverified webhook receives nothing (§6.2); returns whether one was queued.
    """
    if not webhook.verified:
        return False
    payload = {"status": "assigned", "team": None, "member": None}
    if webhook.event.endswith("status-changed"):
        payload["previous_status"] = "accepted"
    data = message(webhook, webhook.event, object_id=TEST_OBJECT_ID, object_node_id="", actor=actor,
                   payload=payload, origin=origin)
    deliver(webhook, data, links=[(f"{origin.account_url}/webhooks/{webhook.pk}", "canonical")], origin=origin,
            description=f"{webhook.event} test #{webhook.pk}", meta={"test": True})
    return True


# -- delivery health (§6.4) ------------------------------------------------------------------------------------
def error_text(status: int | None, error: str) -> str:
    """``last_error`` as the API shows it: ``"404 Not Found"`` for an HTTP answer, else the transport error."""
    if status is None:
        return error[:200]
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:  # a status code Python does not name
        return str(status)


def record_attempt(delivery: OutboundDelivery, ok: bool) -> None:
    """Outbox listener: count one attempt of a delivery to a webhook; disable the webhook when the streak is due.

    A 2xx ends the streak. A failure extends it and becomes ``last_error``.
    The webhook is disabled once the streak has at least
    ``SANDBOX_XURRENT_WEBHOOK_DISABLE_AFTER_FAILURES`` failures and began more
    than ``SANDBOX_XURRENT_WEBHOOK_DISABLE_AFTER_SECONDS`` ago (§6.4: "20
    consecutive failures over a period longer than a week").

    Attempts are ignored for a deleted webhook, for a message sent to an
    address the webhook no longer has, and, for the streak, while the webhook
    is disabled (its /test messages and leftover retries): the streak that
    disabled it stays on record until it is re-enabled.
    """
    webhook_id = delivery.meta.get("webhook_id")
    if webhook_id is None:
        return
    with transaction.atomic():
        # Locked: the background sender and a test's flush() may report at once.
        webhook = Webhook.objects.select_for_update().filter(pk=webhook_id).first()
        now = timezone.now()
        if webhook is None or webhook.uri != delivery.url:
            return
        if ok:
            if webhook.consecutive_failures and not webhook.disabled:
                webhook.save(update_fields=webhook.reset_failures())
            return
        webhook.last_error = error_text(delivery.last_status, delivery.last_error)
        fields = ["last_error"]
        if not webhook.disabled:
            webhook.consecutive_failures += 1
            webhook.first_failure_at = webhook.first_failure_at or now
            fields += ["consecutive_failures", "first_failure_at"]
            if (webhook.consecutive_failures >= settings.SANDBOX_XURRENT_WEBHOOK_DISABLE_AFTER_FAILURES
                    and (now - webhook.first_failure_at).total_seconds()
                    > settings.SANDBOX_XURRENT_WEBHOOK_DISABLE_AFTER_SECONDS):
                webhook.disabled, webhook.auto_disabled_at = True, now
                fields += ["disabled", "auto_disabled_at", "updated_at"]
                # The webhook's id only: its URI may carry basic-auth credentials (§6.1).
                logger.warning("sandbox.xurrent.webhook-disabled webhook=%s failures=%d", webhook.pk,
                               webhook.consecutive_failures)
        webhook.save(update_fields=fields)
