"""Provisioning rules that are hard to stage over HTTP, with in-memory fake clients.

The end-to-end behaviour against the simulators is in test_provisioning.py.
"""
import pytest
from django.db import transaction

from integrations import provisioning
from connections.xurrent.webhooks import EVENT_TYPES as XURRENT_EVENTS
from integrations.models import Direction, ProvisioningStatus
from tests.integrations.conftest import make_integration
from tests.integrations.conftest import hooks_of

pytestmark = pytest.mark.django_db(transaction=True)


def created(fake, name):
    return [c for c in fake.calls if c[0] == name]


def test_it_creates_a_policy_and_one_webhook_per_event(fakes, tenant, account, settings):
    xurrent, zenduty = fakes
    settings.PORTAL_BASE_URL = "https://portal.example.com"
    integration = make_integration(tenant, account)

    result = provisioning.provision(integration.pk)

    # Zenduty's webhook is needed whatever the direction (a pair's acknowledged / resolved).
    assert result.provisioning_status == ProvisioningStatus.ACTION_REQUIRED, result.provisioning_error
    assert hooks_of(result).provisioning_status == ProvisioningStatus.VERIFYING
    (policy,) = xurrent.policies.values()
    assert policy["jwt_alg"] == "rs256"
    assert policy["jwt_audience"] == f"zenduty-xurrent-portal:tenant:{hooks_of(result).public_id}"
    assert policy["jwt_claim_expires_in"] == 10
    assert hooks_of(result).xurrent_policy_id == str(policy["id"])
    assert hooks_of(result).xurrent_policy_public_key.startswith("-----BEGIN PUBLIC KEY-----")
    assert hooks_of(result).xurrent_policy_audience == policy["jwt_audience"]
    assert sorted(h["event"] for h in xurrent.webhooks.values()) == sorted(XURRENT_EVENTS)
    uri = f"https://portal.example.com/webhooks/xurrent/tenant/{hooks_of(result).public_id}/"
    assert {h["uri"] for h in xurrent.webhooks.values()} == {uri}
    assert {h["webhook_policy"]["id"] for h in xurrent.webhooks.values()} == {policy["id"]}
    assert {e: (h["id"], h["verified"]) for e, h in hooks_of(result).xurrent_webhooks.items()} == {
        h["event"]: (h["id"], False) for h in xurrent.webhooks.values()}
    assert len(zenduty.integrations) == 1
    assert result.provisioned_at is not None
    assert xurrent.closed  # the run's client is closed after use


def test_it_refuses_to_run_inside_a_transaction(fakes, tenant, account):
    integration = make_integration(tenant, account)
    with pytest.raises(RuntimeError, match="on_commit"):
        with transaction.atomic():
            provisioning.provision(integration.pk)
    assert not fakes[0].calls


def test_verifications_flip_the_status_when_the_set_is_complete(fakes, tenant, account):
    integration = make_integration(tenant, account)
    integration = provisioning.provision(integration.pk)
    provisioning.confirm_zenduty_step(integration.pk)
    ids = [h["id"] for h in hooks_of(integration).xurrent_webhooks.values()]
    for webhook_id in ids[:-1]:
        provisioning.mark_tenant_webhook_verified(integration.tenant_id, webhook_id)
    integration.refresh_from_db()
    assert integration.provisioning_status == ProvisioningStatus.VERIFYING
    provisioning.mark_tenant_webhook_verified(integration.tenant_id, str(ids[-1]))  # IDs may come as strings
    integration.refresh_from_db()
    assert integration.provisioning_status == ProvisioningStatus.PROVISIONED
    assert all(h["verified"] for h in hooks_of(integration).xurrent_webhooks.values())


