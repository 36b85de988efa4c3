"""Zenduty incident events (triggered / acknowledged / resolved) → Xurrent requests.

* An incident not linked yet, on an integration that receives from Zenduty:
  claim the pair, create the request in the integration's service instance
  (``source`` "Zenduty", ``sourceID`` the incident's unique_id), record it.
  An incident whose "triggered" was missed is created the same way from its
  "acknowledged" or "resolved", then given that status.
* An incident the portal created itself (its title starts with the
  ``[Xurrent #<id>]`` marker) is an echo: recorded, never synced back.
* A linked incident's status: acknowledged → request ``in_progress``;
  resolved → ``completed`` / ``solved`` with a note. Zenduty statuses only
  move forward, so a lower status than the pair last saw is a stale
  delivery, ignored without spending any of Zenduty's 30 incident reads a
  minute. The request is read before it is written, so a request someone
  completed in the meantime is not moved back.

Reference: https://www.zenduty.com/docs/outgoingwebhooks-integration/,
https://developer.xurrent.com/v1/requests/.
"""
from __future__ import annotations

import logging

from django.utils import timezone

from connections import errors
from integrations.models import OutgoingIntegration
from syncengine import mapping, pairs
from syncengine.flows import common
from syncengine.models import EventStatus, InboundEvent, LinkedPair, PairState, Source
from syncengine.outcomes import EventError, Outcome

logger = logging.getLogger("syncengine.flows.zenduty_to_xurrent")


def handle(event: InboundEvent, integration: OutgoingIntegration) -> Outcome:
    """Sync one Zenduty incident event to Xurrent."""
    message = event.payload if isinstance(event.payload, dict) else {}
    incident = message.get("incident") if isinstance(message.get("incident"), dict) else None
    if incident is None or not str(incident.get("unique_id") or ""):
        raise EventError("The Zenduty event carries no incident unique_id; nothing can be synced.")
    status = mapping.zenduty_status(incident.get("status"))
    if status is None:
        raise EventError(f"The Zenduty event's incident status {incident.get('status')!r} is not 1, 2 or 3.")
    unique_id = str(incident["unique_id"])
    number = incident.get("incident_number")
    with common.flagged_on_permanent_error(integration, f"sync Zenduty incident #{number} to Xurrent"):
        return _handle(event, integration, incident, unique_id, status)


def _handle(event, integration, incident: dict, unique_id: str, status: int) -> Outcome:
    number = incident.get("incident_number")
    owner = pairs.new_owner(event.pk)
    request_id = mapping.request_id_in_title(incident.get("title"))
    if request_id is not None:  # an incident the portal created for a request
        return _own_incident(event, integration, incident, request_id, status, owner)
    pair = pairs.by_incident(integration.zenduty_account_id, unique_id)
    if pair is not None and pair.state == PairState.UNLINKED:
        return common.unlinked(event, pair)
    fresh = False
    if pair is None:
        if not integration.receives_from_zenduty:
            return common.ignored(event, f"Incident #{number} is not linked, and this integration's direction is "
                                         f"Xurrent → Zenduty: incidents do not create requests.")
        pair = pairs.claim(integration, origin=Source.ZENDUTY, owner=owner, incident_unique_id=unique_id,
                           incident_number=number)
        fresh = pair is not None
        if pair is None:  # claimed meanwhile by another event or worker
            pair = pairs.by_incident(integration.zenduty_account_id, unique_id)
            if pair is None:
                raise EventError(f"Incident #{number} was claimed and then removed while this event ran.")
    with pairs.working_on(pair, owner, event=event, held=fresh) as pair:
        return _sync(event, integration, pair, incident, status, fresh=fresh)


def sync_status(integration: OutgoingIntegration, pair: LinkedPair, incident: dict, *, owner: str) -> Outcome:
    """Bring a linked pair's request in line with its incident as read now (the reconciliation sweep).

    The rules of a webhook's status change: under the pair's lease, a status
    not newer than the pair last saw writes nothing, the request is read
    before it is written.

    :raises PairBusy: when an event of the pair holds its lease.
    """
    status = mapping.zenduty_status(incident.get("status"))
    if status is None:
        raise EventError(f"The Zenduty incident's status {incident.get('status')!r} is not 1, 2 or 3.")
    number = incident.get("incident_number")
    with common.flagged_on_permanent_error(integration, f"sync Zenduty incident #{number} to Xurrent"):
        with pairs.working_on(pair, owner) as pair:
            return _sync_status(integration, pair, incident, status)


