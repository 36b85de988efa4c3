"""Provisioning end to end: the portal's clients against the simulators over real HTTP."""
import pytest

from connections import errors
from integrations import provisioning
from connections.xurrent.webhooks import EVENT_TYPES as XURRENT_EVENTS
from integrations.models import Direction, ProvisioningStatus
from tests.integrations.conftest import hooks_of

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_creates_the_policy_and_four_webhooks_in_xurrent(sim):
    integration = sim.integration(direction=Direction.XURRENT_TO_ZENDUTY)

    result = provisioning.provision(integration.pk)

    assert hooks_of(result).provisioning_status == ProvisioningStatus.VERIFYING, result.provisioning_error
    hooks = sim.remote_webhooks(result)
    assert sorted(h["event"] for h in hooks) == sorted(XURRENT_EVENTS)
    uri = f"{sim.live_server.url}/webhooks/xurrent/tenant/{hooks_of(result).public_id}/"
    assert {h["uri"] for h in hooks} == {uri}
    assert {str(sim.policy_of(h)) for h in hooks} == {hooks_of(result).xurrent_policy_id}
    assert not any(h.get("disabled") for h in hooks)
    policy = sim.xurrent.get_webhook_policy(hooks_of(result).xurrent_policy_id)
    assert policy["jwt_alg"] == "rs256"
    assert policy["jwt_audience"] == f"zenduty-xurrent-portal:tenant:{hooks_of(result).public_id}" == hooks_of(result).xurrent_policy_audience
    assert "public_key_pem" not in policy or not policy["public_key_pem"]  # shown only once...
    assert "BEGIN PUBLIC KEY" in hooks_of(result).xurrent_policy_public_key           # ...and kept by the portal
    assert {h["id"] for h in hooks} == {int(v["id"]) if str(v["id"]).isdigit() else v["id"]
                                        for v in hooks_of(result).xurrent_webhooks.values()}
    assert not any(v["verified"] for v in hooks_of(result).xurrent_webhooks.values())
    # Every call is in the integration's history, with the budget Xurrent reported.
    from syncengine.models import OutboundCall

    creates = OutboundCall.objects.filter(integration=integration, method="POST", url__endswith="/v1/webhooks")
    assert creates.count() == 4
    budget = creates.first().rate_limit
    assert int(budget["x-ratelimit-limit"]) > 0 and "x-ratelimit-remaining" in budget


def test_provisioning_twice_creates_nothing_new(sim):
    integration = sim.integration(direction=Direction.BIDIRECTIONAL)
    first = provisioning.provision(integration.pk)
    before = sim.counts()

    second = provisioning.provision(integration.pk)

    assert sim.counts() == before
    assert before["webhooks"] == 4 and before["policies"] == 1 and before["zenduty_integrations"] == 1
    assert hooks_of(second).xurrent_webhooks == hooks_of(first).xurrent_webhooks
    assert hooks_of(second).xurrent_policy_id == hooks_of(first).xurrent_policy_id
    assert second.zenduty_integration_id == first.zenduty_integration_id


def test_a_xurrent_500_half_way_is_recorded_and_a_retry_completes_without_duplicates(sim):
    from sandbox import faults

    integration = sim.integration(direction=Direction.XURRENT_TO_ZENDUTY)
    sim.fail_xurrent_creates_after(2)  # policy and two webhooks go through, the third create fails

    failed = provisioning.provision(integration.pk)

    assert failed.provisioning_status == ProvisioningStatus.FAILED
    assert failed.provisioning_error.startswith("Could not create the Xurrent webhook for request.status-changed.")
    assert "server error" in failed.provisioning_error and "HTTP 500" in failed.provisioning_error
    assert "demo-client-secret" not in failed.provisioning_error
    assert hooks_of(failed).xurrent_policy_id and hooks_of(failed).xurrent_policy_public_key
    assert sorted(hooks_of(failed).xurrent_webhooks) == sorted(XURRENT_EVENTS[:2])
    assert sim.counts()["webhooks"] == 2  # everything that exists is recorded

    faults.clear()
    done = provisioning.provision(integration.pk)

    assert hooks_of(done).provisioning_status == ProvisioningStatus.VERIFYING, done.provisioning_error
    assert done.provisioning_error == ""
    assert sim.counts() == {"webhooks": 4, "policies": 1, "zenduty_integrations": 1}
    assert {str(h["id"]) for h in sim.remote_webhooks(done)} == {str(v["id"]) for v in hooks_of(done).xurrent_webhooks.values()}


