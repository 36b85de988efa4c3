"""The demo: simulated accounts on both sides, portal connections to them, an
admin login, and (once integrations exist) a bidirectional integration between
"Website" and "Website (Production)", and a view-only "auditor" login. Idempotent: safe to run on every start.

The connection checks and the provisioning go over real HTTP to this portal's
sandbox, so the web server must be up (``make run`` seeds after starting it).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import transaction

logger = logging.getLogger("sandbox.demo")

DEMO_ACCOUNT_ID = "wdc"
DEMO_CLIENT_ID = "demo-client-id"
DEMO_CLIENT_SECRET = "demo-client-secret"  # a simulated credential of the sandbox, not a real secret
DEMO_ZENDUTY_TOKEN = "demo-zenduty-token"  # likewise
DEMO_SERVICE = "Website"
DEMO_SERVICE_INSTANCE = "Website (Production)"


@dataclass
class DemoResult:
    """What seeding did, for the command to print."""

    admin_username: str = "admin"
    admin_created: bool = False
    auditor_created: bool = False
    notes: list[str] = field(default_factory=list)


def ensure_admin(password: str | None) -> tuple[str, bool]:
    """Create the demo superuser if missing. Returns (username, created)."""
    User = get_user_model()
    if User.objects.filter(username="admin").exists():
        return "admin", False
    User.objects.create_superuser("admin", "admin@example.com", password or "admin")
    return "admin", True


def ensure_auditor(password: str | None) -> bool:
    """Create the demo's view-only staff user "auditor" (the Auditors role) if missing. Returns whether created."""
    from django.contrib.auth.models import Group

    from roles.services import AUDITORS

    User = get_user_model()
    if User.objects.filter(username="auditor").exists():
        return False
    user = User.objects.create_user("auditor", "auditor@example.com", password or "admin", is_staff=True)
    user.groups.add(Group.objects.get(name=AUDITORS))
    return True


def ensure_connections():
    """Portal connections to the simulated Xurrent account and Zenduty account."""
    from connections.models import XurrentTenant, ZendutyAccount

    with transaction.atomic():
        tenant, _ = XurrentTenant.objects.get_or_create(
            account_id=DEMO_ACCOUNT_ID, region="global", environment="production",
            defaults={"name": "Widget Data Center (sandbox)", "client_id": DEMO_CLIENT_ID,
                      "client_secret": DEMO_CLIENT_SECRET})
        account = ZendutyAccount.objects.filter(name="Demo Zenduty (sandbox)").first()
        if account is None:
            account = ZendutyAccount.objects.create(name="Demo Zenduty (sandbox)", api_token=DEMO_ZENDUTY_TOKEN)
    return tenant, account


def seed(*, admin_password: str | None = None, check_connections: bool = True,
         with_integration: bool = True) -> DemoResult:
    """Seed both simulators and the portal. See the module docstring."""
    from sandbox.xurrent import demo as xurrent_demo
    from sandbox.zenduty import demo as zenduty_demo

    result = DemoResult()
    xurrent_demo.seed()
    zenduty_demo.seed()
    result.admin_username, result.admin_created = ensure_admin(admin_password)
    result.auditor_created = ensure_auditor(admin_password)
    tenant, account = ensure_connections()
    if check_connections:
        from connections.services import test_connection

        for connection in (tenant, account):
            error = test_connection(connection)
            result.notes.append(f"{connection}: {'works' if not error else error}")
    if with_integration:
        result.notes.append(ensure_integration(tenant, account))
    return result


def ensure_integration(tenant, account) -> str:
    """The bidirectional Website ⇄ Website (Production) integration, provisioned."""
    try:
        from integrations import provisioning
        from integrations.models import Direction, OutgoingIntegration
    except ImportError:  # pragma: no cover - integrations not installed
        return "integrations app missing: no demo integration"
    from connections.xurrent import XurrentClient
    from connections.zenduty import ZendutyClient

    existing = OutgoingIntegration.objects.filter(zenduty_account=account, zenduty_service_name=DEMO_SERVICE).first()
    if existing is None:
        zenduty = ZendutyClient.for_account(account)
        team = next(t for t in zenduty.list_teams() if t["name"] == "Operations")
        service = next(s for s in zenduty.list_services(team["unique_id"]) if s["name"] == DEMO_SERVICE)
        priorities = list(zenduty.list_priorities(team["unique_id"]))
        instance = next(i for i in XurrentClient.for_tenant(tenant).search_service_instances(DEMO_SERVICE_INSTANCE)
                        if i["name"] == DEMO_SERVICE_INSTANCE)
        impacts = ["top", "high", "medium", "low", "low"]
        existing = OutgoingIntegration.objects.create(
            zenduty_account=account, zenduty_team_id=team["unique_id"], zenduty_team_name=team["name"],
            zenduty_service_id=service["unique_id"], zenduty_service_name=service["name"], tenant=tenant,
            service_instance_id=str(instance["id"]), service_instance_name=instance["name"],
            direction=Direction.BIDIRECTIONAL, sync_notes=True, default_impact="medium",
            use_custom_mapping=len(priorities) >= 4,
            priority_mapping={p["unique_id"]: {"name": p["name"], "impact": impacts[min(i, 4)], "rank": i}
                              for i, p in enumerate(priorities)},
        )
        # What the integration page compares the mapping with, until the scheduled refresh reads it again.
        from integrations import services, team_priorities

        team_priorities.record(account, team["unique_id"], services.priority_options(priorities))
    # Also after a start on another port (PORT=8001 make run): the webhooks
    # then point at the old address, which pending_changes() notices.
    if provisioning.pending_changes(existing):
        provisioning.provision(existing.pk)
        existing.refresh_from_db()
    if provisioning.zenduty_step_pending(existing) or _zenduty_side_outdated(existing):
        configure_zenduty_side(existing)
        existing.refresh_from_db()
    return f"Integration {existing}: {existing.get_provisioning_status_display()}"


def _zenduty_side_outdated(integration) -> bool:
    """True when the simulated Zenduty sends this integration's incidents to another address."""
    from integrations import provisioning
    from sandbox.zenduty.models import Integration as SimulatedIntegration

    simulated = SimulatedIntegration.objects.filter(unique_id=integration.zenduty_integration_id or None).first()
    return simulated is not None and simulated.outgoing_url != provisioning.zenduty_webhook_url(integration)


def configure_zenduty_side(integration) -> bool:
    """Do, in the Zenduty simulator, the step Zenduty leaves to a person.

    Zenduty's API cannot set an Outgoing Webhooks integration's URL and
    signing key (https://www.zenduty.com/docs/outgoingwebhooks-integration/), so the admin copies them from the
    integration page. For the demo we fill them in as that person would and
    confirm the step, so the demo integration is complete on first start.
    """
    from integrations import provisioning
    from sandbox.zenduty.demo import configure_outgoing_webhook
    from sandbox.zenduty.models import Integration as SimulatedIntegration

    simulated = (SimulatedIntegration.objects.select_related("service")
                 .filter(unique_id=integration.zenduty_integration_id).first())
    if simulated is None:
        return False
    configure_outgoing_webhook(simulated.service, provisioning.zenduty_webhook_url(integration),
                               integration.zenduty_signing_secret, integration=simulated)
    provisioning.confirm_zenduty_step(integration.pk)
    return True
