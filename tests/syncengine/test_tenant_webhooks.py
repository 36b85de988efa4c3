"""Account-level Xurrent webhooks end to end: one policy and set of webhooks per tenant, one delivery per
request event, routed to the integration of the request's pair or service instance.

The cast is the demo of ``test_sync`` (Website ⇄ Website (Production), provisioned and verified through
the simulators); deliveries are counted in the Xurrent simulator's outbox.
"""
from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from connections import errors, http
from integrations import provisioning
from integrations.models import Direction, OutgoingIntegration, ProvisioningStatus, TenantWebhooks
from syncengine import routing
from syncengine.models import EventStatus, InboundEvent, LinkedPair, OutboundCall
from tests.syncengine.test_sync import Demo, events

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo(sandbox):
    return Demo(sandbox)


def add_payments_integration(demo, **fields) -> OutgoingIntegration:
    from sandbox import demo as sandbox_demo
    from sandbox.xurrent.models import ServiceInstance

    first = demo.integration
    second = OutgoingIntegration.objects.create(
        zenduty_account=first.zenduty_account, zenduty_team_id=first.zenduty_team_id,
        zenduty_team_name="Operations", zenduty_service_id=str(demo.zenduty.services["Payments API"].unique_id),
        zenduty_service_name="Payments API", tenant=first.tenant,
        service_instance_id=str(ServiceInstance.objects.get(name="Payments API (Production)").pk),
        service_instance_name="Payments API (Production)", **fields)
    provisioning.provision(second.pk)
    sandbox_demo.configure_zenduty_side(OutgoingIntegration.objects.get(pk=second.pk))
    demo.settle()
    return OutgoingIntegration.objects.get(pk=second.pk)


def xurrent_deliveries(since_id=0):
    from sandbox.models import OutboundDelivery

    return list(OutboundDelivery.objects.filter(service="xurrent", pk__gt=since_id).order_by("pk"))


def last_delivery_id():
    from sandbox.models import OutboundDelivery

    return OutboundDelivery.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def remote_counts():
    from sandbox.xurrent.models import Webhook, WebhookPolicy

    return {"webhooks": Webhook.objects.count(), "policies": WebhookPolicy.objects.count()}


def request_reads(request_id):
    return OutboundCall.objects.filter(method="GET", url__endswith=f"/v1/requests/{request_id}")


# -- the set --------------------------------------------------------------------------------------
def test_the_tenant_has_one_verified_set_and_the_integration_none_of_its_own(demo):
    hooks = TenantWebhooks.objects.get()
    integration = demo.integration

    assert hooks.tenant_id == integration.tenant_id and hooks.provisioning_status == ProvisioningStatus.PROVISIONED
    assert sorted(hooks.xurrent_webhooks) == sorted(provisioning.XURRENT_EVENTS)
    assert all(h["verified"] and h["uri"].endswith(f"/webhooks/xurrent/tenant/{hooks.public_id}/")
               for h in hooks.xurrent_webhooks.values())
    assert hooks.xurrent_policy_audience == f"zenduty-xurrent-portal:tenant:{hooks.public_id}"
    assert not integration.has_own_xurrent_webhooks and remote_counts() == {"webhooks": 4, "policies": 1}
    # The handshake went through the tenant's address and the tenant's set.
    verifies = InboundEvent.objects.filter(event_type="webhook.verify")
    assert verifies.count() == 4
    assert all(e.tenant_id == hooks.tenant_id and e.integration_id is None and e.status == EventStatus.PROCESSED
               for e in verifies)


def test_a_second_integration_shares_the_set(demo):
    add_payments_integration(demo)

    assert TenantWebhooks.objects.count() == 1 and remote_counts() == {"webhooks": 4, "policies": 1}
    assert set(OutgoingIntegration.objects.values_list("provisioning_status", flat=True)) == {"provisioned"}


