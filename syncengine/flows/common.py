"""What both directions of the sync share: clients, links, the portal's own identity, errors on the page."""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

from django.utils import timezone

from connections import errors
from connections.xurrent import hosts as xurrent_hosts
from connections.xurrent.webhooks import TEST_OBJECT_ID
from integrations.models import OutgoingIntegration
from integrations.signals import sync_error_changed
from syncengine.models import EventStatus, InboundEvent, LinkedPair
from syncengine.outcomes import Outcome

logger = logging.getLogger("syncengine.flows")



def xurrent_client(integration: OutgoingIntegration):
    from connections.xurrent import XurrentClient

    return XurrentClient.for_tenant(integration.tenant)


def request_unless_webhook_test(xurrent, request_id: str) -> dict | None:
    """The request read from Xurrent, or None when it is the sample of Xurrent's "Test webhook"
    (request ``TEST_OBJECT_ID``, which the account does not have): its event is ignored, not failed.

    :raises NotFoundError: for any other request that is not there.
    """
    try:
        return xurrent.get_request(request_id)
    except errors.NotFoundError:
        if request_id == TEST_OBJECT_ID:
            return None
        raise


def zenduty_client(integration: OutgoingIntegration):
    from connections.zenduty import ZendutyClient

    return ZendutyClient.for_account(integration.zenduty_account)


def request_url(integration: OutgoingIntegration, request_id) -> str:
    """The request's page in Xurrent, for the tenant's region and environment."""
    tenant = integration.tenant
    return f"{xurrent_hosts.account_url(tenant.account_id, tenant.region, tenant.environment)}/requests/{request_id}"


def incident_url(integration: OutgoingIntegration, number) -> str:
    """The incident's page in Zenduty (the account's base URL, or the simulator's in sandbox mode)."""
    from connections.zenduty.client import incident_page_url

    return incident_page_url(integration.zenduty_account.base_url, number)


def portal_person_id(integration: OutgoingIntegration, client) -> str:
    """The id of the Xurrent person the portal acts as; read once with ``GET /me`` when not known yet.

    Stored on the tenant by the connection check; tenants saved before that
    existed learn it here. A refused read leaves it unknown (the other echo
    checks still apply).
    """
    tenant = integration.tenant
    if tenant.portal_person_id:
        return tenant.portal_person_id
    try:
        me = client.get_me()
    except errors.PermanentError as exc:
        logger.warning("syncengine.portal-person-unknown tenant=%s: %s", tenant.pk, exc)
        return ""
    from connections.services import record_portal_person

    record_portal_person(tenant, me)
    return tenant.portal_person_id


def ignored(event: InboundEvent | None, reason: str, pair: LinkedPair | None = None) -> Outcome:
    # ``event`` is None when the reconciliation sweep, not a webhook, runs the flow.
    if pair is not None and event is not None:
        from syncengine.pairs import attach_event

        attach_event(event, pair)
    return Outcome(EventStatus.IGNORED, reason)


def unlinked(event: InboundEvent | None, pair: LinkedPair) -> Outcome:
    """The event of a record whose pair an integration admin unlinked: left alone, no new counterpart."""
    return ignored(event, f"{pair} was unlinked by hand; its records are not synced (link them again on the "
                          f"pairs page to sync them).", pair)


def processed(event: InboundEvent | None, reason: str, pair: LinkedPair | None = None) -> Outcome:
    # ``event`` is None when the reconciliation sweep, not a webhook, runs the flow.
    if pair is not None and event is not None:
        from syncengine.pairs import attach_event

        attach_event(event, pair)
    return Outcome(EventStatus.PROCESSED, reason)


@contextmanager
def flagged_on_permanent_error(integration: OutgoingIntegration, action: str) -> Iterator[None]:
    """Show a permanent API failure (401, 403, 422 …) on the integration's page; the next success clears it.

    The error goes on (the event fails with the vendor's message and can be
    replayed once the cause is fixed).
    """
    from integrations.services import describe_api_error

    try:
        yield
    except errors.PermanentError as exc:
        message, at = describe_api_error(exc, action)[:2000], timezone.now()
        OutgoingIntegration.objects.filter(pk=integration.pk).update(sync_error=message, sync_error_at=at)
        # The poller and the sweep use one object for all of an integration's pairs: a later pair's
        # success must see this error to clear it.
        integration.sync_error, integration.sync_error_at = message, at
        sync_error_changed.send(sender=OutgoingIntegration, integration_id=integration.pk)  # alerts
        raise
    # The object may have been read before another worker recorded an error: ask the row (one
    # indexed read) rather than leave an error on the page after a later success.
    if integration.sync_error or OutgoingIntegration.objects.filter(pk=integration.pk).exclude(sync_error="").exists():
        cleared = OutgoingIntegration.objects.filter(pk=integration.pk).exclude(sync_error="").update(
            sync_error="", sync_error_at=None)
        integration.sync_error, integration.sync_error_at = "", None
        if cleared:  # another worker's success may have cleared it first: one "cleared" alert
            sync_error_changed.send(sender=OutgoingIntegration, integration_id=integration.pk)


def reverse_mapping(integration: OutgoingIntegration) -> dict:
    """The custom mapping for the impact → priority rule, without the priorities the team no longer has.

    Zenduty refuses an incident with a deleted priority (400). Which priorities
    the team has is the last snapshot read (``integrations.team_priorities``);
    with none read yet, the mapping is used as it is.
    """
    from integrations.team_priorities import snapshot_of

    snapshot = snapshot_of(integration)
    if snapshot is None or snapshot.read_at is None:
        return integration.priority_mapping
    present = {str(p.get("id")) for p in snapshot.priorities or [] if isinstance(p, dict)}
    return {priority: entry for priority, entry in (integration.priority_mapping or {}).items() if priority in present}
