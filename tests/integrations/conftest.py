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
