"""The cast of the sync-engine tests.

* ``integration``: a bidirectional integration of tenant ``wdc`` (global,
  production) whose Xurrent webhook policy key is an RSA key generated here;
  its Zenduty signing key is the model default.
* ``sign_xurrent`` / ``sign_zenduty``: sign fixture messages the way the
  senders do (a JWT with the policy's claims; base64 HMAC-SHA256).
* ``outbound``: replaces ``connections.http.send``, the single outbound seam,
  with scripted answers and keeps every request.
"""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from django.urls import reverse
import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from requests.structures import CaseInsensitiveDict

from connections import http
from connections.models import ConnectionStatus, XurrentTenant, ZendutyAccount
from connections.zenduty.webhooks import compute_signature
from connections.xurrent.webhooks import EVENT_TYPES as XURRENT_EVENTS
from integrations.models import Direction, OutgoingIntegration, ProvisioningStatus

FIXTURES = Path(__file__).parent / "fixtures"
ISSUER = "https://wdc.xurrent.com"  # account_url("wdc", "global", "production")
CLIENT_SECRET = "syncengine-test-client-secret-3b8f"
ZENDUTY_TOKEN = "syncengine-test-zenduty-token-77e1"
SIGNING_SECRET = "syncengine-test-signing-secret-a4c2d9"


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> dict:
    return json.loads(fixture_bytes(name))


@pytest.fixture(scope="session")
def rsa_key():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public_pem


@pytest.fixture
def tenant(db):
    return XurrentTenant.objects.create(name="Widget Data Center", account_id="wdc", client_id="syncengine-client",
                                        client_secret=CLIENT_SECRET, status=ConnectionStatus.ACTIVE)


@pytest.fixture
def account(db):
    return ZendutyAccount.objects.create(name="Demo Zenduty", api_token=ZENDUTY_TOKEN,
                                         status=ConnectionStatus.ACTIVE)


@pytest.fixture
def integration(tenant, account, rsa_key) -> OutgoingIntegration:
    hooks = {event: {"id": 4712 + i, "verified": True, "uri": "x", "disabled": False}
             for i, event in enumerate(XURRENT_EVENTS)}
    hooks["request.update"]["id"] = 4711  # the webhook that webhook.verify.json verifies
    hooks["request.update"]["verified"] = False
    return OutgoingIntegration.objects.create(
        zenduty_account=account, zenduty_team_id="team-ops", zenduty_team_name="Operations",
        zenduty_service_id="svc-web", zenduty_service_name="Website", tenant=tenant, service_instance_id="1",
        service_instance_name="Website (Production)", direction=Direction.BIDIRECTIONAL,
        zenduty_signing_secret=SIGNING_SECRET, xurrent_policy_id="312", xurrent_policy_alg="rs256",
        xurrent_policy_audience="zenduty-xurrent-portal:test", xurrent_policy_public_key=rsa_key[1],
        xurrent_webhooks=hooks, provisioning_status=ProvisioningStatus.VERIFYING)


def make_jwt(private_key, message: dict, *, audience="zenduty-xurrent-portal:test", issuer=ISSUER, **changes):
    now = int(time.time())
    claims = {"data": message, "iss": issuer, "aud": audience, "iat": now, "nbf": now, "exp": now + 600,
              "jti": uuid.uuid4().hex * 2, "sub": str(message.get("webhook_id", ""))}
    claims.update(changes)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, private_key, algorithm="RS256")


@pytest.fixture
def sign_xurrent(rsa_key):
    """``sign_xurrent(message_or_fixture_name, **claim_changes) -> body bytes`` ({"jwt": …})."""
    def sign(message, **changes) -> bytes:
        if isinstance(message, str):
            message = fixture_json(f"xurrent/{message}.json")
        return json.dumps({"jwt": make_jwt(rsa_key[0], message, **changes)}).encode()
    return sign


def sign_zenduty(body: bytes, secret: str = SIGNING_SECRET) -> str:
    return compute_signature(secret, body)


def xurrent_url(integration) -> str:
    return reverse("syncengine:xurrent-webhook", args=[integration.public_id])


def zenduty_url(integration) -> str:
    return reverse("syncengine:zenduty-webhook", args=[integration.public_id])


@pytest.fixture
def post_xurrent(client, django_capture_on_commit_callbacks):
    """POST a Xurrent delivery the way Xurrent does; the queued job runs (Q_SYNC) on commit."""
    def post(integration, body: bytes, *, delivery_id: str | None = None, **headers):
        extra = {"HTTP_USER_AGENT": "xurrent/1.0 (https://developer.xurrent.com/v1/webhooks)",
                 "HTTP_X_XURRENT_DELIVERY": delivery_id or str(uuid.uuid4()), **headers}
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(xurrent_url(integration), data=body, content_type="application/json; charset=utf-8",
                               **extra)
    return post


@pytest.fixture
def post_zenduty(client, django_capture_on_commit_callbacks):
    """POST a Zenduty delivery signed with X-SIGNATURE (unless ``signature`` says otherwise)."""
    def post(integration, body: bytes, *, signature: str | None = "sign", **headers):
        extra = dict(headers)
        if signature == "sign":
            extra["HTTP_X_SIGNATURE"] = sign_zenduty(body)
        elif signature is not None:
            extra["HTTP_X_SIGNATURE"] = signature
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(zenduty_url(integration), data=body, content_type="application/json", **extra)
    return post


# -- the outbound seam -------------------------------------------------------------------------
@dataclass
class Outbound:
    """Scripted answers for connections.http.send: ``answers`` is consumed in order
    (default 200 ``{}``); an ``Exception`` instance is raised instead."""

    answers: list = field(default_factory=list)
    requests: list = field(default_factory=list)

    def answer(self, status: int = 200, body=None, headers: dict | None = None) -> None:
        self.answers.append((status, body, headers or {}))

    def send(self, session, method, url, **kwargs):
        self.requests.append({"method": method, "url": url, **kwargs})
        spec = self.answers.pop(0) if self.answers else (200, {}, {})
        if isinstance(spec, Exception):
            raise spec
        status, body, headers = spec
        response = requests.Response()
        response.status_code = status
        response._content = json.dumps(body).encode() if body is not None else b""
        response.headers = CaseInsensitiveDict({"content-type": "application/json", **headers})
        response.url = url
        return response


@pytest.fixture
def outbound(monkeypatch, settings):
    settings.EXTERNAL_API_MAX_RETRIES = 0  # one HTTP call per attempt: the engine's retries are under test
    fake = Outbound()
    monkeypatch.setattr(http, "send", fake.send)
    return fake


@pytest.fixture
def sync_handlers(monkeypatch):
    """Stand-ins for the sync's handlers, for tests of the intake (the sync is tested end to end in
    test_sync.py): each event reaching them is recorded and processed."""
    from syncengine import dispatch
    from syncengine.flows import zenduty_to_xurrent
    from syncengine.models import EventStatus
    from syncengine.outcomes import Outcome

    reached = []

    def handler(event, integration):
        reached.append((event.source, event.event_type, event.object_id))
        return Outcome(EventStatus.PROCESSED, "synced by the stand-in")

    for name in XURRENT_EVENTS:
        monkeypatch.setitem(dispatch.HANDLERS, ("xurrent", name), handler)
    monkeypatch.setattr(zenduty_to_xurrent, "handle", handler)
    return reached
