"""Provisioning rules that are hard to stage over HTTP, with in-memory fake clients.

The end-to-end behaviour against the simulators is in test_provisioning.py.
"""
import pytest
from django.db import transaction

from integrations import provisioning
from integrations.models import XURRENT_EVENTS, Direction, ProvisioningStatus
from tests.integrations.conftest import make_integration

pytestmark = pytest.mark.django_db(transaction=True)


def created(fake, name):
    return [c for c in fake.calls if c[0] == name]


def test_it_creates_a_policy_and_one_webhook_per_event(fakes, tenant, account, settings):
    xurrent, zenduty = fakes
    settings.PORTAL_BASE_URL = "https://portal.example.com"
    integration = make_integration(tenant, account)

    result = provisioning.provision(integration.pk)

    assert result.provisioning_status == ProvisioningStatus.VERIFYING, result.provisioning_error
    (policy,) = xurrent.policies.values()
    assert policy["jwt_alg"] == "rs256"
    assert policy["jwt_audience"] == f"zenduty-xurrent-portal:{integration.public_id}"
    assert policy["jwt_claim_expires_in"] == 10
    assert result.xurrent_policy_id == str(policy["id"])
    assert result.xurrent_policy_public_key.startswith("-----BEGIN PUBLIC KEY-----")
    assert result.xurrent_policy_audience == policy["jwt_audience"]
    assert sorted(h["event"] for h in xurrent.webhooks.values()) == sorted(XURRENT_EVENTS)
    uri = f"https://portal.example.com/webhooks/xurrent/{integration.public_id}/"
    assert {h["uri"] for h in xurrent.webhooks.values()} == {uri}
    assert {h["webhook_policy"]["id"] for h in xurrent.webhooks.values()} == {policy["id"]}
    assert {e: (h["id"], h["verified"]) for e, h in result.xurrent_webhooks.items()} == {
        h["event"]: (h["id"], False) for h in xurrent.webhooks.values()}
    assert not zenduty.integrations  # Xurrent → Zenduty needs nothing in Zenduty
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
    ids = [h["id"] for h in integration.xurrent_webhooks.values()]
    for webhook_id in ids[:-1]:
        provisioning.mark_webhook_verified(integration.pk, webhook_id)
    integration.refresh_from_db()
    assert integration.provisioning_status == ProvisioningStatus.VERIFYING
    provisioning.mark_webhook_verified(integration.pk, str(ids[-1]))  # IDs may come as strings
    integration.refresh_from_db()
    assert integration.provisioning_status == ProvisioningStatus.PROVISIONED
    assert all(h["verified"] for h in integration.xurrent_webhooks.values())


def test_a_verification_that_overtakes_the_create_answer_is_kept(fakes, tenant, account):
    xurrent, _ = fakes
    integration = make_integration(tenant, account)
    original_create = xurrent.create_webhook

    def create_and_verify_at_once(event, uri, **kw):
        hook = original_create(event, uri, **kw)
        provisioning.mark_webhook_verified(integration.pk, hook["id"])  # before the portal stored the ID
        return hook

    xurrent.create_webhook = create_and_verify_at_once
    result = provisioning.provision(integration.pk)
    assert all(h["verified"] for h in result.xurrent_webhooks.values())
    assert result.xurrent_early_verifications == []
    assert result.provisioning_status == ProvisioningStatus.PROVISIONED


def test_a_failure_half_way_is_recorded_and_a_retry_finishes_without_duplicates(fakes, tenant, account):
    xurrent, _ = fakes
    integration = make_integration(tenant, account)
    xurrent.fail["create_webhook"] = 3

    failed = provisioning.provision(integration.pk)

    assert failed.provisioning_status == ProvisioningStatus.FAILED
    assert "create the Xurrent webhook for request.status-changed" in failed.provisioning_error
    assert "server error" in failed.provisioning_error
    assert failed.xurrent_policy_id and len(failed.xurrent_webhooks) == 2  # what exists is recorded
    assert len(xurrent.webhooks) == 2

    done = provisioning.provision(integration.pk)

    assert done.provisioning_status == ProvisioningStatus.VERIFYING
    assert done.provisioning_error == ""
    assert len(xurrent.webhooks) == 4 and len(xurrent.policies) == 1
    assert {str(h["id"]) for h in done.xurrent_webhooks.values()} == {str(i) for i in xurrent.webhooks}