def test_a_verification_that_overtakes_the_create_answer_is_kept(fakes, tenant, account):
    xurrent, _ = fakes
    integration = make_integration(tenant, account)
    original_create = xurrent.create_webhook

    def create_and_verify_at_once(event, uri, **kw):
        hook = original_create(event, uri, **kw)
        provisioning.mark_tenant_webhook_verified(integration.tenant_id, hook["id"])  # before the portal stored the ID
        return hook

    xurrent.create_webhook = create_and_verify_at_once
    result = provisioning.provision(integration.pk)
    assert all(h["verified"] for h in hooks_of(result).xurrent_webhooks.values())
    assert hooks_of(result).xurrent_early_verifications == []
    assert hooks_of(result).provisioning_status == ProvisioningStatus.PROVISIONED
    assert result.provisioning_status == ProvisioningStatus.ACTION_REQUIRED  # Zenduty's step is left


def test_a_failure_half_way_is_recorded_and_a_retry_finishes_without_duplicates(fakes, tenant, account):
    xurrent, _ = fakes
    integration = make_integration(tenant, account)
    xurrent.fail["create_webhook"] = 3

    failed = provisioning.provision(integration.pk)

    assert failed.provisioning_status == ProvisioningStatus.FAILED
    assert "create the Xurrent webhook for request.status-changed" in failed.provisioning_error
    assert "server error" in failed.provisioning_error
    assert hooks_of(failed).xurrent_policy_id and len(hooks_of(failed).xurrent_webhooks) == 2  # what exists is recorded
    assert len(xurrent.webhooks) == 2

    done = provisioning.provision(integration.pk)

    assert hooks_of(done).provisioning_status == ProvisioningStatus.VERIFYING
    assert done.provisioning_status == ProvisioningStatus.ACTION_REQUIRED and done.provisioning_error == ""
    assert len(xurrent.webhooks) == 4 and len(xurrent.policies) == 1
    assert {str(h["id"]) for h in hooks_of(done).xurrent_webhooks.values()} == {str(i) for i in xurrent.webhooks}


def test_a_webhook_whose_create_answer_was_lost_is_adopted(fakes, tenant, account):
    xurrent, _ = fakes
    integration = make_integration(tenant, account)
    provisioning.provision(integration.pk)
    # As if the answer to the last create never arrived: Xurrent has it, the portal does not.
    hooks = hooks_of(integration)
    lost = hooks.xurrent_webhooks.pop("request.note-added")
    hooks.save()

    result = provisioning.provision(integration.pk)

    assert len(xurrent.webhooks) == 4
    assert hooks_of(result).xurrent_webhooks["request.note-added"]["id"] == lost["id"]


def test_running_twice_changes_nothing(fakes, tenant, account):
    xurrent, zenduty = fakes
    integration = make_integration(tenant, account, direction=Direction.BIDIRECTIONAL)
    first = provisioning.provision(integration.pk)
    writes = [c for c in xurrent.calls if c[0].startswith(("create", "update", "delete"))]

    second = provisioning.provision(integration.pk)

    assert [c for c in xurrent.calls if c[0].startswith(("create", "update", "delete"))] == writes
    assert len(created(zenduty, "create_integration")) == 1
    assert hooks_of(second).xurrent_webhooks == hooks_of(first).xurrent_webhooks
    assert second.zenduty_integration_id == first.zenduty_integration_id


def test_receiving_from_zenduty_creates_the_outgoing_webhooks_integration_and_asks_for_the_manual_step(
        fakes, tenant, account):
    _, zenduty = fakes
    integration = make_integration(tenant, account, direction=Direction.BIDIRECTIONAL)
    result = provisioning.provision(integration.pk)

    (record,) = zenduty.integrations.values()
    assert record["application"] == "app-outgoing"
    assert str(integration.public_id) in record["summary"]
    assert result.zenduty_integration_id == record["unique_id"]
    assert result.provisioning_status == ProvisioningStatus.ACTION_REQUIRED

    for hook in hooks_of(result).xurrent_webhooks.values():
        provisioning.mark_tenant_webhook_verified(integration.tenant_id, hook["id"])
    result.refresh_from_db()
    assert result.provisioning_status == ProvisioningStatus.ACTION_REQUIRED  # the manual step is still left
    result = provisioning.confirm_zenduty_step(integration.pk)
    assert result.provisioning_status == ProvisioningStatus.PROVISIONED


