"""Deliveries to a tenant's Xurrent webhooks (``/webhooks/xurrent/tenant/<public_id>/``): checked with the
tenant set's key and audience, stored with the tenant and no integration, routed by the job."""
from __future__ import annotations

import uuid

import pytest

from integrations.models import ProvisioningStatus, TenantWebhooks
from syncengine.models import EventStatus, InboundEvent

TENANT_AUDIENCE = "zenduty-xurrent-portal:tenant:test"


@pytest.fixture
def tenant_hooks(tenant, rsa_key) -> TenantWebhooks:
    return TenantWebhooks.objects.create(
        tenant=tenant, xurrent_policy_id="313", xurrent_policy_alg="rs256", xurrent_policy_audience=TENANT_AUDIENCE,
        xurrent_policy_public_key=rsa_key[1], provisioning_status=ProvisioningStatus.PROVISIONED)


@pytest.fixture
def post_tenant(client, django_capture_on_commit_callbacks):
    def post(hooks, body: bytes):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(f"/webhooks/xurrent/tenant/{hooks.public_id}/", data=body,
                               content_type="application/json", HTTP_X_XURRENT_DELIVERY=str(uuid.uuid4()))
    return post


@pytest.mark.django_db
class TestTenantAddress:
    def test_it_stores_the_delivery_with_the_tenant_and_routes_it(self, tenant_hooks, post_tenant, sign_xurrent,
                                                                   outbound):
        response = post_tenant(tenant_hooks, sign_xurrent("request.update", audience=TENANT_AUDIENCE))

        assert response.status_code == 200, response.json()
        event = InboundEvent.objects.get()
        assert (event.tenant_id, event.integration_id, event.signature_ok) == (tenant_hooks.tenant_id, None, True)
        # Not linked, not a create: ignored by the routing without any call.
        assert event.status == EventStatus.IGNORED and "is not linked" in event.reason
        assert outbound.requests == []

    def test_a_token_for_another_audience_is_refused(self, tenant_hooks, post_tenant, sign_xurrent):
        response = post_tenant(tenant_hooks, sign_xurrent("request.update"))  # an integration's audience

        assert response.status_code == 401
        event = InboundEvent.objects.get()
        assert event.status == EventStatus.REJECTED and event.tenant_id == tenant_hooks.tenant_id

    def test_an_unknown_address_is_a_404_and_stores_nothing(self, tenant_hooks, client, sign_xurrent):
        response = client.post(f"/webhooks/xurrent/tenant/{uuid.uuid4()}/", data=sign_xurrent("request.update"),
                               content_type="application/json")

        assert response.status_code == 404 and not InboundEvent.objects.exists()
