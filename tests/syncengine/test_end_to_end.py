"""End to end over real HTTP: the simulators deliver to the portal's webhook endpoints.

Provisioning creates the policy and webhooks in the simulated Xurrent; its
outbox delivers the signed ``webhook.verify`` messages to the live server;
the portal verifies them, calls the callbacks and records the webhooks as
verified, on both sides. The Zenduty test does the manual step (URL and
signing key in Zenduty's screens) on the simulator's records directly.
"""
from __future__ import annotations

import pytest

from connections.models import XurrentTenant, ZendutyAccount
from connections.xurrent import XurrentClient
from integrations import provisioning
from connections.xurrent.webhooks import EVENT_TYPES as XURRENT_EVENTS
from integrations.models import Direction, OutgoingIntegration, ProvisioningStatus
from syncengine.models import EventStatus, InboundEvent, OutboundCall
from tests.integrations.conftest import hooks_of

pytestmark = pytest.mark.django_db(transaction=True)

CLIENT_ID, CLIENT_SECRET = "e2e-portal-client", "e2e-portal-client-secret-9d4f"
ZENDUTY_TOKEN = "e2e-zenduty-token-61a8"


@pytest.fixture
def xurrent_sim(sandbox):
    from sandbox.xurrent import demo

    sim = demo.make_account("wdc", CLIENT_ID, CLIENT_SECRET, name="Widget Data Center")
    instance = demo.add_service_instance(sim.account, "Website", "Website (Production)", team=sim.team)
    return sim, instance


@pytest.fixture
def zenduty_world(sandbox):
    from sandbox.zenduty import demo

    return demo.make_account(ZENDUTY_TOKEN, "E2E Zenduty")


def make_integration(instance_id, zenduty_service_id="svc", team_id="team", **fields) -> OutgoingIntegration:
    tenant = XurrentTenant.objects.create(name="WDC", account_id="wdc", client_id=CLIENT_ID,
                                          client_secret=CLIENT_SECRET)
    account = ZendutyAccount.objects.create(name="Zenduty", api_token=ZENDUTY_TOKEN)
    return OutgoingIntegration.objects.create(
        zenduty_account=account, zenduty_team_id=team_id, zenduty_service_id=zenduty_service_id,
        zenduty_service_name="Website", tenant=tenant, service_instance_id=str(instance_id),
        service_instance_name="Website (Production)", **fields)


def test_xurrent_verifies_the_provisioned_webhooks_through_the_portal(xurrent_sim):
    from sandbox import deliveries
    from sandbox.xurrent.models import Webhook

    sim, instance = xurrent_sim
    integration = make_integration(instance.pk, direction=Direction.XURRENT_TO_ZENDUTY)
    provisioned = provisioning.provision(integration.pk)  # (no Zenduty here: that step fails, recorded)
    assert hooks_of(provisioned).provisioning_status == ProvisioningStatus.VERIFYING
    assert Webhook.objects.filter(account=sim.account, verified=False).count() == 4

    sent = deliveries.flush(service="xurrent")

    assert [d.last_status for d in sent] == [200] * 4
    events = list(InboundEvent.objects.order_by("pk"))
    assert [(e.event_type, e.status, e.signature_ok, e.tenant_id) for e in events] == \
           [("webhook.verify", EventStatus.PROCESSED, True, integration.tenant_id)] * 4, [e.reason for e in events]
    # The simulated Xurrent saw its callbacks called ...
    assert Webhook.objects.filter(account=sim.account, verified=True).count() == 4
    # ... and the portal knows it.
    integration.refresh_from_db()
    assert all(hooks_of(integration).xurrent_webhooks[event]["verified"] for event in XURRENT_EVENTS)
    assert hooks_of(integration).provisioning_status == ProvisioningStatus.PROVISIONED
    # Each callback is in the history, tied to its event.
    for event in events:
        call = OutboundCall.objects.get(inbound_event=event)
        assert (call.method, call.status, call.integration_id) == ("GET", 200, None)  # the tenant's, not an integration's
        assert call.url.endswith("/verify") and "code=" not in call.url

    # A request created in Xurrent now reaches the portal signed. This one was made by the
    # portal's own person (its client), so it is recognised as the portal's own: no incident.
    client = XurrentClient.for_tenant(integration.tenant)
    created = client.create_request({"subject": "Checkout is down", "category": "incident", "impact": "high",
                                     "service_instance_id": instance.pk})
    deliveries.flush(service="xurrent")

    event = InboundEvent.objects.get(event_type="request.create")
    assert event.object_id == str(created["id"]) and event.signature_ok is True
    assert event.status == EventStatus.IGNORED and event.reason.startswith("Echo of the portal's own request")
    assert "Portal Integration" in event.reason
    assert event.headers.get("x-xurrent-delivery")


def test_a_duplicated_xurrent_delivery_is_stored_once(xurrent_sim):
    from sandbox import deliveries, faults

    sim, instance = xurrent_sim
    integration = make_integration(instance.pk, direction=Direction.XURRENT_TO_ZENDUTY)
    provisioning.provision(integration.pk)
    deliveries.flush(service="xurrent")
    faults.inject("xurrent", "duplicate_delivery")

    XurrentClient.for_tenant(integration.tenant).create_request(
        {"subject": "Slow pages", "category": "incident", "impact": "low", "service_instance_id": instance.pk})
    sent = deliveries.flush(service="xurrent")

    assert len(sent) == 2 and {d.last_status for d in sent} == {200}
    event = InboundEvent.objects.get(event_type="request.create")
    assert event.duplicates == 1 and event.attempts == 1


def test_zenduty_incidents_reach_the_portal_signed(zenduty_world, xurrent_sim):
    from sandbox import deliveries
    from sandbox.xurrent.models import Request
    from sandbox.zenduty import operations
    from sandbox.zenduty.models import Integration, WebhookAuth

    website = zenduty_world.website
    integration = make_integration(xurrent_sim[1].pk, zenduty_service_id=str(website.unique_id),
                                   team_id=str(zenduty_world.operations.unique_id),
                                   direction=Direction.ZENDUTY_TO_XURRENT, sync_notes=False)
    provisioned = provisioning.provision(integration.pk)
    assert provisioned.provisioning_status == ProvisioningStatus.ACTION_REQUIRED, provisioned.provisioning_error
    # The manual step: the portal's URL and signing key, entered in Zenduty's screens.
    Integration.objects.filter(unique_id=provisioned.zenduty_integration_id).update(
        outgoing_url=provisioning.zenduty_webhook_url(provisioned), auth_type=WebhookAuth.HMAC,
        signing_secret=provisioned.zenduty_signing_secret)

    incident = operations.create_incident(service=website, title="Checkout error rate high")
    operations.set_status(incident, 2)
    sent = deliveries.flush(service="zenduty")

    assert [d.last_status for d in sent] == [200, 200]
    events = list(InboundEvent.objects.order_by("pk"))
    assert [(e.event_type, e.object_id, e.status) for e in events] == \
           [("triggered", incident.unique_id, EventStatus.PROCESSED),
            ("acknowledged", incident.unique_id, EventStatus.PROCESSED)], [e.reason for e in events]
    request = Request.objects.get()  # the sync made one request and moved it on
    assert (request.sourceID, request.status) == (incident.unique_id, "in_progress")
    integration.refresh_from_db()
    assert integration.zenduty_step_confirmed_at is not None
    # Confirmed; the tenant's Xurrent webhooks still wait for their webhook.verify (not delivered here).
    assert integration.provisioning_status == ProvisioningStatus.VERIFYING
