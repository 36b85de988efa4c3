"""Fixtures for the integration tests: connections, and fake or sandbox APIs."""
from __future__ import annotations

import pytest
from django.core.cache import cache

from connections.models import ConnectionStatus, XurrentTenant, ZendutyAccount
from integrations import services
from integrations.models import Direction, OutgoingIntegration
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


def make_integration(tenant, account, **overrides) -> OutgoingIntegration:
    fields = dict(zenduty_account=account, zenduty_team_id=FakeZenduty.OPS, zenduty_team_name="Operations",
                  zenduty_service_id="svc-web", zenduty_service_name="Website", tenant=tenant,
                  service_instance_id="1", service_instance_name="Website (Production)",
                  direction=Direction.XURRENT_TO_ZENDUTY, sync_notes=True)
    fields.update(overrides)
    return OutgoingIntegration.objects.create(**fields)


class FakeWorld:
    """The cast of the admin tests, on the fake APIs (see SandboxWorld for the same on the simulators)."""

    platform_service = "Database"   # a service of the 3-priority Platform team
    second_service = "API"          # another service of Operations
    other_instance = "Mail"

    def __init__(self, tenant, account, xurrent: FakeXurrent, zenduty: FakeZenduty):
        self.tenant, self.account, self.xurrent, self.zenduty = tenant, account, xurrent, zenduty

    def _team(self, name):
        return next(t["unique_id"] for t in self.zenduty.teams if t["name"] == name)

    def service(self, name):
        for team_id, items in self.zenduty.services.items():
            for item in items:
                if item["name"] == name:
                    return team_id, item["unique_id"]
        raise KeyError(name)

    def instance(self, name):
        return next(str(i["id"]) for i in self.xurrent.instances if i["name"] == name)

    def priority_ids(self, team):
        return [p["unique_id"] for p in self.zenduty.priorities[self._team(team)]]

    def priority_names(self, team):
        return [p["name"] for p in self.zenduty.priorities[self._team(team)]]

    def remote_webhooks_disabled(self, integration):
        return [self.xurrent.webhooks[h["id"]]["disabled"] for h in integration.xurrent_webhooks.values()]

    def remote_state(self):
        return {"webhooks": len(self.xurrent.webhooks), "policies": len(self.xurrent.policies),
                "zenduty_integrations": len(self.zenduty.integrations)}

    def break_xurrent(self):
        self.xurrent.broken = True

    def break_zenduty(self):
        self.zenduty.broken = True


@pytest.fixture
def world(fakes, tenant, account):
    return FakeWorld(tenant, account, *fakes)
