"""JSON shapes of the simulated Zenduty, field for field as the published
examples show them (https://apidocs.zenduty.com).

Dict order follows the examples, so answers read like the real ones.
"""
from __future__ import annotations

from datetime import date, datetime

from sandbox.zenduty.models import (SLA, Alert, Application, EscalationPolicy, Incident, Integration, Note,
                                    Priority, Service, Team, User)

INCIDENT_COMMANDER_DESCRIPTION = (
    "The incident commander leads the response: sets objectives and priorities, manages operations and "
    "resources, and owns the incident action plan.")


def iso(value: datetime | date | None) -> str | None:
    """ISO-8601 with microseconds and ``Z``, as DRF renders UTC datetimes (§2.4)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        text = value.isoformat(timespec="microseconds")
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    return value.isoformat()


def _uid(obj) -> str | None:
    return str(obj.unique_id) if obj is not None else None


def user(u: User | None) -> dict | None:
    if u is None:
        return None
    return {"username": u.username, "first_name": u.first_name, "last_name": u.last_name, "email": u.email}


def team(t: Team) -> dict:
    """Team as list/get/create answer it (``creation_date`` is a date only)."""
    return {
        "unique_id": str(t.unique_id),
        "name": t.name,
        "account": str(t.account.unique_id),
        "creation_date": iso(t.creation_date.date()),
        "members": [{
            "unique_id": str(m.unique_id), "team": str(t.unique_id), "user": user(m.user),
            "joining_date": iso(m.joining_date), "role": m.role,
        } for m in t.memberships.select_related("user")],
        "owner": t.owner.username if t.owner else None,
        "roles": [{
            "unique_id": str(r.unique_id), "team": str(t.unique_id), "title": r.title,
            "description": r.description, "creation_date": iso(r.creation_date), "rank": r.rank,
        } for r in t.roles.all()],
        "private": False,
        "account_permissions": [],
    }


def priority_read(p: Priority) -> dict:
    """Priority in list/get answers: ``team`` is the team's UUID."""
    return {"unique_id": str(p.unique_id), "team": str(p.team.unique_id), "description": p.description,
            "name": p.name, "creation_date": iso(p.creation_date), "color": p.color}


def priority_written(p: Priority) -> dict:
    """Priority in create/update answers: ``team`` is an internal integer (§2.4 quirk)."""
    return {"unique_id": str(p.unique_id), "name": p.name, "description": p.description,
            "creation_date": iso(p.creation_date), "color": p.color, "team": p.team_id}


def priority_object(p: Priority | None) -> dict | None:
    if p is None:
        return None
    return {"unique_id": str(p.unique_id), "name": p.name, "description": p.description, "color": p.color}


def escalation_policy(ep: EscalationPolicy) -> dict:
    rules = []
    if ep.first_responder_id:
        rules.append({"delay": 0, "targets": [{"target_type": 2, "target_id": ep.first_responder.username}],
                      "position": 1, "unique_id": str(ep.unique_id)})
    return {"name": ep.name, "summary": ep.summary, "description": ep.description, "rules": rules,
            "unique_id": str(ep.unique_id), "team": str(ep.team.unique_id), "repeat_policy": 0,
            "move_to_next": True, "global_ep": False}


def escalation_policy_object(ep: EscalationPolicy | None) -> dict | None:
    return None if ep is None else {"unique_id": str(ep.unique_id), "name": ep.name}


def sla_object(s: SLA | None) -> dict | None:
    if s is None:
        return None
    return {"unique_id": str(s.unique_id), "name": s.name, "is_active": s.is_active,
            "acknowledge_time": s.acknowledge_time, "resolve_time": s.resolve_time,
            "creation_date": iso(s.creation_date)}


def service(s: Service) -> dict:
    """Service in the services endpoints."""
    return {
        "name": s.name, "creation_date": iso(s.creation_date), "summary": s.summary,
        "description": s.description, "unique_id": str(s.unique_id),
        "auto_resolve_timeout": s.auto_resolve_timeout,
        "created_by": s.created_by.username if s.created_by else None,
        "team_priority": _uid(s.team_priority), "task_template": str(s.task_template) if s.task_template else None,
        "acknowledgement_timeout": s.acknowledgement_timeout,
        "acknowledgement_timeout_enabled": s.acknowledgement_timeout_enabled,
        "status": s.status, "escalation_policy": _uid(s.escalation_policy), "team": str(s.team.unique_id),
        "sla": _uid(s.sla), "under_maintenance": s.under_maintenance, "collation": s.collation,
        "collation_time": s.collation_time,
    }