def test_disabling_the_tenants_last_integration_removes_its_webhooks_in_xurrent(sim):
    integration = sim.integration(direction=Direction.BIDIRECTIONAL)
    provisioning.provision(integration.pk)

    result = provisioning.set_enabled(integration.pk, False)

    assert result.provisioning_status == ProvisioningStatus.DISABLED
    assert sim.counts() == {"webhooks": 0, "policies": 0, "zenduty_integrations": 1}
    result = provisioning.set_enabled(integration.pk, True)
    assert [h["disabled"] for h in sim.remote_webhooks(result)] == [False] * 4
    assert result.provisioning_status == ProvisioningStatus.ACTION_REQUIRED


def test_every_direction_creates_the_outgoing_webhooks_integration_and_the_tenants_webhooks(sim):
    integration = sim.integration(direction=Direction.ZENDUTY_TO_XURRENT, sync_notes=False)

    result = provisioning.provision(integration.pk)

    assert result.provisioning_status == ProvisioningStatus.ACTION_REQUIRED, result.provisioning_error
    (record,) = sim.remote_zenduty_integrations(result)
    assert str(record["unique_id"]) == result.zenduty_integration_id
    assert sim.application_name(record) == "Outgoing Webhooks"
    # A pair's status changes come from Xurrent whichever side created it.
    assert sim.counts()["webhooks"] == 4


def test_deleting_removes_the_webhooks_the_policy_and_the_zenduty_integration(sim):
    integration = sim.integration(direction=Direction.BIDIRECTIONAL)
    result = provisioning.provision(integration.pk)
    policy_id = hooks_of(result).xurrent_policy_id

    provisioning.deprovision(result)

    assert sim.counts() == {"webhooks": 0, "policies": 0, "zenduty_integrations": 0}
    with pytest.raises(errors.NotFoundError):
        sim.xurrent.get_webhook_policy(policy_id)
    result.refresh_from_db()
    assert hooks_of(result).xurrent_webhooks == {} and hooks_of(result).xurrent_policy_id == "" and result.zenduty_integration_id == ""
    provisioning.deprovision(result)  # already gone: fine


def test_a_service_error_is_a_readable_sentence(sim):
    integration = sim.integration(direction=Direction.XURRENT_TO_ZENDUTY)
    sim.tenant.client_secret = "revoked-secret"
    sim.tenant.save()

    result = provisioning.provision(integration.pk)

    assert result.provisioning_status == ProvisioningStatus.FAILED
    assert result.provisioning_error.startswith("Could not create the Xurrent webhook policy. Xurrent did not accept")
    assert "revoked-secret" not in result.provisioning_error


def test_xurrent_verifies_the_webhooks_through_the_portals_receiver(sim):
    from sandbox import deliveries
    from sandbox.xurrent.models import Webhook

    integration = sim.integration(direction=Direction.XURRENT_TO_ZENDUTY)
    provisioning.provision(integration.pk)
    assert Webhook.objects.filter(verified=False).count() == 4

    sent = deliveries.flush(service="xurrent")  # webhook.verify → the receiver → callback → mark_webhook_verified

    assert [d.last_status for d in sent] == [200] * 4
    assert Webhook.objects.filter(verified=True).count() == 4
    integration.refresh_from_db()
    assert all(hooks_of(integration).xurrent_webhooks[event]["verified"] for event in XURRENT_EVENTS)
    assert hooks_of(integration).provisioning_status == ProvisioningStatus.PROVISIONED
    assert integration.provisioning_status == ProvisioningStatus.ACTION_REQUIRED  # Zenduty's step is left


