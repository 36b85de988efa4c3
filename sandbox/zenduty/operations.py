"""What happens in the simulated Zenduty, whoever asks: the REST API, the
Events API or a person in the by-hand UI.

* incidents: numbering per account, defaults from the service, status
  1 → 2 → 3 with ``acknowledged_date`` / ``resolved_date`` stamped (§3.3);
* notes (§4) and priority changes, which deliberately send **no** webhook,
  as in the real service (§6.1, §6.4);
* alerts (§7): ``entity_id`` grouping, ``create_incidents_for``,
  acknowledged/resolved alerts, a new incident after resolution;
* outgoing webhooks (§6.1) on triggered, acknowledged and resolved.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import uuid
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from sandbox import deliveries
from sandbox.zenduty import shapes
from sandbox.zenduty.models import (OUTGOING_WEBHOOKS_EXTENSION, Alert, Incident, Integration, Note, Priority,
                                    Service, User, WebhookAuth)

logger = logging.getLogger("sandbox.zenduty")

# Receivers must answer within 3 seconds (§6.1).
WEBHOOK_TIMEOUT_SECONDS = 3
WEBHOOK_MAX_ATTEMPTS = 5
SIGNATURE_HEADER = "X-SIGNATURE"

EVENT_FOR_STATUS = {Incident.TRIGGERED: "triggered", Incident.ACKNOWLEDGED: "acknowledged",
                    Incident.RESOLVED: "resolved"}


class TransitionError(ValueError):
    """A status change the simulator refuses (e.g. reopening a resolved incident)."""


# -- incidents ------------------------------------------------------------------------------
_DEFAULT = object()


@transaction.atomic
def create_incident(*, service: Service, title: str, summary: str = "", team_priority=_DEFAULT,
                    escalation_policy=_DEFAULT, sla=_DEFAULT, assigned_to=_DEFAULT, urgency: int = 1,
                    status: int = Incident.TRIGGERED, created_by: User | None = None,
                    context_window: bool = False) -> Incident:
    """Open an incident on ``service`` and send the "triggered" webhook.

    Priority, escalation policy and SLA default to the service's. The
    assignee defaults to the escalation policy's first responder (Zenduty
    assigns whoever rule 1 pages). ``status`` 2 or 3 goes on through the
    usual transitions, each with its webhook.
    """
    account = service.team.account
    now = timezone.now()
    if escalation_policy is _DEFAULT:
        escalation_policy = service.escalation_policy
    if assigned_to is _DEFAULT:
        assigned_to = escalation_policy.first_responder if escalation_policy else None
    incident = Incident.objects.create(
        account=account, incident_number=account.next_incident_number(), title=title, summary=summary or "",
        service=service, urgency=urgency,
        team_priority=service.team_priority if team_priority is _DEFAULT else team_priority,
        escalation_policy=escalation_policy, sla=service.sla if sla is _DEFAULT else sla,
        assigned_to=assigned_to, created_by=created_by, creation_date=now,
        context_window_start=now - timedelta(minutes=30) if context_window else None,
        context_window_end=now if context_window else None,
    )
    emit_webhooks(incident, "triggered")
    if status != Incident.TRIGGERED:
        set_status(incident, status)
    return incident


def check_transition(incident: Incident, status: int) -> None:
    """Refuse going back: Zenduty does not reopen or un-acknowledge incidents
    (a new alert after resolution opens a new incident, §3.3, §7.3) [inferred]."""
    if status not in EVENT_FOR_STATUS:
        raise TransitionError(f'"{status}" is not a valid choice.')
    if status < incident.status:
        if incident.status == Incident.RESOLVED:
            raise TransitionError("A resolved incident cannot be reopened.")
        raise TransitionError("An acknowledged incident cannot go back to triggered.")


@transaction.atomic
def set_status(incident: Incident, status: int) -> bool:
    """Move an incident to ``status`` (2 acknowledge, 3 resolve), stamping the
    date and sending the webhook. Returns False when nothing changed."""
    check_transition(incident, status)
    if status == incident.status:
        return False
    now = timezone.now()
    incident.status = status
    fields = ["status"]
    if status == Incident.ACKNOWLEDGED and incident.acknowledged_date is None:
        incident.acknowledged_date = now
        fields.append("acknowledged_date")
    if status == Incident.RESOLVED and incident.resolved_date is None:
        incident.resolved_date = now
        fields.append("resolved_date")
    incident.save(update_fields=fields)
    emit_webhooks(incident, EVENT_FOR_STATUS[status])
    return True


def set_priority(incident: Incident, priority: Priority | None) -> None:
    """Change the priority. Zenduty sends no webhook for this (§6.1), so none is sent."""
    incident.team_priority = priority
    incident.save(update_fields=["team_priority"])


def add_note(incident: Incident, user: User | None, text: str) -> Note:
    """Add a note as ``user``. No webhook exists for notes (§6.1), so none is sent."""
    return Note.objects.create(incident=incident, user=user, note=text)


# -- outgoing webhooks ---------------------------------------------------------------------
def outgoing_integrations(service: Service):
    """The service's enabled Outgoing Webhooks integrations that have a URL."""
    return (Integration.objects.filter(service=service, is_enabled=True,
                                       application__extension=OUTGOING_WEBHOOKS_EXTENSION)
            .exclude(outgoing_url="").order_by("id"))


