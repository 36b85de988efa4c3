"""The portal's XurrentClient against the simulated Xurrent, over real HTTP.

Proves the two agree: OAuth token reuse and refresh, Link pagination,
filters, 422 → ValidationError.field_errors, 429 → RateLimitedError, faults,
webhook policy/webhook provisioning, signed deliveries verified with the
portal's own verify_delivery, and the verification callback.
"""
import json

import pytest

from connections import errors, http
from connections.xurrent import XurrentClient, verify_delivery
from sandbox import deliveries, faults
from sandbox.xurrent import demo
from sandbox.xurrent.models import AccessToken, Request, ServiceInstance, Webhook
from tests.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def calls(monkeypatch):
    """Every call the client makes (CallRecords), in order."""
    seen = []
    monkeypatch.setattr(http, "call_observers", [seen.append])
    return seen


@pytest.fixture
def client(sandbox):
    demo.seed()
    waits = []
    made = XurrentClient(account_id=demo.DEMO_ACCOUNT_ID, client_id=demo.DEMO_CLIENT_ID,
                         client_secret=demo.DEMO_CLIENT_SECRET, region="global", environment="production",
                         sleep=waits.append)
    made.waits = waits
    yield made
    made.session.close()


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


def website_id():
    return ServiceInstance.objects.get(name="Website (Production)").pk


def incident(**overrides):
    data = {"subject": "Website down (Zenduty #1)", "category": "incident", "impact": "high",
            "service_instance_id": website_id(), "source": "zenduty", "sourceID": "ZD-1"}
    data.update(overrides)
    return data


def test_the_client_uses_the_sandbox_hosts_and_reuses_one_token(client, sandbox, calls):
    assert client.base_url == f"{sandbox.url}/sandbox/xurrent/xurrent.com/v1"

    account = client.get_account()
    list(client.iter_service_instances())
    client.get_service_instance(website_id())

    assert account["id"] == "wdc" and account["name"] == "Widget Data Center"
    assert AccessToken.objects.count() == 1
    assert [c.url.rsplit("/sandbox/xurrent/xurrent.com", 1)[1] for c in calls] == [
        "/oauth/token", "/v1/account", "/v1/service_instances", f"/v1/service_instances/{website_id()}"]
    assert client.rate_limit["x-ratelimit-limit"] == "3600"


def test_pagination_follows_the_link_header(client, calls):
    client.per_page = 2

    names = [i["name"] for i in client.iter_service_instances()]

    assert names == sorted(name for _, name, _ in demo.DEMO_CATALOG)
    assert len([c for c in calls if c.url.endswith("/v1/service_instances")]) == 3


def test_filters_and_search(client):
    client.per_page = 2
    assert [i["name"] for i in client.iter_service_instances(name="Website (Production)")] == ["Website (Production)"]
    assert [i["name"] for i in client.iter_service_instances(status="being_prepared")] == ["Website (Staging)"]
    found = client.search_service_instances("web")
    assert [i["name"] for i in found] == ["Website (Production)", "Website (Staging)"]


def test_requests_and_notes_round_trip(client):
    created = client.create_request(incident())
    assert created["status"] == "assigned" and created["team"]["name"] == demo.DEMO_TEAM_NAME

    updated = client.update_request(created["id"], {"impact": "top", "note": "Escalated in Zenduty"})
    note = client.add_request_note(created["id"], "Responder acknowledged", internal=True)

    assert updated["impact"] == "top"
    assert client.get_request(created["id"])["impact"] == "top"
    assert [r["id"] for r in client.find_requests("zenduty", "ZD-1")] == [created["id"]]
    assert client.find_requests("zenduty", "ZD-2") == []
    notes = client.list_request_notes(created["id"])
    assert [(n["text"], n["internal"]) for n in notes] == [("Escalated in Zenduty", False),
                                                           ("Responder acknowledged", True)]
    assert notes[1]["id"] == note["id"]


def test_a_422_becomes_a_validation_error_with_field_errors(client):
    with pytest.raises(errors.ValidationError) as caught:
        client.create_request({"impact": "severe"})

    assert caught.value.status == 422
    assert caught.value.field_errors == {"subject": ["Subject can't be blank"],
                                         "category": ["Category can't be blank"],
                                         "impact": ["Impact is not included in the list"]}


def test_a_spent_budget_becomes_rate_limited_with_retry_after(client):
    client.get_account()
    knobs = demo.make_account("wdc", demo.DEMO_CLIENT_ID, demo.DEMO_CLIENT_SECRET).account.simulator_settings()
    knobs.rate_limit = 1
    knobs.save()

    with pytest.raises(errors.RateLimitedError) as caught:
        client.get_account()

    assert caught.value.retry_after > 60  # too long to wait inline: handed to the job layer
    assert client.waits == []


