"""What a Zenduty incident and a Xurrent request say about each other: pure functions, no I/O.

Statuses, impact ⇄ priority, the bodies the portal sends on each side, the
markers by which it recognises its own records, and the freshness rules.

| Zenduty | Xurrent |
|---|---|
| incident triggered → | request created: category ``incident``, impact from the priority |
| acknowledged (2) → | ``in_progress`` |
| resolved (3) → | ``completed``, completion reason ``solved`` + a note "Resolved in Zenduty" |
| ← resolved (3) | ``completed`` (any reason) |
| ← a note on both sides; stays resolved | reopened after completion |

Zenduty statuses only move forward (1 → 2 → 3; its API and the simulator
refuse going back), so a lower status than the pair last saw is a stale
delivery. Reference: https://apidocs.zenduty.com and
https://developer.xurrent.com/v1/requests/.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Mapping

from django.utils.dateparse import parse_datetime

from connections.zenduty.constants import ACKNOWLEDGED, RESOLVED, TRIGGERED

# The ``source`` of the requests the portal creates (Xurrent: at most 30 characters);
# with ``sourceID`` = the incident's unique_id it names the incident
# (https://developer.xurrent.com/v1/general/source).
XURRENT_SOURCE = "Zenduty"
# Prefix of the title of every incident the portal creates. Zenduty's incident
# filter cannot search text and returns no summary, but returns the title: the
# marker is how the portal finds an incident whose create answer was lost, and
# how it recognises that incident's "triggered" webhook as its own echo. A
# prefix survives truncation.
MARKER_FORMAT = "[Xurrent #{request_id}]"
MARKER_PATTERN = re.compile(r"^\s*\[Xurrent #(\d+)\]")

ZENDUTY_STATUS_NAMES = {TRIGGERED: "triggered", ACKNOWLEDGED: "acknowledged", RESOLVED: "resolved"}
# The Xurrent status each Zenduty status moves a linked request to.
XURRENT_STATUS_FOR_ZENDUTY = {ACKNOWLEDGED: "in_progress", RESOLVED: "completed"}
COMPLETED = "completed"
COMPLETION_REASON = "solved"

SUBJECT_MAX = 255  # Xurrent request subject
TITLE_MAX = 500  # Zenduty incident title (what the simulator accepts; the OAS sets no limit)
NOTE_MAX = 65536  # Xurrent notes: 64 KB


# -- statuses -------------------------------------------------------------------------------------------
def zenduty_status(value: Any) -> int | None:
    """The incident status as 1/2/3, or None when the payload carries none it can read."""
    try:
        status = int(value)
    except (TypeError, ValueError):
        return None
    return status if status in ZENDUTY_STATUS_NAMES else None


def is_stale_zenduty_status(payload_status: int, seen_status: int | None) -> bool:
    """Whether a delivered status is older than the pair last saw (statuses only move forward)."""
    return seen_status is not None and payload_status < seen_status


def xurrent_target_status(zenduty_status_value: int) -> str | None:
    """The Xurrent status for a Zenduty status (None for triggered: a new request is already open)."""
    return XURRENT_STATUS_FOR_ZENDUTY.get(zenduty_status_value)


def xurrent_change_for(zenduty_status_value: int, current_xurrent_status: str, *,
                       assignee: str = "") -> dict | None:
    """The PATCH that brings a request in line with the incident's status, or None when nothing is to write.

    A completed request is never moved back by an acknowledgement (it already
    went further); an acknowledgement does not touch a request someone is
    already working on in a later state than ``in_progress``.
    """
    target = xurrent_target_status(zenduty_status_value)
    if target is None or current_xurrent_status == target:
        return None
    if current_xurrent_status == COMPLETED:
        return None
    if target == COMPLETED:
        who = f" (assignee: {assignee})" if assignee else ""
        return {"status": COMPLETED, "completion_reason": COMPLETION_REASON,
                "internal_note": f"Resolved in Zenduty{who}."}
    return {"status": target}


def is_completed(xurrent_status: str) -> bool:
    return xurrent_status == COMPLETED


# -- impact ⇄ priority ----------------------------------------------------------------------------
def impact_for_priority(priority_id: str | None, *, use_custom_mapping: bool, mapping: Mapping,
                        default_impact: str) -> str:
    """The Xurrent impact for a Zenduty priority: the custom mapping's entry, else the default impact."""
    if use_custom_mapping and priority_id:
        entry = mapping.get(str(priority_id))
        if isinstance(entry, Mapping) and entry.get("impact"):
            return str(entry["impact"])
    return default_impact


