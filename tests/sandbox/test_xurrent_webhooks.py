"""Simulated Xurrent webhooks and webhook policies: CRUD, the verification
handshake and signed deliveries, received by a local HTTP server.

Reference: https://developer.xurrent.com/v1/webhooks/ (verify, delivery format),
https://developer.xurrent.com/v1/webhook_policies/ (policies, JWT).
"""
import json
import re
import uuid
from datetime import timedelta

import jwt
import pytest
import requests
from django.utils import timezone

from sandbox import deliveries
from sandbox.xurrent import demo
from sandbox.xurrent.models import ServiceInstance, Webhook, WebhookPolicy
from sandbox.xurrent.testing import XurrentApi
from tests.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

AUDIENCE = "zenduty-portal-tests"


@pytest.fixture
def acme(sandbox):
    made = demo.make_account("acme", "acme-client", "acme-secret", name="Acme")
    demo.add_service_instance(made.account, "Website", "Website (Production)", team=made.team)
    return made


@pytest.fixture
def api(sandbox, acme):
    return XurrentApi.connect(sandbox.url, "acme", "acme-client", "acme-secret")


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def account_url(sandbox):
    return f"{sandbox.url}/sandbox/xurrent/xurrent.com"


def incident(**overrides):
    data = {"subject": "Checkout fails", "category": "incident", "impact": "medium",
            "service_instance_id": ServiceInstance.objects.get(name="Website (Production)").pk}
    data.update(overrides)
    return data


def bodies(receiver, start=0):
    return [json.loads(r.body) for r in receiver.received[start:]]


def decode(body, public_key_pem, alg, sandbox, audience=AUDIENCE):
    return jwt.decode(body["jwt"], public_key_pem, algorithms=[alg], audience=audience, issuer=account_url(sandbox),
                      options={"require": ["iss", "iat", "nbf", "jti", "sub"]})