def test_a_short_429_is_waited_out_inline(client):
    client.get_account()
    faults.inject("xurrent", "rate_limit_429", count=1, path_prefix="/v1/account", retry_after=1)

    assert client.get_account()["id"] == "wdc"
    assert client.waits == [1.0]


def test_a_failing_token_request_is_a_server_error_and_the_next_call_gets_a_token(client):
    faults.inject("xurrent", "error_500", count=1, path_prefix="/oauth/token")

    with pytest.raises(errors.ServerError) as caught:
        client.get_account()

    assert caught.value.retryable  # the job layer tries again later
    assert client.get_account()["id"] == "wdc"


def test_a_short_429_on_the_token_request_is_waited_out_inline(client):
    faults.inject("xurrent", "rate_limit_429", count=1, path_prefix="/oauth/token", retry_after=1)

    assert client.get_account()["id"] == "wdc"
    assert client.waits == [1.0]


def test_an_expired_token_is_refreshed_once(client, calls):
    client.get_account()
    AccessToken.objects.update(expires_at=AccessToken.objects.get().created_at)

    assert client.get_account()["id"] == "wdc"

    assert [c.status for c in calls] == [200, 200, 401, 200, 200]
    assert AccessToken.objects.count() == 2


def test_a_500_on_a_create_is_not_retried(client):
    client.get_account()
    faults.inject("xurrent", "error_500", count=1, method="POST")

    with pytest.raises(errors.ServerError):
        client.create_request(incident(sourceID="ZD-2"))

    assert not Request.objects.filter(sourceID="ZD-2").exists()
    assert client.waits == []  # a POST is never repeated after a 5xx: it could create a duplicate


def test_a_500_on_a_read_is_retried(client):
    client.get_account()
    faults.inject("xurrent", "error_500", count=1, method="GET")

    assert client.get_account()["id"] == "wdc"
    assert len(client.waits) == 1


def test_wrong_credentials_and_account(sandbox):
    demo.seed()
    wrong_secret = XurrentClient("wdc", demo.DEMO_CLIENT_ID, "not-the-secret")
    with pytest.raises(errors.AuthenticationError):
        wrong_secret.get_account()
    wrong_account = XurrentClient("elsewhere", demo.DEMO_CLIENT_ID, demo.DEMO_CLIENT_SECRET)
    with pytest.raises(errors.PermissionDeniedError):
        wrong_account.get_account()


def test_provisioning_webhooks_verifying_and_receiving_signed_events(client, receiver):
    policy = client.create_webhook_policy(jwt_alg="es256", jwt_audience="portal-e2e", jwt_claim_expires_in=5)
    assert "BEGIN PUBLIC KEY" in policy["public_key_pem"]
    assert "public_key_pem" not in client.get_webhook_policy(policy["id"])
    webhook = client.create_webhook("request.create", f"{receiver.url}/webhooks/xurrent/abc/",
                                    webhook_policy_id=policy["id"], name="Zenduty portal: request.create")
    assert client.get_webhook(webhook["id"])["webhook_policy"]["id"] == policy["id"]
    assert [w["id"] for w in client.list_webhooks()] == [webhook["id"]]
    deliveries.flush()

    def verified(delivery):
        return verify_delivery(delivery.body, public_key_pem=policy["public_key_pem"], jwt_alg="es256",
                               audience="portal-e2e", issuer=client.account_url)

    verify = verified(receiver.received[0])
    assert verify["event"] == "webhook.verify"
    client.call_verification_callback(verify["payload"]["callback"])
    assert Webhook.objects.get(pk=webhook["id"]).verified

    created = client.create_request(incident())
    deliveries.flush()

    event = verified(receiver.received[1])
    assert event["event"] == "request.create" and event["object_id"] == created["id"]
    me = client._call("GET", "me")
    assert event["person_id"] == me["id"] and event["person_name"] == me["name"]  # the portal's own change
    assert event["payload"]["sourceID"] == "ZD-1"

    client.delete_webhook(webhook["id"])
    client.delete_webhook_policy(policy["id"])
    with pytest.raises(errors.NotFoundError):
        client.get_webhook(webhook["id"])
    with pytest.raises(errors.NotFoundError):
        client.get_webhook_policy(policy["id"])


def test_a_wrong_verification_code_is_an_error(client, receiver):
    webhook = client.create_webhook("request.update", f"{receiver.url}/hook")
    deliveries.flush()

    callback = json.loads(receiver.received[0].body)["payload"]["callback"]
    with pytest.raises(errors.PermissionDeniedError):
        client.call_verification_callback(callback.replace("code=", "code=x"))
    assert not Webhook.objects.get(pk=webhook["id"]).verified