def test_a_webhook_whose_create_answer_was_lost_is_adopted(fakes, tenant, account):
    xurrent, _ = fakes
    integration = make_integration(tenant, account)
    provisioning.provision(integration.pk)
    # As if the answer to the last create never arrived: Xurrent has it, the portal does not.
    integration.refresh_from_db()
    lost = integration.xurrent_webhooks.pop("request.note-added")
    integration.save()

    result = provisioning.provision(integration.pk)

    assert len(xurrent.webhooks) == 4
    assert result.xurrent_webhooks["request.note-added"]["id"] == lost["id"]


def test_running_twice_changes_nothing(fakes, tenant, account):
    xurrent, zenduty = fakes
    integration = make_integration(tenant, account, direction=Direction.BIDIRECTIONAL)
    first = provisioning.provision(integration.pk)
    writes = [c for c in xurrent.calls if c[0].startswith(("create", "update", "delete"))]

    second = provisioning.provision(integration.pk)

    assert [c for c in xurrent.calls if c[0].startswith(("create", "update", "delete"))] == writes
    assert len(created(zenduty, "create_integration")) == 1
    assert second.xurrent_webhooks == first.xurrent_webhooks
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

    for hook in result.xurrent_webhooks.values():
        provisioning.mark_webhook_verified(integration.pk, hook["id"])
    result.refresh_from_db()
    assert result.provisioning_status == ProvisioningStatus.ACTION_REQUIRED  # the manual step is still left
    result = provisioning.confirm_zenduty_step(integration.pk)
    assert result.provisioning_status == ProvisioningStatus.PROVISIONED


def test_zenduty_only_direction_without_notes_needs_no_xurrent_webhooks(fakes, tenant, account):
    xurrent, zenduty = fakes
    integration = make_integration(tenant, account, direction=Direction.ZENDUTY_TO_XURRENT, sync_notes=False)
    result = provisioning.provision(integration.pk)
    assert not xurrent.webhooks and not xurrent.policies
    assert result.xurrent_webhooks == {} and len(zenduty.integrations) == 1


def test_changing_the_direction_adds_and_removes_what_it_needs(fakes, tenant, account):
    xurrent, zenduty = fakes
    integration = make_integration(tenant, account, direction=Direction.BIDIRECTIONAL)
    provisioning.provision(integration.pk)

    integration.refresh_from_db()
    integration.direction, integration.sync_notes = Direction.ZENDUTY_TO_XURRENT, False
    integration.save()
    assert provisioning.pending_changes(integration) == ["Xurrent webhooks to remove"]
    result = provisioning.provision(integration.pk)
    assert not xurrent.webhooks and not xurrent.policies
    assert result.xurrent_webhooks == {} and result.xurrent_policy_id == ""
    assert len(zenduty.integrations) == 1

    result.direction = Direction.XURRENT_TO_ZENDUTY
    result.save()
    result = provisioning.provision(integration.pk)
    assert not zenduty.integrations and result.zenduty_integration_id == ""
    assert len(xurrent.webhooks) == 4


def test_disable_and_enable_switch_the_webhooks(fakes, tenant, account):
    xurrent, _ = fakes
    integration = make_integration(tenant, account)
    provisioning.provision(integration.pk)

    result = provisioning.set_enabled(integration.pk, False)
    assert result.provisioning_status == ProvisioningStatus.DISABLED
    assert all(h["disabled"] for h in xurrent.webhooks.values())
    assert all(h["disabled"] for h in result.xurrent_webhooks.values())
    assert provisioning.pending_changes(result) == []

    result = provisioning.set_enabled(integration.pk, True)
    assert not any(h["disabled"] for h in xurrent.webhooks.values())
    assert result.provisioning_status == ProvisioningStatus.VERIFYING


