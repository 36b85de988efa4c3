"""The reconciliation sweep: repair what missed webhooks left behind, within both APIs' budgets.

Webhooks get lost: Zenduty documents no retry of a failed delivery, Xurrent disables
a webhook after repeated failures, and a delivery can be dropped on the way.
Every ``SYNC_RECONCILE_MINUTES`` (default 5; a django-q2 schedule created by
migration 0010) this sweep compares each enabled integration's linked pairs
with both sides as they are now and applies what differs through the same
status-sync code the webhook flows use (``zenduty_to_xurrent.sync_status``,
``xurrent_to_zenduty.sync_status``: the pair's lease, statuses only forward,
a change already applied writes nothing). Each repair leaves a
:class:`~syncengine.models.PairNote` in the pair's timeline.

**Calls per sweep, per integration** (the reads; a repair then costs what the
same webhook would: a Xurrent GET and PATCH, or a Zenduty PATCH):

* Zenduty: exactly **one** ``POST /api/incidents/filter/`` — the integration's
  service, all statuses, created since the day before the oldest open pair
  whose incident the portal has not seen resolved, one page of 100, newest
  first (https://apidocs.zenduty.com, "List incidents"; results carry
  ``unique_id`` and ``status``). When the integration creates requests from
  Zenduty, the same call also covers the incidents created since the
  previous sweep (its cursor, from the day before: the filter takes dates):
  one whose webhooks were all lost gets its request (one ``GET`` of the
  incident first, for the summary and priority the filter leaves out). None
  at all when neither applies. Zenduty allows 30 incident reads a minute for the whole
  account, shared with the webhook flows, so a GET per open incident (N per
  sweep) would not do. Limit: when more than 100 incidents of the service
  were created since then, pairs whose incident is not on that page are not
  compared this sweep (logged); they stay first in line (least recently
  checked) for the next.
* Xurrent: **one** ``GET /requests?service_instance=<id>&updated_at=>=<t>`` per
  100 requests of the service instance changed since the previous sweep
  (``t``: where the last complete listing ended, less two minutes of overlap;
  https://developer.xurrent.com/v1/requests/, filtering:
  https://developer.4me.com/v1/general/filtering/) — one call per sweep in
  practice. The alternative, a GET per open pair, costs N calls every sweep
  whether anything changed or not, and cannot find what this listing also
  finds: a request moved into the service instance after it was created
  (its ``request.create`` never reached this integration), and a closed
  pair's request that was reopened. Xurrent's budget (3,600 an hour) is not
  the constraint; the listing is simply fewer calls.

A request found by the listing that no pair knows gets its incident, as its
``request.create`` would have, when the integration creates incidents from
Xurrent, the request is in its service instance and of an allowed category,
was not made by the portal, and was created after the integration (older
records are never back-filled). The claim decides between the sweep and a
late webhook (one incident); a request created in the last minute, or whose
``request.create`` is still waiting to be processed, is left to that webhook.

A request's notes are not compared here (that is a read per pair): the note sweep
(``syncengine.note_sweep``) reads them, within a share of Xurrent's budget of its own.

A retryable error (429, 5xx, timeout) stops the sweep for that API account
(the Zenduty account or the Xurrent tenant) and logs it; the next sweep
continues where this one stopped (pairs least recently checked first; the
Xurrent cursor only moves after a complete pass). A pair busy with a webhook
event is skipped. The whole sweep stays within ``TIME_BUDGET``.
"""
from __future__ import annotations

import logging
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Iterator

from django.core.cache import cache
from django.db.models import F
from django.utils import timezone

from connections import errors
from connections.zenduty.constants import FILTER_ALL, RESOLVED
from integrations.models import OutgoingIntegration
from syncengine import mapping, pairs
from connections.attribution import sync_context
from syncengine.flows import common, xurrent_to_zenduty, zenduty_to_xurrent
from syncengine.models import (CLAIMABLE, EventStatus, InboundEvent, LinkedPair, PairNote, PairState,
                               ReconcileCursor, Source)
from syncengine.outcomes import EventError, Outcome
from utilities.schedules import schedule_aligner

logger = logging.getLogger("syncengine.reconcile")

