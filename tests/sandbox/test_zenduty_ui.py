"""The by-hand UI of the simulated Zenduty and its demo seed."""
import json

import pytest
from django.urls import reverse

from sandbox.models import OutboundDelivery
from sandbox.zenduty import demo
from sandbox.zenduty.models import Account, Incident, Integration, Note, SimulatorSettings, WebhookAuth

pytestmark = pytest.mark.django_db


@pytest.fixture
def world():
    return demo.seed()


def test_seed_is_idempotent_and_builds_the_demo(world):
    again = demo.seed()
    assert again.account.pk == world.account.pk and Account.objects.count() == 1
    assert [p.name for p in again.priorities] == ["P1", "P2", "P3", "P4", "P5"]
    assert [p.description for p in again.priorities][0] == "Critical"
    assert [p.description for p in again.priorities][-1] == "Informational"
    assert len(again.platform_priorities) == 3
    assert set(again.services) == {"Website", "Payments API", "Email", "Internal Tools"}
    assert again.account.api_keys.count() == 1 and again.api_user != again.ui_user
    assert again.ui_user.full_name == "Dwight Schrute"


def test_empty_ui_offers_to_create_the_demo(admin_client):
    response = admin_client.get(reverse("zenduty-ui"))
    assert b"Create the demo account" in response.content
    admin_client.post(reverse("zenduty-ui"), {"seed": "1"})
    assert Account.objects.filter(name=demo.DEMO_ACCOUNT_NAME).exists()


def test_trigger_acknowledge_resolve_note_and_priority_by_hand(admin_client, world):
    hook = demo.configure_outgoing_webhook(world.website, "http://127.0.0.1:9/hook/", "k")
    response = admin_client.post(reverse("zenduty-ui"), {"service": world.website.pk, "title": "By hand",
                                                    "summary": "s", "priority": world.priorities[0].pk})
    incident = Incident.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("zenduty-ui-incident", args=[incident.pk])
    assert incident.created_by == world.ui_user and incident.team_priority == world.priorities[0]
    page = admin_client.get(reverse("zenduty-ui"))
    assert b"By hand" in page.content and b"triggered" in page.content

    url = reverse("zenduty-ui-incident", args=[incident.pk])
    admin_client.post(url, {"action": "note", "note": "Checked the logs"})
    admin_client.post(url, {"action": "priority", "priority": world.priorities[3].pk})
    assert OutboundDelivery.objects.count() == 1  # notes and priority changes send nothing
    admin_client.post(url, {"action": "acknowledge"})
    admin_client.post(url, {"action": "resolve"})
    incident.refresh_from_db()
    assert incident.status == Incident.RESOLVED and incident.acknowledged_date and incident.resolved_date
    assert incident.team_priority == world.priorities[3]
    assert Note.objects.get().user == world.ui_user  # the person, not the API token's user
    events = [json.loads(d.body)["payload"]["event_type"] for d in OutboundDelivery.objects.order_by("id")]
    assert events == ["triggered", "acknowledged", "resolved"]
    assert all(d.url == hook.outgoing_url for d in OutboundDelivery.objects.all())
    detail = admin_client.get(url)
    assert b"Checked the logs" in detail.content and b"Dwight Schrute" in detail.content


def test_trigger_form_refuses_a_priority_of_another_team(admin_client, world):
    response = admin_client.post(reverse("zenduty-ui"), {"service": world.website.pk, "title": "x",
                                                    "priority": world.platform_priorities[0].pk})
    assert response.status_code == 200 and Incident.objects.count() == 0


def test_configure_outgoing_webhook_by_hand_shows_the_key_once(admin_client, world):
    url = reverse("zenduty-ui-service-webhooks", args=[world.website.pk])
    assert b"no Outgoing Webhooks integration" in admin_client.get(url).content
    admin_client.post(url, {"action": "add"})
    integration = Integration.objects.get()
    prefix = str(integration.pk)
    response = admin_client.post(url, {"action": "save", "integration": integration.pk,
                                 f"{prefix}-url": "http://127.0.0.1:8000/webhooks/zenduty/x/",
                                 f"{prefix}-is_enabled": "on", f"{prefix}-auth_type": WebhookAuth.HMAC})
    integration.refresh_from_db()
    assert integration.outgoing_url.endswith("/webhooks/zenduty/x/") and integration.signing_secret
    assert integration.signing_secret.encode() in response.content  # shown right after generating
    assert integration.signing_secret.encode() not in admin_client.get(url).content  # and never again

    admin_client.post(url, {"action": "save", "integration": integration.pk, f"{prefix}-url": integration.outgoing_url,
                      f"{prefix}-is_enabled": "on", f"{prefix}-auth_type": WebhookAuth.HMAC,
                      f"{prefix}-signing_secret": "pasted-from-the-portal"})
    integration.refresh_from_db()
    assert integration.signing_secret == "pasted-from-the-portal"
    response = admin_client.post(url, {"action": "regenerate", "integration": integration.pk})
    integration.refresh_from_db()
    assert integration.signing_secret != "pasted-from-the-portal"
    assert integration.signing_secret.encode() in response.content
    bad = admin_client.post(url, {"action": "save", "integration": integration.pk, f"{prefix}-url": "not a url",
                            f"{prefix}-auth_type": WebhookAuth.NONE}, follow=True)
    assert b"Enter a full http(s) URL." in bad.content


def test_services_and_settings_pages(admin_client, world):
    demo.configure_outgoing_webhook(world.website, "http://127.0.0.1:9/hook/")
    page = admin_client.get(reverse("zenduty-ui-services"))
    assert b"Payments API" in page.content and b"URL set" in page.content
    settings_page = admin_client.get(reverse("zenduty-ui-settings"))
    form = settings_page.context["form"]
    # As the real Zenduty: both kinds of limit on; note lists as the SDKs read them.
    assert [form[name].value() for name in ("rate_limits", "per_second_limits", "note_list_shape")] == [
        True, True, "page"]
    assert b"Plain JSON list of every note" in settings_page.content
    admin_client.post(reverse("zenduty-ui-settings"), {"rate_limits": "on", "note_list_shape": "list"})
    row = SimulatorSettings.load()
    assert row.rate_limits is True and row.per_second_limits is False and row.note_list_shape == "list"
    refused = admin_client.post(reverse("zenduty-ui-settings"), {"note_list_shape": "xml"})
    assert refused.status_code == 200 and b"Select a valid choice" in refused.content
    assert SimulatorSettings.load().note_list_shape == "list"  # nothing saved from a bad form


def test_the_simulator_root_leads_to_the_ui(admin_client):
    response = admin_client.get("/sandbox/zenduty/")
    assert response.status_code == 302 and response["Location"] == reverse("zenduty-ui")
