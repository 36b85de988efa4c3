"""The Zenduty poller over 500 open linked pairs, within Zenduty's budget, on a 10× time scale.

What: the demo seeded and its integration provisioned against the simulators,
served over real HTTP by a thread (``bench.pagination.live_server``); 500
incidents on the Website service, each linked to a request (``LinkedPair``
rows, as the sync leaves them). Then the poller (``syncengine.polling.run``)
runs once a (scaled) minute, as its schedule does, while people write notes
in Zenduty: every minute one on each of ``ACTIVE`` pairs people are working
on, and in the first minutes ``QUIET_NOTES`` on random quiet pairs. It runs
until every pair has been polled once since the start (a full sweep) and
every note has reached its request.

Time scale: ``SCALE`` = 10. The simulated Zenduty's rate-limit windows
(incident GET 30 a minute and 3 a second) and the portal's own budget
(``connections.budget``, the same limits) are both 10× shorter — 30 reads
per 6 s and 3 per 0.1 s — and so are the poller's period (a run every 6 s),
its time budget and its intervals. The counts are Zenduty's real ones; every
duration measured is multiplied by ``SCALE`` and reported in real-world
minutes. A localhost call takes a few ms, so the shortened windows still hold
(the budget's arrival margin is scaled to 0.05 s).

Measured: the full sweep's length; note lag (note written in Zenduty → its
copy recorded on the request) p50/p95/max for active and quiet pairs;
Zenduty incident reads per minute; 429s answered by the simulator (every
call is an ``OutboundCall`` row with its status). Targets: 0 429s; active
pairs' lag at most 2 minutes (seen by the next run or the one after); the
sweep and a quiet pair's lag at most the poller's stated worst case (a third
of a run's 19 note reads is the quiet pairs': ceil(495 / 6) = 83 minutes,
plus a run; with few active pairs it is about 36, the measured value shows
which); Zenduty incident reads per minute at most its 30. A pair whose
quiet note was copied counts as active for 30 minutes, as in production.
"""
from __future__ import annotations

import math
import random
import time
from contextlib import contextmanager
from datetime import timedelta

from django.test.utils import override_settings
from django.utils import timezone

from bench import Row
from bench.pagination import live_server
from bench.timescale import scaled_rate_limits

SCALE = 10
PAIRS = 500
ACTIVE = 5
QUIET_NOTES = 15
READS_PER_RUN = 24
MAX_MINUTES = 90  # scaled minutes: a safety stop


@contextmanager
def _time_scale(scale: int):
    """Zenduty's windows, the portal's budget and the poller's clock, all ``scale``× faster."""
    from syncengine import polling

    saved = (polling.TIME_BUDGET, polling.MIN_INTERVAL, polling.BACKOFF)
    polling.TIME_BUDGET = saved[0] / scale
    polling.MIN_INTERVAL = saved[1] / scale
    polling.BACKOFF = saved[2] / scale
    try:
        with scaled_rate_limits(scale):
            yield
    finally:
        polling.TIME_BUDGET, polling.MIN_INTERVAL, polling.BACKOFF = saved


def _seed(url: str):
    """The demo, 500 incidents and their requests, linked. Returns (integration, world, pairs)."""
    from integrations.models import OutgoingIntegration
    from sandbox import demo
    from sandbox.xurrent import demo as xurrent_demo
    from sandbox.xurrent import operations as xurrent_ops
    from sandbox.xurrent.conventions import Origin
    from sandbox.xurrent.models import ServiceInstance
    from sandbox.zenduty import demo as zenduty_demo
    from sandbox.zenduty import operations as zenduty_ops
    from syncengine.models import LinkedPair, PairState

    world = zenduty_demo.seed()
    account = xurrent_demo.seed()
    demo.seed(check_connections=False)
    # The demo's integration (benches run before this one leave integrations of their own).
    integration = OutgoingIntegration.objects.get(zenduty_service_name=demo.DEMO_SERVICE,
                                                  service_instance_name=demo.DEMO_SERVICE_INSTANCE)
    origin = Origin(f"{url}/sandbox/xurrent/xurrent.com")
    person = account.ui_person()
    instance = ServiceInstance.objects.get(name="Website (Production)")
    p3 = next(p for p in world.priorities if p.name == "P3")
    rows = []
    for n in range(PAIRS):
        incident = zenduty_ops.create_incident(service=world.website, title=f"Bench incident {n}", team_priority=p3)
        request = xurrent_ops.create_request(account, person, {
            "subject": f"Bench incident {n}", "category": "incident", "impact": "medium",
            "service_instance_id": instance.pk, "source": "Zenduty", "sourceID": incident.unique_id}, origin,
            default_source="Zenduty")
        rows.append(LinkedPair(integration=integration, tenant=integration.tenant,
                               zenduty_account=integration.zenduty_account, origin="zenduty",
                               state=PairState.LINKED, xurrent_request_id=str(request.pk),
                               zenduty_incident_unique_id=incident.unique_id,
                               zenduty_incident_number=incident.incident_number, zenduty_status=1,
                               xurrent_status=request.status, zenduty_priority=str(p3.unique_id),
                               xurrent_impact="medium"))
    return integration, world, LinkedPair.objects.bulk_create(rows)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] if ordered else 0.0