def create_for_incident(integration: OutgoingIntegration, incident: dict, *, owner: str) -> Outcome | None:
    """Claim the incident and create its request, as its webhook would have (the reconciliation sweep,
    for an incident whose deliveries were lost: Zenduty does not retry them).

    ``incident``: the incident as read in full (``GET``). Returns None when it
    is claimed already (its webhook got there first, or is creating it now):
    the claim decides, so the sweep and a late webhook make one request. A
    claim left unfinished (a 429, a lost answer, a dead worker: state
    ``creating``) is taken over once its lease is free, looking for the
    request first.

    :raises PairBusy: when an unfinished claim's lease is still held.
    """
    status = mapping.zenduty_status(incident.get("status"))
    if status is None:
        raise EventError(f"The Zenduty incident's status {incident.get('status')!r} is not 1, 2 or 3.")
    unique_id, number = str(incident["unique_id"]), incident.get("incident_number")
    with common.flagged_on_permanent_error(integration, f"sync Zenduty incident #{number} to Xurrent"):
        pair = pairs.claim(integration, origin=Source.ZENDUTY, owner=owner, incident_unique_id=unique_id,
                           incident_number=number)
        fresh = pair is not None
        if pair is None:
            pair = pairs.unfinished_claim(pairs.by_incident(integration.zenduty_account_id, unique_id))
            if pair is None:
                return None
        with pairs.working_on(pair, owner, held=fresh) as pair:
            return _sync(None, integration, pair, incident, status, fresh=fresh)


def _own_incident(event, integration, incident, request_id: str, status: int, owner: str) -> Outcome:
    """An incident whose title carries the portal's marker: one the portal created for a request."""
    number = incident.get("incident_number")
    pair = pairs.by_request(integration.tenant_id, request_id)
    if pair is None:
        return common.ignored(event, f"Incident #{number} carries the portal's marker for Xurrent request "
                                     f"#{request_id} but no linked pair exists for it (deleted?); not synced.")
    if pair.state == PairState.UNLINKED:
        return common.unlinked(event, pair)
    if not pair.zenduty_incident_unique_id:
        # The triggered webhook overtook the create's answer (or the answer was lost): the
        # incident is known now. Only fills a blank, so it cannot undo what the creator records.
        LinkedPair.objects.filter(pk=pair.pk, zenduty_incident_unique_id="").update(
            zenduty_incident_unique_id=str(incident["unique_id"]), zenduty_incident_number=number)
        pair.refresh_from_db()
    if status == 1:
        return common.ignored(event, f"Echo of the portal's own incident #{number}, created for Xurrent request "
                                     f"#{request_id}: not synced back.", pair)
    with pairs.working_on(pair, owner, event=event) as pair:
        return _sync(event, integration, pair, incident, status, fresh=False)


def _sync(event, integration, pair: LinkedPair, incident: dict, status: int, *, fresh: bool) -> Outcome:
    created = ""
    if not pair.xurrent_request_id:
        if pair.origin != Source.ZENDUTY:
            raise EventError(f"{pair} has no Xurrent request although it started in Xurrent.")
        created = _create_request(integration, pair, incident, look_first=not fresh)
        if status == 1:
            pairs.update(pair, zenduty_status=max(status, pair.zenduty_status or 0), zenduty_seen_at=timezone.now())
            return common.processed(event, created, pair)
    elif pair.state in (PairState.CREATING, PairState.FAILED):
        pairs.mark_linked(pair)  # the request was recorded, the state change was not
    outcome = _sync_status(integration, pair, incident, status)
    if created:
        return common.processed(event, f"{created} {outcome.reason}", pair)
    return outcome


def _create_request(integration, pair: LinkedPair, incident: dict, *, look_first: bool) -> str:
    """Create (or, after a lost answer, find) the incident's request and link it. Returns a sentence."""
    unique_id, number = str(incident["unique_id"]), incident.get("incident_number")
    # The Zenduty read comes first: when the portal's Zenduty budget is spent (a backlog) the job is
    # rescheduled before it calls Xurrent, instead of looking for its request again on every retry.
    impact, priority = _impact(integration, incident)
    with common.xurrent_client(integration) as xurrent:
        if look_first:
            # A claim left behind (a worker killed, a lost answer): the request may exist already.
            found = xurrent.find_requests(mapping.XURRENT_SOURCE, unique_id)
            if found:
                request = found[0]
                pairs.record_request(pair, request)
                pairs.mark_linked(pair)
                return f"Adopted Xurrent request #{request['id']}, created for incident #{number} by an earlier " \
                       f"attempt whose answer was lost."
        url = common.incident_url(integration, number)
        body = mapping.request_body_for_incident(incident, service_instance_id=integration.service_instance_id,
                                                 impact=impact, incident_url=url)
        try:
            request = xurrent.create_request(body)
        except errors.PermanentError as exc:
            pairs.mark_failed(pair, str(exc))
            raise
    pairs.record_request(pair, request)
    pairs.record_written(pair, "xurrent", status=request.get("status"), impact=impact)
    pairs.update(pair, xurrent_impact=impact, zenduty_priority=priority)
    pairs.mark_linked(pair)
    return f"Created Xurrent request #{request['id']} in {integration.service_instance_name or 'the service instance'}" \
           f" for incident #{number} (impact {impact})."


