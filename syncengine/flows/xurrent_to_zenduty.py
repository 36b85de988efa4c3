"""Xurrent request events (request.create / update / status-changed) → Zenduty incidents.

* ``request.create`` of a request not linked yet, on an integration that
  receives from Xurrent, and not the portal's own (its ``source`` "Zenduty",
  or made by the person the portal acts as): one ``GET /requests/:id``
  (the webhook names no service instance), then the request must be in the
  integration's service instance and of one of its categories, else the
  event is ignored with a reason naming them. Claim the pair, create the
  incident (its title starts with the ``[Xurrent #<id>]`` marker), record it.
* A linked request's status: the request is read again (``GET``; Xurrent's
  limits are generous, a payload may be stale) and its current status acted
  on, unless it is older than what the pair last saw. Completed (any reason)
  → incident resolved. Reopened after the incident was resolved: Zenduty
  cannot reopen it, so a note on the incident and an internal note on the
  request say so; the pair stays linked.
* ``request.note-added``: the note is read and copied to the incident once
  (``flows.notes``); a note whose webhook was lost, or was ignored only
  because of a setting of the integration that has changed since
  (``SETTING_REASONS``), is copied by the note sweep through
  :func:`sync_notes`, by the same rules.
* Changes made by the portal's own person are its own writes coming back: echoes.

Reference: https://developer.xurrent.com/v1/webhooks/,
https://apidocs.zenduty.com (incidents).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from connections import errors
from connections.xurrent.webhooks import TEST_DELIVERY_REASON
from connections.zenduty.constants import FILTER_ALL, RESOLVED, TRIGGERED
from integrations.models import OutgoingIntegration
from syncengine import mapping, pairs
from syncengine.flows import common, notes
from syncengine.models import (CLAIMABLE, EventStatus, InboundEvent, LinkedPair, NoteState, PairNote, PairState,
                               Source, SyncedNote)
from syncengine.outcomes import INTEGRATION_DISABLED, EventError, Outcome

logger = logging.getLogger("syncengine.flows.xurrent_to_zenduty")

CREATE = "request.create"
NOTE_ADDED = "request.note-added"
# A note younger than this is left to its request.note-added, which may still be on its way (note sweep).
NOTE_GRACE = timedelta(minutes=1)
# Xurrent's times have whole seconds (and its clock is not the portal's): a note this much older than
# its pair still counts as written since the pair exists.
NOTE_CLOCK_SLACK = timedelta(seconds=2)
# How a ``request.note-added`` ignored because of a setting of the integration, not of the note, begins
# its reason. Such an event decides nothing for good: the note sweep copies the note once the integration
# copies notes to Zenduty again (Sync Notes turned on, the direction changed, the integration enabled).
NOTES_OFF = "Sync Notes is off for this integration"
NOT_THIS_DIRECTION = "This integration's direction is Zenduty → Xurrent"
SETTING_REASONS = (NOTES_OFF, NOT_THIS_DIRECTION, INTEGRATION_DISABLED)


def handle(event: InboundEvent, integration: OutgoingIntegration, request: dict | None = None) -> Outcome:
    """Sync one Xurrent request event to Zenduty (``request``: already read by the routing, if it was)."""
    message = event.payload if isinstance(event.payload, dict) else {}
    request_id = str(message.get("object_id") or event.object_id or "")
    if not request_id:
        raise EventError("The Xurrent event names no request (object_id); nothing can be synced.")
    with common.flagged_on_permanent_error(integration, f"sync Xurrent request #{request_id} to Zenduty"):
        return _handle(event, integration, message, request_id, request)


def _handle(event, integration, message: dict, request_id: str, request: dict | None = None) -> Outcome:
    data = message.get("payload") if isinstance(message.get("payload"), dict) else {}
    pair = pairs.by_request(integration.tenant_id, request_id)
    if pair is not None and pair.integration_id != integration.pk:
        # Xurrent webhooks are account-wide: every integration of the tenant gets a copy.
        return common.ignored(event, f"Request #{request_id} is linked through integration '{pair.integration}'; "
                                     f"that integration's copy of this event is the one synced.")
    if pair is not None and pair.state == PairState.UNLINKED:
        return common.unlinked(event, pair)
    if event.event_type == NOTE_ADDED:
        return _on_note_added(event, integration, message, data, request_id, pair)
    if event.event_type == CREATE:
        return _on_create(event, integration, message, data, request_id, pair, request)
    if pair is None:
        return common.ignored(event, f"Request #{request_id} is not linked to a Zenduty incident; nothing to sync.")
    if _by_portal(integration, message):
        return common.ignored(event, f"Echo of the portal's own change to request #{request_id} (made by "
                                     f"{message.get('person_name') or 'the portal'}): not synced back.", pair)
    return _with_lease(event, integration, pair, request_id, fresh=False)


def _on_note_added(event, integration, message: dict, data: dict, request_id: str, pair) -> Outcome:
    """``request.note-added``: the note becomes a note on the linked incident, once (``flows.notes``)."""
    note_id = str(data.get("note_id") or "")
    if not note_id:
        raise EventError(f"The Xurrent note-added event of request #{request_id} names no note (payload.note_id).")
    if pair is None:
        return common.ignored(event, f"Request #{request_id} is not linked to a Zenduty incident; note #{note_id} "
                                     f"is not copied.")
    row = notes.for_xurrent_note(pair, note_id)
    if row is not None and row.direction == Source.ZENDUTY:
        return common.ignored(event, f"Echo of the portal's own note #{note_id} (the copy of Zenduty note "
                                     f"{row.zenduty_note_id}): not copied back.", pair)
    if row is not None and row.state != NoteState.SENDING:
        where = f"Zenduty note {row.zenduty_note_id}" if row.zenduty_note_id else "in its summary"
        return common.ignored(event, f"Xurrent note #{note_id} is already on incident #{pair.zenduty_incident_number} "
                                     f"({where}); a repeated delivery or replay, or the note sweep copied it "
                                     f"first.", pair)
    if _by_portal(integration, message):
        return common.ignored(event, f"Echo of the portal's own note #{note_id} on request #{request_id} (written "
                                     f"by {message.get('person_name') or 'the portal'}): not copied back.", pair)
    if not integration.sync_notes:
        return common.ignored(event, f"{NOTES_OFF}: note #{note_id} is not copied.", pair)
    if not integration.receives_from_xurrent:
        return common.ignored(event, f"{NOT_THIS_DIRECTION}: note #{note_id} of request #{request_id} is not "
                                     f"copied to Zenduty.", pair)
    # A create still running holds the pair's lease: PairBusy, and the event waits for it.
    with pairs.working_on(pair, pairs.new_owner(event.pk), event=event) as pair:
        if not pair.zenduty_incident_unique_id:
            raise EventError(f"{pair} has no Zenduty incident (its create failed); note #{note_id} can be "
                             f"replayed once it has.")
        with common.xurrent_client(integration) as xurrent:
            note = next((n for n in xurrent.list_request_notes(request_id) if str(n.get("id")) == note_id), None)
        if note is None:
            return common.ignored(event, f"Note #{note_id} is no longer on request #{request_id}; nothing to copy.",
                                  pair)
        why = _why_not_copy(integration, note)
        if why:
            return common.ignored(event, why, pair)
        with common.zenduty_client(integration) as zenduty:
            reason = notes.copy_xurrent_note(pair, note, zenduty)
        pairs.update(pair, active_at=timezone.now())
        return common.processed(event, reason, pair)


def _why_not_copy(integration, note: dict) -> str:
    """Why a request's note, as read from Xurrent, is not copied to the incident ('' when it is).

    The rules of the note itself, shared by ``request.note-added`` and the note sweep (:func:`sync_notes`).
    """
    note_id = note.get("id")
    if notes.is_copy(note.get("text")):
        return f"Note #{note_id} is a copy the portal wrote (it starts with the portal's marker): not copied back."
    if note.get("internal") and not integration.sync_internal_xurrent_notes:
        return f"Note #{note_id} is internal; this integration copies internal Xurrent notes only when 'Copy " \
               f"internal Xurrent notes' is on."
    return ""


def sync_notes(integration: OutgoingIntegration, pair: LinkedPair, xurrent, *, owner: str,
               now: datetime) -> tuple[list[str], int]:
    """Copy the request's notes that no ``request.note-added`` brought to the incident (the note sweep).

    Under the pair's lease: one ``GET /requests/:id/notes`` (per 100 notes,
    https://developer.xurrent.com/v1/requests/notes/), then each note goes
    through :func:`notes.copy_xurrent_note`, the webhook's own path (the
    :class:`~syncengine.models.SyncedNote` claim: a webhook arriving later, or
    at the same time, finds the copy and adds none), when all of these hold:
    it is no copy yet (nor one the portal wrote), it was written since the
    pair exists (the webhook never copies older ones either) and more than
    ``NOTE_GRACE`` before ``now`` (its webhook may be on its way), not by the
    person the portal acts as, not with the portal's marker, internal only
    when the integration copies internal notes, and no ``request.note-added``
    of it was received (one waiting is left to its job; one processed or
    ignored has decided; a failed one is repaired, and so is one ignored only
    because of a setting of the integration, ``SETTING_REASONS``: Sync Notes
    off, the direction, the integration disabled. The sweep reads only
    integrations whose settings copy notes to Zenduty now, so such a note is
    copied once the setting allows it, as the poller copies Zenduty notes
    written while Sync Notes was off).

    Each copy leaves a "Note sweep: …" :class:`~syncengine.models.PairNote`
    in the pair's timeline. Returns (one sentence per note copied, how many
    notes were left to a webhook that may still come).

    :raises PairBusy: when an event of the pair holds its lease.
    """
    copied: list[str] = []
    left = 0
    # Only a copy is flagged on the integration (and clears its error): a read every few minutes
    # would otherwise wipe the error of a failed webhook before anyone saw it.
    with pairs.working_on(pair, owner) as pair:
        candidates = _notes_not_copied(pair, xurrent.list_request_notes(pair.xurrent_request_id))
        if not candidates:
            return copied, left
        own = common.portal_person_id(integration, xurrent)
        waiting, decided, set_aside = _note_events(pair)
        zenduty = None
        try:
            for note in candidates:
                note_id = str(note.get("id"))
                created = mapping.parse_time(note.get("created_at"))
                person = note.get("person") if isinstance(note.get("person"), dict) else {}
                if created is None or created < pair.created_at - NOTE_CLOCK_SLACK:
                    continue  # before the pair: the webhook would not have copied it either
                if own and str(person.get("id") or "") == own:
                    continue  # the portal's own note (e.g. "reopened")
                if _why_not_copy(integration, note) or note_id in decided:
                    continue
                if created > now - NOTE_GRACE or note_id in waiting:
                    left += 1
                    continue
                if zenduty is None:
                    zenduty = common.zenduty_client(integration)
                with common.flagged_on_permanent_error(integration, f"copy Xurrent note #{note_id} to Zenduty"):
                    reason = notes.copy_xurrent_note(pair, note, zenduty)
                who = person.get("name") or "someone"
                if note_id in set_aside:
                    copied.append(f"Xurrent note #{note_id} by {who} was not copied when its request.note-added "
                                  f"came (\"{set_aside[note_id]}\"); the integration copies it now. {reason}")
                else:
                    copied.append(f"Xurrent note #{note_id} by {who} reached the portal by no request.note-added "
                                  f"webhook. {reason}")
                # At once: a later note's failure must not lose this copy's line in the timeline.
                PairNote.objects.create(pair=pair, text=f"Note sweep: {copied[-1]}"[:2000])
        finally:
            if zenduty is not None:
                zenduty.close()
        if copied:
            pairs.update(pair, active_at=timezone.now())
    return copied, left


def _notes_not_copied(pair: LinkedPair, found: list) -> list[dict]:
    """The request's notes no :class:`SyncedNote` accounts for (a claim whose create's outcome is unknown
    is included: :func:`notes.copy_xurrent_note` looks for its copy first)."""
    done = {row.xurrent_note_id for row in SyncedNote.objects.filter(pair=pair).exclude(xurrent_note_id="")
            if row.direction == Source.ZENDUTY or row.state != NoteState.SENDING}
    return [n for n in found if isinstance(n, dict) and n.get("id") is not None and str(n["id"]) not in done]


def _note_events(pair: LinkedPair) -> tuple[set[str], set[str], dict[str, str]]:
    """The note ids of the request's received ``request.note-added`` events: (waiting to be processed,
    processed or ignored for this pair's integration, ignored for it only because of a setting → the
    reason). Another integration's copy of an account-wide delivery decides nothing here, nor does an
    event ignored for a setting (``SETTING_REASONS``): the sweep applies the settings as they are now. A
    note with any other event that decided stays decided."""
    waiting: set[str] = set()
    decided: set[str] = set()
    set_aside: dict[str, str] = {}
    events = InboundEvent.objects.filter(source=Source.XURRENT, event_type=NOTE_ADDED,
                                         object_id=pair.xurrent_request_id).filter(
        Q(pair=pair) | Q(integration_id=pair.integration_id) | Q(integration__isnull=True, tenant_id=pair.tenant_id))
    for status, payload, integration_id, pair_id, reason in events.values_list(
            "status", "payload", "integration_id", "pair_id", "reason"):
        data = payload.get("payload") if isinstance(payload, dict) else None
        note_id = str(data.get("note_id") or "") if isinstance(data, dict) else ""
        if not note_id:
            continue
        if status in (*CLAIMABLE, EventStatus.PROCESSING):
            waiting.add(note_id)
        elif status in (EventStatus.PROCESSED, EventStatus.IGNORED) and (
                pair_id == pair.pk or integration_id == pair.integration_id):
            if status == EventStatus.IGNORED and reason.startswith(SETTING_REASONS):
                set_aside.setdefault(note_id, reason)
            else:
                decided.add(note_id)
    return waiting, decided, {note_id: why for note_id, why in set_aside.items() if note_id not in decided}


def _by_portal(integration, message: dict) -> bool:
    """Whether the change was made by the person the portal acts as."""
    actor = str(message.get("person_id") or "")
    if not actor:
        return False
    with common.xurrent_client(integration) as xurrent:
        own = common.portal_person_id(integration, xurrent)
    return bool(own) and actor == own


def _on_create(event, integration, message: dict, data: dict, request_id: str, pair,
               request: dict | None = None) -> Outcome:
    if pair is not None:
        if pair.origin == Source.ZENDUTY:
            return common.ignored(event, f"Echo of the portal's own request #{request_id}, created for Zenduty "
                                         f"incident #{pair.zenduty_incident_number}: not synced back.", pair)
        if pair.zenduty_incident_unique_id and pair.state not in (PairState.CREATING, PairState.FAILED):
            return common.ignored(event, f"Request #{request_id} is already linked ({pair}); nothing to create.",
                                  pair)
        # A claim left unfinished (lost answer, failure, killed worker): finish it, looking first.
        return _with_lease(event, integration, pair, request_id, fresh=False)
    if mapping.is_portal_source(data.get("source")):
        return common.ignored(event, f"Echo of the portal's own request #{request_id} (source "
                                     f"'{data.get('source')}', sourceID '{data.get('sourceID') or '?'}'): not "
                                     f"synced back.")
    if _by_portal(integration, message):
        return common.ignored(event, f"Echo of the portal's own request #{request_id} (created by "
                                     f"{message.get('person_name') or 'the portal'}): not synced back.")
    if not integration.receives_from_xurrent:
        return common.ignored(event, f"This integration's direction is Zenduty → Xurrent: request #{request_id} "
                                     f"does not create an incident.")
    if request is None:
        with common.xurrent_client(integration) as xurrent:
            request = common.request_unless_webhook_test(xurrent, request_id)
        if request is None:
            return common.ignored(event, TEST_DELIVERY_REASON)
    reason = _not_for_this_integration(integration, request)
    if reason:
        return common.ignored(event, reason)
    owner = pairs.new_owner(event.pk)
    pair = pairs.claim(integration, origin=Source.XURRENT, owner=owner, request_id=request_id)
    if pair is None:  # claimed meanwhile by another event or worker
        pair = pairs.by_request(integration.tenant_id, request_id)
        if pair is None:
            raise EventError(f"Request #{request_id} was claimed and then removed while this event ran.")
        return _with_lease(event, integration, pair, request_id, fresh=False)
    return _with_lease(event, integration, pair, request_id, fresh=True, owner=owner, request=request)


def sync_status(integration: OutgoingIntegration, pair: LinkedPair, request: dict, *, owner: str) -> Outcome:
    """Bring a linked pair's incident in line with its request as read now (the reconciliation sweep).

    The rules of a webhook's status change: under the pair's lease, a request
    older than the pair last saw writes nothing, a change already applied
    writes nothing.

    :raises PairBusy: when an event of the pair holds its lease.
    """
    request_id = str(request.get("id"))
    with common.flagged_on_permanent_error(integration, f"sync Xurrent request #{request_id} to Zenduty"):
        return _with_lease(None, integration, pair, request_id, fresh=False, owner=owner, request=request)


def create_for_request(integration: OutgoingIntegration, request: dict, *, owner: str) -> Outcome | None:
    """Claim the request and create its incident, as ``request.create`` would (the reconciliation sweep).

    Returns None when the request is claimed already (its ``request.create``
    got there first, or is creating it now): the claim decides, so the sweep
    and a late webhook make one incident between them. A claim left
    unfinished (a 429, a lost answer, a dead worker: state ``creating``) is
    taken over once its lease is free, looking for the incident first. The
    caller checks :func:`reason_not_to_create` first.

    :raises PairBusy: when an unfinished claim's lease is still held.
    """
    request_id = str(request.get("id"))
    with common.flagged_on_permanent_error(integration, f"sync Xurrent request #{request_id} to Zenduty"):
        pair = pairs.claim(integration, origin=Source.XURRENT, owner=owner, request_id=request_id)
        fresh = pair is not None
        if pair is None:
            pair = pairs.unfinished_claim(pairs.by_request(integration.tenant_id, request_id))
            if pair is None:
                return None
        return _with_lease(None, integration, pair, request_id, fresh=fresh, owner=owner, request=request)


def reason_not_to_create(integration: OutgoingIntegration, request: dict) -> str:
    """Why a request read from Xurrent does not create an incident here ('' when it does)."""
    return _not_for_this_integration(integration, request)


def _not_for_this_integration(integration, request: dict) -> str:
    """Why a request does not create an incident here ('' when it does)."""
    instance = request.get("service_instance") if isinstance(request.get("service_instance"), dict) else {}
    instance_id = str(instance.get("id") or "")
    if instance_id != str(integration.service_instance_id):
        name = instance.get("name") or (f"#{instance_id}" if instance_id else "none")
        other = OutgoingIntegration.objects.filter(tenant_id=integration.tenant_id,
                                                   service_instance_id=instance_id).exclude(pk=integration.pk).first()
        if other is not None:
            return f"Request #{request.get('id')} is in service instance '{name}', which integration '{other}' " \
                   f"handles; not this one."
        return f"Request #{request.get('id')}: no integration for service instance '{name}'."
    category = str(request.get("category") or "")
    allowed = [str(c) for c in (integration.categories or [])]
    if category not in allowed:
        return f"Request #{request.get('id')} is of category '{category}'; this integration creates incidents " \
               f"for {', '.join(repr(c) for c in allowed) or 'no category'} only."
    return ""


def _with_lease(event, integration, pair: LinkedPair, request_id: str, *, fresh: bool, owner: str = "",
                request: dict | None = None) -> Outcome:
    owner = owner or pairs.new_owner(event.pk)
    # event None: the reconciliation sweep
    with pairs.working_on(pair, owner, event=event, held=fresh) as pair:
        return _sync(event, integration, pair, request_id, fresh=fresh, request=request)


def _sync(event, integration, pair: LinkedPair, request_id: str, *, fresh: bool, request: dict | None) -> Outcome:
    with common.xurrent_client(integration) as xurrent, common.zenduty_client(integration) as zenduty:
        if request is None:
            request = xurrent.get_request(request_id)
        seen = pair.xurrent_updated_at
        if not fresh and mapping.is_older(mapping.parse_time(request.get("updated_at")), seen):
            return common.processed(event, f"Request #{request_id} as read now is older than what the pair last "
                                           f"saw; nothing to do.", pair)
        created = ""
        if not pair.zenduty_incident_unique_id:
            if pair.origin != Source.XURRENT:
                raise EventError(f"{pair} has no Zenduty incident although it started in Zenduty.")
            created = _create_incident(integration, pair, request, xurrent, zenduty, look_first=not fresh)
        elif pair.state in (PairState.CREATING, PairState.FAILED):
            pairs.mark_linked(pair)
        outcome = _sync_status(integration, pair, request, xurrent, zenduty)
        if not created:
            changed = _sync_impact(integration, pair, request, zenduty)
            if changed:
                outcome = Outcome(EventStatus.PROCESSED, f"{outcome.reason} {changed}")
    reason = f"{created} {outcome.reason}".strip() if created else outcome.reason
    return Outcome(EventStatus.PROCESSED if created else outcome.status, reason)


def _create_incident(integration, pair: LinkedPair, request: dict, xurrent, zenduty, *, look_first: bool) -> str:
    """Create (or, after a lost answer, find) the request's incident and link it. Returns a sentence."""
    request_id = str(request.get("id"))
    if look_first:
        found = _find_own_incident(integration, pair, zenduty, request_id)
        if found is not None:
            pairs.record_incident(pair, found)
            pairs.mark_linked(pair)
            return f"Adopted Zenduty incident #{found.get('incident_number')}, created for request #{request_id} " \
                   f"by an earlier attempt whose answer was lost."
    request_notes = xurrent.list_request_notes(request_id)
    first_note = str(request_notes[0].get("text") or "") if request_notes else ""
    priority = mapping.priority_for_impact(request.get("impact"), use_custom_mapping=integration.use_custom_mapping,
                                           mapping=common.reverse_mapping(integration))
    body = mapping.incident_body_for_request(request, first_note=first_note,
                                             request_url=common.request_url(integration, request_id),
                                             service_id=integration.zenduty_service_id, team_priority=priority)
    try:
        incident = zenduty.create_incident(**body)
    except errors.PermanentError as exc:
        pairs.mark_failed(pair, str(exc))
        raise
    # Status 1 is what the portal created; the later sync step compares against it.
    pairs.record_incident(pair, incident)
    pairs.record_written(pair, "zenduty", status=TRIGGERED, team_priority=priority)
    pairs.update(pair, xurrent_impact=str(request.get("impact") or ""),
                 zenduty_priority=str(incident.get("team_priority") or priority or ""))
    if request_notes:  # the first note is in the incident's summary: never copied as a note too
        notes.record_in_summary(pair, request_notes[0])
    pairs.mark_linked(pair)
    named = f" with priority {integration.priority_mapping.get(priority, {}).get('name', priority)}" if priority else \
        " with the service's default priority"
    return f"Created Zenduty incident #{incident.get('incident_number')} on " \
           f"{integration.zenduty_service_name or 'the service'}{named} for request #{request_id}."


