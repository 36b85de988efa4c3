"""The opt-in backfill: counterparts for records that were already open when an integration started.

The sync never back-fills by itself (a record older than its integration is
left alone). An integration admin may ask for it: :func:`plan` reads what is
open now — one Zenduty incident filter (open incidents of the service, up to
``MAX_ITEMS``) and one Xurrent listing per 100 requests of the service
instance changed in the last ``BACKFILL_DAYS`` — and says per record what a
backfill would do (create its counterpart, link it to the counterpart the
portal made before, or nothing and why), making no change. Started, the plan
is stored (:class:`~syncengine.models.Backfill`) and :func:`run` does it item
by item in a django-q2 job, through the flows' own create functions, which
claim each pair first: a webhook that arrives meanwhile and the backfill make
one counterpart between them. A rate limit (Zenduty allows 15 incident
creates and 30 reads a minute per account, shared with everything else)
stops the job; it is scheduled again when the API allows and goes on where
it stopped.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task, schedule

from connections import errors
from connections.attribution import sync_context
from connections.zenduty.constants import FILTER_OPEN
from integrations.models import OutgoingIntegration
from syncengine import mapping, pairs
from syncengine.flows import common, xurrent_to_zenduty, zenduty_to_xurrent
from syncengine.models import Backfill, BackfillStatus, EventStatus, PairNote, PairState

logger = logging.getLogger("syncengine.backfill")

TASK = "syncengine.tasks.run_backfill"
BACKFILL_DAYS = 30
MAX_ITEMS = 200
CREATE_REQUEST, CREATE_INCIDENT, LINK, NOTHING = "create request", "create incident", "link", "nothing"
# The listing's fields: what the flows and the checks below read (the collection's defaults lack some).
XURRENT_FIELDS = ("subject", "category", "impact", "status", "service_instance", "created_at", "updated_at",
                  "source", "sourceID", "created_by")


@dataclass
class Item:
    """One record and what the backfill does with it."""

    side: str        # "zenduty" or "xurrent": where the record is
    record: str      # the incident's unique_id, or the request's id
    label: str       # how people know it: "incident #12 Disk full"
    action: str      # CREATE_REQUEST, CREATE_INCIDENT, LINK or NOTHING
    reason: str = ""
    counterpart: str = ""  # LINK: the other side's record


def plan(integration: OutgoingIntegration, *, now=None) -> list[Item]:
    """What a backfill of ``integration`` would do now, read from both APIs; changes nothing.

    :raises connections.errors.ApiError: when a read fails (a 429 says to try again later).
    """
    now = now or timezone.now()
    with common.zenduty_client(integration) as zenduty:
        incidents = []
        for incident in zenduty.iter_incidents(status=FILTER_OPEN, service_ids=[integration.zenduty_service_id],
                                               page_size=100):
            incidents.append(incident)
            if len(incidents) >= MAX_ITEMS:
                break
    with common.xurrent_client(integration) as xurrent:
        requests = [r for r in xurrent.iter_requests_updated_since(
            integration.service_instance_id, now - timedelta(days=BACKFILL_DAYS), XURRENT_FIELDS)
            if isinstance(r, dict) and not mapping.is_completed(str(r.get("status") or ""))][:MAX_ITEMS]
    by_source = {str(r.get("sourceID")): r for r in requests if mapping.is_portal_source(r.get("source"))}
    by_id = {str(r.get("id")): r for r in requests}
    items: list[Item] = []
    linked_requests: set[str] = set()
    for incident in incidents:
        unique_id, number = str(incident.get("unique_id") or ""), incident.get("incident_number")
        label = f"incident #{number} {incident.get('title') or ''}".strip()
        pair = pairs.by_incident(integration.zenduty_account_id, unique_id)
        if pair is not None:
            items.append(Item("zenduty", unique_id, label, NOTHING, _held_by(pair)))
            continue
        made_for = by_source.get(unique_id) or by_id.get(str(mapping.request_id_in_title(incident.get("title"))))
        if made_for is not None and pairs.by_request(integration.tenant_id, made_for.get("id")) is None:
            linked_requests.add(str(made_for.get("id")))
            items.append(Item("zenduty", unique_id, label, LINK, f"the portal made request #{made_for.get('id')} "
                                                                 f"for it before", str(made_for.get("id"))))
        elif integration.receives_from_zenduty:
            items.append(Item("zenduty", unique_id, label, CREATE_REQUEST))
        else:
            items.append(Item("zenduty", unique_id, label, NOTHING, "the integration does not create requests from "
                                                                     "Zenduty"))
    for request in requests:
        request_id = str(request.get("id"))
        label = f"request #{request_id} {request.get('subject') or ''}".strip()
        if request_id in linked_requests:
            continue
        pair = pairs.by_request(integration.tenant_id, request_id)
        if pair is not None:
            items.append(Item("xurrent", request_id, label, NOTHING, _held_by(pair)))
        elif mapping.is_portal_source(request.get("source")):
            items.append(Item("xurrent", request_id, label, NOTHING, "made by the portal for an incident that is "
                                                                     "not open any more"))
        elif not integration.receives_from_xurrent:
            items.append(Item("xurrent", request_id, label, NOTHING, "the integration does not create incidents "
                                                                     "from Xurrent"))
        else:
            why = xurrent_to_zenduty.reason_not_to_create(integration, request)
            items.append(Item("xurrent", request_id, label, NOTHING if why else CREATE_INCIDENT, why))
    return items


def _held_by(pair) -> str:
    """Why a record with a pair is left alone: it is linked, or an admin unlinked it on purpose."""
    if pair.state == PairState.UNLINKED:
        return "unlinked by hand (link it again on the pairs page to sync it)"
    if pair.state == PairState.CREATING:
        return "its counterpart is being created (an event is on it)"
    if pair.state == PairState.FAILED:
        return "creating its counterpart failed (replay the event named on the pair's page)"
    return "already linked"


def unfinished(integration: OutgoingIntegration) -> Backfill | None:
    """The integration's backfill that is running or waiting for the API budget, if any."""
    return Backfill.objects.filter(integration=integration,
                                   status__in=(BackfillStatus.RUNNING, BackfillStatus.WAITING)).first()