def _impact(integration, incident: dict) -> tuple[str, str]:
    """The impact for the incident's priority, and the priority's unique_id ('' when not read). The
    webhook carries no priority (Zenduty's outgoing webhook shape), so with a custom mapping the
    incident is read once; without one the poller records the priority when it first sees it."""
    priority = str(incident.get("team_priority") or "")
    if not integration.use_custom_mapping:
        return integration.default_impact, priority
    if not priority:
        with common.zenduty_client(integration) as zenduty:
            full = zenduty.get_incident(incident.get("unique_id") or incident.get("incident_number"))
        priority = str((full.get("team_priority") if isinstance(full, dict) else None) or "")
    return mapping.impact_for_priority(priority, use_custom_mapping=True, mapping=integration.priority_mapping,
                                       default_impact=integration.default_impact), priority


def sync_priority(integration: OutgoingIntegration, pair: LinkedPair, priority_id: str, xurrent) -> str:
    """A priority change on the incident (seen by the poller) → the request's impact through the mapping.

    The caller holds the pair's lease. Returns a sentence when something
    changed ('' otherwise). The first priority a pair sees is only recorded
    (a pair linked before priorities were followed); the portal's own
    priority write read back (recorded as seen when written), and a priority
    whose impact the request already has, write nothing (so a change never
    bounces back).
    """
    priority_id = str(priority_id or "")
    previous = pair.zenduty_priority
    if not priority_id or priority_id == previous:
        return ""
    pairs.update(pair, zenduty_priority=priority_id, active_at=timezone.now())
    current = pair.xurrent_impact or (pair.last_written.get("xurrent") or {}).get("impact") or ""
    # The portal's own priority write was recorded as seen, so it stops above when the poller reads it
    # back; a person may later set a priority the portal once wrote, which is a change like any other.
    if not previous:
        return ""
    number = pair.zenduty_incident_number or pair.zenduty_incident_unique_id
    name = integration.priority_mapping.get(priority_id, {}).get("name", "a priority not in the mapping")
    impact = mapping.impact_for_priority(priority_id, use_custom_mapping=integration.use_custom_mapping,
                                         mapping=integration.priority_mapping,
                                         default_impact=integration.default_impact)
    if impact == current:
        return f"Incident #{number}'s priority is now {name}; request #{pair.xurrent_request_id} already has " \
               f"impact {impact}."
    updated = xurrent.update_request(pair.xurrent_request_id, {"impact": impact})
    pairs.record_request(pair, updated)
    pairs.record_written(pair, "xurrent", impact=impact)
    pairs.update(pair, xurrent_impact=impact)
    return f"Incident #{number}'s priority → {name}: request #{pair.xurrent_request_id}'s impact {current or '?'} → " \
           f"{impact}."


def _sync_status(integration, pair: LinkedPair, incident: dict, status: int) -> Outcome:
    number = incident.get("incident_number")
    name = mapping.ZENDUTY_STATUS_NAMES[status]
    if mapping.is_stale_zenduty_status(status, pair.zenduty_status):
        seen = mapping.ZENDUTY_STATUS_NAMES[pair.zenduty_status]
        return Outcome(EventStatus.IGNORED, f"Incident #{number} '{name}' is older than what the pair last saw ({seen}): "
                                  f"a delivery that arrived out of order; nothing to do.")
    if status == pair.zenduty_status:
        return Outcome(EventStatus.IGNORED, f"Incident #{number} is already known as {name} (a repeated delivery, or the "
                                  f"portal's own change coming back); nothing to write.")
    if status == 1:
        pairs.update(pair, zenduty_status=status, zenduty_seen_at=timezone.now())
        return Outcome(EventStatus.PROCESSED, f"Incident #{number} is triggered; request #{pair.xurrent_request_id} is open.")
    # The incident's status is recorded only once the request is in line: a failed read or
    # write (429, 5xx) must leave it unseen, or the retry (or the sweep) would find nothing to do.
    with common.xurrent_client(integration) as xurrent:
        # Read before writing: someone may have completed the request meanwhile (Xurrent's
        # limits are generous; Zenduty's 30 reads a minute are spared).
        request = xurrent.get_request(pair.xurrent_request_id)
        pairs.record_request(pair, request)
        change = mapping.xurrent_change_for(status, str(request.get("status") or ""),
                                            assignee=mapping.assignee_name(incident))
        if change is None:
            pairs.update(pair, zenduty_status=status, zenduty_seen_at=timezone.now())
            pairs.refresh_state(pair)  # e.g. resolved here, completed there already: the pair is closed
            return Outcome(EventStatus.PROCESSED, f"Incident #{number} {name}; request #{pair.xurrent_request_id} is already "
                                        f"{request.get('status')}: nothing to write.")
        updated = xurrent.update_request(pair.xurrent_request_id, change)
    pairs.record_request(pair, updated)
    pairs.record_written(pair, "xurrent", status=change["status"])
    pairs.update(pair, zenduty_status=status, zenduty_seen_at=timezone.now())
    pairs.refresh_state(pair)
    return Outcome(EventStatus.PROCESSED, f"Incident #{number} {name} → request #{pair.xurrent_request_id} "
                                f"{change['status'].replace('_', ' ')}.")