def _find_own_incident(integration, pair: LinkedPair, zenduty, request_id: str) -> dict | None:
    """The incident an earlier attempt created for the request, found by the title marker.

    Zenduty's filter cannot search text and returns no summary but does
    return titles; incidents of the service since the day before the claim
    are walked, newest first, until the marker is found.
    """
    since = (pair.created_at - timedelta(days=1)).date().isoformat()
    for incident in zenduty.iter_incidents(status=FILTER_ALL, service_ids=[integration.zenduty_service_id],
                                           from_date=since):
        if mapping.request_id_in_title(incident.get("title")) == request_id:
            return incident
    return None


def _sync_status(integration, pair: LinkedPair, request: dict, xurrent, zenduty) -> Outcome:
    request_id = str(request.get("id"))
    number = pair.zenduty_incident_number or pair.zenduty_incident_unique_id
    previous = pair.xurrent_status
    current = str(request.get("status") or "")
    pairs.record_request(pair, request)
    if mapping.is_completed(current):
        if pair.zenduty_status == RESOLVED:
            pairs.refresh_state(pair)
            return Outcome(EventStatus.PROCESSED, f"Request #{request_id} completed; incident #{number} is already "
                                                  f"resolved: nothing to write.")
        incident = zenduty.update_incident(pair.zenduty_incident_unique_id, status=RESOLVED)
        pairs.record_incident(pair, incident)
        pairs.record_written(pair, "zenduty", status=RESOLVED)
        pairs.refresh_state(pair)
        return Outcome(EventStatus.PROCESSED, f"Request #{request_id} completed → incident #{number} resolved.")
    if pair.zenduty_status == RESOLVED and mapping.is_completed(previous):
        reopened = int(request.get("reopen_count") or 0)
        if (pair.last_written.get("xurrent") or {}).get("reopen_noted") == reopened:
            pairs.refresh_state(pair)
            return Outcome(EventStatus.PROCESSED, f"Request #{request_id} reopened; both sides were told already.")
        zenduty_note, xurrent_note = mapping.reopen_notes(request_id, pair.zenduty_incident_number)
        own = zenduty.add_note(pair.zenduty_incident_number or pair.zenduty_incident_unique_id, zenduty_note)
        notes.record_own_zenduty_note(pair, own if isinstance(own, dict) else {})
        xurrent.update_request(request_id, {"internal_note": xurrent_note})
        pairs.record_written(pair, "xurrent", reopen_noted=reopened)
        pairs.refresh_state(pair)
        return Outcome(EventStatus.PROCESSED, f"Request #{request_id} reopened; incident #{number} stays resolved "
                                              f"(Zenduty cannot reopen it): a note says so on both sides.")
    pairs.refresh_state(pair)
    return Outcome(EventStatus.PROCESSED, f"Request #{request_id} is {current.replace('_', ' ')}; nothing to "
                                          f"change on incident #{number}.")


