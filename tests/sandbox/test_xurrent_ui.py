"""The by-hand pages of the simulated Xurrent: changes are made as the UI person
and fire the same webhooks as API changes (https://developer.xurrent.com/v1/webhooks/)."""
import json

import pytest
import requests
from django.urls import reverse

from sandbox import deliveries
from sandbox.xurrent import demo
from sandbox.xurrent.models import Account, Note, Request, ServiceInstance
from sandbox.xurrent.testing import XurrentApi
from tests.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

UI = "/sandbox/xurrent/ui/"


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def wired(sandbox, receiver):
    """The demo account with verified webhooks for the four request events (unsigned)."""
    demo.seed()
    api = XurrentApi.connect(sandbox.url, demo.DEMO_ACCOUNT_ID, demo.DEMO_CLIENT_ID, demo.DEMO_CLIENT_SECRET)
    for event in ("request.create", "request.update", "request.status-changed", "request.note-added"):
        api.post("/v1/webhooks", json={"event": event, "uri": f"{receiver.url}/hook"})
    deliveries.flush()
    requests.get(json.loads(receiver.received[0].body)["payload"]["callback"], timeout=10)
    # The other three were created before the first was verified, so each got its own code.
    for delivery in receiver.received[1:]:
        requests.get(json.loads(delivery.body)["payload"]["callback"], timeout=10)
    receiver.received.clear()
    return api


def messages(receiver):
    return [json.loads(r.body) for r in receiver.received]


def test_the_demo_seed_is_idempotent_and_has_the_website_instance(sandbox):
    demo.seed()
    demo.seed()
    account = Account.objects.get(account_id="wdc")
    assert account.name == "Widget Data Center"
    names = set(ServiceInstance.objects.filter(account=account).values_list("name", flat=True))
    assert "Website (Production)" in names and len(names) == 5
    assert account.oauth_applications.get().check_secret("demo-client-secret")


def test_pages_render(admin_client, wired):
    created = wired.post("/v1/requests", json={"subject": "From the API", "category": "rfi"}).json()
    index = admin_client.get(UI)
    assert index.status_code == 200
    text = index.content.decode()
    assert "From the API" in text and "Howard Tanner" in text and "verified" in text
    detail = admin_client.get(f"{UI}requests/{created['id']}/")
    assert detail.status_code == 200 and "Add a note" in detail.content.decode()
    canonical = admin_client.get(f"/sandbox/xurrent/xurrent.com/requests/{created['id']}")
    assert canonical.status_code == 302 and canonical["Location"].endswith(f"{UI}requests/{created['id']}/")


def test_changes_by_hand_fire_webhooks_as_the_ui_person(admin_client, wired, receiver):
    instance = ServiceInstance.objects.get(name="Website (Production)")
    response = admin_client.post(UI, {"action": "raise", "account": "wdc", "subject": "Site slow",
                                "service_instance": instance.pk, "category": "incident", "impact": "medium"})
    record = Request.objects.get(subject="Site slow")
    assert response.status_code == 302 and response["Location"].endswith(f"{UI}requests/{record.pk}/")
    assert record.team.name == demo.DEMO_TEAM_NAME and record.created_by.name == "Howard Tanner"
    assert record.source == ""  # not an API record: no "Xurrent API" source

    page = f"{UI}requests/{record.pk}/"
    admin_client.post(page, {"action": "note", "text": "Customer called"})
    admin_client.post(page, {"action": "impact", "impact": "high"})
    admin_client.post(page, {"action": "complete", "completion_reason": "solved", "note": ""})
    deliveries.flush()

    record.refresh_from_db()
    assert (record.impact, record.status, record.completion_reason) == ("high", "completed", "solved")
    assert Note.objects.get(request=record).person.name == "Howard Tanner"
    sent = messages(receiver)
    assert [m["event"] for m in sent] == ["request.create", "request.note-added", "request.update",
                                          "request.update", "request.status-changed"]
    assert {m["person_name"] for m in sent} == {"Howard Tanner"}
    api_person = wired.get("/v1/me").json()
    assert {m["person_id"] for m in sent} != {api_person["id"]}
    assert sent[-1]["payload"]["previous_status"] == "assigned" and sent[-1]["payload"]["status"] == "completed"


def test_invalid_input_by_hand_is_reported_not_saved(admin_client, wired):
    response = admin_client.post(UI, {"action": "raise", "account": "wdc", "subject": "No impact",
                                "category": "incident", "impact": ""}, follow=True)
    assert "Impact can&#x27;t be blank" in response.content.decode()
    assert not Request.objects.filter(subject="No impact").exists()


def test_simulator_settings_can_be_changed_by_hand(admin_client, wired):
    admin_client.post(UI, {"action": "settings", "account": "wdc", "rate_limit": 5, "rate_window_seconds": 60,
                     "burst_limit": 0, "burst_window_seconds": 2})
    knobs = Account.objects.get(account_id="wdc").simulator_settings()
    assert knobs.rate_limit == 5 and knobs.strict_account_header is False  # unchecked box


def test_the_simulator_root_leads_to_the_ui(admin_client):
    response = admin_client.get("/sandbox/xurrent/xurrent.com/")
    assert response.status_code == 302 and response["Location"] == reverse("sandbox-xurrent-ui")


def test_the_webhook_buttons_send_a_test_message_and_a_fresh_verification(wired, receiver, admin_client):
    from sandbox.xurrent.models import Webhook

    webhook = Webhook.objects.get(event="request.create")

    sent = admin_client.post(reverse("sandbox-xurrent-ui-webhook", args=[webhook.pk]), {"action": "test"})
    deliveries.flush()

    assert sent.status_code == 302 and "#webhooks" in sent["Location"]
    [test] = receiver.received
    assert json.loads(test.body)["webhook_id"] == webhook.pk
    receiver.received.clear()
    again = admin_client.post(reverse("sandbox-xurrent-ui-webhook", args=[webhook.pk]), {"action": "resend"})
    assert again.status_code == 302
