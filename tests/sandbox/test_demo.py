"""The demo that `make run` seeds, over real HTTP against the live server."""
import pytest
from django.core.management import call_command

from connections.models import ConnectionStatus, XurrentTenant, ZendutyAccount
from integrations.models import Direction, OutgoingIntegration, ProvisioningStatus, TenantWebhooks

pytestmark = pytest.mark.django_db(transaction=True)


def test_seed_demo_without_a_server_creates_data_and_connections_only(monkeypatch, capsys):
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "demo-pass-1")
    call_command("seed_demo", "--no-check")

    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("demo-pass-1")
    assert XurrentTenant.objects.get().status == ConnectionStatus.UNTESTED
    assert ZendutyAccount.objects.get().status == ConnectionStatus.UNTESTED
    assert not OutgoingIntegration.objects.exists()
    auditor = get_user_model().objects.get(username="auditor")
    assert auditor.is_staff and not auditor.is_superuser and auditor.check_password("demo-pass-1")
    assert list(auditor.groups.values_list("name", flat=True)) == ["Auditors"]
    out = capsys.readouterr().out
    assert "Created the demo login 'admin'." in out and "Created the demo login 'auditor'" in out


def test_the_live_seed_leaves_a_working_bidirectional_integration_and_is_idempotent(sandbox, capsys):
    from sandbox import deliveries
    from sandbox.xurrent.models import Webhook, WebhookPolicy
    from sandbox.zenduty.models import Integration as ZendutyIntegration

    call_command("seed_demo", "--no-check")
    call_command("seed_demo")
    out = capsys.readouterr().out

    tenant, account = XurrentTenant.objects.get(), ZendutyAccount.objects.get()
    assert (tenant.status, account.status) == (ConnectionStatus.ACTIVE, ConnectionStatus.ACTIVE)
    integration = OutgoingIntegration.objects.get()
    assert (integration.zenduty_service_name, integration.service_instance_name) == ("Website", "Website (Production)")
    assert integration.direction == Direction.BIDIRECTIONAL and integration.sync_notes
    # Five priorities (P1-P5), so the custom mapping is on, P1 → top.
    assert integration.use_custom_mapping
    assert sorted(v["name"] for v in integration.priority_mapping.values()) == ["P1", "P2", "P3", "P4", "P5"]
    assert {v["name"]: v["impact"] for v in integration.priority_mapping.values()}["P1"] == "top"
    # The team's priorities as read at seed time: the page has something to compare the mapping with.
    from integrations.team_priorities import snapshot_of

    assert [p["name"] for p in snapshot_of(integration).priorities] == ["P1", "P2", "P3", "P4", "P5"]

    # The manual Zenduty step was done in the simulator as a person would.
    outgoing = ZendutyIntegration.objects.get(unique_id=integration.zenduty_integration_id)
    assert outgoing.outgoing_url == f"{sandbox.url}/webhooks/zenduty/{integration.public_id}/"
    assert outgoing.signing_secret == integration.zenduty_signing_secret
    assert integration.zenduty_step_confirmed_at is not None
    # Xurrent's verification messages are still on their way.
    assert integration.provisioning_status == ProvisioningStatus.VERIFYING
    assert f"Integration {integration}: Waiting for Xurrent to verify the webhooks" in out

    deliveries.flush(service="xurrent")

    integration.refresh_from_db()
    assert integration.provisioning_status == ProvisioningStatus.PROVISIONED, integration.provisioning_error
    assert Webhook.objects.filter(verified=True, disabled=False).count() == 4
    assert WebhookPolicy.objects.count() == 1

    # Seeding again (every `make run`) changes nothing.
    call_command("seed_demo")
    assert OutgoingIntegration.objects.count() == 1
    assert Webhook.objects.count() == 4 and WebhookPolicy.objects.count() == 1
    assert ZendutyIntegration.objects.filter(outgoing_url__contains="/webhooks/zenduty/").count() == 1
    integration.refresh_from_db()
    assert integration.provisioning_status == ProvisioningStatus.PROVISIONED


def test_a_start_at_another_address_points_both_sides_at_it(sandbox, settings):
    # `PORT=8001 make run` after a first run on 8000: the same data, a new PORTAL_BASE_URL.
    from sandbox import deliveries
    from sandbox.xurrent.models import Webhook
    from sandbox.zenduty.models import Integration as ZendutyIntegration

    call_command("seed_demo", "--no-check")
    call_command("seed_demo")
    deliveries.flush(service="xurrent")
    host = "localhost" if "127.0.0.1" in sandbox.url else "127.0.0.1"
    moved = sandbox.url.replace("127.0.0.1" if host == "localhost" else "localhost", host)
    assert moved != sandbox.url
    settings.PORTAL_BASE_URL = moved

    call_command("seed_demo")

    integration = OutgoingIntegration.objects.get()
    hooks = TenantWebhooks.objects.get()
    assert {w.uri for w in Webhook.objects.all()} == {f"{moved}/webhooks/xurrent/tenant/{hooks.public_id}/"}
    outgoing = ZendutyIntegration.objects.get(unique_id=integration.zenduty_integration_id)
    assert outgoing.outgoing_url == f"{moved}/webhooks/zenduty/{integration.public_id}/"
    deliveries.flush(service="xurrent")  # Xurrent verifies the new address
    integration.refresh_from_db()
    assert integration.provisioning_status == ProvisioningStatus.PROVISIONED, integration.provisioning_error