# -- one delivery, routed ---------------------------------------------------------------------------
def test_two_integrations_get_one_delivery_per_request_event_and_each_request_syncs_once(demo):
    second = add_payments_integration(demo)
    mark = last_delivery_id()

    website = demo.raise_request()
    payments = demo.raise_request(instance="Payments API (Production)", subject="Card payments fail")
    demo.settle()
    demo.change_request(website, status="completed", completion_reason="solved")
    demo.settle()

    sent = [d.description for d in xurrent_deliveries(mark)]
    # One delivery per event, whatever the number of integrations.
    assert sorted(sent) == sorted(set(sent)) and f"request.create #{website.pk}" in sent
    assert f"request.create #{payments.pk}" in sent
    by_service = {i.service.name: i for i in demo.incidents()}
    assert sorted(by_service) == ["Payments API", "Website"]
    assert by_service["Website"].status == 3
    creates = {e.object_id: e for e in events("request.create")}
    assert creates[str(website.pk)].integration_id == demo.integration.pk
    assert creates[str(payments.pk)].integration_id == second.pk
    assert all(e.status == EventStatus.PROCESSED for e in creates.values())
    # request.create of an unknown request: one read, shared by the routing and the flow.
    assert request_reads(website.pk).filter(inbound_event=creates[str(website.pk)]).count() == 1


def test_a_request_of_an_instance_without_integration_is_ignored_naming_it(demo):
    request = demo.raise_request(instance="Intranet (Production)")
    demo.settle()

    [event] = events("request.create")
    assert event.status == EventStatus.IGNORED and event.integration_id is None
    assert event.reason == f"Request #{request.pk}: no integration for service instance 'Intranet (Production)'."
    assert demo.incidents() == [] and LinkedPair.objects.count() == 0


def test_an_event_of_a_linked_request_is_routed_without_any_call(demo, monkeypatch):
    request = demo.raise_request()
    demo.settle()
    pair = LinkedPair.objects.get()
    event = InboundEvent.objects.create(source="xurrent", tenant=pair.tenant, event_type="request.update",
                                        object_id=str(request.pk), payload={"object_id": request.pk,
                                                                            "payload": {}})

    def no_call(*args, **kwargs):
        raise AssertionError("the routing of a linked request made an API call")

    monkeypatch.setattr(http, "send", no_call)
    routed = routing.route(event)

    assert routed.integration == demo.integration and routed.request is None and routed.outcome is None


def test_another_event_of_an_unlinked_request_is_ignored_without_a_read(demo):
    request = demo.raise_request(instance="Intranet (Production)")
    demo.settle()
    demo.change_request(request, status="in_progress")
    demo.settle()

    later = [e for e in events() if e.event_type != "request.create"]
    assert later and all(e.status == EventStatus.IGNORED and "not linked" in e.reason for e in later)
    assert not request_reads(request.pk).filter(inbound_event__in=later).exists()


# -- direction ----------------------------------------------------------------------------------------
def test_a_one_way_xurrent_to_zenduty_integration_hears_zendutys_acknowledge_and_resolve(demo):
    OutgoingIntegration.objects.filter(pk=demo.integration.pk).update(direction=Direction.XURRENT_TO_ZENDUTY)
    provisioning.provision(demo.integration.pk)
    assert OutgoingIntegration.objects.get().zenduty_integration_id  # Zenduty's webhook stays

    request = demo.raise_request()
    demo.settle()
    [incident] = demo.incidents()
    demo.set_incident_status(incident, 2)
    demo.settle()
    request.refresh_from_db()
    assert request.status == "in_progress"
    demo.set_incident_status(incident, 3)
    demo.settle()

    request.refresh_from_db()
    assert request.status == "completed" and request.completion_reason == "solved"


# -- removal ---------------------------------------------------------------------------------------------
def test_the_set_goes_with_the_last_enabled_integration(demo):
    second = add_payments_integration(demo)

    provisioning.deprovision(second.pk)
    second.delete()
    assert TenantWebhooks.objects.count() == 1 and remote_counts() == {"webhooks": 4, "policies": 1}

    provisioning.set_enabled(demo.integration.pk, False)
    assert TenantWebhooks.objects.count() == 0 and remote_counts() == {"webhooks": 0, "policies": 0}

    provisioning.set_enabled(demo.integration.pk, True)
    demo.settle()
    assert TenantWebhooks.objects.get().provisioning_status == ProvisioningStatus.PROVISIONED
    assert OutgoingIntegration.objects.get().provisioning_status == ProvisioningStatus.PROVISIONED