class AlreadyRunning(Exception):
    """The integration has a backfill running (or waiting) already: one at a time."""

    def __init__(self, backfill: Backfill):
        self.backfill = backfill
        super().__init__(f"{backfill} is not finished yet.")


def start(integration: OutgoingIntegration, items: list[Item], *, by: str) -> Backfill:
    """Store the plan an admin saw and queue its job.

    :raises AlreadyRunning: when the integration has an unfinished backfill (the database's
        constraint decides between two starts at the same moment).
    """
    running = unfinished(integration)
    if running is not None:
        raise AlreadyRunning(running)
    try:
        with transaction.atomic():
            backfill = Backfill.objects.create(integration=integration, requested_by=by,
                                               items=[asdict(i) for i in items if i.action != NOTHING])
    except IntegrityError:
        running = unfinished(integration)
        if running is None:
            raise
        raise AlreadyRunning(running) from None
    async_task(TASK, backfill.pk, task_name=f"syncengine-backfill-{backfill.pk}-{uuid.uuid4().hex[:6]}")
    logger.info("syncengine.backfill.started backfill=%s items=%s by=%s", backfill.pk, len(backfill.items), by)
    return backfill


def run(backfill_id: int) -> str:
    """Do a stored backfill's items from where it stopped; safe to run twice. Returns its status."""
    backfill = Backfill.objects.select_related("integration__tenant", "integration__zenduty_account").get(
        pk=backfill_id)
    if backfill.status in (BackfillStatus.DONE, BackfillStatus.FAILED):
        return backfill.status
    integration = backfill.integration
    owner = f"backfill-{backfill.pk}"
    Backfill.objects.filter(pk=backfill.pk).update(status=BackfillStatus.RUNNING)
    with sync_context(integration_id=integration.pk, background=True):
        while backfill.position < len(backfill.items):
            item = Item(**{k: v for k, v in backfill.items[backfill.position].items() if k != "result"})
            try:
                result = _do(integration, item, owner)
            except errors.RetryableError as exc:
                return _wait(backfill, exc)
            except Exception as exc:  # noqa: BLE001 - one record (a 422, a bug) must not stop the rest
                logger.warning("syncengine.backfill.item-failed backfill=%s item=%s: %s", backfill.pk, item.record,
                               exc)
                result = f"failed: {exc}"
            backfill.items[backfill.position]["result"] = result[:500]
            backfill.position += 1
            # One item at a time: a job killed half-way goes on after the last recorded item.
            Backfill.objects.filter(pk=backfill.pk).update(items=backfill.items, position=backfill.position)
    # The error of a wait it came back from is over.
    Backfill.objects.filter(pk=backfill.pk).update(status=BackfillStatus.DONE, finished_at=timezone.now(),
                                                   last_error="")
    logger.info("syncengine.backfill.done backfill=%s", backfill.pk)
    return BackfillStatus.DONE


def _do(integration: OutgoingIntegration, item: Item, owner: str) -> str:
    if item.action == CREATE_REQUEST:
        with common.zenduty_client(integration) as zenduty:
            incident = zenduty.get_incident(item.record)  # the filter leaves out summary and priority
        outcome = zenduty_to_xurrent.create_for_incident(integration, incident, owner=owner)
        return _said(integration, outcome, item, pairs.by_incident(integration.zenduty_account_id, item.record))
    if item.action == CREATE_INCIDENT:
        with common.xurrent_client(integration) as xurrent:
            request = xurrent.get_request(item.record)
        if mapping.is_completed(str(request.get("status") or "")):
            return "nothing: the request was completed meanwhile"
        outcome = xurrent_to_zenduty.create_for_request(integration, request, owner=owner)
        return _said(integration, outcome, item, pairs.by_request(integration.tenant_id, item.record))
    if item.action == LINK:
        from syncengine import by_hand

        with common.zenduty_client(integration) as zenduty:
            number = zenduty.get_incident(item.record).get("incident_number")
        try:
            pair = by_hand.link(integration, request_id=item.counterpart, incident_number=str(number),
                                by="the backfill")
        except by_hand.Refused as refused:
            return f"nothing: {refused}"
        return f"linked: {pair}"
    return "nothing"


def _said(integration, outcome, item: Item, pair) -> str:
    if outcome is None:
        return "nothing: linked meanwhile (by its webhook, a sweep or another event)"
    if pair is not None and outcome.status == EventStatus.PROCESSED:
        PairNote.objects.create(pair=pair, text=f"Backfill: {item.label} was open when the integration started. "
                                                f"{outcome.reason}"[:2000])
    return f"{outcome.status}: {outcome.reason}"


def _wait(backfill: Backfill, exc: errors.RetryableError) -> str:
    delay = max(float(getattr(exc, "retry_after", None) or 60), 1.0)
    next_run = timezone.now() + timedelta(seconds=delay)
    Backfill.objects.filter(pk=backfill.pk).update(status=BackfillStatus.WAITING, last_error=str(exc)[:2000])
    schedule(TASK, backfill.pk, schedule_type=Schedule.ONCE, next_run=next_run, repeats=-1,
             name=f"syncengine backfill {backfill.pk} ({uuid.uuid4().hex[:6]})")
    logger.info("syncengine.backfill.waiting backfill=%s for %.0f s: %s", backfill.pk, delay, exc)
    return BackfillStatus.WAITING

