"""Notes both ways: a note written on one side of a linked pair becomes one note on the other, attributed.

* Xurrent → Zenduty: ``request.note-added`` (``xurrent_to_zenduty``) names the
  note; it is read and added to the incident (``POST
  /api/incidents/<n>/note/``). Internal notes only when the integration's
  ``sync_internal_xurrent_notes`` says so. A note whose webhook was lost
  (or was ignored while Sync Notes was off, the direction excluded it or the
  integration was disabled) is copied the same way by the note sweep
  (``syncengine.note_sweep``) once the integration copies notes to Zenduty.
* Zenduty → Xurrent: Zenduty sends no webhook for a note, so the poller
  (``syncengine.polling``) reads the incident's notes and hands the new ones
  here; each becomes a note on the request (``POST /requests/:id/notes``,
  https://developer.xurrent.com/v1/requests/notes/), internal unless the
  integration's ``public_zenduty_notes`` says otherwise.

Neither API lets the portal write a note in another person's name, so each
copy starts with a marker naming the source note (``[Xurrent note #<id>]`` /
``[Zenduty note <unique_id>]``) and says who wrote it there and when.

Exactly once: every copy is a :class:`~syncengine.models.SyncedNote`,
claimed (state ``sending``) before the create and given the copy's id
after it. A claim still ``sending`` means the create's outcome is unknown
(a timeout, a lost answer, a killed worker): the next attempt reads the
target's notes and adopts the copy carrying the marker before it creates
one. A note whose id is recorded as a copy, or that starts with a marker,
is the portal's own and is never copied back. All of it runs under the
pair's lease (``pairs.working_on``).
"""
from __future__ import annotations

import re
from datetime import timezone as dt_timezone

from django.db import IntegrityError, transaction
from django.utils import timezone

from connections import errors
from syncengine import mapping
from syncengine.models import LinkedPair, NoteState, SyncedNote, Source

XURRENT_MARKER = "[Xurrent note #{id}]"
ZENDUTY_MARKER = "[Zenduty note {id}]"
XURRENT_MARKER_PATTERN = re.compile(r"^\s*\[Xurrent note #([^\]\s]+)\]")
ZENDUTY_MARKER_PATTERN = re.compile(r"^\s*\[Zenduty note ([^\]\s]+)\]")
# Zenduty documents no note length; the copy is held to Xurrent's 64 KB both ways.
NOTE_MAX = mapping.NOTE_MAX


# -- texts ----------------------------------------------------------------------------------------
def _when(value) -> str:
    at = mapping.parse_time(value)
    return f"{at.astimezone(dt_timezone.utc):%Y-%m-%d %H:%M} UTC" if at else "an unknown time"


def _cut(text: str) -> str:
    return text if len(text) <= NOTE_MAX else text[:NOTE_MAX - 1] + "…"


def zenduty_text(note: dict, request_id) -> str:
    """The Zenduty note for a Xurrent note (``GET /requests/:id/notes`` shape)."""
    person = note.get("person") if isinstance(note.get("person"), dict) else {}
    who = str(person.get("name") or "Someone")
    kind = " (internal note)" if note.get("internal") else ""
    head = f"{XURRENT_MARKER.format(id=note.get('id'))} {who} wrote in Xurrent request #{request_id} at " \
           f"{_when(note.get('created_at'))}{kind}:"
    return _cut(f"{head}\n\n{str(note.get('text') or '').strip()}")


def xurrent_text(note: dict, incident_number) -> str:
    """The Xurrent note for a Zenduty note (``GET /api/incidents/<n>/note/`` shape)."""
    who = str(note.get("user_name") or note.get("user") or "Someone")
    head = f"{ZENDUTY_MARKER.format(id=note.get('unique_id'))} {who} wrote in Zenduty incident #{incident_number} " \
           f"at {_when(note.get('creation_date'))}:"
    return _cut(f"{head}\n\n{str(note.get('note') or '').strip()}")


def is_copy(text) -> bool:
    """Whether a note's text starts with one of the portal's markers (a copy the portal wrote)."""
    text = str(text or "")
    return bool(XURRENT_MARKER_PATTERN.match(text) or ZENDUTY_MARKER_PATTERN.match(text))


# -- records ---------------------------------------------------------------------------------------
def for_xurrent_note(pair: LinkedPair, note_id) -> SyncedNote | None:
    return SyncedNote.objects.filter(pair=pair, xurrent_note_id=str(note_id)).first()


def for_zenduty_note(pair: LinkedPair, note_id) -> SyncedNote | None:
    return SyncedNote.objects.filter(pair=pair, zenduty_note_id=str(note_id)).first()


def _claim(pair: LinkedPair, direction: str, **ids) -> SyncedNote | None:
    """Insert the copy's row (state ``sending``); None when the source note is claimed already."""
    try:
        with transaction.atomic():
            return SyncedNote.objects.create(pair=pair, direction=direction, **ids)
    except IntegrityError:
        return None


def _record(row: SyncedNote, **ids) -> None:
    SyncedNote.objects.filter(pk=row.pk).update(state=NoteState.SYNCED, synced_at=timezone.now(), **ids)
    for name, value in ids.items():
        setattr(row, name, value)
    row.state = NoteState.SYNCED


def record_own_zenduty_note(pair: LinkedPair, note: dict) -> None:
    """Remember a note the portal wrote to the incident for itself (e.g. "reopened"): never copied back."""
    if note.get("unique_id"):
        _claim(pair, Source.XURRENT, zenduty_note_id=str(note["unique_id"]), state=NoteState.OWN)


