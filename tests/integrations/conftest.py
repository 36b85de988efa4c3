"""Fixtures for the integration tests: connections, and fake or sandbox APIs."""
from __future__ import annotations

import pytest
from django.core.cache import cache

from connections.models import ConnectionStatus, XurrentTenant, ZendutyAccount
from integrations import services
from integrations.models import Direction, OutgoingIntegration, TenantWebhooks
from tests.integrations.fakes import FakeXurrent, FakeZenduty


@pytest.fixture(autouse=True)
def _fresh_cache():
    # The option listings are cached in the shared (database) cache, whose
    # table is not emptied between transactional tests.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def tenant(db):
    return XurrentTenant.objects.create(name="Widget Data Center", account_id="wdc", client_id="demo-client-id",
                                        client_secret="demo-client-secret", status=ConnectionStatus.ACTIVE)


@pytest.fixture
def account(db):
    return ZendutyAccount.objects.create(name="Demo Zenduty", api_token="demo-zenduty-token",
                                         status=ConnectionStatus.ACTIVE)


@pytest.fixture
def fakes(monkeypatch):
    """Replace both API clients by in-memory fakes."""
    xurrent, zenduty = FakeXurrent(), FakeZenduty()
    monkeypatch.setattr(services, "xurrent_client", lambda tenant: xurrent)
    monkeypatch.setattr(services, "zenduty_client", lambda account: zenduty)
    return xurrent, zenduty


def hooks_of(integration) -> TenantWebhooks:
    """The Xurrent webhooks of the integration's tenant as stored now (an empty, unsaved set before any)."""
    return TenantWebhooks.objects.filter(tenant_id=integration.tenant_id).first() or \
        TenantWebhooks(tenant_id=integration.tenant_id)


def make_integration(tenant, account, **overrides) -> OutgoingIntegration:
    fields = dict(zenduty_account=account, zenduty_team_id=FakeZenduty.OPS, zenduty_team_name="Operations",
                  zenduty_service_id="svc-web", zenduty_service_name="Website", tenant=tenant,
                  service_instance_id="1", service_instance_name="Website (Production)",
                  direction=Direction.XURRENT_TO_ZENDUTY, sync_notes=True)
    fields.update(overrides)
    return OutgoingIntegration.objects.create(**fields)


class SandboxWorld:
    """The cast of the admin and end-to-end tests: the simulators seeded with their
    demo data, reached over real HTTP.

    Lookups go through the portal's own clients; counts read the simulators' records.
    """

    platform_service = "Internal Tools"  # the Platform team has three priorities
    second_service = "Payments API"
    other_instance = "Email (Production)"

    def __init__(self, live_server, tenant, account):
        from connections.xurrent import XurrentClient
        from connections.zenduty import ZendutyClient

        self.live_server, self.tenant, self.account = live_server, tenant, account
        self.xurrent = XurrentClient.for_tenant(tenant)
        self.zenduty = ZendutyClient.for_account(account)
        self.teams = {t["name"]: str(t["unique_id"]) for t in self.zenduty.list_teams()}
        self.services = {s["name"]: (team_id, str(s["unique_id"])) for team_id in self.teams.values()
                         for s in self.zenduty.list_services(team_id)}
        self.instances = {i["name"]: str(i["id"]) for i in self.xurrent.iter_service_instances()}

    def close(self):
        self.xurrent.session.close()
        self.zenduty.session.close()

    # -- lookups --------------------------------------------------------------------------
    def service(self, name):
        return self.services[name]

    def instance(self, name):
        return self.instances[name]

    def priority_ids(self, team):
        return [str(p["unique_id"]) for p in self.zenduty.list_priorities(self.teams[team])]

    def priority_names(self, team):
        return [p["name"] for p in self.zenduty.list_priorities(self.teams[team])]

    def integration(self, service="Website", instance="Website (Production)", **fields) -> OutgoingIntegration:
        team_id, service_id = self.service(service)
        team_name = next(name for name, tid in self.teams.items() if tid == team_id)
        return make_integration(self.tenant, self.account, zenduty_team_id=team_id, zenduty_team_name=team_name,
                                zenduty_service_id=service_id, zenduty_service_name=service,
                                service_instance_id=self.instance(instance), service_instance_name=instance,
                                **fields)

    # -- the simulators' side ------------------------------------------------------------
    def remote_webhooks(self, integration):
        return [self.xurrent.get_webhook(h["id"]) for h in hooks_of(integration).xurrent_webhooks.values()]

    @staticmethod
    def policy_of(webhook):
        reference = webhook.get("webhook_policy")
        return reference.get("id") if isinstance(reference, dict) else webhook.get("webhook_policy_id", reference)

    def remote_webhooks_disabled(self, integration):
        return [h["disabled"] for h in self.remote_webhooks(integration)]

    def remote_zenduty_integrations(self, integration):
        return [i for i in self.zenduty.list_integrations(integration.zenduty_team_id,
                                                          integration.zenduty_service_id)
                if "portal integration" in str(i.get("summary", ""))]

    @staticmethod
    def application_name(record):
        reference = record.get("application_reference") or {}
        return reference.get("name")

    def counts(self):
        from sandbox.xurrent.models import Webhook, WebhookPolicy
        from sandbox.zenduty.models import OUTGOING_WEBHOOKS_EXTENSION, Integration

        return {"webhooks": Webhook.objects.count(), "policies": WebhookPolicy.objects.count(),
                "zenduty_integrations": Integration.objects.filter(
                    application__extension=OUTGOING_WEBHOOKS_EXTENSION).count()}

    remote_state = counts

    def fail_xurrent_creates_after(self, successes: int):
        """Make Xurrent answer 500 to the webhook create after ``successes`` good ones."""
        from connections.xurrent import XurrentClient
        from sandbox import faults

        original = XurrentClient.create_webhook
        made = []

        def create_webhook(client, *args, **kwargs):
            if len(made) == successes:
                faults.inject("xurrent", "error_500", path_prefix="/v1/webhooks", method="POST")
            made.append(args)
            return original(client, *args, **kwargs)

        self._monkeypatch.setattr(XurrentClient, "create_webhook", create_webhook)

    def break_xurrent(self):
        self.tenant.client_secret = "no-longer-valid"
        self.tenant.save()

    def break_zenduty(self):
        self.account.api_token = "no-longer-valid"
        self.account.save()


@pytest.fixture
def world(sandbox, monkeypatch, tenant, account):
    """Both simulators seeded (sandbox.*.demo.seed) and connected as the demo does."""
    from sandbox.xurrent import demo as xurrent_demo
    from sandbox.zenduty import demo as zenduty_demo

    xurrent_demo.seed()
    zenduty_demo.seed()
    world = SandboxWorld(sandbox, tenant, account)
    world._monkeypatch = monkeypatch
    yield world
    world.close()


@pytest.fixture
def sim(world):
    return world
