"""The Zenduty poller: incident notes and priorities, which Zenduty sends no webhook for.

A django-q2 schedule (migration 0013, ``SCHEDULE_NAME``) runs :func:`run`
every minute. Each run, per Zenduty account (the budget is the account's):

1. **Priorities**: one ``POST /api/incidents/filter/`` per 100 open incidents
   of each enabled integration's service that has open pairs. The results
   carry ``team_priority_object`` (https://apidocs.zenduty.com, "List
   incidents"), so every open pair's priority is seen within about a minute
   for one read per 100 pairs; a change goes through
   ``zenduty_to_xurrent.sync_priority`` (request impact via the mapping).
2. **Notes**: one ``GET /api/incidents/<n>/note/`` per pair, for pairs of
   integrations that copy notes from Zenduty (Sync Notes on, direction
   Zenduty → Xurrent or both ways), not read in the last ``MIN_INTERVAL``:
   first the *active* pairs (an event, note, priority or impact change
   within ``SYNC_POLL_ACTIVE_MINUTES``, default 30), most recently active
   first (one that missed a run before them), up to two thirds of the run's
   note reads; then the quiet ones, least recently polled first (round
   robin); then the other active ones if reads are left.
   New notes go through ``flows.notes.sync_zenduty_notes``.

Budget: Zenduty allows 30 incident reads a minute per account (and 3 a
second) for every caller together (``connections.budget`` keeps every
process to it). A run takes at most ``SYNC_POLL_READS_PER_MINUTE`` (default
24), leaving 6 a minute for webhook jobs, the reconciliation sweep and
admin pages; a read the shared budget cannot give within the client's
inline wait ends the account's run (nothing is called). With N open pairs,
of which A are active, a run has R = 24 - ceil(N/100) note reads: active
pairs are read every minute while A <= 2R/3 (else each at least every
other minute or so), and quiet ones every ceil((N - A) / (R - min(A, 2R/3)))
minutes: with 500 open pairs (R = 19) and 5 active, 495 / 14 → within 36
minutes; with 13 or more active, 6 quiet a minute → within 84 minutes at
worst. Priorities are at most a minute old for every pair. (At the full 30
reads a minute one read per pair would take about 17 minutes for 500; the
portal keeps 6 for other callers and spends 5 on the filter, which makes
every priority a minute fresh.)

A 429 from Zenduty stops the account's run and the account is left alone
for the time Zenduty asks, or ``BACKOFF`` (a minute, as Zenduty's docs say)
when it names none; kept in the cache, so every worker backs off. Each pair
is polled under its lease (``pairs.working_on``): a pair busy with a
webhook event is skipped this run and stays first in line. Every change
leaves a :class:`~syncengine.models.PairNote` in the pair's timeline, and
the calls are tied to the pair as a webhook event's are.
"""
from __future__ import annotations

import logging
import math
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Iterator

from django.conf import settings
from django.core.cache import cache
from django.db.models import F, Q
from django.utils import timezone

from connections import errors
from connections.models import ZendutyAccount
from connections.zenduty.constants import FILTER_OPEN
from integrations.models import OutgoingIntegration
from syncengine import pairs
from connections.attribution import sync_context
from syncengine.flows import common, notes, zenduty_to_xurrent
from syncengine.models import LinkedPair, PairNote, PairState
from syncengine.sweep_runs import StopPart, run_parts

logger = logging.getLogger("syncengine.polling")

SCHEDULE_NAME = "syncengine: poll Zenduty notes and priorities"
LOCK_KEY = "syncengine:polling:running"
BACKOFF_KEY = "syncengine:polling:backoff:{account_id}"
# Well inside the 120 s job timeout, and under the minute between runs.
TIME_BUDGET = timedelta(seconds=50)
# A pair's notes are not read again sooner than this (a run a minute: about once a run at most).
MIN_INTERVAL = timedelta(seconds=50)
# At most this share of a run's note reads goes to active pairs: quiet ones are never starved.
ACTIVE_SHARE = 2 / 3
# An active pair not read for this long missed a run: it goes first among the active ones.
MISSED = timedelta(seconds=90)
# Zenduty names no wait on its 429; its docs say to retry after a minute (https://zenduty.com/docs/rate-limits).
BACKOFF = timedelta(seconds=60)
PAGE_SIZE = 100


