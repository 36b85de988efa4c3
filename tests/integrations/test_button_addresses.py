"""The addresses of the admin's buttons (POST only) opened in a browser: a page in the admin's look
saying to use the button, with a link back to the object's page; 405 with ``Allow: POST``; nothing done."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from integrations.models import OutgoingIntegration
from roles import services as roles
from syncengine.models import EventStatus, InboundEvent, LinkedPair, PairState, Source
from tests.integrations.conftest import make_integration

pytestmark = pytest.mark.django_db


@pytest.fixture
def objects(tenant, account):
    integration = make_integration(tenant, account)
    pair = LinkedPair.objects.create(integration=integration, tenant=tenant, zenduty_account=account,
                                     origin=Source.ZENDUTY, state=PairState.LINKED, xurrent_request_id="70001",
                                     zenduty_incident_unique_id="inc-1", zenduty_incident_number=1042)
    event = InboundEvent.objects.create(source=Source.ZENDUTY, integration=integration, pair=pair,
                                        event_type="acknowledged", object_id="inc-1", status=EventStatus.PROCESSED)
    return {"integration": integration, "tenant": tenant, "pair": pair, "event": event}


# (button's url name, the object it acts on, its change page's url name, the button's words)
BUTTONS = [
    ("integrations_outgoingintegration_disable", "integration", "integrations_outgoingintegration_change", "Disable"),
    ("integrations_outgoingintegration_enable", "integration", "integrations_outgoingintegration_change", "Enable"),
    ("integrations_outgoingintegration_provision", "integration", "integrations_outgoingintegration_change",
     "Retry provisioning"),
    ("integrations_outgoingintegration_zenduty_step_done", "integration", "integrations_outgoingintegration_change",
     "I have done this in Zenduty"),
    ("connections_xurrenttenant_webhooks_provision", "tenant", "connections_xurrenttenant_change",
     "Retry provisioning"),
    ("syncengine_linkedpair_unlink", "pair", "syncengine_linkedpair_change", "Unlink"),
    ("syncengine_inboundevent_replay", "event", "syncengine_inboundevent_change", "Replay"),
]


def snapshot():
    return [list(model.objects.order_by("pk").values()) for model in (OutgoingIntegration, LinkedPair, InboundEvent)]


@pytest.mark.parametrize("name, key, change, button", BUTTONS, ids=[b[0] for b in BUTTONS])
def test_a_button_address_opened_in_a_browser_says_to_use_the_button(admin_client, objects, name, key, change,
                                                                    button):
    obj = objects[key]
    before = snapshot()
    response = admin_client.get(reverse(f"admin:{name}", args=[obj.pk]))

    assert response.status_code == 405 and response["Allow"] == "POST"
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert 'id="header"' in page and 'class="breadcrumbs"' in page  # the admin's look, its header and trail
    assert f"“{button}” is done with its button, not by opening this address" in page
    assert "nothing was done" in page
    assert f'<a href="{reverse(f"admin:{change}", args=[obj.pk])}">Back to “' in page
    assert snapshot() == before


def test_only_someone_who_may_press_the_button_gets_that_page(client, objects):
    auditor = User.objects.create_user("audrey", password="pw", is_staff=True)
    auditor.groups.add(Group.objects.get(name=roles.AUDITORS))
    client.force_login(auditor)
    for name, key, _, _ in BUTTONS:
        response = client.get(reverse(f"admin:{name}", args=[objects[key].pk]))
        assert response.status_code == 403 and "You may look, but not do this" in response.content.decode(), name
    client.logout()
    client.force_login(User.objects.create_superuser("root", password="pw"))
    for name, _, _, _ in BUTTONS:
        assert client.get(reverse(f"admin:{name}", args=[987654])).status_code == 404, name