def run() -> list[Row]:
    from django.core.cache import cache

    from sandbox.zenduty import operations as zenduty_ops
    from sandbox.zenduty.models import Incident
    from syncengine import polling
    from syncengine.models import LinkedPair, OutboundCall, SyncedNote

    minute = 60.0 / SCALE
    with live_server() as url, override_settings(PORTAL_BASE_URL=url, SYNC_POLL_READS_PER_MINUTE=READS_PER_RUN,
                                                 SYNC_POLL_ACTIVE_MINUTES=math.ceil(30 / SCALE)), \
            _time_scale(SCALE):
        integration, world, pairs = _seed(url)
        rng = random.Random(11)
        active = pairs[:ACTIVE]
        quiet = pairs[ACTIVE:]
        LinkedPair.objects.filter(pk__in=[p.pk for p in active]).update(active_at=timezone.now())
        incidents = {i.unique_id: i for i in Incident.objects.all()}
        written: dict[str, tuple[str, float]] = {}  # note unique_id → (kind, bench time written)
        started_at = timezone.now()
        start = time.monotonic()
        minutes = 0
        while minutes < MAX_MINUTES:
            tick = start + minutes * minute
            time.sleep(max(0.0, tick - time.monotonic()))
            for pair in active:
                note = zenduty_ops.add_note(incidents[pair.zenduty_incident_unique_id], world.ui_user,
                                            f"minute {minutes}: still on it")
                written[note.unique_id] = ("active", timezone.now())
            if minutes < 5:
                for pair in rng.sample(quiet, QUIET_NOTES // 5):
                    note = zenduty_ops.add_note(incidents[pair.zenduty_incident_unique_id], world.ui_user,
                                                f"minute {minutes}: a quiet update")
                    written[note.unique_id] = ("quiet", timezone.now())
            cache.delete(polling.LOCK_KEY)
            polling.run()
            minutes += 1
            swept = not LinkedPair.objects.filter(polled_at__isnull=True).exists() and \
                LinkedPair.objects.filter(polled_at__lt=started_at).count() == 0
            # Done when the sweep is complete and every note older than two (scaled) minutes reached Xurrent
            # (active pairs get a note every minute: the newest are always on their way).
            settled = [uid for uid, (_, at) in written.items() if at < timezone.now() - timedelta(seconds=2 * minute)]
            copied = SyncedNote.objects.filter(zenduty_note_id__in=settled).exclude(xurrent_note_id="").count()
            if swept and copied == len(settled):
                break
        elapsed = time.monotonic() - start
        synced = dict(SyncedNote.objects.filter(zenduty_note_id__in=list(written))
                      .values_list("zenduty_note_id", "synced_at"))
        lags: dict[str, list[float]] = {"active": [], "quiet": []}
        for unique_id, (kind, at) in written.items():
            if synced.get(unique_id) is not None:  # bench seconds × SCALE → real-world minutes
                lags[kind].append((synced[unique_id] - at).total_seconds() * SCALE / 60)
        calls = OutboundCall.objects.filter(service="zenduty", created_at__gte=started_at)
        reads = calls.filter(url__contains="/api/incidents/").exclude(method="PATCH").exclude(
            method="POST", url__endswith="/note/").count()
        refused = calls.filter(status=429).count()
        real_minutes = elapsed * SCALE / 60
        cutoff = timezone.now() - timedelta(seconds=2 * minute)
        missing = sum(1 for uid, (_, at) in written.items() if at < cutoff and synced.get(uid) is None)
        # The poller's stated worst case for a quiet pair: a third of a run's note reads is theirs.
        note_reads = READS_PER_RUN - math.ceil(PAIRS / 100)
        bound = math.ceil((PAIRS - ACTIVE) / (note_reads - math.ceil(note_reads * 2 / 3))) + 1
        rows = [
            Row(f"poll: full sweep of {PAIRS} open pairs ({ACTIVE} active, 1:{SCALE} time)", real_minutes, "min",
                target=bound + 1, check="<="),
            Row("poll: notes older than 2 min not copied at the end", missing, "", target=0, check="=="),
            Row("poll: Zenduty 429s (simulator)", refused, "", target=0, check="=="),
            Row("poll: Zenduty incident reads per minute", reads / real_minutes if real_minutes else 0, "/min",
                target=30, check="<="),
            Row("poll: Zenduty calls (all)", calls.count(), ""),
        ]
        for kind, target in (("active", 2.0), ("quiet", float(bound + 1))):
            values = lags[kind]
            rows += [Row(f"poll: note lag, {kind} pairs, p50", _percentile(values, 0.5), "min"),
                     Row(f"poll: note lag, {kind} pairs, p95", _percentile(values, 0.95), "min"),
                     Row(f"poll: note lag, {kind} pairs, max", max(values, default=0.0), "min", target=target,
                         check="<=")]
        rows += [Row("poll: notes copied from active pairs", len(lags["active"]), ""),
                 Row("poll: notes copied from quiet pairs", len(lags["quiet"]), "")]
        return rows
