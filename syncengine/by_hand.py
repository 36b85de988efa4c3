"""Pairs made and ended by an integration admin: link an existing request and incident, unlink a pair.

Linking by hand is for records that were already open before the integration
existed, or that someone opened on both sides without the portal. Both
records are read first (one ``GET`` each: Xurrent's request, Zenduty's
incident, within the shared Zenduty budget) so that the pair only ever joins
records that exist, belong to the integration's service instance and
service, and are linked to nothing else. Their statuses at that moment are
recorded as seen: from then on, a change on either side is synced as for any
pair; nothing is written to either side by the link itself.

Unlinking keeps the pair's row and timeline (state ``unlinked``) but frees
both records: their later events are no longer synced, and either may be
linked again.
"""
from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from connections import errors
from integrations.models import OutgoingIntegration
from syncengine import mapping, pairs
from syncengine.flows import common
from syncengine.models import LinkedPair, PairNote, PairOrigin, PairState

logger = logging.getLogger("syncengine.by_hand")


class Refused(Exception):
    """The link or unlink cannot be done; the message says why, in the admin's words."""


def link(integration: OutgoingIntegration, *, request_id: str, incident_number: str, by: str) -> LinkedPair:
    """Link Xurrent request ``request_id`` and Zenduty incident ``incident_number`` through ``integration``.

    :raises Refused: a record does not exist, belongs elsewhere, or is linked already; or an API refused.
    """
    request_id = str(request_id).strip().lstrip("#")
    number = str(incident_number).strip().lstrip("#")
    if not request_id.isdigit():
        raise Refused(f"'{request_id}' is not a Xurrent request ID (a number).")
    if not number.isdigit():
        raise Refused(f"'{number}' is not a Zenduty incident number.")
    _not_linked_yet(pairs.by_request(integration.tenant_id, request_id), f"Request #{request_id}")
    request = _read(lambda: _get_request(integration, request_id), f"Xurrent request #{request_id}")
    instance = request.get("service_instance") if isinstance(request.get("service_instance"), dict) else {}
    if str(instance.get("id") or "") != str(integration.service_instance_id):
        raise Refused(f"Request #{request_id} is in service instance '{instance.get('name') or '?'}', not in "
                      f"'{integration.service_instance_name}' of this integration.")
    incident = _read(lambda: _get_incident(integration, number), f"Zenduty incident #{number}")
    unique_id = str(incident.get("unique_id") or "")
    if str(incident.get("service") or "") != str(integration.zenduty_service_id):
        raise Refused(f"Incident #{number} is not on the service '{integration.zenduty_service_name}' of this "
                      f"integration.")
    _not_linked_yet(pairs.by_incident(integration.zenduty_account_id, unique_id), f"Incident #{number}")
    now = timezone.now()
    try:
        with transaction.atomic():
            pair = LinkedPair.objects.create(
                integration=integration, tenant_id=integration.tenant_id,
                zenduty_account_id=integration.zenduty_account_id, origin=PairOrigin.BY_HAND,
                state=PairState.LINKED, xurrent_request_id=request_id, zenduty_incident_unique_id=unique_id,
                zenduty_incident_number=int(number), xurrent_status=str(request.get("status") or ""),
                xurrent_updated_at=mapping.parse_time(request.get("updated_at")),
                zenduty_status=mapping.zenduty_status(incident.get("status")), zenduty_seen_at=now)
            pairs.refresh_state(pair)  # both already finished: closed at once
            PairNote.objects.create(pair=pair, text=(
                f"Linked by hand by {by}. Request #{request_id} was {request.get('status') or '?'}, incident "
                f"#{number} {mapping.ZENDUTY_STATUS_NAMES.get(pair.zenduty_status, '?')}; changes on either "
                f"side from now on are synced."))
    except IntegrityError:  # linked by an event or another admin between the checks and now
        raise Refused(f"Request #{request_id} or incident #{number} was linked meanwhile; see the pairs list.") \
            from None
    logger.info("syncengine.by_hand.linked pair=%s by=%s", pair.pk, by)
    return pair


def unlink(pair: LinkedPair, *, by: str) -> LinkedPair:
    """End a pair: its records are no longer synced and may be linked again. The timeline stays.

    :raises Refused: the pair is unlinked already, or an event is working on it right now.
    """
    if pair.state == PairState.UNLINKED:
        raise Refused(f"{pair} is unlinked already.")
    owner = f"by-hand-{by}"[:64]
    try:
        pair = pairs.take_lease(pair, owner)
    except pairs.PairBusy:
        raise Refused(f"{pair} is being synced right now; try again in a moment.") from None
    try:
        LinkedPair.objects.filter(pk=pair.pk).update(state=PairState.UNLINKED, closed_at=pair.closed_at
                                                     or timezone.now())
        PairNote.objects.create(pair=pair, text=f"Unlinked by hand by {by}: request #{pair.xurrent_request_id or '-'} "
                                                f"and incident #{pair.zenduty_incident_number or '-'} are no longer "
                                                f"synced.")
    finally:
        pairs.release(pair, owner)
    logger.info("syncengine.by_hand.unlinked pair=%s by=%s", pair.pk, by)
    pair.refresh_from_db()
    return pair


def _not_linked_yet(pair: LinkedPair | None, what: str) -> None:
    if pair is not None and pair.state != PairState.UNLINKED:
        raise Refused(f"{what} is already linked ({pair}, through integration '{pair.integration}'). Unlink that "
                      f"pair first.")


def _get_request(integration, request_id: str) -> dict:
    with common.xurrent_client(integration) as xurrent:
        return xurrent.get_request(request_id)


def _get_incident(integration, number: str) -> dict:
    with common.zenduty_client(integration) as zenduty:
        return zenduty.get_incident(number)


def _read(get, what: str) -> dict:
    try:
        record = get()
    except errors.NotFoundError:
        raise Refused(f"{what} does not exist (or the portal may not read it).") from None
    except errors.ApiError as exc:
        raise Refused(f"Could not read {what}: {exc}") from None
    if not isinstance(record, dict):
        raise Refused(f"{what}: the answer was not a record.")
    return record