def service_object(s: Service) -> dict:
    """Service inside a full incident (``service_object``)."""
    return {
        "name": s.name, "creation_date": iso(s.creation_date), "summary": s.summary,
        "description": s.description, "unique_id": str(s.unique_id),
        "auto_resolve_timeout": s.auto_resolve_timeout,
        "created_by": s.created_by.username if s.created_by else None,
        "team_priority": _uid(s.team_priority), "task_template": str(s.task_template) if s.task_template else None,
        "acknowledgement_timeout": s.acknowledgement_timeout, "status": s.status,
        "escalation_policy": _uid(s.escalation_policy), "team": str(s.team.unique_id), "sla": _uid(s.sla),
        "collation_time": s.collation_time, "collation": s.collation, "under_maintenance": s.under_maintenance,
    }


def _hex(obj) -> str | None:
    return obj.unique_id.hex if obj is not None else None


def webhook_service(s: Service) -> dict:
    """Service inside an outgoing-webhook payload. As in the documented sample,
    the references (team, priority, policy, SLA, template) are 32-hex UUIDs
    without hyphens while the service's own ``unique_id`` keeps them (§6.1)."""
    return {
        "name": s.name, "creation_date": iso(s.creation_date), "summary": s.summary,
        "description": s.description, "unique_id": str(s.unique_id),
        "auto_resolve_timeout": s.auto_resolve_timeout,
        "created_by": s.created_by.username if s.created_by else None,
        "team_priority": _hex(s.team_priority), "task_template": s.task_template.hex if s.task_template else None,
        "acknowledgement_timeout": s.acknowledgement_timeout, "status": s.status,
        "escalation_policy": _hex(s.escalation_policy), "team": s.team.unique_id.hex, "sla": _hex(s.sla),
        "collation_time": s.collation_time, "collation": s.collation,
    }


def application(a: Application) -> dict:
    return {"name": a.name, "icon_url": a.name, "summary": a.summary, "description": a.description,
            "unique_id": str(a.unique_id), "availability_plan_id": a.availability_plan_id,
            "setup_instructions": "<IntegrationURL/>", "extension": a.extension,
            "application_type": a.application_type, "categories": a.categories, "documentation_link": a.name}


def integration_inbound_url(i: Integration, root: str) -> str:
    """Where alerts for this integration go: the Events API for "API", the
    generic path for "Generic Integration", ``/api/integration/<extension>/<key>/`` otherwise (§2.3)."""
    ext = i.application.extension
    if ext == "api":
        return f"{root}/api/events/{i.integration_key}/"
    if ext == "generic":
        return f"{root}/integration/{i.service.team.account.unique_id}/generic/{i.integration_key}/"
    return f"{root}/api/integration/{ext}/{i.integration_key}/"


def integration(i: Integration, root: str) -> dict:
    """Integration in the integrations endpoints. ``root`` is the simulator's
    absolute base (what https://www.zenduty.com is for the real service)."""
    return {
        "name": i.name, "creation_date": iso(i.creation_date), "summary": i.summary,
        "unique_id": str(i.unique_id), "service": str(i.service.unique_id),
        "application": str(i.application.unique_id), "application_reference": application(i.application),
        "integration_key": str(i.integration_key),
        "created_by": i.created_by.username if i.created_by else None,
        "is_enabled": i.is_enabled, "create_incidents_for": i.create_incidents_for,
        "integration_type": i.integration_type, "default_urgency": i.default_urgency,
        "webhook_url": integration_inbound_url(i, root),
    }


def integration_object(i: Integration) -> dict:
    """The integration inside alerts and event answers."""
    return {"name": i.name, "creation_date": iso(i.creation_date), "summary": i.summary,
            "unique_id": str(i.unique_id), "service": str(i.service.unique_id),
            "team": str(i.service.team.unique_id), "integration_key": str(i.integration_key),
            "is_enabled": i.is_enabled, "integration_type": i.integration_type}