@dataclass
class PollReport:
    """What one run did (the task's result)."""

    accounts: int = 0
    reads: int = 0
    pairs_polled: int = 0
    notes_copied: int = 0
    priorities_changed: int = 0
    skipped_busy: int = 0
    stopped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def backing_off_until(account_id: int) -> float:
    """The epoch time until which the account's polling backs off (0: it does not)."""
    return float(cache.get(BACKOFF_KEY.format(account_id=account_id)) or 0)


def run(*, now: datetime | None = None, reads_per_run: int | None = None) -> PollReport:
    """One poll of every Zenduty account with open pairs. Never raises for an API's error."""
    report = PollReport()
    accounts = ZendutyAccount.objects.filter(
        integrations__enabled=True, integrations__pairs__state=PairState.LINKED).distinct().order_by("pk")

    def poll(account: ZendutyAccount, deadline: float) -> None:
        _AccountPoll(account, report, deadline, now or timezone.now(),
                     reads_per_run or settings.SYNC_POLL_READS_PER_MINUTE).run()

    return run_parts(accounts, report=report, counter="accounts", lock_key=LOCK_KEY, lock_margin=30,
                     time_budget=TIME_BUDGET, busy="another poll is running", backing_off_until=backing_off_until,
                     run_part=poll, logger=logger, word="account")


def order_for_notes(pairs_qs, now: datetime) -> tuple[list[LinkedPair], list[LinkedPair]]:
    """The pairs whose notes are due: (active, quiet), each in the order the poller reads them.

    Active: an active pair that missed a run (not read for ``MISSED``) first,
    then the most recently active first. Quiet: least recently polled first
    (never polled before all others).
    """
    active_since = now - timedelta(minutes=settings.SYNC_POLL_ACTIVE_MINUTES)
    due = pairs_qs.filter(Q(polled_at__isnull=True) | Q(polled_at__lte=now - MIN_INTERVAL))
    active = sorted(due.filter(active_at__gte=active_since),
                    key=lambda p: (p.polled_at is not None and p.polled_at > now - MISSED,
                                   -p.active_at.timestamp(), p.pk))
    quiet = list(due.exclude(pk__in=[p.pk for p in active])
                 .order_by(F("polled_at").asc(nulls_first=True), "pk"))
    return active, quiet


def plan_for_notes(active: list, quiet: list, reads: int) -> list:
    """The order of a run's note reads: active pairs up to ``ACTIVE_SHARE`` of ``reads``, then the quiet
    ones, then the remaining active ones (so quiet pairs are never starved by many active ones)."""
    share = math.ceil(reads * ACTIVE_SHARE)
    return active[:share] + quiet + active[share:]