def _sync_impact(integration, pair: LinkedPair, request: dict, zenduty) -> str:
    """An impact change on the request → the incident's priority, through the reverse of the mapping.

    Returns a sentence when something changed ('' otherwise). The first
    impact the pair sees is only recorded. Nothing is written when the
    incident's priority already maps to the new impact (P4 and P5 both
    "low": a request set to low leaves a P5 incident alone), nor when no
    priority maps to it; so the portal's own write, read back by the poller,
    finds nothing to do and never bounces.
    """
    impact = str(request.get("impact") or "")
    previous = pair.xurrent_impact
    if not impact or impact == previous:
        return ""
    pairs.update(pair, xurrent_impact=impact, active_at=timezone.now())
    request_id = request.get("id")
    if not previous:
        return ""
    number = pair.zenduty_incident_number or pair.zenduty_incident_unique_id
    # Not compared with last_written: a person may set the impact the portal once wrote; the portal's
    # own write comes back equal to what the pair saw (recorded with the write) and stops above.
    current = pair.zenduty_priority or (pair.last_written.get("zenduty") or {}).get("team_priority") or ""
    if current and integration.use_custom_mapping and mapping.impact_for_priority(
            current, use_custom_mapping=True, mapping=integration.priority_mapping,
            default_impact=integration.default_impact) == impact:
        return f"Request #{request_id}'s impact is now {impact}; incident #{number}'s priority already maps to it."
    priority = mapping.priority_for_impact(impact, use_custom_mapping=integration.use_custom_mapping,
                                           mapping=common.reverse_mapping(integration))
    if priority is None:
        return f"Request #{request_id}'s impact is now {impact}; no priority maps to it, so incident #{number} " \
               f"keeps its priority."
    if priority == current:
        return ""
    incident = zenduty.update_incident(pair.zenduty_incident_unique_id, team_priority=priority)
    pairs.record_written(pair, "zenduty", team_priority=priority)
    pairs.update(pair, zenduty_priority=str((incident or {}).get("team_priority") or priority))
    name = integration.priority_mapping.get(priority, {}).get("name", priority)
    return f"Request #{request_id}'s impact {previous} → {impact}: incident #{number}'s priority set to {name}."