def webhook_body(incident: Incident, event_type: str) -> str:
    """The documented envelope ``{"payload": {"event_type", "incident"}}`` as the exact text sent."""
    payload = {"payload": {"event_type": event_type, "incident": shapes.webhook_incident(incident)}}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def sign(secret: str, body: str) -> str:
    """``X-SIGNATURE``: base64(HMAC-SHA256(signing key, raw body)) (§6.1)."""
    digest = hmac.new(secret.encode("utf-8"), body.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def webhook_headers(integration: Integration, body: str) -> dict:
    headers = {"Content-Type": "application/json"}
    if integration.auth_type == WebhookAuth.HMAC and integration.signing_secret:
        headers[SIGNATURE_HEADER] = sign(integration.signing_secret, body)
    elif integration.auth_type == WebhookAuth.BASIC:
        pair = f"{integration.basic_username}:{integration.basic_password}".encode("utf-8")
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    return headers


def emit_webhooks(incident: Incident, event_type: str) -> int:
    """Queue the webhook for ``event_type`` to every outgoing integration of
    the incident's service. Returns how many were queued."""
    targets = list(outgoing_integrations(incident.service))
    if not targets:
        return 0
    body = webhook_body(incident, event_type)  # signed and sent byte for byte as built here
    for integration in targets:
        deliveries.enqueue(
            "zenduty", integration.outgoing_url, body, headers=webhook_headers(integration, body),
            timeout_seconds=WEBHOOK_TIMEOUT_SECONDS, max_attempts=WEBHOOK_MAX_ATTEMPTS,
            description=f"{event_type} #{incident.incident_number}",
            meta={"event_type": event_type, "incident_number": incident.incident_number,
                  "incident": incident.unique_id, "integration": str(integration.unique_id)})
    logger.info("sandbox.zenduty.webhook %s #%s to %d integration(s)", event_type, incident.incident_number,
                len(targets))
    return len(targets)


# -- alerts (Events API, Generic Integration) ------------------------------------------------
# create_incidents_for: which alert types open an incident (§5.4, §7.3).
CREATING_TYPES = {0: set(), 1: {"critical"}, 2: {"critical", "error"}, 3: {"critical", "error", "warning"}}


def _open_incident_for(integration: Integration, entity_id: str) -> Incident | None:
    alert = (Alert.objects.filter(integration=integration, entity_id=entity_id, incident__isnull=False,
                                  incident__status__in=[Incident.TRIGGERED, Incident.ACKNOWLEDGED])
             .select_related("incident").order_by("-id").first())
    return alert.incident if alert else None


@transaction.atomic
def receive_alert(integration: Integration, *, message: str, alert_type: str, summary: str = "",
                  entity_id: str | None = None, payload=None, urls=None, suppressed: bool = False,
                  trace_id: uuid.UUID | None = None, priority: Priority | None = None) -> Alert:
    """Process one alert as Zenduty does (§7.3).

    Alerts group by ``entity_id`` per integration: while an incident for that
    entity is open, alerts attach to it; ``acknowledged`` / ``resolved``
    move it on. A creating type (per ``create_incidents_for``) with no open
    incident opens a new one, also after an earlier one was resolved.
    ``info`` and suppressed alerts never open incidents.
    """
    entity_id = str(entity_id) if entity_id not in (None, "") else uuid.uuid4().hex
    open_incident = _open_incident_for(integration, entity_id)
    incident, created = open_incident, False
    if alert_type == "acknowledged" and open_incident and open_incident.status == Incident.TRIGGERED:
        set_status(open_incident, Incident.ACKNOWLEDGED)
    elif alert_type == "resolved" and open_incident:
        set_status(open_incident, Incident.RESOLVED)
    elif (open_incident is None and not suppressed
          and alert_type in CREATING_TYPES.get(integration.create_incidents_for, set())):
        extra = {"team_priority": priority} if priority is not None else {}
        incident = create_incident(service=integration.service, title=message, summary=summary,
                                   urgency=integration.default_urgency, context_window=True, **extra)
        created = True
    stored_urls = [{"unique_id": str(uuid.uuid4()), "link_url": str(u.get("link_url", "")),
                    "link_text": str(u.get("link_text", ""))} for u in (urls or []) if isinstance(u, dict)]
    return Alert.objects.create(
        integration=integration, incident=incident, message=message, summary=summary or "",
        alert_type=Alert.ALERT_TYPES[alert_type], entity_id=entity_id,
        payload=payload if isinstance(payload, dict) else {}, urls=stored_urls, suppressed=suppressed,
        incident_created=created, trace_id=trace_id)