def test_a_new_portal_address_moves_the_webhooks_and_asks_for_verification_again(fakes, tenant, account, settings):
    xurrent, _ = fakes
    integration = make_integration(tenant, account)
    result = provisioning.provision(integration.pk)
    for hook in result.xurrent_webhooks.values():
        provisioning.mark_webhook_verified(integration.pk, hook["id"])

    settings.PORTAL_BASE_URL = "https://new-portal.example.com"
    result.refresh_from_db()
    assert provisioning.pending_changes(result) == ["Xurrent webhook address changed"]
    result = provisioning.provision(integration.pk)

    assert {h["uri"] for h in xurrent.webhooks.values()} == {provisioning.xurrent_webhook_url(result)}
    assert not any(h["verified"] for h in result.xurrent_webhooks.values())
    assert result.provisioning_status == ProvisioningStatus.VERIFYING
    assert len(xurrent.webhooks) == 4


def test_a_policy_deleted_in_xurrent_is_replaced_and_the_webhooks_relinked(fakes, tenant, account):
    xurrent, _ = fakes
    integration = make_integration(tenant, account)
    old = provisioning.provision(integration.pk).xurrent_policy_id
    xurrent.policies.clear()

    result = provisioning.provision(integration.pk)

    (policy,) = xurrent.policies.values()
    assert result.xurrent_policy_id == str(policy["id"]) != old
    assert result.xurrent_policy_public_key.endswith(f"fake{policy['id']}\n-----END PUBLIC KEY-----")
    assert {h["webhook_policy"]["id"] for h in xurrent.webhooks.values()} == {policy["id"]}


def test_deprovision_removes_everything_and_tolerates_what_is_already_gone(fakes, tenant, account):
    xurrent, zenduty = fakes
    integration = make_integration(tenant, account, direction=Direction.BIDIRECTIONAL)
    provisioning.provision(integration.pk)
    xurrent.webhooks.pop(next(iter(xurrent.webhooks)))  # someone deleted one by hand

    provisioning.deprovision(integration)

    assert not xurrent.webhooks and not xurrent.policies and not zenduty.integrations
    integration.refresh_from_db()
    assert integration.xurrent_webhooks == {} and integration.xurrent_policy_id == ""
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
    assert integration.xurrent_webhooks == {}  # the webhooks were removed before the failure
    assert integration.xurrent_policy_id

    provisioning.deprovision(integration)
    assert not xurrent.policies


def test_missing_outgoing_webhooks_application_is_explained(fakes, tenant, account):
    _, zenduty = fakes
    zenduty.applications = [a for a in zenduty.applications if a["name"] != "Outgoing Webhooks"]
    integration = make_integration(tenant, account, direction=Direction.BIDIRECTIONAL)
    result = provisioning.provision(integration.pk)
    assert result.provisioning_status == ProvisioningStatus.FAILED
    assert "'Outgoing Webhooks' application" in result.provisioning_error
    assert len(result.xurrent_webhooks) == 4  # the Xurrent side is done and recorded


def test_a_webhook_created_beside_a_verified_one_at_the_same_address_counts_as_verified(fakes, tenant, account):
    # Xurrent asks no verification for an address another webhook already verified.
    xurrent, _ = fakes
    integration = make_integration(tenant, account)
    xurrent.fail["create_webhook"] = 3
    failed = provisioning.provision(integration.pk)
    for hook in failed.xurrent_webhooks.values():
        provisioning.mark_webhook_verified(integration.pk, hook["id"])

    done = provisioning.provision(integration.pk)

    assert all(h["verified"] for h in done.xurrent_webhooks.values())
    assert done.provisioning_status == ProvisioningStatus.PROVISIONED


def test_resending_verification_updates_unverified_webhooks_or_replaces_those_beside_a_verified_one(
        fakes, tenant, account):
    xurrent, _ = fakes
    integration = make_integration(tenant, account)
    result = provisioning.provision(integration.pk)
    ids = {e: h["id"] for e, h in result.xurrent_webhooks.items()}

    provisioning.provision(integration.pk, resend_verification=True)  # none verified: touch each one
    touched = [c[1] for c in xurrent.calls if c[0] == "update_webhook"]
    assert sorted(touched) == sorted(ids.values())

    provisioning.mark_webhook_verified(integration.pk, ids["request.create"])
    result = provisioning.provision(integration.pk, resend_verification=True)
    # The others may already be verified in Xurrent (same address): replaced, and counted as verified.
    assert result.xurrent_webhooks["request.create"]["id"] == ids["request.create"]
    assert all(result.xurrent_webhooks[e]["id"] != ids[e] for e in ids if e != "request.create")
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