def record_in_summary(pair: LinkedPair, note: dict) -> None:
    """Remember that a Xurrent note went into the incident's summary (the request's first note)."""
    if note.get("id") is not None:
        _claim(pair, Source.XURRENT, xurrent_note_id=str(note["id"]), state=NoteState.SYNCED,
               synced_at=timezone.now())


def _created(row: SyncedNote, create):
    """Run the create; a claim whose create certainly did not happen is given back, so that a retry
    creates without looking first. One whose outcome is unknown (timeout, 5xx, lost answer) stays."""
    try:
        return create()
    except (errors.RateLimitedError, errors.PermanentError):
        # Refused before or by the service: nothing was created.
        SyncedNote.objects.filter(pk=row.pk, state=NoteState.SENDING).delete()
        raise


# -- Xurrent → Zenduty ---------------------------------------------------------------------------------
def copy_xurrent_note(pair: LinkedPair, note: dict, zenduty) -> str:
    """Add a Xurrent note to the pair's incident, once. Returns a sentence for the event's reason."""
    note_id = str(note.get("id"))
    incident = pair.zenduty_incident_number or pair.zenduty_incident_unique_id
    row = for_xurrent_note(pair, note_id)
    if row is not None and row.state != NoteState.SENDING:
        return f"Xurrent note #{note_id} is already on incident #{incident} (Zenduty note {row.zenduty_note_id})."
    if row is None:
        row = _claim(pair, Source.XURRENT, xurrent_note_id=note_id)
        if row is None:
            return f"Xurrent note #{note_id} was claimed by another attempt meanwhile; not copied twice."
    else:  # an earlier attempt's outcome is unknown: look for its copy first
        marker = XURRENT_MARKER.format(id=note_id)
        for existing in zenduty.list_notes(incident):
            if str(existing.get("note") or "").lstrip().startswith(marker):
                _record(row, zenduty_note_id=str(existing.get("unique_id") or ""))
                return f"Adopted Zenduty note {row.zenduty_note_id} on incident #{incident}, copied from Xurrent " \
                       f"note #{note_id} by an earlier attempt whose answer was lost."
    created = _created(row, lambda: zenduty.add_note(incident, zenduty_text(note, pair.xurrent_request_id)))
    _record(row, zenduty_note_id=str(created.get("unique_id") or ""))
    return f"Xurrent note #{note_id} copied to incident #{incident} (Zenduty note {row.zenduty_note_id})."


# -- Zenduty → Xurrent ---------------------------------------------------------------------------------
def sync_zenduty_notes(integration, pair: LinkedPair, notes: list[dict], xurrent) -> list[str]:
    """Copy the incident's notes not copied yet to the request (the poller, under the pair's lease).

    ``notes``: the incident's notes as just read. Also adopts copies of
    Xurrent notes whose create answer was lost (their marker names the
    note), and finishes copies of Zenduty notes left ``sending`` by looking
    at the request's notes first. Returns one sentence per change.
    """
    done: list[str] = []
    rows = list(SyncedNote.objects.filter(pair=pair))
    known = {row.zenduty_note_id for row in rows if row.zenduty_note_id}
    lost_to_zenduty = {row.xurrent_note_id: row for row in rows
                       if row.direction == Source.XURRENT and row.state == NoteState.SENDING}
    lost_to_xurrent = {row.zenduty_note_id: row for row in rows
                       if row.direction == Source.ZENDUTY and row.state == NoteState.SENDING}
    request_notes = None
    number = pair.zenduty_incident_number or pair.zenduty_incident_unique_id
    for note in notes:
        unique_id = str(note.get("unique_id") or "")
        if not unique_id:
            continue
        own = XURRENT_MARKER_PATTERN.match(str(note.get("note") or ""))
        if own:  # the portal's copy of a Xurrent note: never copied back; its lost answer adopted here
            row = lost_to_zenduty.get(own.group(1))
            if row is not None and unique_id not in known:
                _record(row, zenduty_note_id=unique_id)
                known.add(unique_id)
                done.append(f"Adopted Zenduty note {unique_id}, the copy of Xurrent note #{own.group(1)} "
                            f"whose answer was lost.")
            continue
        row = lost_to_xurrent.get(unique_id)
        if unique_id in known and row is None:
            continue
        if row is None:
            row = _claim(pair, Source.ZENDUTY, zenduty_note_id=unique_id)
            if row is None:
                continue  # claimed meanwhile
        else:
            if request_notes is None:
                request_notes = xurrent.list_request_notes(pair.xurrent_request_id)
            marker = ZENDUTY_MARKER.format(id=unique_id)
            found = next((n for n in request_notes if str(n.get("text") or "").lstrip().startswith(marker)), None)
            if found is not None:
                _record(row, xurrent_note_id=str(found.get("id")))
                known.add(unique_id)
                done.append(f"Adopted Xurrent note #{found.get('id')} on request #{pair.xurrent_request_id}, the "
                            f"copy of Zenduty note {unique_id} whose answer was lost.")
                continue
        internal = not integration.public_zenduty_notes
        created = _created(row, lambda: xurrent.add_request_note(pair.xurrent_request_id,
                                                                 xurrent_text(note, number), internal=internal))
        _record(row, xurrent_note_id=str(created.get("id") or ""))
        known.add(unique_id)
        done.append(f"Zenduty note {unique_id} by {note.get('user_name') or note.get('user') or 'someone'} copied "
                    f"to request #{pair.xurrent_request_id} as {'an internal' if internal else 'a public'} note "
                    f"(Xurrent note #{row.xurrent_note_id}).")
    return done