@pytest.mark.parametrize("direction", list(Direction))
def test_every_direction_gets_both_sides_webhooks(fakes, tenant, account, direction):
    # Once a pair exists its status syncs both ways, whichever side created it.
    xurrent, zenduty = fakes
    integration = make_integration(tenant, account, direction=direction, sync_notes=False)
    result = provisioning.provision(integration.pk)
    assert len(xurrent.webhooks) == 4 and len(xurrent.policies) == 1
    assert len(hooks_of(result).xurrent_webhooks) == 4 and len(zenduty.integrations) == 1


def test_changing_the_direction_changes_nothing_remote(fakes, tenant, account):
    xurrent, zenduty = fakes
    integration = make_integration(tenant, account, direction=Direction.BIDIRECTIONAL)
    provisioning.provision(integration.pk)

    integration.refresh_from_db()
    integration.direction, integration.sync_notes = Direction.ZENDUTY_TO_XURRENT, False
    integration.save()
    assert provisioning.pending_changes(integration) == []


def test_disabling_the_last_integration_removes_the_tenants_webhooks_and_enabling_brings_them_back(
        fakes, tenant, account):
    xurrent, zenduty = fakes
    integration = make_integration(tenant, account)
    provisioning.provision(integration.pk)

    result = provisioning.set_enabled(integration.pk, False)
    assert result.provisioning_status == ProvisioningStatus.DISABLED
    assert not xurrent.webhooks and not xurrent.policies and hooks_of(result).pk is None
    assert all(not i["is_enabled"] for i in zenduty.integrations.values())
    assert provisioning.pending_changes(result) == []

    result = provisioning.set_enabled(integration.pk, True)
    assert len(xurrent.webhooks) == 4 and not any(h["disabled"] for h in xurrent.webhooks.values())
    assert result.provisioning_status == ProvisioningStatus.ACTION_REQUIRED


def test_a_new_portal_address_moves_the_webhooks_and_asks_for_verification_again(fakes, tenant, account, settings):
    xurrent, _ = fakes
    integration = make_integration(tenant, account)
    result = provisioning.provision(integration.pk)
    provisioning.confirm_zenduty_step(integration.pk)
    for hook in hooks_of(result).xurrent_webhooks.values():
        provisioning.mark_tenant_webhook_verified(integration.tenant_id, hook["id"])

    settings.PORTAL_BASE_URL = "https://new-portal.example.com"
    result.refresh_from_db()
    assert provisioning.pending_changes(result) == ["Xurrent webhook address changed"]
    result = provisioning.provision(integration.pk)

    assert {h["uri"] for h in xurrent.webhooks.values()} == {provisioning.xurrent_webhook_url(hooks_of(result))}
    assert not any(h["verified"] for h in hooks_of(result).xurrent_webhooks.values())
    assert result.provisioning_status == ProvisioningStatus.VERIFYING
    assert len(xurrent.webhooks) == 4


def test_a_policy_deleted_in_xurrent_is_replaced_and_the_webhooks_relinked(fakes, tenant, account):
    xurrent, _ = fakes
    integration = make_integration(tenant, account)
    old = hooks_of(provisioning.provision(integration.pk)).xurrent_policy_id
    xurrent.policies.clear()

    result = provisioning.provision(integration.pk)

    (policy,) = xurrent.policies.values()
    assert hooks_of(result).xurrent_policy_id == str(policy["id"]) != old
    assert hooks_of(result).xurrent_policy_public_key.endswith(f"fake{policy['id']}\n-----END PUBLIC KEY-----")
    assert {h["webhook_policy"]["id"] for h in xurrent.webhooks.values()} == {policy["id"]}


def test_deprovision_removes_everything_and_tolerates_what_is_already_gone(fakes, tenant, account):
    xurrent, zenduty = fakes
    integration = make_integration(tenant, account, direction=Direction.BIDIRECTIONAL)
    provisioning.provision(integration.pk)
    xurrent.webhooks.pop(next(iter(xurrent.webhooks)))  # someone deleted one by hand

    provisioning.deprovision(integration)

    assert not xurrent.webhooks and not xurrent.policies and not zenduty.integrations
    integration.refresh_from_db()
    assert hooks_of(integration).pk is None  # the tenant's set went with its last integration
    assert integration.zenduty_integration_id == ""
    provisioning.deprovision(integration)  # twice is fine


