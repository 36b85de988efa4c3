"""The note sweep: Xurrent notes whose ``request.note-added`` webhook was lost reach the incident anyway.

So do notes whose webhook came while the integration copied no notes to
Zenduty (Sync Notes off, direction Zenduty → Xurrent, disabled) once it does:
such an event decides nothing for good (``xurrent_to_zenduty.SETTING_REASONS``),
and this sweep reads only integrations that copy notes to Zenduty now.

Xurrent → Zenduty notes travel by webhook (``request.note-added``,
``flows.xurrent_to_zenduty``). When that delivery never arrives (dropped on
the way, or every retry failed: Xurrent then drops the message, and disables
the webhook after repeated failures), nothing else names the note: the
reconciliation sweep lists requests, not their notes. So a django-q2 schedule
(migration 0022, ``SCHEDULE_NAME``, every ``SYNC_NOTE_SWEEP_MINUTES``,
default 5) runs :func:`run`, the counterpart of the Zenduty poller's note
reads (``syncengine.polling``), per Xurrent tenant (Xurrent counts its rate
limit per API user, and a tenant is one):

* Pairs: the tenant's linked pairs of enabled integrations that copy notes
  to Zenduty (Sync Notes on, direction Xurrent → Zenduty or both ways). The
  *active* ones first (an event, a note, a priority or impact change within
  ``SYNC_POLL_ACTIVE_MINUTES``): one that missed a run before the others,
  then the most recently active, up to two thirds of the run's reads
  (``polling.plan_for_notes``); then the quiet ones, least recently read
  first (never read before all), in turn; then the other active ones.
* Per pair, under its lease: one ``GET /requests/:id/notes``
  (https://developer.xurrent.com/v1/requests/notes/); the notes no copy
  accounts for go through ``xurrent_to_zenduty.sync_notes``, which applies
  the webhook's rules and copies each through the webhook's own code
  (``flows.notes.copy_xurrent_note``: the :class:`SyncedNote` claim makes
  one copy between the sweep and a late or concurrent webhook).

**Budget.** Xurrent allows about 3,600 calls an hour per API user
(``x-ratelimit-limit``; https://developer.xurrent.com/v1/#rate-limiting),
shared by every webhook job, the reconciliation sweep and the admin pages of
the tenant. A run reads at most ``SYNC_NOTE_SWEEP_READS_PER_RUN`` pairs of a
tenant (default 60: 720 reads an hour at the default interval, a fifth of
the budget), no faster than one read per ``READ_GAP`` (Xurrent also limits
bursts: 20 calls in 2 s), and stops the tenant's run as soon as an answer's
``x-ratelimit-remaining`` is below ``KEEP_FOR_OTHERS`` of
``x-ratelimit-limit``: the rest of the hour is left to the webhooks. With N
pairs a quiet pair's notes are read every ceil(N / 60) runs: 500 pairs, 9
runs, 45 minutes; an active pair's every run.

A 429 stops the tenant's run and backs the tenant off for its
``retry-after`` (in the cache, so every worker does); a 5xx or a timeout
stops the run; the next run continues where this one stopped (a pair's read
time moves only when its notes were read). A pair busy with a webhook event
is skipped and stays first in line. Each copy leaves a
:class:`~syncengine.models.PairNote` ("Note sweep: …") in the pair's
timeline, and its calls are the pair's, as a webhook event's are.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import F
from django.utils import timezone

from connections import errors
from connections.attribution import sync_context
from connections.models import XurrentTenant
from integrations.models import OutgoingIntegration
from syncengine import pairs, polling
from syncengine.flows import common, xurrent_to_zenduty
from syncengine.models import LinkedPair, PairNote, PairState
from syncengine.sweep_runs import StopPart, run_parts
from utilities.schedules import schedule_aligner

logger = logging.getLogger("syncengine.note_sweep")

SCHEDULE_NAME = "syncengine: sweep Xurrent notes"
LOCK_KEY = "syncengine:note-sweep:running"
BACKOFF_KEY = "syncengine:note-sweep:backoff:{tenant_id}"
# Well inside the 120 s job timeout; a run that runs out stops and the next one continues.
TIME_BUDGET = timedelta(seconds=60)
# A run stops reading a tenant's notes when less than this share of its hourly budget is left.
KEEP_FOR_OTHERS = 0.5
# Seconds between two note reads: 5 a second, half of Xurrent's burst limiter (20 in 2 s).
READ_GAP = 0.2
# A 429 that names no wait: Xurrent documents retry-after on every 429, so this is a proxy's.
BACKOFF = timedelta(seconds=60)


@dataclass
class NoteSweepReport:
    """What one run did (the task's result)."""

    tenants: int = 0
    reads: int = 0
    pairs_read: int = 0
    notes_copied: int = 0
    skipped_busy: int = 0
    stopped: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


align_schedule = schedule_aligner(SCHEDULE_NAME, "SYNC_NOTE_SWEEP_MINUTES")


def backing_off_until(tenant_id: int) -> float:
    """The epoch time until which the tenant's note sweep backs off (0: it does not)."""
    return float(cache.get(BACKOFF_KEY.format(tenant_id=tenant_id)) or 0)


def run(*, now: datetime | None = None, reads_per_run: int | None = None) -> NoteSweepReport:
    """One run over every tenant with open pairs that copy notes to Zenduty. Never raises for an API's error."""
    report = NoteSweepReport()
    tenants = XurrentTenant.objects.filter(
        integrations__enabled=True, integrations__sync_notes=True,
        integrations__pairs__state=PairState.LINKED).distinct().order_by("pk")

    def sweep(tenant: XurrentTenant, deadline: float) -> None:
        _TenantSweep(tenant, report, deadline, now or timezone.now(),
                     reads_per_run or settings.SYNC_NOTE_SWEEP_READS_PER_RUN).run()

    return run_parts(tenants, report=report, counter="tenants", lock_key=LOCK_KEY, lock_margin=60,
                     time_budget=TIME_BUDGET, busy="another note sweep is running",
                     backing_off_until=backing_off_until, run_part=sweep, logger=logger, word="tenant")


def order_for_notes(pairs_qs, now: datetime) -> tuple[list[LinkedPair], list[LinkedPair]]:
    """The pairs in the order their notes are read: (active, quiet).

    Active (activity within ``SYNC_POLL_ACTIVE_MINUTES``): one not read in
    the last run and a half first, then the most recently active first.
    Quiet: least recently read first (never read before all others).
    """
    active_since = now - timedelta(minutes=settings.SYNC_POLL_ACTIVE_MINUTES)
    missed = now - timedelta(minutes=settings.SYNC_NOTE_SWEEP_MINUTES * 1.5)
    active = sorted(pairs_qs.filter(active_at__gte=active_since),
                    key=lambda p: (p.xurrent_notes_read_at is not None and p.xurrent_notes_read_at > missed,
                                   -p.active_at.timestamp(), p.pk))
    quiet = list(pairs_qs.exclude(pk__in=[p.pk for p in active])
                 .order_by(F("xurrent_notes_read_at").asc(nulls_first=True), "pk"))
    return active, quiet


class _TenantSweep:
    """One tenant's part of a run."""

    def __init__(self, tenant: XurrentTenant, report: NoteSweepReport, deadline: float, now: datetime, reads: int):
        self.tenant = tenant
        self.report = report
        self.deadline = deadline
        self.now = now
        self.reads = reads
        self.reads_left = reads
        self.last_read = 0.0
        self.owner = f"note-sweep-{uuid.uuid4().hex[:8]}"
        self.integrations = {i.pk: i for i in OutgoingIntegration.objects.filter(
            tenant=tenant, enabled=True, sync_notes=True).select_related("tenant", "zenduty_account")
            if i.receives_from_xurrent}

    def run(self) -> None:
        if not self.integrations:
            return
        open_pairs = LinkedPair.objects.filter(integration_id__in=list(self.integrations), state=PairState.LINKED) \
            .exclude(zenduty_incident_unique_id="").exclude(xurrent_request_id="")
        active, quiet = order_for_notes(open_pairs, self.now)
        xurrent = common.xurrent_client(next(iter(self.integrations.values())))
        xurrent.deadline = self.deadline
        with xurrent:
            for pair in polling.plan_for_notes(active, quiet, self.reads):
                self._spend()
                self._read(self.integrations[pair.integration_id], pair, xurrent)
                self._keep_to_share(xurrent)

    def _spend(self) -> None:
        if self.reads_left <= 0:
            raise StopPart(f"this run's {self.reads} note reads are used; the next run continues")
        if time.monotonic() > self.deadline:
            raise StopPart(f"time budget of {TIME_BUDGET.total_seconds():.0f} s used up; the next run continues")
        wait = self.last_read + READ_GAP - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self.last_read = time.monotonic()
        self.reads_left -= 1
        self.report.reads += 1

    def _keep_to_share(self, xurrent) -> None:
        """Stop when the last answer says less than ``KEEP_FOR_OTHERS`` of the tenant's budget is left."""
        try:
            limit = int(xurrent.rate_limit["x-ratelimit-limit"])
            remaining = int(xurrent.rate_limit["x-ratelimit-remaining"])
        except (KeyError, ValueError):
            return
        if remaining < limit * KEEP_FOR_OTHERS:
            raise StopPart(f"Xurrent's budget is down to {remaining} of {limit} calls; the rest is left to the "
                        f"webhooks, the next run continues")

    def _read(self, integration: OutgoingIntegration, pair: LinkedPair, xurrent) -> None:
        try:
            with sync_context(integration_id=integration.pk, background=True):
                copied, left = xurrent_to_zenduty.sync_notes(integration, pair, xurrent, owner=self.owner,
                                                             now=self.now)
        except pairs.PairBusy:
            self.report.skipped_busy += 1
            return
        except errors.RateLimitedError as exc:
            if exc.service == "xurrent" and exc.status == 429:
                wait = exc.retry_after or BACKOFF.total_seconds()
                cache.set(BACKOFF_KEY.format(tenant_id=self.tenant.pk), time.time() + wait, timeout=int(wait) + 5)
                raise StopPart(f"Xurrent answered 429: backing off for {wait:.0f} s") from exc
            raise StopPart(f"{exc.service or 'an API'} asked to wait ({exc}); the next run continues") from exc
        except errors.RetryableError as exc:  # a 5xx or a timeout: the pair stays first in line
            raise StopPart(f"{exc.service or 'an API'} did not answer ({exc}); the next run continues") from exc
        except errors.PermanentError as exc:  # e.g. the request was deleted: the others go on
            # In the timeline, not in the pair's last_error: that one is the Zenduty poller's to set and clear.
            logger.warning("syncengine.note_sweep.pair-refused pair=%s: %s", pair.pk, exc)
            pairs.update(pair, xurrent_notes_read_at=timezone.now())
            _note(pair, f"Note sweep could not read or copy the request's notes: {exc}", once=True)
            return
        self.report.notes_copied += len(copied)
        self.report.pairs_read += 1
        if not left:  # a note left to its webhook: the pair stays first in line for the next run
            pairs.update(pair, xurrent_notes_read_at=timezone.now())


def _note(pair: LinkedPair, text: str, *, once: bool = False) -> None:
    if once and PairNote.objects.filter(pair=pair).order_by("-at", "-pk").values_list(
            "text", flat=True).first() == text:
        return
    PairNote.objects.create(pair=pair, text=text[:2000])