# -- moving the integrations' own sets ------------------------------------------------------------------
def give_an_own_set(integration) -> dict:
    """Provision the integration's own policy and webhooks, as the portal did before the tenant's set."""
    step = provisioning._Steps()
    integration = OutgoingIntegration.objects.select_related("tenant").get(pk=integration.pk)
    provisioning._ensure_xurrent(integration, step, False)
    integration.refresh_from_db()
    return {"policy": integration.xurrent_policy_id,
            "webhooks": sorted(str(h["id"]) for h in integration.xurrent_webhooks.values())}


def old_world(demo):
    """The demo as an older portal left it: the integration's own set, and no tenant set."""
    hooks = TenantWebhooks.objects.get()
    with provisioning._exclusive(f"tenant-{hooks.tenant_id}"):
        pass
    provisioning._remove_xurrent(hooks, provisioning._Steps())
    hooks.delete()
    own = give_an_own_set(demo.integration)
    demo.settle()  # the old webhooks verified at the old address
    assert remote_counts() == {"webhooks": 4, "policies": 1}
    return own


def test_the_move_command_creates_the_tenant_set_then_deletes_the_old_one_and_runs_twice(demo, capsys):
    own = old_world(demo)
    old_uri = OutgoingIntegration.objects.get().xurrent_webhooks["request.create"]["uri"]
    request = demo.raise_request(subject="Before the move")  # still delivered at the old address
    demo.settle()
    assert InboundEvent.objects.get(event_type="request.create").integration_id == demo.integration.pk

    call_command("move_xurrent_webhooks")
    demo.settle()

    assert "moved to the tenant's webhooks" in capsys.readouterr().out
    integration = OutgoingIntegration.objects.get()
    hooks = TenantWebhooks.objects.get()
    assert not integration.has_own_xurrent_webhooks and integration.provisioning_status == "provisioned"
    from sandbox.xurrent.models import Webhook, WebhookPolicy
    assert {str(pk) for pk in Webhook.objects.values_list("pk", flat=True)}.isdisjoint(own["webhooks"])
    assert not Webhook.objects.filter(uri=old_uri).exists()
    assert list(WebhookPolicy.objects.values_list("pk", flat=True)) == [int(hooks.xurrent_policy_id)]
    assert hooks.provisioning_status == ProvisioningStatus.PROVISIONED

    call_command("move_xurrent_webhooks")
    assert "nothing to move" in capsys.readouterr().out
    assert remote_counts() == {"webhooks": 4, "policies": 1}
    demo.change_request(request, status="completed", completion_reason="solved")
    demo.settle()
    assert demo.incidents()[0].status == 3  # delivered at the tenant's address now


def test_the_move_command_after_a_lost_answer_adopts_what_was_created(demo, monkeypatch):
    from connections.xurrent import XurrentClient

    old_world(demo)
    original, made = XurrentClient.create_webhook, []

    def create_webhook(client, *args, **kwargs):
        created = original(client, *args, **kwargs)
        made.append(created["id"])
        if len(made) == 2:  # Xurrent creates the second one; its answer is lost
            raise errors.TimeoutError_("no answer from the API host within 15 s", service="xurrent")
        return created

    with monkeypatch.context() as patch:
        patch.setattr(XurrentClient, "create_webhook", create_webhook)
        with pytest.raises(CommandError):
            call_command("move_xurrent_webhooks")
    integration = OutgoingIntegration.objects.get()
    assert integration.has_own_xurrent_webhooks  # the old set stays until the new one exists
    assert integration.provisioning_status == ProvisioningStatus.FAILED

    call_command("move_xurrent_webhooks")
    demo.settle()

    hooks = TenantWebhooks.objects.get()
    assert str(hooks.xurrent_webhooks[provisioning.XURRENT_EVENTS[1]]["id"]) == str(made[1])  # adopted
    assert remote_counts() == {"webhooks": 4, "policies": 1}
    assert not OutgoingIntegration.objects.get().has_own_xurrent_webhooks
    assert OutgoingIntegration.objects.get().provisioning_status == ProvisioningStatus.PROVISIONED


def test_seed_demo_moves_an_older_demo_to_the_tenants_set(demo):
    old_world(demo)

    call_command("seed_demo")  # as make run does
    demo.settle()

    integration = OutgoingIntegration.objects.get()
    assert not integration.has_own_xurrent_webhooks and integration.provisioning_status == "provisioned"
    assert TenantWebhooks.objects.get().provisioning_status == ProvisioningStatus.PROVISIONED
    assert remote_counts() == {"webhooks": 4, "policies": 1}