def make_policy(api, alg="rs256", **extra):
    response = api.post("/v1/webhook_policies", json={"jwt_alg": alg, "jwt_audience": AUDIENCE,
                                                      "jwt_claim_expires_in": 10, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def make_webhook(api, event, uri, policy=None, **extra):
    body = {"event": event, "uri": uri, **extra}
    if policy:
        body["webhook_policy_id"] = policy["id"]
    response = api.post("/v1/webhooks", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def verify_through_callback(receiver, sandbox, policy, alg="RS256", index=-1):
    """Decode the verify message (signed) and call its callback like a receiver would."""
    claims = decode(bodies(receiver)[index], policy["public_key_pem"], alg, sandbox)
    assert claims["data"]["event"] == "webhook.verify"
    callback = claims["data"]["payload"]["callback"]
    response = requests.get(callback, timeout=10)
    assert response.status_code == 200, response.text
    assert "Verification successful" in response.text
    return claims


# -- policies --------------------------------------------------------------------------------------------
def test_policy_crud_shows_the_public_key_only_on_create(api):
    created = api.post("/v1/webhook_policies", json={"jwt_alg": "rs256", "jwt_audience": "portal",
                                                     "jwt_claim_expires_in": 12})

    assert created.status_code == 201
    policy = created.json()
    assert re.fullmatch(r"[0-9a-f]{56}", policy["name"])
    assert policy["jwt_alg"] == "rs256" and policy["jwt_audience"] == "portal"
    assert policy["jwt_claim_expires_in"] == 12 and policy["disabled"] is False
    assert policy["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    fetched = api.get(f"/v1/webhook_policies/{policy['id']}").json()
    assert "public_key_pem" not in fetched and fetched["name"] == policy["name"]
    listed = api.get("/v1/webhook_policies").json()
    assert listed == [{k: fetched[k] for k in ("id", "nodeID", "name", "created_at", "updated_at")}]
    assert api.get("/v1/webhook_policies", params={"name": policy["name"].upper()}).json()[0]["id"] == policy["id"]

    patched = api.patch(f"/v1/webhook_policies/{policy['id']}", json={"disabled": True, "jwt_alg": "rs512"}).json()
    assert patched["disabled"] is True and patched["jwt_alg"] == "rs512" and "public_key_pem" not in patched
    assert [p["id"] for p in api.get("/v1/webhook_policies/disabled").json()] == [policy["id"]]
    assert api.get("/v1/webhook_policies/enabled").json() == []

    assert api.delete(f"/v1/webhook_policies/{policy['id']}").status_code == 204
    assert api.get(f"/v1/webhook_policies/{policy['id']}").status_code == 404
    private = WebhookPolicy.objects.count()
    assert private == 0


def test_the_private_key_is_stored_encrypted(api):
    make_policy(api)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT private_key_pem FROM sandbox_xurrent_webhookpolicy")
        (raw,) = cursor.fetchone()
    assert raw.startswith("fernet:") and "PRIVATE KEY" not in raw


@pytest.mark.parametrize("alg", ["none", "hs256", "HS512"])
def test_policies_without_a_public_key_are_refused_with_a_reason(api, alg):
    response = api.post("/v1/webhook_policies", json={"jwt_alg": alg})

    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error[0] == "jwt_alg" and "public key" in error[1] and "rs256" in error[1]


def test_policy_validation(api):
    assert api.post("/v1/webhook_policies", json={}).json()["errors"] == [["jwt_alg", "Jwt alg can't be blank"]]
    assert api.post("/v1/webhook_policies", json={"jwt_alg": "ps256"}).json()["errors"] == [
        ["jwt_alg", "Jwt alg is not included in the list"]]
    bad_minutes = api.post("/v1/webhook_policies", json={"jwt_alg": "es256", "jwt_claim_expires_in": "soon"})
    assert bad_minutes.json()["errors"][0][0] == "jwt_claim_expires_in"
    policy = make_policy(api, "es256")
    switch = api.patch(f"/v1/webhook_policies/{policy['id']}", json={"jwt_alg": "rs256"})
    assert switch.status_code == 422 and switch.json()["errors"][0][0] == "jwt_alg"


# -- webhooks -------------------------------------------------------------------------------------------
def test_webhook_crud(api, sandbox, receiver):
    policy = make_policy(api)
    created = api.post("/v1/webhooks", json={"event": "request.update", "uri": f"{receiver.url}/hook",
                                             "webhook_policy_id": policy["id"], "description": "portal"})

    assert created.status_code == 201
    webhook = created.json()
    assert created.headers["location"] == f"{account_url(sandbox)}/webhooks/{webhook['id']}"
    assert webhook["event"] == "request.update" and webhook["name"] == "request.update"  # name defaults to event
    assert webhook["webhook_policy"]["id"] == policy["id"] and webhook["disabled"] is False
    assert api.get(f"/v1/webhooks/{webhook['id']}").json() == webhook

    disabled = api.patch(f"/v1/webhooks/{webhook['id']}", json={"disabled": True, "name": "Portal"}).json()
    assert disabled["disabled"] is True and disabled["name"] == "Portal"
    assert [w["id"] for w in api.get("/v1/webhooks/disabled").json()] == [webhook["id"]]
    assert api.get("/v1/webhooks/enabled").json() == []
    assert [w["id"] for w in api.get("/v1/webhooks", params={"event": "request.update"}).json()] == [webhook["id"]]

    assert api.delete(f"/v1/webhooks/{webhook['id']}").status_code == 204
    assert api.get(f"/v1/webhooks/{webhook['id']}").status_code == 404


def test_webhook_validation(api, receiver):
    unknown = api.post("/v1/webhooks", json={"event": "request.deleted", "uri": f"{receiver.url}/x"})
    assert unknown.status_code == 422
    assert unknown.json()["errors"] == [["event", "Event is not included in the list"]]
    assert api.post("/v1/webhooks", json={"event": "request.create"}).json()["errors"] == [
        ["uri", "Uri can't be blank"]]
    assert api.post("/v1/webhooks", json={"event": "request.create", "uri": "ftp://x"}).json()["errors"] == [
        ["uri", "Uri is invalid"]]
    assert api.post("/v1/webhooks", json={"event": "request.create", "uri": f"{receiver.url}/x",
                                          "webhook_policy_id": 987654}).json()["errors"] == [
        ["webhook_policy", "Webhook policy is invalid"]]


# -- verification and deliveries ---------------------------------------------------------------------------
def test_the_verify_handshake_then_signed_request_events(api, sandbox, receiver, acme):
    policy = make_policy(api, "rs256")
    uri = f"{receiver.url}/webhooks/xurrent"
    first = make_webhook(api, "request.update", uri, policy)
    deliveries.flush()

    assert len(receiver.received) == 1
    delivery = receiver.received[0]
    assert delivery.path == "/webhooks/xurrent"
    assert delivery.headers["content-type"].startswith("application/json")
    assert delivery.headers["user-agent"] == "xurrent/1.0 (https://developer.xurrent.com/v1/webhooks)"
    uuid.UUID(delivery.headers["x-xurrent-delivery"])
    claims = verify_through_callback(receiver, sandbox, policy)
    data = claims["data"]
    assert data["webhook_id"] == data["object_id"] == first["id"]
    assert data["account_id"] == "acme" and data["account"] == account_url(sandbox)
    assert data["person_id"] == acme.person.pk and data["person_name"] == demo.API_PERSON_NAME
    callback = data["payload"]["callback"]
    assert re.fullmatch(re.escape(f"{account_url(sandbox)}/webhooks/{first['id']}/verify?code=") +
                        r"[\w-]+&expires_at=\d+", callback)
    expires_at = int(callback.rsplit("=", 1)[1])
    assert abs(expires_at - (timezone.now() + timedelta(hours=24)).timestamp()) < 60
    assert claims["exp"] == claims["iat"] + 600 and claims["nbf"] == claims["iat"]
    assert re.fullmatch(r"[0-9a-f]{64}", claims["jti"]) and claims["aud"] == AUDIENCE
    assert jwt.get_unverified_header(bodies(receiver)[0]["jwt"])["alg"] == "RS256"

    # The same address is already verified: the other webhooks need no handshake (§6.2).
    for event in ("request.status-changed", "request.note-added", "request.create"):
        make_webhook(api, event, uri, policy)
    deliveries.flush()
    assert len(receiver.received) == 1
    assert Webhook.objects.filter(verified=True).count() == 4

    created = api.post("/v1/requests", json=incident(source="zenduty", sourceID="ZD-42")).json()
    api.patch(f"/v1/requests/{created['id']}", json={"status": "in_progress"})
    note_id = api.post(f"/v1/requests/{created['id']}/notes", json={"text": "On it"}).json()["id"]
    deliveries.flush()

    events = [decode(b, policy["public_key_pem"], "RS256", sandbox)["data"] for b in bodies(receiver, 1)]
    assert [e["event"] for e in events] == ["request.create", "request.update", "request.status-changed",
                                            "request.note-added"]
    assert all(e["object_id"] == created["id"] and e["person_name"] == demo.API_PERSON_NAME for e in events)
    status_changed = events[2]["payload"]
    assert status_changed["status"] == "in_progress" and status_changed["previous_status"] == "assigned"
    assert status_changed["source"] == "zenduty" and status_changed["sourceID"] == "ZD-42"
    assert status_changed["team"]["name"] == demo.DEMO_TEAM_NAME and status_changed["team"]["account"] == {
        "id": "acme", "name": "Acme"}
    # Keys that are not set are left out (§6.3): no member, the team's blank sourceID and false disabled.
    assert "member" not in status_changed
    assert "sourceID" not in status_changed["team"] and "disabled" not in status_changed["team"]
    assert "previous_status" not in events[1]["payload"] and "note_id" not in events[1]["payload"]
    assert events[3]["payload"]["note_id"] == note_id
    # The create and the change made audit entries; the change's two events name the same one; a note none.
    audit = [e["payload"].get("audit_line_id") for e in events]
    assert audit[0] and audit[1] and audit[1] == audit[2] != audit[0] and audit[3] is None
    assert events[1]["payload"]["audit_line_nodeID"] and "audit_line_nodeID" not in events[3]["payload"]
    ids = [r.headers["x-xurrent-delivery"] for r in receiver.received]
    assert len(set(ids)) == len(ids)
    link = receiver.received[-1].headers["link"]
    assert f'<{account_url(sandbox)}/requests/{created["id"]}>; rel="canonical"' in link
    assert f'<{account_url(sandbox)}/v1/requests/{created["id"]}>; rel="resource"' in link
    assert f'/v1/requests/{created["id"]}/notes/{note_id}>; rel="related"' in link


def test_an_es384_policy_signs_with_its_curve(api, sandbox, receiver):
    policy = make_policy(api, "es384", jwt_claim_expires_in=None)
    make_webhook(api, "request.create", f"{receiver.url}/es", policy)
    deliveries.flush()
    verify_through_callback(receiver, sandbox, policy, alg="ES384")

    created = api.post("/v1/requests", json=incident()).json()
    deliveries.flush()

    claims = decode(bodies(receiver)[-1], policy["public_key_pem"], "ES384", sandbox)
    assert "exp" not in claims  # no jwt_claim_expires_in, no exp (§7.2)
    assert claims["data"]["event"] == "request.create" and claims["data"]["object_id"] == created["id"]
    with pytest.raises(jwt.InvalidSignatureError):
        other = make_policy(api, "es384")
        decode(bodies(receiver)[-1], other["public_key_pem"], "ES384", sandbox)


def test_an_unverified_webhook_receives_nothing_but_its_verify_message(api, sandbox, receiver):
    make_webhook(api, "request.create", f"{receiver.url}/unverified")
    deliveries.flush()
    assert bodies(receiver)[0]["event"] == "webhook.verify"  # no policy: plain JSON

    api.post("/v1/requests", json=incident())
    deliveries.flush()

    assert len(receiver.received) == 1


def test_payloads_carry_what_is_set_and_leave_out_the_rest(api, sandbox, receiver, acme):
    make_webhook(api, "request.update", f"{receiver.url}/shapes")
    deliveries.flush()
    assert requests.get(bodies(receiver)[0]["payload"]["callback"], timeout=10).status_code == 200
    acme.team.sourceID, acme.team.disabled = "TEAM-7", True
    acme.team.save()

    created = api.post("/v1/requests", json=incident(sourceID="")).json()
    api.patch(f"/v1/requests/{created['id']}", json={"member_id": acme.person.pk})
    api.patch(f"/v1/requests/{created['id']}", json={"note": "No field changed"})
    deliveries.flush()

    [update] = [m["payload"] for m in bodies(receiver, 1)]  # a note alone fires no request.update
    assert "sourceID" not in update and update["source"]  # blank sourceID left out, source defaulted
    assert update["member"]["name"] == demo.API_PERSON_NAME and "disabled" not in update["member"]
    assert update["team"]["sourceID"] == "TEAM-7" and update["team"]["disabled"] is True
    assert isinstance(update["audit_line_id"], int)


def test_a_webhook_without_policy_gets_plain_json(api, sandbox, receiver):
    make_webhook(api, "request.create", f"{receiver.url}/plain")
    deliveries.flush()
    assert requests.post(bodies(receiver)[0]["payload"]["callback"], timeout=10).status_code == 200  # POST works

    created = api.post("/v1/requests", json=incident()).json()
    deliveries.flush()

    message = bodies(receiver)[-1]
    assert message["event"] == "request.create" and message["object_id"] == created["id"]
    assert set(message) >= {"webhook_id", "webhook_nodeID", "account_id", "account", "name", "event", "object_id",
                            "object_nodeID", "person_id", "person_name", "payload"}


def test_disabled_webhooks_and_other_events_receive_nothing(api, sandbox, receiver):
    hook = make_webhook(api, "request.note-added", f"{receiver.url}/notes")
    deliveries.flush()
    requests.get(bodies(receiver)[0]["payload"]["callback"], timeout=10)

    created = api.post("/v1/requests", json=incident()).json()  # request.create: not subscribed
    api.patch(f"/v1/webhooks/{hook['id']}", json={"disabled": True})
    api.post(f"/v1/requests/{created['id']}/notes", json={"text": "hidden"})
    deliveries.flush()
    assert len(receiver.received) == 1

    api.patch(f"/v1/webhooks/{hook['id']}", json={"disabled": False})
    api.post(f"/v1/requests/{created['id']}/notes", json={"text": "seen"})
    deliveries.flush()
    assert [b["event"] for b in bodies(receiver)] == ["webhook.verify", "request.note-added"]


def test_wrong_and_expired_codes_are_refused(api, receiver):
    hook = make_webhook(api, "request.create", f"{receiver.url}/codes")
    deliveries.flush()
    callback = bodies(receiver)[0]["payload"]["callback"]

    wrong = requests.get(re.sub(r"code=[^&]+", "code=guess", callback), timeout=10)
    assert wrong.status_code == 403 and "Verification failed" in wrong.text
    Webhook.objects.filter(pk=hook["id"]).update(verification_expires_at=timezone.now() - timedelta(seconds=1))
    expired = requests.get(callback, timeout=10)
    assert expired.status_code == 410
    assert not Webhook.objects.get(pk=hook["id"]).verified
    missing = requests.get(callback.replace(f"/webhooks/{hook['id']}/", "/webhooks/999999/"), timeout=10)
    assert missing.status_code == 404


def test_updating_an_unverified_webhook_sends_a_fresh_code_and_voids_the_old(api, receiver):
    hook = make_webhook(api, "request.create", f"{receiver.url}/fresh")
    deliveries.flush()
    old = bodies(receiver)[0]["payload"]["callback"]

    api.patch(f"/v1/webhooks/{hook['id']}", json={"description": "touched"})
    deliveries.flush()

    new = bodies(receiver)[1]["payload"]["callback"]
    assert new != old
    assert requests.get(old, timeout=10).status_code == 403
    assert requests.get(new, timeout=10).status_code == 200
    assert requests.get(new, timeout=10).status_code == 200  # calling twice is fine


def test_a_new_uri_needs_verification_again(api, receiver):
    hook = make_webhook(api, "request.create", f"{receiver.url}/one")
    deliveries.flush()
    requests.get(bodies(receiver)[0]["payload"]["callback"], timeout=10)
    assert Webhook.objects.get(pk=hook["id"]).verified

    api.patch(f"/v1/webhooks/{hook['id']}", json={"uri": f"{receiver.url}/two"})
    deliveries.flush()

    assert not Webhook.objects.get(pk=hook["id"]).verified
    assert receiver.received[-1].path == "/two" and bodies(receiver)[-1]["event"] == "webhook.verify"


def test_the_test_endpoint_sends_object_12345(api, receiver):
    hook = make_webhook(api, "request.status-changed", f"{receiver.url}/test")
    assert api.post(f"/v1/webhooks/{hook['id']}/test").status_code == 204
    deliveries.flush()
    assert len(receiver.received) == 1  # unverified: only the verify message
    requests.get(bodies(receiver)[0]["payload"]["callback"], timeout=10)
    api.patch(f"/v1/webhooks/{hook['id']}", json={"disabled": True})  # works for disabled webhooks too

    assert api.post(f"/v1/webhooks/{hook['id']}/test").status_code == 204
    deliveries.flush()

    message = bodies(receiver)[-1]
    assert message["event"] == "request.status-changed" and message["object_id"] == 12345


def test_failed_deliveries_are_retried_with_a_new_delivery_id(api, receiver):
    receiver.statuses = [500]
    make_webhook(api, "request.create", f"{receiver.url}/flaky")
    deliveries.flush(rounds=2)

    first, second = receiver.received
    assert first.body == second.body
    assert second.headers["x-xurrent-delivery"] != first.headers["x-xurrent-delivery"]
    assert second.headers["x-xurrent-delivery-origin"] == first.headers["x-xurrent-delivery"]


def test_an_update_that_changes_nothing_fires_nothing(api, receiver):
    make_webhook(api, "request.update", f"{receiver.url}/quiet")
    deliveries.flush()
    requests.get(bodies(receiver)[0]["payload"]["callback"], timeout=10)
    created = api.post("/v1/requests", json=incident()).json()

    api.patch(f"/v1/requests/{created['id']}", json={"impact": created["impact"], "subject": created["subject"]})
    deliveries.flush()
    assert len(receiver.received) == 1

    api.patch(f"/v1/requests/{created['id']}", json={"impact": "low"})
    deliveries.flush()
    assert [b["event"] for b in bodies(receiver)] == ["webhook.verify", "request.update"]


# -- automatic disabling (§6.4: 20 consecutive failures over more than a week; last_error kept) -------------
@pytest.fixture
def compressed(settings):
    """Time-compressed auto-disabling: 3 failed attempts, the first over an hour ago."""
    settings.SANDBOX_XURRENT_WEBHOOK_DISABLE_AFTER_FAILURES = 3
    settings.SANDBOX_XURRENT_WEBHOOK_DISABLE_AFTER_SECONDS = 3600
    return settings


def verified_webhook(api, receiver, event="request.create", path="/health"):
    hook = make_webhook(api, event, f"{receiver.url}{path}")
    deliveries.flush()
    requests.get(bodies(receiver)[-1]["payload"]["callback"], timeout=10)
    return hook


def test_a_failing_webhook_is_disabled_after_the_streak_and_receives_nothing_more(api, admin_client, receiver,
                                                                                   compressed):
    hook = verified_webhook(api, receiver)
    assert api.get(f"/v1/webhooks/{hook['id']}").json()["last_error"] is None
    receiver.statuses = [500] * 10

    api.post("/v1/requests", json=incident())
    deliveries.flush(rounds=5)  # one message, five failed attempts

    # Enough failures, but the streak is younger than the period: still enabled.
    row = Webhook.objects.get(pk=hook["id"])
    assert len(receiver.received) == 1 + 5
    assert row.consecutive_failures == 5 and not row.disabled and row.auto_disabled_at is None
    assert api.get(f"/v1/webhooks/{hook['id']}").json()["last_error"] == "500 Internal Server Error"

    Webhook.objects.filter(pk=hook["id"]).update(first_failure_at=timezone.now() - timedelta(hours=2))
    api.post("/v1/requests", json=incident())
    deliveries.flush()  # the first attempt of the second message fails: the streak is now due

    fetched = api.get(f"/v1/webhooks/{hook['id']}").json()
    assert fetched["disabled"] is True and fetched["last_error"] == "500 Internal Server Error"
    assert [w["id"] for w in api.get("/v1/webhooks/disabled").json()] == [hook["id"]]
    assert Webhook.objects.get(pk=hook["id"]).consecutive_failures == 6

    deliveries.flush(rounds=5)  # leftover retries already queued still run out, the streak stays as it was
    sent = len(receiver.received)
    assert sent == 1 + 5 + 5 and Webhook.objects.get(pk=hook["id"]).consecutive_failures == 6
    receiver.statuses = []  # the receiver is healthy again, but the webhook is off
    created = api.post("/v1/requests", json=incident()).json()
    api.patch(f"/v1/requests/{created['id']}", json={"impact": "low"})
    deliveries.flush(rounds=5)
    assert len(receiver.received) == sent
    assert api.get(f"/v1/webhooks/{hook['id']}").json()["last_error"] == "500 Internal Server Error"  # kept

    page = admin_client.get("/sandbox/xurrent/ui/", {"account": "acme"}).content.decode()
    assert "disabled after 6 failures" in page and "500 Internal Server Error" in page


def test_a_success_ends_the_streak_and_keeps_last_error(api, receiver, settings):
    settings.SANDBOX_XURRENT_WEBHOOK_DISABLE_AFTER_FAILURES = 3
    settings.SANDBOX_XURRENT_WEBHOOK_DISABLE_AFTER_SECONDS = 0
    hook = verified_webhook(api, receiver)
    receiver.statuses = [500, 500, 200, 503, 503]

    api.post("/v1/requests", json=incident())
    deliveries.flush(rounds=5)  # 500, 500, then delivered

    row = Webhook.objects.get(pk=hook["id"])
    assert row.consecutive_failures == 0 and row.first_failure_at is None and not row.disabled
    assert api.get(f"/v1/webhooks/{hook['id']}").json()["last_error"] == "500 Internal Server Error"

    api.post("/v1/requests", json=incident())
    deliveries.flush(rounds=2)  # 503, 503: two in a row, not four
    row = Webhook.objects.get(pk=hook["id"])
    assert row.consecutive_failures == 2 and not row.disabled
    assert api.get(f"/v1/webhooks/{hook['id']}").json()["last_error"] == "503 Service Unavailable"

    receiver.statuses = [502]
    deliveries.flush()  # the third in a row
    fetched = api.get(f"/v1/webhooks/{hook['id']}").json()
    assert fetched["disabled"] is True and fetched["last_error"] == "502 Bad Gateway"


def test_re_enabling_starts_a_fresh_streak(api, receiver, settings):
    settings.SANDBOX_XURRENT_WEBHOOK_DISABLE_AFTER_FAILURES = 2
    settings.SANDBOX_XURRENT_WEBHOOK_DISABLE_AFTER_SECONDS = 0
    hook = verified_webhook(api, receiver)
    receiver.statuses = [500, 500]
    api.post("/v1/requests", json=incident())
    deliveries.flush(rounds=2)
    assert Webhook.objects.get(pk=hook["id"]).auto_disabled_at is not None

    enabled = api.patch(f"/v1/webhooks/{hook['id']}", json={"disabled": False}).json()

    assert enabled["disabled"] is False and enabled["last_error"] == "500 Internal Server Error"
    row = Webhook.objects.get(pk=hook["id"])
    assert row.consecutive_failures == 0 and row.auto_disabled_at is None
    receiver.statuses = [500]
    deliveries.flush()  # the leftover retry fails once: one failure is not a streak of two
    assert not Webhook.objects.get(pk=hook["id"]).disabled
    deliveries.flush()  # delivered
    created = api.post("/v1/requests", json=incident()).json()
    deliveries.flush()
    assert bodies(receiver)[-1]["object_id"] == created["id"]


def test_an_unreachable_webhook_shows_the_transport_error(api, settings):
    import socket

    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    hook = make_webhook(api, "request.create", f"http://127.0.0.1:{port}/gone")

    deliveries.flush()  # the webhook.verify message fails

    assert api.get(f"/v1/webhooks/{hook['id']}").json()["last_error"] == "ConnectionError"
    assert Webhook.objects.get(pk=hook["id"]).consecutive_failures == 1