def _natural(name: str) -> tuple:
    # "P2" before "P10"; names without digits sort as text.
    return tuple(int(part) if part.isdigit() else part.casefold() for part in re.split(r"(\d+)", name or ""))


def priority_for_impact(impact: str | None, *, use_custom_mapping: bool, mapping: Mapping) -> str | None:
    """The Zenduty priority for a Xurrent impact (the reverse of the mapping).

    Among the priorities mapped to ``impact``, the highest-ranked in the
    team's order (``rank``: the order Zenduty lists them, P1 first; entries
    saved without it fall back to the natural order of their names). None
    when no priority maps to it, or without a custom mapping: then no
    ``team_priority`` is sent and the service's default priority applies.
    """
    if not (use_custom_mapping and impact):
        return None
    candidates = [(entry.get("rank", float("inf")), _natural(str(entry.get("name", ""))), str(priority_id))
                  for priority_id, entry in mapping.items()
                  if isinstance(entry, Mapping) and entry.get("impact") == impact]
    return min(candidates)[2] if candidates else None


# -- markers ------------------------------------------------------------------------------------
def marker(request_id: Any) -> str:
    return MARKER_FORMAT.format(request_id=request_id)


def request_id_in_title(title: Any) -> str | None:
    """The Xurrent request id of the portal's marker at the start of an incident title, if any."""
    found = MARKER_PATTERN.match(str(title or ""))
    return found.group(1) if found else None


def is_portal_source(source: Any) -> bool:
    """Whether a request's ``source`` says the portal created it."""
    return str(source or "").strip().casefold() == XURRENT_SOURCE.casefold()


# -- bodies --------------------------------------------------------------------------------------------
def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def request_body_for_incident(incident: Mapping, *, service_instance_id: str, impact: str,
                              incident_url: str) -> dict:
    """``POST /requests`` for a Zenduty incident (webhook or REST shape).

    The first note is internal: it carries Zenduty's summary, which may hold
    details not meant for the requester.
    """
    number = incident.get("incident_number")
    title = str(incident.get("title") or "").strip() or f"Zenduty incident #{number}"
    lines = [str(incident.get("summary") or "").strip(), f"Zenduty incident #{number}: {incident_url}"]
    return {
        "subject": _truncate(title, SUBJECT_MAX), "category": "incident", "impact": impact,
        "service_instance_id": int(service_instance_id) if str(service_instance_id).isdigit() else service_instance_id,
        "source": XURRENT_SOURCE, "sourceID": str(incident.get("unique_id") or ""),
        "internal_note": _truncate("\n\n".join(line for line in lines if line), NOTE_MAX),
    }


def incident_body_for_request(request: Mapping, *, first_note: str, request_url: str, service_id: str,
                              team_priority: str | None) -> dict:
    """Keyword arguments of ``ZendutyClient.create_incident`` for a Xurrent request."""
    request_id = request.get("id")
    subject = str(request.get("subject") or "").strip() or f"Request {request_id}"
    summary = "\n\n".join(part for part in (first_note.strip(), f"Xurrent request #{request_id}: {request_url}")
                          if part)
    return {"title": _truncate(f"{marker(request_id)} {subject}", TITLE_MAX), "service": service_id,
            "summary": summary, "team_priority": team_priority}


def assignee_name(incident: Mapping) -> str:
    """The assignee's name from a webhook incident (a user object) or a REST one (``assigned_to_name``)."""
    assigned = incident.get("assigned_to")
    if isinstance(assigned, Mapping):
        name = " ".join(str(assigned.get(k) or "").strip() for k in ("first_name", "last_name")).strip()
        return name or str(assigned.get("email") or assigned.get("username") or "")
    return str(incident.get("assigned_to_name") or "")


# -- freshness ------------------------------------------------------------------------------------
def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 timestamp from either API, or None."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        return None


def is_older(candidate: datetime | None, seen: datetime | None) -> bool:
    """Whether ``candidate`` is strictly older than what was seen (unknown times are never older)."""
    return candidate is not None and seen is not None and candidate < seen


def reopen_notes(request_id: Any, incident_number: Any) -> tuple[str, str]:
    """(Zenduty note, Xurrent internal note) when a request is reopened after its incident was resolved.

    Zenduty does not reopen a resolved incident (a new alert opens a new one),
    so the incident stays resolved and both sides are told.
    """
    return (f"Xurrent request #{request_id} was reopened. Zenduty cannot reopen a resolved incident, so this "
            f"incident stays resolved; follow the request in Xurrent.",
            f"This request was reopened, but its Zenduty incident #{incident_number} stays resolved: Zenduty "
            f"cannot reopen a resolved incident. Trigger a new incident in Zenduty if on-call help is needed.")
