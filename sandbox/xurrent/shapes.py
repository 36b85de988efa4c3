"""The JSON the simulated Xurrent returns for each record.

Shapes follow the reference: references are ``{"id", "name", "nodeID"}``
hashes or ``null`` (§3.2 input conventions), blank fields are ``null`` rather
than omitted, datetimes are ISO 8601 with seconds and offset (§3.2 data types).
"""
from __future__ import annotations

from datetime import timezone as dt_timezone

from sandbox.xurrent.models import (Account, Note, Person, Request, Service, ServiceInstance, Team, Webhook,
                                    WebhookPolicy)

# Default collection fields (§3.1 requests, §4.1 service instances, §7.1 policies).
REQUEST_COLLECTION_FIELDS = ("id", "sourceID", "subject", "category", "impact", "status", "next_target_at",
                             "completed_at", "team", "member", "grouped_into", "service_instance", "created_at",
                             "updated_at")
REQUEST_WRITE_ONLY_FIELDS = ("note", "internal_note", "note_attachments", "internal_note_attachments")
SERVICE_INSTANCE_COLLECTION_FIELDS = ("id", "sourceID", "name", "status", "service", "support_team", "created_at",
                                      "updated_at")
WEBHOOK_POLICY_COLLECTION_FIELDS = ("id", "name", "created_at", "updated_at")


def timestamp(value) -> str | None:
    """``2026-03-14T02:56:11+00:00`` (the simulator's accounts all use UTC)."""
    if value is None:
        return None
    return value.astimezone(dt_timezone.utc).isoformat(timespec="seconds")


def _blank(value):
    return value if value not in ("", None) else None


def ref(record, **extra) -> dict | None:
    """A reference to a record: ``{"id", "name", "nodeID"}`` (plus ``extra``), or None."""
    if record is None:
        return None
    return {"id": record.pk, "name": str(record.name), "nodeID": record.node_id, **extra}


def account_ref(account: Account) -> dict:
    return {"id": account.account_id, "name": account.name}


def account_json(account: Account) -> dict:
    """``GET /account``."""
    return {"id": account.account_id, "name": account.name, "nodeID": account.node_id, "disabled": False,
            "time_zone": "UTC", "locale": "en-US", "created_at": timestamp(account.created_at),
            "updated_at": timestamp(account.updated_at)}


def person_json(person: Person) -> dict:
    """``GET /me`` and people."""
    return {"id": person.pk, "nodeID": person.node_id, "name": person.name,
            "primary_email": _blank(person.primary_email), "sourceID": _blank(person.sourceID),
            "disabled": person.disabled, "account": account_ref(person.account),
            "created_at": timestamp(person.created_at), "updated_at": timestamp(person.updated_at)}


def service_ref(service: Service | None) -> dict | None:
    if service is None:
        return None
    extra = {"provider": {"name": service.provider_name}} if service.provider_name else {}
    return ref(service, **extra)


def service_instance_json(instance: ServiceInstance) -> dict:
    """All fields of a service instance (§4.1)."""
    return {
        "id": instance.pk, "nodeID": instance.node_id, "name": instance.name, "status": instance.status,
        "service": service_ref(instance.service), "support_team": ref(instance.support_team),
        "first_line_team": ref(instance.first_line_team), "impact": None, "maintenance_window": None,
        "remarks": None, "source": _blank(instance.source), "sourceID": _blank(instance.sourceID),
        "created_at": timestamp(instance.created_at), "updated_at": timestamp(instance.updated_at),
    }


def request_json(request: Request) -> dict:
    """All fields of a request (§3.2)."""
    completed = request.status == "completed"
    return {
        "id": request.pk, "nodeID": request.node_id, "subject": request.subject, "category": request.category,
        "impact": request.impact, "status": request.status,
        "completion_reason": request.completion_reason if completed else None,
        "closure_code": None, "urgent": request.urgent, "waiting_until": None,
        "service_instance": ref(request.service_instance), "team": ref(request.team),
        "member": ref(request.member), "requested_by": ref(request.requested_by),
        "requested_for": ref(request.requested_for), "created_by": ref(request.created_by),
        "source": _blank(request.source), "sourceID": _blank(request.sourceID),
        "supplier": None, "supplier_requestID": None, "major_incident_status": None,
        "grouping": "none", "grouped_into": None, "custom_fields": None,
        "next_target_at": None if completed else "best_effort",
        "assignment_count": request.assignment_count, "reopen_count": request.reopen_count,
        "completed_at": timestamp(request.completed_at), "created_at": timestamp(request.created_at),
        "updated_at": timestamp(request.updated_at),
    }


def note_json(note: Note) -> dict:
    """A note (§3.3)."""
    data = {"id": note.pk, "nodeID": note.node_id, "text": note.text, "internal": note.internal,
            "medium": note.medium, "person": ref(note.person), "account": account_ref(note.account),
            "attachments": [], "created_at": timestamp(note.created_at)}
    if note.internal:
        data["internal_account"] = account_ref(note.account)
    return data


def webhook_json(webhook: Webhook) -> dict:
    """A webhook (§6.1). Its verification state and failure streak are not part of the documented API."""
    return {
        "id": webhook.pk, "nodeID": webhook.node_id, "name": webhook.name or webhook.event,
        "event": webhook.event, "uri": webhook.uri, "description": _blank(webhook.description),
        "disabled": webhook.disabled, "mail_exceptions_to": _blank(webhook.mail_exceptions_to),
        "webhook_policy": ref(webhook.webhook_policy), "openid_connect_discovery": False,
        "last_error": _blank(webhook.last_error), "source": _blank(webhook.source),
        "sourceID": _blank(webhook.sourceID),
        "created_at": timestamp(webhook.created_at), "updated_at": timestamp(webhook.updated_at),
    }


def webhook_policy_json(policy: WebhookPolicy, public_key_pem: str | None = None) -> dict:
    """A webhook policy (§7.1); ``public_key_pem`` only in the create answer."""
    data = {
        "id": policy.pk, "nodeID": policy.node_id, "name": policy.name, "disabled": policy.disabled,
        "jwt_alg": policy.jwt_alg, "jwt_audience": _blank(policy.jwt_audience),
        "jwt_claim_expires_in": policy.jwt_claim_expires_in,
        "created_at": timestamp(policy.created_at), "updated_at": timestamp(policy.updated_at),
    }
    if public_key_pem is not None:
        data["public_key_pem"] = public_key_pem
    return data


def payload_ref(record: Team | Person) -> dict:
    """A team or member as webhook payloads carry it (§6.3): id, nodeID, name, account, and
    ``sourceID`` only when set, ``disabled`` only when true (Xurrent leaves out unset keys)."""
    data = {"id": record.pk, "nodeID": record.node_id, "name": record.name}
    if record.sourceID:
        data["sourceID"] = record.sourceID
    if record.disabled:
        data["disabled"] = True
    data["account"] = account_ref(record.account)
    return data