SCHEDULE_NAME = "syncengine: reconcile linked pairs"
LOCK_KEY = "syncengine:reconcile:running"
# Well inside the 120 s job timeout: a sweep that runs out stops and the next one continues.
TIME_BUDGET = timedelta(seconds=60)
ZENDUTY_PAGE_SIZE = 100
# Each listing starts this much before the previous one ended: clocks differ, and a record
# left to its webhook (GRACE) is listed again by the next sweep.
LISTING_OVERLAP = timedelta(minutes=2)
GRACE = timedelta(minutes=1)
# ``?fields=`` (the collection's defaults lack source, created_by and reopen_count): what the
# echo checks, the eligibility of a request to create and the flows read.
XURRENT_FIELDS = ("subject", "category", "impact", "status", "service_instance", "created_at", "updated_at",
                  "source", "sourceID", "created_by", "reopen_count")


@dataclass
class SweepReport:
    """What one sweep did (the task's result, and the log)."""

    integrations: int = 0
    checked: int = 0
    repaired: int = 0
    created: int = 0
    closed: int = 0
    skipped_busy: int = 0
    stopped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


class _Stop(Exception):
    """Stop this integration's part of the sweep (a service said to back off, or time is up)."""


# -- schedule --------------------------------------------------------------------------------------
align_schedule = schedule_aligner(SCHEDULE_NAME, "SYNC_RECONCILE_MINUTES")


# -- the sweep -------------------------------------------------------------------------------------
def run(*, now: datetime | None = None) -> SweepReport:
    """One sweep over every enabled integration. Returns what it did; never raises for an API's error."""
    report = SweepReport()
    token = uuid.uuid4().hex
    if not cache.add(LOCK_KEY, token, timeout=int(TIME_BUDGET.total_seconds()) + 60):
        report.stopped.append("another sweep is running")
        logger.info("syncengine.reconcile.skipped another sweep is running")
        return report
    try:
        deadline = time.monotonic() + TIME_BUDGET.total_seconds()
        backing_off: dict[tuple[str, int], str] = {}
        integrations = (OutgoingIntegration.objects.filter(enabled=True)
                        .select_related("tenant", "zenduty_account").order_by("pk"))
        for integration in integrations:
            if time.monotonic() > deadline:
                report.stopped.append(f"time budget of {TIME_BUDGET.total_seconds():.0f} s used up")
                break
            report.integrations += 1
            with sync_context(integration_id=integration.pk, background=True):
                _IntegrationSweep(integration, report, backing_off, deadline, now or timezone.now()).run()
    finally:
        if cache.get(LOCK_KEY) == token:
            cache.delete(LOCK_KEY)
    logger.info("syncengine.reconcile.done %s", report.as_dict())
    return report