def test_deprovision_failure_is_recorded_and_raised(fakes, tenant, account):
    xurrent, _ = fakes
    integration = make_integration(tenant, account)
    provisioning.provision(integration.pk)
    xurrent.fail["delete_webhook_policy"] = 1

    with pytest.raises(provisioning.IntegrationError, match="delete the Xurrent webhook policy"):
        provisioning.deprovision(integration)
    integration.refresh_from_db()
    assert integration.provisioning_status == ProvisioningStatus.FAILED
    assert hooks_of(integration).xurrent_webhooks == {}  # the webhooks were removed before the failure
    assert hooks_of(integration).xurrent_policy_id

    provisioning.deprovision(integration)
    assert not xurrent.policies


def test_missing_outgoing_webhooks_application_is_explained(fakes, tenant, account):
    _, zenduty = fakes
    zenduty.applications = [a for a in zenduty.applications if a["name"] != "Outgoing Webhooks"]
    integration = make_integration(tenant, account, direction=Direction.BIDIRECTIONAL)
    result = provisioning.provision(integration.pk)
    assert result.provisioning_status == ProvisioningStatus.FAILED
    assert "'Outgoing Webhooks' application" in result.provisioning_error
    assert len(hooks_of(result).xurrent_webhooks) == 4  # the Xurrent side is done and recorded


def test_a_webhook_created_beside_a_verified_one_at_the_same_address_counts_as_verified(fakes, tenant, account):
    # Xurrent asks no verification for an address another webhook already verified.
    xurrent, _ = fakes
    integration = make_integration(tenant, account)
    xurrent.fail["create_webhook"] = 3
    failed = provisioning.provision(integration.pk)
    for hook in hooks_of(failed).xurrent_webhooks.values():
        provisioning.mark_tenant_webhook_verified(integration.tenant_id, hook["id"])

    provisioning.provision(integration.pk)
    done = provisioning.confirm_zenduty_step(integration.pk)

    assert all(h["verified"] for h in hooks_of(done).xurrent_webhooks.values())
    assert done.provisioning_status == ProvisioningStatus.PROVISIONED


def test_resending_verification_updates_unverified_webhooks_or_replaces_those_beside_a_verified_one(
        fakes, tenant, account):
    xurrent, _ = fakes
    integration = make_integration(tenant, account)
    result = provisioning.provision(integration.pk)
    ids = {e: h["id"] for e, h in hooks_of(result).xurrent_webhooks.items()}

    provisioning.provision(integration.pk, resend_verification=True)  # none verified: touch each one
    touched = [c[1] for c in xurrent.calls if c[0] == "update_webhook"]
    assert sorted(touched) == sorted(ids.values())

    provisioning.confirm_zenduty_step(integration.pk)
    provisioning.mark_tenant_webhook_verified(integration.tenant_id, ids["request.create"])
    result = provisioning.provision(integration.pk, resend_verification=True)
    # The others may already be verified in Xurrent (same address): replaced, and counted as verified.
    assert hooks_of(result).xurrent_webhooks["request.create"]["id"] == ids["request.create"]
    assert all(hooks_of(result).xurrent_webhooks[e]["id"] != ids[e] for e in ids if e != "request.create")
    assert len(xurrent.webhooks) == 4
    assert result.provisioning_status == ProvisioningStatus.PROVISIONED


def test_an_address_the_services_cannot_reach_is_pointed_out(settings):
    settings.SANDBOX_API_URL = ""
    settings.PORTAL_BASE_URL = "http://127.0.0.1:8000"
    assert "cannot reach" in provisioning.unreachable_address_warning()
    settings.PORTAL_BASE_URL = "http://portal.example.com"
    assert "not https" in provisioning.unreachable_address_warning()
    settings.PORTAL_BASE_URL = "https://portal.example.com"
    assert provisioning.unreachable_address_warning() == ""