class _AccountPoll:
    """One account's part of a run."""

    def __init__(self, account: ZendutyAccount, report: PollReport, deadline: float, now: datetime, reads: int):
        self.account = account
        self.report = report
        self.deadline = deadline
        self.now = now
        self.reads_left = reads
        self.owner = f"poll-{uuid.uuid4().hex[:8]}"
        self.integrations = {i.pk: i for i in OutgoingIntegration.objects.filter(
            zenduty_account=account, enabled=True).select_related("tenant", "zenduty_account")}

    def run(self) -> None:
        open_pairs = LinkedPair.objects.filter(integration_id__in=list(self.integrations), state=PairState.LINKED) \
            .exclude(zenduty_incident_unique_id="").exclude(xurrent_request_id="")
        zenduty = common.zenduty_client(next(iter(self.integrations.values())))
        zenduty.deadline = self.deadline
        with zenduty:
            for integration in self.integrations.values():
                mine = open_pairs.filter(integration=integration)
                if mine.exists():
                    self._priorities(integration, zenduty, {p.zenduty_incident_unique_id: p for p in mine})
            copying = [pk for pk, i in self.integrations.items() if i.sync_notes and i.receives_from_zenduty]
            active, quiet = order_for_notes(open_pairs.filter(integration_id__in=copying), self.now)
            for pair in plan_for_notes(active, quiet, self.reads_left):
                self._spend()
                self._notes(self.integrations[pair.integration_id], pair, zenduty)

    # -- reads ---------------------------------------------------------------------------------------
    def _spend(self) -> None:
        if self.reads_left <= 0:
            raise StopPart(f"this run's {settings.SYNC_POLL_READS_PER_MINUTE} reads are used; the next run continues")
        if time.monotonic() > self.deadline:
            raise StopPart(f"time budget of {TIME_BUDGET.total_seconds():.0f} s used up; the next run continues")
        self.reads_left -= 1
        self.report.reads += 1

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Zenduty reads: a 429 (Zenduty's own) backs the account off, a full budget ends the run."""
        try:
            yield
        except errors.RateLimitedError as exc:
            if exc.status == 429:
                wait = exc.retry_after or BACKOFF.total_seconds()
                cache.set(BACKOFF_KEY.format(account_id=self.account.pk), time.time() + wait, timeout=int(wait) + 5)
                raise StopPart(f"Zenduty answered 429: backing off for {wait:.0f} s") from exc
            raise StopPart(f"the account's shared Zenduty budget is used up for now ({exc})") from exc
        except errors.RetryableError as exc:
            raise StopPart(f"Zenduty did not answer the read ({exc}); the next run continues") from exc

    def _priorities(self, integration, zenduty, by_incident: dict[str, LinkedPair]) -> None:
        """Read the service's open incidents (100 a call, newest first) and follow each pair's priority."""
        seen: dict[str, str] = {}
        with sync_context(integration_id=integration.pk, background=True), self._reading():
            self._spend()
            incidents = zenduty.iter_incidents(status=FILTER_OPEN, service_ids=[integration.zenduty_service_id],
                                               page_size=PAGE_SIZE)
            for count, incident in enumerate(incidents, start=1):
                priority = incident.get("team_priority_object") if isinstance(
                    incident.get("team_priority_object"), dict) else {}
                if priority.get("unique_id"):
                    seen[str(incident.get("unique_id"))] = str(priority["unique_id"])
                if count % PAGE_SIZE == 0:
                    if len(seen.keys() & by_incident.keys()) == len(by_incident):
                        break  # every open pair's incident is seen: no need for the next page
                    self._spend()  # the next item comes with the next page
        for unique_id, priority in seen.items():
            pair = by_incident.get(unique_id)
            if pair is None or pair.zenduty_priority == priority:
                continue
            self._on_pair(integration, pair, lambda p, xurrent, priority=priority: self._priority(
                integration, p, priority, xurrent))

    def _priority(self, integration, pair: LinkedPair, priority: str, xurrent) -> list[str]:
        said = zenduty_to_xurrent.sync_priority(integration, pair, priority, xurrent)
        if said and "→" in said:
            self.report.priorities_changed += 1
        return [said] if said else []

    def _notes(self, integration, pair: LinkedPair, zenduty) -> None:
        number = pair.zenduty_incident_number or pair.zenduty_incident_unique_id

        def work(p: LinkedPair, xurrent) -> list[str]:
            with self._reading():
                found = zenduty.list_notes(number, page_size=PAGE_SIZE)
            done = notes.sync_zenduty_notes(integration, p, found, xurrent)
            copied = sum(1 for line in done if " copied to request " in line)
            self.report.notes_copied += copied
            fields = {"polled_at": timezone.now()}
            if done:
                fields["active_at"] = timezone.now()
            pairs.update(p, **fields)
            self.report.pairs_polled += 1
            return done

        self._on_pair(integration, pair, work)

    # -- one pair, under its lease --------------------------------------------------------------------
    def _on_pair(self, integration, pair: LinkedPair, work) -> None:
        try:
            with sync_context(integration_id=integration.pk, background=True), \
                    common.flagged_on_permanent_error(integration, f"poll Zenduty incident #"
                                                                   f"{pair.zenduty_incident_number}"), \
                    pairs.working_on(pair, self.owner) as pair, common.xurrent_client(integration) as xurrent:
                for line in work(pair, xurrent):
                    PairNote.objects.create(pair=pair, text=f"Polled Zenduty: {line}"[:2000])
                if pair.last_error:  # a read refused before (below) is past: the pair's page says so no more
                    pairs.update(pair, last_error="")
        except pairs.PairBusy:
            self.report.skipped_busy += 1
        except StopPart:
            raise
        except errors.RetryableError as exc:  # Xurrent's side, or a note create whose outcome is unknown
            logger.warning("syncengine.polling.pair-failed pair=%s: %s", pair.pk, exc)
            self.report.stopped.append(f"{pair}: {exc}")
        except errors.PermanentError as exc:  # e.g. the incident or request was deleted: the others go on
            logger.warning("syncengine.polling.pair-refused pair=%s: %s", pair.pk, exc)
            pairs.update(pair, polled_at=timezone.now(), last_error=str(exc)[:2000])