def incident(inc: Incident) -> dict:
    """The full incident (create, get, patch answers; §3.2)."""
    return {
        "summary": inc.summary,
        "incident_number": inc.incident_number,
        "creation_date": iso(inc.creation_date),
        "status": inc.status,
        "unique_id": inc.unique_id,
        "service_object": service_object(inc.service),
        "title": inc.title,
        "incident_key": inc.incident_key,
        "service": str(inc.service.unique_id),
        "urgency": inc.urgency,
        "merged_with": None,
        "assigned_to": inc.assigned_to.username if inc.assigned_to else None,
        "escalation_policy": _uid(inc.escalation_policy),
        "escalation_policy_object": escalation_policy_object(inc.escalation_policy),
        "assigned_to_name": inc.assigned_to.full_name if inc.assigned_to else "",
        "resolved_date": iso(inc.resolved_date),
        "acknowledged_date": iso(inc.acknowledged_date),
        "context_window_start": iso(inc.context_window_start),
        "context_window_end": iso(inc.context_window_end),
        "tags": [],
        "sla": _uid(inc.sla),
        "sla_object": sla_object(inc.sla),
        "team_priority": _uid(inc.team_priority),
        "team_priority_object": priority_object(inc.team_priority),
        # Also present in real answers (PYSDK models, §3.2).
        "parent_incident": None,
        "is_parent_incident": False,
        "is_child_incident": False,
        "snooze_time": None,
        "snoozed_till": None,
        "postmortems": [],
        "postmortem_assignee": None,
    }


def incident_filtered(inc: Incident) -> dict:
    """The slimmer incident of ``POST /api/incidents/filter/`` results: no
    ``summary``, ``urgency`` or ``team_priority`` UUID (§3.1)."""
    svc = inc.service
    return {
        "incident_number": inc.incident_number,
        "creation_date": iso(inc.creation_date),
        "status": inc.status,
        "unique_id": inc.unique_id,
        "sla": _uid(inc.sla),
        "service_object": {"name": svc.name, "unique_id": str(svc.unique_id), "team": str(svc.team.unique_id),
                           "team_name": svc.team.name},
        "title": inc.title,
        "assigned_to_name": inc.assigned_to.full_name if inc.assigned_to else "",
        "tags": [],
        "sla_object": sla_object(inc.sla),
        "team_priority_object": priority_object(inc.team_priority),
        "is_child_incident": False,
        "postmortems": [],
        "is_parent_incident": False,
        "assigned_to": inc.assigned_to.username if inc.assigned_to else None,
        "acknowledged_date": iso(inc.acknowledged_date),
        "resolved_date": iso(inc.resolved_date),
        "snooze_time": None,
        "snoozed_till": None,
    }


def webhook_incident(inc: Incident) -> dict:
    """The incident inside an outgoing-webhook payload: ``service`` is the full
    service, ``assigned_to`` a user object, and there is no priority (§6.1)."""
    return {
        "summary": inc.summary,
        "incident_number": inc.incident_number,
        "creation_date": iso(inc.creation_date),
        "status": inc.status,
        "unique_id": inc.unique_id,
        "title": inc.title,
        "incident_key": inc.incident_key,
        "service": webhook_service(inc.service),
        "urgency": inc.urgency,
        "merged_with": None,
        "assigned_to": user(inc.assigned_to),
        "resolved_date": iso(inc.resolved_date),
        "acknowledged_date": iso(inc.acknowledged_date),
        "context_window_start": iso(inc.context_window_start),
        "context_window_end": iso(inc.context_window_end),
    }


def note(n: Note) -> dict:
    return {"unique_id": n.unique_id, "incident": n.incident.incident_number,
            "user": n.user.username if n.user else None, "note": n.note,
            "user_name": n.user.full_name if n.user else "", "creation_date": iso(n.creation_date)}


ALERT_TYPE_NAMES = {code: name for name, code in Alert.ALERT_TYPES.items()}


def alert(a: Alert, *, with_payload: bool = False, with_created: bool = False) -> dict:
    """An alert; ``alert_type`` as a string code ("3"), as the examples show (§7.1)."""
    data = {
        "integration_object": integration_object(a.integration),
        "summary": a.summary,
        "incident": a.incident.incident_number if a.incident else None,
        "creation_date": iso(a.creation_date),
        "message": a.message,
        "integration": str(a.integration.unique_id),
        "suppressed": a.suppressed,
        "entity_id": a.entity_id,
    }
    if with_payload:
        data["payload"] = a.payload
    data.update({"alert_type": str(a.alert_type), "unique_id": a.unique_id, "images": [], "urls": a.urls,
                 "notes": []})
    if with_created:
        data["incident_created"] = a.incident_created
    return data