def test_a_retry_after_some_webhooks_were_verified_ends_fully_verified(sim):
    # Xurrent asks no verification of a webhook whose address is already verified.
    from sandbox import deliveries, faults
    from sandbox.xurrent.models import Webhook

    integration = sim.integration(direction=Direction.XURRENT_TO_ZENDUTY)
    sim.fail_xurrent_creates_after(2)
    assert provisioning.provision(integration.pk).provisioning_status == ProvisioningStatus.FAILED
    deliveries.flush(service="xurrent")
    faults.clear()

    result = provisioning.provision(integration.pk)
    deliveries.flush(service="xurrent")

    assert Webhook.objects.filter(verified=True).count() == 4
    result.refresh_from_db()
    assert all(h["verified"] for h in hooks_of(result).xurrent_webhooks.values())
    assert hooks_of(result).provisioning_status == ProvisioningStatus.PROVISIONED


def test_the_manual_zenduty_step_as_shown_completes_the_integration(sim):
    # Doing in the simulated Zenduty what the change page tells the admin to do:
    # the URL and signing key on the Outgoing Webhooks integration the portal made.
    from sandbox import deliveries
    from sandbox.zenduty import demo, operations
    from sandbox.zenduty.models import Integration, Service

    integration = sim.integration(direction=Direction.BIDIRECTIONAL)
    result = provisioning.provision(integration.pk)
    deliveries.flush(service="xurrent")
    result.refresh_from_db()
    assert result.provisioning_status == ProvisioningStatus.ACTION_REQUIRED

    service = Service.objects.get(unique_id=result.zenduty_service_id)
    demo.configure_outgoing_webhook(service, provisioning.zenduty_webhook_url(result), result.zenduty_signing_secret,
                                    integration=Integration.objects.get(unique_id=result.zenduty_integration_id))
    operations.create_incident(service=service, title="Checkout error rate high")
    sent = deliveries.flush(service="zenduty")

    assert [d.last_status for d in sent] == [200]
    result.refresh_from_db()
    assert result.zenduty_step_confirmed_at is not None
    assert result.provisioning_status == ProvisioningStatus.PROVISIONED


def _lose_the_policy_create_answer(monkeypatch):
    """Xurrent creates the policy, but its answer (with the only copy of the public key) never arrives."""
    from connections.xurrent import XurrentClient

    original = XurrentClient.create_webhook_policy

    def create_webhook_policy(client, *args, **kwargs):
        original(client, *args, **kwargs)
        raise errors.TimeoutError_("no answer from the API host within 15 s", service="xurrent")

    monkeypatch.setattr(XurrentClient, "create_webhook_policy", create_webhook_policy)


def test_a_policy_whose_create_answer_was_lost_is_replaced_on_retry_not_left_behind(sim, monkeypatch):
    integration = sim.integration(direction=Direction.XURRENT_TO_ZENDUTY)
    with monkeypatch.context() as patch:
        _lose_the_policy_create_answer(patch)
        failed = provisioning.provision(integration.pk)
    assert failed.provisioning_status == ProvisioningStatus.FAILED
    assert hooks_of(failed).xurrent_policy_id == "" and sim.counts()["policies"] == 1  # exists in Xurrent, unknown here

    done = provisioning.provision(integration.pk)

    assert hooks_of(done).provisioning_status == ProvisioningStatus.VERIFYING, done.provisioning_error
    policies = sim.xurrent.list_webhook_policies()
    assert [str(p["id"]) for p in policies] == [hooks_of(done).xurrent_policy_id]  # the orphan is gone
    assert "BEGIN PUBLIC KEY" in hooks_of(done).xurrent_policy_public_key


