"""Which handler processes which event: the one table of handled events.

``HANDLERS`` maps (source, event type) to its handler; the intake asks
:func:`handles` whether an event goes to a job at all (anything else is
stored as ignored), so the two can never disagree. A delivery to a tenant's
Xurrent webhooks names no integration: :func:`dispatch` routes it first
(``syncengine.routing``).

Handlers: Xurrent's ``webhook.verify`` handshake in ``syncengine.verification``;
request and incident events in ``syncengine.flows`` (one module per direction).
"""
from __future__ import annotations

from typing import Callable

from connections.attribution import sync_context
from connections.xurrent.webhooks import EVENT_TYPES as XURRENT_EVENTS
from connections.xurrent.webhooks import VERIFY_EVENT
from connections.zenduty.constants import EVENT_TYPES as ZENDUTY_EVENTS
from integrations.models import OutgoingIntegration
from syncengine import routing
from syncengine.flows import xurrent_to_zenduty, zenduty_to_xurrent
from syncengine.models import EventStatus, InboundEvent, Source
from syncengine.outcomes import INTEGRATION_DISABLED, Outcome
from syncengine.verification import handle_tenant_webhook_verify, handle_webhook_verify

Handler = Callable[..., Outcome]  # (event, integration, **extra) -> Outcome


def dispatch(event: InboundEvent) -> Outcome:
    """Run the handler for (source, event type) and return its outcome.

    A delivery to a tenant's Xurrent webhooks (tenant, no integration) is
    routed first (``syncengine.routing``); the integration found is stored on
    the event, and the outbound calls from then on are tied to it.
    """
    integration, extra = event.integration, {}
    if integration is None and event.tenant_id is not None and event.source == Source.XURRENT:
        if event.event_type == VERIFY_EVENT:
            return handle_tenant_webhook_verify(event)
        routed = routing.route(event)
        if routed.outcome is not None:
            return routed.outcome
        integration = routed.integration
        InboundEvent.objects.filter(pk=event.pk).update(integration=integration)
        event.integration = integration
        if routed.request is not None:
            extra["request"] = routed.request  # read by the routing: the flow does not read it again
        with sync_context(integration_id=integration.pk, inbound_event_id=event.pk):
            return _run_handler(event, integration, extra)
    if integration is None:
        return Outcome(EventStatus.IGNORED, "The integration was deleted after the event arrived; nothing to do.")
    if event.source == Source.XURRENT and event.event_type == VERIFY_EVENT:
        # Even when disabled: the handshake only completes provisioning.
        return handle_webhook_verify(event, integration)
    return _run_handler(event, integration, extra)


def _run_handler(event: InboundEvent, integration: OutgoingIntegration, extra: dict) -> Outcome:
    if not integration.enabled:
        return Outcome(EventStatus.IGNORED, INTEGRATION_DISABLED)
    handler = HANDLERS.get((event.source, event.event_type))
    if handler is None:
        return Outcome(EventStatus.IGNORED, f"No handler for {event.source} '{event.event_type}' events.")
    return handler(event, integration, **extra)


def handle_zenduty_incident(event: InboundEvent, integration: OutgoingIntegration) -> Outcome:
    """Zenduty incident events. A signed delivery proves that Zenduty's webhook URL and
    signing key were entered, so the manual step is confirmed; then the incident is synced."""
    confirmed = ""
    if integration.zenduty_step_confirmed_at is None:
        from integrations.provisioning import confirm_zenduty_step

        confirm_zenduty_step(integration.pk)
        confirmed = " This signed delivery confirmed the Zenduty webhook setup of the integration."
    outcome = zenduty_to_xurrent.handle(event, integration)
    return Outcome(outcome.status, outcome.reason + confirmed) if confirmed else outcome


HANDLERS: dict[tuple[str, str], Handler] = {
    (Source.XURRENT, VERIFY_EVENT): handle_webhook_verify,
    **{(Source.XURRENT, name): xurrent_to_zenduty.handle for name in XURRENT_EVENTS},
    **{(Source.ZENDUTY, name): handle_zenduty_incident for name in ZENDUTY_EVENTS},
}


def handles(source: str, event_type: str) -> bool:
    """Whether events of this type from this source go to a job (else they are stored as ignored)."""
    return (source, event_type) in HANDLERS