class _IntegrationSweep:
    """One integration's part of a sweep."""

    def __init__(self, integration: OutgoingIntegration, report: SweepReport,
                 backing_off: dict[tuple[str, int], str], deadline: float, now: datetime):
        self.integration = integration
        self.report = report
        self.backing_off = backing_off
        self.deadline = deadline
        self.now = now
        self.owner = f"sweep-{uuid.uuid4().hex[:8]}"
        self.keys = {Source.ZENDUTY: (Source.ZENDUTY.value, integration.zenduty_account_id),
                     Source.XURRENT: (Source.XURRENT.value, integration.tenant_id)}

    def run(self) -> None:
        stopped = [self.backing_off[key] for key in self.keys.values() if key in self.backing_off]
        if stopped:
            self.report.stopped.append(f"{self.integration}: skipped ({stopped[0]})")
            return
        try:
            self._run()
        except _Stop as stop:
            self.report.stopped.append(f"{self.integration}: {stop}")
            logger.warning("syncengine.reconcile.stopped integration=%s: %s", self.integration.pk, stop)

    def _run(self) -> None:
        open_pairs = list(LinkedPair.objects.filter(integration=self.integration, state=PairState.LINKED)
                          .order_by(F("last_checked_at").asc(nulls_first=True), "pk"))
        for pair in open_pairs:  # both sides already seen finished: no call needed
            if pair.xurrent_status == mapping.COMPLETED and pair.zenduty_status == RESOLVED:
                self._close(pair)
        open_pairs = [p for p in open_pairs if p.state == PairState.LINKED]
        cursor = ReconcileCursor.objects.filter(integration=self.integration).first()
        incidents = self._read_incidents(open_pairs, self._incidents_from(cursor))
        cursor_from = self._cursor_from(cursor)
        requests = {str(r.get("id")): r for r in self._read_requests(cursor_from)}
        checked: list[int] = []
        try:
            for pair in open_pairs:
                self._check_time()
                if self._repair_pair(pair, incidents.get(pair.zenduty_incident_unique_id),
                                     requests.pop(pair.xurrent_request_id, None)):
                    if pair.zenduty_status == RESOLVED or pair.zenduty_incident_unique_id in incidents:
                        checked.append(pair.pk)
            for request in requests.values():  # not an open pair of this integration
                self._check_time()
                self._unlinked_request(request)
            if self.integration.receives_from_zenduty:
                known = {p.zenduty_incident_unique_id for p in open_pairs}
                for unique_id, incident in incidents.items():
                    if unique_id not in known:
                        self._check_time()
                        self._unlinked_incident(incident)
        finally:  # what was compared stays compared, even when the sweep stops half-way
            LinkedPair.objects.filter(pk__in=checked).update(last_checked_at=timezone.now())
            self.report.checked += len(checked)
        # Only after a complete pass: a stopped sweep lists the same changes again next time.
        listed = {"xurrent_listed_until": self.now}
        if self.integration.receives_from_zenduty:
            listed["zenduty_listed_until"] = self.now
        ReconcileCursor.objects.update_or_create(integration=self.integration, defaults=listed)

    def _close(self, pair: LinkedPair) -> None:
        try:
            fresh = pairs.take_lease(pair, self.owner)
        except pairs.PairBusy:  # its event will close it
            self.report.skipped_busy += 1
            return
        try:
            if pairs.refresh_state(fresh).state == PairState.CLOSED:
                pair.state = PairState.CLOSED
                self._note(pair, "Reconciliation sweep: the request is completed and the incident resolved; "
                                 "the pair is closed.")
                self.report.closed += 1
        finally:
            pairs.release(pair, self.owner)

    # -- reading ---------------------------------------------------------------------------
    def _incidents_from(self, cursor: ReconcileCursor | None) -> datetime | None:
        """Since when new incidents of the service are looked for (None: the integration creates no requests)."""
        if not self.integration.receives_from_zenduty:
            return None
        if cursor is None or cursor.zenduty_listed_until is None:  # everything since the integration exists
            return self.integration.created_at
        return max(cursor.zenduty_listed_until - LISTING_OVERLAP, self.integration.created_at)

    def _read_incidents(self, open_pairs: list[LinkedPair], new_since: datetime | None) -> dict[str, dict]:
        """The service's incidents since the oldest open pair that waits on an unresolved one, and since
        ``new_since`` for incidents whose webhooks were lost (one call for both)."""
        waiting = [p for p in open_pairs if (p.zenduty_status or 0) < RESOLVED]
        starts = [min(p.created_at for p in waiting)] if waiting else []
        if new_since is not None:
            starts.append(new_since)
        if not starts:
            return {}
        # Zenduty's filter takes dates, not times: from the day before, whatever the time zones.
        since = (min(starts) - timedelta(days=1)).date().isoformat()
        with self._backs_off(Source.ZENDUTY), common.zenduty_client(self.integration) as zenduty:
            results, more = zenduty.first_incidents_page(status=FILTER_ALL,
                                                         service_ids=[self.integration.zenduty_service_id],
                                                         from_date=since, page_size=ZENDUTY_PAGE_SIZE)
        found = {str(i.get("unique_id")): i for i in results if isinstance(i, dict)}
        missing = [p for p in waiting if p.zenduty_incident_unique_id not in found]
        if missing:
            why = (f"more than {ZENDUTY_PAGE_SIZE} incidents of the service since {since}" if more
                   else f"not among the service's incidents since {since}")
            logger.warning("syncengine.reconcile.incidents-not-compared integration=%s pairs=%s: %s",
                           self.integration.pk, [p.pk for p in missing], why)
        return found

    def _cursor_from(self, cursor: ReconcileCursor | None) -> datetime:
        if cursor is None:  # first sweep: everything since the integration exists
            return self.integration.created_at
        return max(cursor.xurrent_listed_until - LISTING_OVERLAP, self.integration.created_at)

    def _read_requests(self, since: datetime) -> list[dict]:
        """The service instance's requests changed since ``since`` (one call per 100)."""
        with self._backs_off(Source.XURRENT), common.xurrent_client(self.integration) as xurrent:
            return [r for r in xurrent.iter_requests_updated_since(self.integration.service_instance_id, since,
                                                                   XURRENT_FIELDS) if isinstance(r, dict)]

    # -- repairing ---------------------------------------------------------------------------
    def _repair_pair(self, pair: LinkedPair, incident: dict | None, request: dict | None) -> bool:
        """Apply what differs on each side; False when the pair could not be compared now (busy, failed)."""
        if incident is not None and _incident_moved_on(pair, incident) and _still(pair, _incident_moved_on, incident):
            name = mapping.ZENDUTY_STATUS_NAMES[mapping.zenduty_status(incident.get("status"))]
            outcome = self._apply(pair, lambda: zenduty_to_xurrent.sync_status(
                self.integration, pair, incident, owner=self.owner))
            if outcome is None:
                return False
            self._repaired(pair, outcome, f"Zenduty incident #{incident.get('incident_number')} is {name}")
            seen = (pair.xurrent_status, pair.xurrent_updated_at)
            pair.refresh_from_db()
            if (pair.xurrent_status, pair.xurrent_updated_at) != seen:
                # The repair read the request afresh (and wrote it): the listing is older than that.
                return True
        if request is not None and _request_moved_on(pair, request) and _still(pair, _request_moved_on, request):
            status = str(request.get("status") or "").replace("_", " ")
            outcome = self._apply(pair, lambda: xurrent_to_zenduty.sync_status(
                self.integration, pair, request, owner=self.owner))
            if outcome is None:
                return False
            self._repaired(pair, outcome, f"Xurrent request #{request.get('id')} is {status}")
        return True

    def _unlinked_request(self, request: dict) -> None:
        """A listed request that is no open pair of this integration: a closed pair reopened, or one to create."""
        request_id = str(request.get("id") or "")
        pair = pairs.by_request(self.integration.tenant_id, request_id)
        if pair is not None and not (pairs.unfinished_claim(pair) and pair.integration_id == self.integration.pk):
            # Another integration's, or one being created by its events: theirs to handle.
            if pair.integration_id == self.integration.pk and pair.state == PairState.CLOSED:
                self._repair_pair(pair, None, request)
            return
        why = self._why_not_create(request)
        if why:
            logger.debug("syncengine.reconcile.not-created request=%s: %s", request_id, why)
            return
        outcome = self._apply(None, lambda: xurrent_to_zenduty.create_for_request(
            self.integration, request, owner=self.owner))
        if outcome is None:  # claimed meanwhile by its webhook
            return
        pair = pairs.by_request(self.integration.tenant_id, request_id)
        instance = (request.get("service_instance") or {}).get("name") or self.integration.service_instance_name
        if pair is not None and outcome.status == EventStatus.PROCESSED:
            self._note(pair, f"Reconciliation sweep: request #{request_id} is in '{instance}' but no "
                             f"request.create for it reached this integration (it was moved there after it was "
                             f"created, or the webhook was lost). {outcome.reason}")
            self.report.created += 1
            logger.info("syncengine.reconcile.created request=%s: %s", request_id, outcome.reason)

    def _unlinked_incident(self, incident: dict) -> None:
        """A listed incident of the service that no pair knows: create its request, as its lost webhook would."""
        unique_id = str(incident.get("unique_id") or "")
        number = incident.get("incident_number")
        pair = pairs.by_incident(self.integration.zenduty_account_id, unique_id)
        if not unique_id or (pair is not None and not (pairs.unfinished_claim(pair)
                                                        and pair.integration_id == self.integration.pk)):
            return
        why = self._why_not_create_request(incident)
        if why:
            logger.debug("syncengine.reconcile.not-created incident=%s: %s", unique_id, why)
            return
        # The filter's results lack the summary and the priority the request is made from.
        with self._backs_off(Source.ZENDUTY), common.zenduty_client(self.integration) as zenduty:
            full = zenduty.get_incident(unique_id)
        outcome = self._apply(None, lambda: zenduty_to_xurrent.create_for_incident(
            self.integration, full if isinstance(full, dict) and full.get("unique_id") else incident,
            owner=self.owner))
        if outcome is None:  # claimed meanwhile by its webhook
            return
        pair = pairs.by_incident(self.integration.zenduty_account_id, unique_id)
        if pair is not None and outcome.status == EventStatus.PROCESSED:
            self._note(pair, f"Reconciliation sweep: incident #{number} is on the service but none of its webhooks "
                             f"reached the portal (Zenduty does not retry a lost delivery). {outcome.reason}")
            self.report.created += 1
            logger.info("syncengine.reconcile.created incident=%s: %s", unique_id, outcome.reason)

    def _why_not_create_request(self, incident: dict) -> str:
        created = mapping.parse_time(incident.get("creation_date"))
        if created is None or created < self.integration.created_at:
            return "created before the integration (never back-filled)"
        if created > self.now - GRACE:
            return "created just now: its webhook is on its way"
        if mapping.request_id_in_title(incident.get("title")) is not None:
            return "the portal's own incident"
        waiting = InboundEvent.objects.filter(source=Source.ZENDUTY, object_id=str(incident.get("unique_id")),
                                              status__in=[*CLAIMABLE, EventStatus.PROCESSING])
        if waiting.exists():
            return "one of its webhooks is waiting to be processed"
        return ""

    def _why_not_create(self, request: dict) -> str:
        integration = self.integration
        if not integration.receives_from_xurrent:
            return "the integration does not create incidents from Xurrent"
        created = mapping.parse_time(request.get("created_at"))
        if created is None or created < integration.created_at:
            return "created before the integration (never back-filled)"
        if created > self.now - GRACE:
            return "created just now: its request.create is on its way"
        if mapping.is_portal_source(request.get("source")):
            return "the portal's own request"
        creator = request.get("created_by") if isinstance(request.get("created_by"), dict) else {}
        own = integration.tenant.portal_person_id
        if own and str(creator.get("id") or "") == str(own):
            return "created by the person the portal acts as"
        waiting = InboundEvent.objects.filter(source=Source.XURRENT, event_type=xurrent_to_zenduty.CREATE,
                                              object_id=str(request.get("id")),
                                              status__in=[*CLAIMABLE, EventStatus.PROCESSING])
        if waiting.exists():
            return "its request.create is waiting to be processed"
        return xurrent_to_zenduty.reason_not_to_create(integration, request)

    def _apply(self, pair: LinkedPair | None, sync) -> Outcome | None:
        """Run one repair; None when it could not run (busy pair, or an error recorded on the pair)."""
        try:
            return sync()
        except pairs.PairBusy:
            self.report.skipped_busy += 1
            return None
        except errors.RetryableError as exc:
            side = Source.ZENDUTY if exc.service == Source.ZENDUTY else Source.XURRENT
            raise self._stop_for(side, exc) from exc
        except (errors.ApiError, EventError) as exc:  # permanent: flagged on the integration by the flow
            logger.warning("syncengine.reconcile.repair-failed integration=%s pair=%s: %s", self.integration.pk,
                           pair.pk if pair else "-", exc)
            if pair is not None:
                self._note(pair, f"Reconciliation sweep could not repair the pair: {exc}", once=True)
            return None

    def _repaired(self, pair: LinkedPair, outcome: Outcome, what: str) -> None:
        if outcome.status != EventStatus.PROCESSED:
            return  # the pair had seen it meanwhile (a webhook got there first): nothing was repaired
        self._note(pair, f"Reconciliation sweep: {what}, and no webhook had said so. {outcome.reason}")
        self.report.repaired += 1
        logger.info("syncengine.reconcile.repaired pair=%s: %s", pair.pk, outcome.reason)

    # -- plumbing ----------------------------------------------------------------------------
    def _note(self, pair: LinkedPair, text: str, *, once: bool = False) -> None:
        if once and PairNote.objects.filter(pair=pair).order_by("-at", "-pk").values_list(
                "text", flat=True).first() == text:
            return
        PairNote.objects.create(pair=pair, text=text[:2000])

    def _check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise _Stop(f"time budget of {TIME_BUDGET.total_seconds():.0f} s used up; the next sweep continues")

    def _stop_for(self, side: str, exc: Exception) -> _Stop:
        reason = f"{Source(side).label} asked to back off ({exc}); the next sweep continues"
        self.backing_off[self.keys[side]] = reason
        return _Stop(reason)

    @contextmanager
    def _backs_off(self, side: str) -> Iterator[None]:
        """A read of ``side``: a retryable error stops the sweep for that account, a permanent one this integration."""
        try:
            yield
        except errors.RetryableError as exc:
            raise self._stop_for(side, exc) from exc
        except errors.ApiError as exc:
            raise _Stop(f"{Source(side).label} refused the read: {exc}") from exc


def _still(pair: LinkedPair, differs, record: dict) -> bool:
    """Whether ``record`` still differs from the pair as stored now (a webhook may have got there since
    the pairs were read)."""
    pair.refresh_from_db()
    return differs(pair, record)


def _incident_moved_on(pair: LinkedPair, incident: dict) -> bool:
    """Whether the incident is further on than the pair last saw (Zenduty statuses only move forward)."""
    status = mapping.zenduty_status(incident.get("status"))
    return status is not None and status > (pair.zenduty_status or 0)


def _request_moved_on(pair: LinkedPair, request: dict) -> bool:
    """Whether the request's status differs from what the pair last saw, and the listing is not older."""
    status = str(request.get("status") or "")
    if not status or status == pair.xurrent_status:
        return False
    return not mapping.is_older(mapping.parse_time(request.get("updated_at")), pair.xurrent_updated_at)