def test_deleting_after_a_lost_policy_create_removes_the_unrecorded_policy(sim, monkeypatch):
    integration = sim.integration(direction=Direction.XURRENT_TO_ZENDUTY)
    with monkeypatch.context() as patch:
        _lose_the_policy_create_answer(patch)
        provisioning.provision(integration.pk)
    assert sim.counts()["policies"] == 1 and hooks_of(integration).xurrent_policy_id == ""

    provisioning.deprovision(integration.pk)

    assert sim.xurrent.list_webhook_policies() == []


def test_deleting_after_a_lost_webhook_create_removes_the_unrecorded_webhook(sim, monkeypatch):
    from connections.xurrent import XurrentClient

    integration = sim.integration(direction=Direction.XURRENT_TO_ZENDUTY)
    original = XurrentClient.create_webhook

    def create_webhook(client, *args, **kwargs):
        original(client, *args, **kwargs)  # Xurrent creates it, the answer is lost
        raise errors.TimeoutError_("no answer from the API host within 15 s", service="xurrent")

    with monkeypatch.context() as patch:
        patch.setattr(XurrentClient, "create_webhook", create_webhook)
        failed = provisioning.provision(integration.pk)
    assert failed.provisioning_status == ProvisioningStatus.FAILED
    assert hooks_of(failed).xurrent_webhooks == {} and sim.counts()["webhooks"] == 1  # exists in Xurrent, unknown here

    provisioning.deprovision(integration.pk)

    assert sim.counts() == {"webhooks": 0, "policies": 0, "zenduty_integrations": 0}


def test_deprovisioning_still_removes_zenduty_when_xurrent_fails_and_says_what_is_left(sim):
    from sandbox import faults

    integration = sim.integration(direction=Direction.BIDIRECTIONAL)
    provisioned = provisioning.provision(integration.pk)
    hook_ids = sorted(str(h["id"]) for h in hooks_of(provisioned).xurrent_webhooks.values())
    faults.inject("xurrent", "error_500", count=50, path_prefix="/v1/webhooks", method="DELETE")

    with pytest.raises(provisioning.IntegrationError) as caught:
        provisioning.deprovision(integration.pk)

    assert sim.counts() == {"webhooks": 4, "policies": 1, "zenduty_integrations": 0}
    message = caught.value.message
    assert message.startswith(f"Could not delete the Xurrent webhook for {XURRENT_EVENTS[0]}.")
    assert f"Still there: the tenant's Xurrent webhooks in Xurrent ({sim.tenant}) webhooks " in message
    assert all(f"#{i}" in message for i in hook_ids)
    assert f"webhook policy {hooks_of(provisioned).xurrent_policy_id}" in message and "in Zenduty" not in message
    stored = type(integration).objects.get(pk=integration.pk)
    assert stored.provisioning_status == ProvisioningStatus.FAILED and stored.provisioning_error == message
    assert stored.zenduty_integration_id == ""


def test_a_slow_xurrent_ends_the_run_within_its_time_budget_recorded_and_retryable(sim, settings):
    import time

    from sandbox import faults

    settings.PROVISIONING_TIME_BUDGET = 0.5
    integration = sim.integration(direction=Direction.XURRENT_TO_ZENDUTY)
    faults.inject("xurrent", "latency", latency_ms=1500, path_prefix="/v1/webhook_policies", method="POST")

    failed = provisioning.provision(integration.pk)

    assert failed.provisioning_status == ProvisioningStatus.FAILED
    assert failed.provisioning_error.startswith("Could not create the Xurrent webhook policy.")
    assert "“Retry provisioning” continues from there" in failed.provisioning_error
    # Xurrent went on and created the policy after the portal stopped waiting.
    for _ in range(50):
        if sim.counts()["policies"] == 1:
            break
        time.sleep(0.1)
    settings.PROVISIONING_TIME_BUDGET = 20.0
    done = provisioning.provision(integration.pk)

    assert hooks_of(done).provisioning_status == ProvisioningStatus.VERIFYING, done.provisioning_error
    assert [str(p["id"]) for p in sim.xurrent.list_webhook_policies()] == [hooks_of(done).xurrent_policy_id]
