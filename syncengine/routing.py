"""Routing a delivery to a tenant's Xurrent webhooks to the integration it concerns.

Xurrent webhooks are account-wide and their message names no service
instance (https://developer.xurrent.com/v1/webhooks/), so the job decides
before the flow runs, as cheaply as it can:

* an event of a request that is already linked goes to its pair's
  integration (the pair table; no API call);
* ``request.create`` of the portal's own request (``source`` "Zenduty")
  goes to the pair of the incident its ``sourceID`` names, again without a call;
* any other ``request.create`` costs one ``GET /requests/:id``: the request
  goes to the integration of its service instance (the request read is handed
  to the flow, which does not read it again), or is ignored with a reason
  naming the instance;
* other events of a request not linked are ignored: a request moved into a
  linked service instance after its creation is found by the reconciliation
  sweep, not by a GET per update.

``webhook.verify`` is not routed: it belongs to the tenant's set itself.
"""
from __future__ import annotations

from dataclasses import dataclass

from connections.xurrent.webhooks import TEST_DELIVERY_REASON
from integrations.models import OutgoingIntegration
from syncengine import mapping, pairs
from syncengine.flows import common
from syncengine.models import EventStatus, InboundEvent, LinkedPair
from syncengine.outcomes import EventError, Outcome

CREATE = "request.create"


@dataclass
class Route:
    """Where an event goes: an integration (with the request when it was read), or an outcome."""

    integration: OutgoingIntegration | None = None
    request: dict | None = None
    outcome: Outcome | None = None


def route(event: InboundEvent) -> Route:
    """The integration a tenant-level Xurrent request event is for; see the module docstring."""
    message = event.payload if isinstance(event.payload, dict) else {}
    request_id = str(message.get("object_id") or event.object_id or "")
    if not request_id:
        raise EventError("The Xurrent event names no request (object_id); nothing can be synced.")
    tenant = event.tenant
    pair = pairs.by_request(tenant.pk, request_id)
    if pair is not None and pair.integration_id:
        return Route(integration=pair.integration)
    if event.event_type != CREATE:
        return _ignored(f"Request #{request_id} is not linked to a Zenduty incident; nothing to sync (a request "
                        f"moved into a linked service instance later is found by the reconciliation sweep).")
    data = message.get("payload") if isinstance(message.get("payload"), dict) else {}
    if mapping.is_portal_source(data.get("source")):
        # The portal's own request, possibly announced before the create's answer was recorded.
        own = LinkedPair.objects.filter(tenant_id=tenant.pk, zenduty_incident_unique_id=str(data.get("sourceID")
                                                                                            or "-")).order_by(
            *pairs.HOLDING_FIRST).first()
        if own is not None and own.integration_id:
            return Route(integration=own.integration)
        return _ignored(f"Echo of the portal's own request #{request_id} (source '{data.get('source')}', "
                        f"sourceID '{data.get('sourceID') or '?'}'): not synced back.")
    from connections.xurrent import XurrentClient

    with XurrentClient.for_tenant(tenant) as client:
        request = common.request_unless_webhook_test(client, request_id)
    if request is None:
        return _ignored(TEST_DELIVERY_REASON)
    instance = request.get("service_instance") if isinstance(request.get("service_instance"), dict) else {}
    instance_id = str(instance.get("id") or "")
    integration = OutgoingIntegration.objects.select_related("tenant", "zenduty_account").filter(
        tenant_id=tenant.pk, service_instance_id=instance_id).first() if instance_id else None
    if integration is None:
        name = instance.get("name") or (f"#{instance_id}" if instance_id else "none")
        return _ignored(f"Request #{request_id}: no integration for service instance '{name}'.")
    return Route(integration=integration, request=request)


def _ignored(reason: str) -> Route:
    return Route(outcome=Outcome(EventStatus.IGNORED, reason))
