"""The sync dashboard's numbers: health overall and per integration over a window.

Everything is aggregated by the database, five to eight queries whatever
the number of history rows or integrations (the page's budget: 15 queries,
300 ms with a million history rows; ``bench/dashboard.py``):

1. the integrations, each with its newest event (a subquery on the
   ``(integration, received_at)`` index);
2. inbound events in the window by time bucket, integration and status:
   counts and the lag from arrival to processing, for the charts and the rows;
3. the backlog (events waiting: received, processing, retry scheduled) by integration, all time;
4. linked pairs by integration and state (open and closed), all time;
5. outbound calls in the window by integration and service, with their 429s.

Each reads only the entries of a covering index (``InboundEvent`` and
``OutboundCall`` ``Meta.indexes``), never the rows with their bodies.

Time buckets are whole multiples of the bucket size since the epoch, in UTC,
computed in SQL (:class:`EpochBucket`): Django's ``TruncHour`` runs a Python
function per row on SQLite, too slow for a month of a busy portal.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone as dt_timezone

from django.db import transaction
from django.db.models import Count, F, FloatField, IntegerField, Max, Min, OuterRef, Q, Subquery, Sum
from django.db.models.expressions import Func
from django.utils import timezone

from integrations.models import OutgoingIntegration
from syncengine.models import ActivityHour, EventStatus, InboundEvent, LinkedPair, OutboundCall, PairState, Source


@dataclass(frozen=True)
class Window:
    key: str
    label: str
    span: timedelta
    bucket_seconds: int

    @property
    def bucket_label(self) -> str:
        hours = self.bucket_seconds // 3600
        return "hour" if hours == 1 else f"{hours} hours"


# 24 hours and 7 days per hour; 30 days per 4 hours (180 bars, not 720: the page stays small).
WINDOWS = {w.key: w for w in (Window("24h", "last 24 hours", timedelta(hours=24), 3600),
                              Window("7d", "last 7 days", timedelta(days=7), 3600),
                              Window("30d", "last 30 days", timedelta(days=30), 4 * 3600))}
DEFAULT_WINDOW = "24h"

# Up to this span the events are counted directly (a day is a few thousand rows); longer windows
# read whole hours from the roll-up (ActivityHour) and only the hours since from the events.
LIVE_SPAN = timedelta(hours=24)
# Each roll-up recomputes this many days back: an event's status still changes after it arrived
# (retries, a replay), and a week's events take ~0.2 s to count.
ROLL_UP_DAYS = 8

WAITING = (EventStatus.RECEIVED, EventStatus.PROCESSING, EventStatus.RETRY_SCHEDULED)
# The events the sync worked on to an end; the failure rate is failed / these. Rejected
# deliveries (bad signature, malformed) are counted apart: they never reached the sync.
FINISHED = (EventStatus.PROCESSED, EventStatus.IGNORED, EventStatus.FAILED)
OPEN_PAIRS = (PairState.CREATING, PairState.LINKED)


class EpochBucket(Func):
    """``floor(epoch seconds of the expression / size)`` computed by the database itself."""

    output_field = IntegerField()

    def __init__(self, expression, size: int):
        super().__init__(expression)
        self.size = int(size)

    def as_sqlite(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        # SQLite stores datetimes as UTC text; strftime('%s') reads it natively.
        return f"(CAST(strftime('%%s', {sql}) AS INTEGER) / {self.size})", params

    def as_sql(self, compiler, connection, **extra):  # PostgreSQL
        sql, params = compiler.compile(self.source_expressions[0])
        return f"CAST(FLOOR(EXTRACT(EPOCH FROM {sql}) / {self.size}) AS BIGINT)", params


class SecondsBetween(Func):
    """``end - start`` in seconds (NULL when either is NULL), computed by the database."""

    output_field = FloatField()

    def as_sqlite(self, compiler, connection, **extra):
        end, start = (compiler.compile(e) for e in self.source_expressions)
        return f"((julianday({end[0]}) - julianday({start[0]})) * 86400.0)", end[1] + start[1]

    def as_sql(self, compiler, connection, **extra):  # PostgreSQL
        end, start = (compiler.compile(e) for e in self.source_expressions)
        return f"EXTRACT(EPOCH FROM ({end[0]} - {start[0]}))", end[1] + start[1]


def seconds_text(value: float | None) -> str:
    """``0.4 s``, ``12 s``, ``3.5 min``, ``2.1 h``; ``—`` for none."""
    if value is None:
        return "—"
    if value < 10:
        return f"{value:.1f} s"
    if value < 120:
        return f"{value:.0f} s"
    return f"{value / 60:.1f} min" if value < 7200 else f"{value / 3600:.1f} h"


def _lag():
    return SecondsBetween(F("processed_at"), F("received_at"))


@dataclass
class Health:
    """The numbers of one row of the dashboard (overall, or one integration)."""

    events: int = 0
    by_status: dict = field(default_factory=dict)
    last_event: datetime | None = None
    backlog: int = 0
    oldest_waiting: datetime | None = None
    lag_avg: float | None = None
    lag_max: float | None = None
    pairs_open: int = 0
    pairs_closed: int = 0
    pairs_failed: int = 0
    calls: dict = field(default_factory=dict)  # service -> {"calls": n, "429": n}
    _lag_weight: int = 0
    _lag_sum: float = 0.0

    @property
    def failed(self) -> int:
        return self.by_status.get(EventStatus.FAILED, 0)

    @property
    def rejected(self) -> int:
        return self.by_status.get(EventStatus.REJECTED, 0)

    @property
    def finished(self) -> int:
        return sum(self.by_status.get(s, 0) for s in FINISHED)

    @property
    def failure_rate(self) -> float | None:
        """Failed events as a share (0–1) of those the sync finished; None when it finished none."""
        return self.failed / self.finished if self.finished else None

    @property
    def failure_percent(self) -> str:
        rate = self.failure_rate
        return "—" if rate is None else f"{rate * 100:.1f} %"

    def _calls(self, service: str, key: str) -> int:
        return self.calls.get(service, {}).get(key, 0)

    # Per service, for the templates (which cannot index a dict by a variable).
    xurrent_calls = property(lambda self: self._calls(Source.XURRENT, "calls"))
    xurrent_429 = property(lambda self: self._calls(Source.XURRENT, "429"))
    zenduty_calls = property(lambda self: self._calls(Source.ZENDUTY, "calls"))
    zenduty_429 = property(lambda self: self._calls(Source.ZENDUTY, "429"))
    calls_total = property(lambda self: sum(v["calls"] for v in self.calls.values()))
    limited_total = property(lambda self: sum(v["429"] for v in self.calls.values()))
    lag_avg_text = property(lambda self: seconds_text(self.lag_avg))
    lag_max_text = property(lambda self: seconds_text(self.lag_max))

    def add_lag(self, total: float | None, maximum: float | None, count: int) -> None:
        """Fold in ``count`` lags adding up to ``total`` seconds, the longest ``maximum``."""
        if total is None or not count:
            return
        self._lag_sum += total
        self._lag_weight += count
        self.lag_avg = self._lag_sum / self._lag_weight
        self.lag_max = max(self.lag_max or 0, maximum or 0)


def _later(a, b):
    return max(x for x in (a, b) if x is not None) if (a or b) else None


def _earlier(a, b):
    return min(x for x in (a, b) if x is not None) if (a or b) else None


def summary(window: Window, integration: OutgoingIntegration | None = None, *, now: datetime | None = None) -> dict:
    """The dashboard of ``window`` ending ``now``, overall or for one integration.

    Returns ``{"since", "until", "window", "overall": Health, "rows": [(integration, Health)],
    "unrouted": Health, "buckets": [{"start", "counts": {status: n}, "lag_avg", "lag_max"}]}``.
    ``rows`` lists every integration (one, when ``integration`` is given); ``unrouted`` counts the
    events that matched no integration.
    """
    now = now or timezone.now()
    # Windows read from the hourly roll-up start on a whole hour.
    since = now - window.span if window.span <= LIVE_SPAN else floor_hour(now - window.span)
    size = window.bucket_seconds
    integrations = OutgoingIntegration.objects.select_related("tenant").order_by("zenduty_service_name", "pk")
    events = InboundEvent.objects.filter(received_at__gte=since, received_at__lte=now)
    rolled = ActivityHour.objects.filter(hour__gte=since)
    waiting = InboundEvent.objects.filter(status__in=WAITING)
    pairs = LinkedPair.objects.all()
    calls = OutboundCall.objects.filter(created_at__gte=since, created_at__lte=now)
    if integration is not None:
        integrations = integrations.filter(pk=integration.pk)
        events, waiting = events.filter(integration=integration), waiting.filter(integration=integration)
        pairs, calls = pairs.filter(integration=integration), calls.filter(integration=integration)
        rolled = rolled.filter(integration=integration)

    newest = InboundEvent.objects.filter(integration=OuterRef("pk")).order_by("-received_at").values("received_at")
    rows = {i.pk: (i, Health(last_event=i.newest_event))
            for i in integrations.annotate(newest_event=Subquery(newest[:1]))}
    unrouted = Health()
    overall = Health()

    def health_of(integration_id) -> Health:
        if integration_id is None:
            return unrouted
        row = rows.get(integration_id)
        return row[1] if row else Health()  # an integration deleted meanwhile: counted overall only

    # 2. events by bucket and status (the charts) and by integration and status (the rows): whole
    # hours the roll-up holds from it (two small GROUP BYs), the rest from the events' covering index.
    chart_groups, row_groups = [], []
    if window.span > LIVE_SPAN:
        last_rolled = ActivityHour.objects.aggregate(last=Max("hour"))["last"]
        if last_rolled is not None and last_rolled >= since:
            boundary = min(last_rolled + timedelta(hours=1), floor_hour(now))
            rolled = rolled.filter(hour__lt=boundary)
            sums = {"n": Sum("events"), "lag_count": Sum("lag_count"), "lag_sum": Sum("lag_sum"),
                    "lag_max": Max("lag_max")}
            chart_groups += rolled.annotate(bucket=EpochBucket("hour", size)).values("bucket", "status") \
                .annotate(**sums).order_by()
            row_groups += rolled.values("integration_id", "status").annotate(**sums).order_by()
            events = events.filter(received_at__gte=boundary)
    live = list(events.annotate(bucket=EpochBucket("received_at", size)).values("bucket", "integration_id", "status")
                .annotate(n=Count("pk"), lag_count=Count("processed_at"), lag_sum=Sum(_lag()), lag_max=Max(_lag()),
                          last=Max("received_at"))
                .order_by())
    buckets: dict[int, dict] = {}
    for row in chart_groups + live:
        entry = buckets.setdefault(row["bucket"], {"counts": {}, "lag": Health()})
        entry["counts"][row["status"]] = entry["counts"].get(row["status"], 0) + row["n"]
        if row["status"] == EventStatus.PROCESSED:
            entry["lag"].add_lag(row["lag_sum"], row["lag_max"], row["lag_count"])
    for row in row_groups + live:
        status, n = row["status"], row["n"]
        for health in (health_of(row["integration_id"]), overall):
            health.events += n
            health.by_status[status] = health.by_status.get(status, 0) + n
            health.last_event = _later(health.last_event, row.get("last"))  # hours rolled up have none
            if status == EventStatus.PROCESSED:
                health.add_lag(row["lag_sum"], row["lag_max"], row["lag_count"])

    # 3. backlog
    for row in waiting.values("integration_id").annotate(n=Count("pk"), oldest=Min("received_at")).order_by():
        for health in (health_of(row["integration_id"]), overall):
            health.backlog += row["n"]
            health.oldest_waiting = _earlier(health.oldest_waiting, row["oldest"])

    # 4. pairs
    for row in pairs.values("integration_id", "state").annotate(n=Count("pk")).order_by():
        for health in (health_of(row["integration_id"]), overall):
            if row["state"] in OPEN_PAIRS:
                health.pairs_open += row["n"]
            elif row["state"] == PairState.CLOSED:
                health.pairs_closed += row["n"]
            elif row["state"] == PairState.FAILED:
                health.pairs_failed += row["n"]
            # Unlinked by hand: no longer a pair of the sync, neither open, closed nor failed.

    # 5. calls and 429s per service
    for row in (calls.values("integration_id", "service")
                .annotate(n=Count("pk"), limited=Count("pk", filter=Q(status=429))).order_by()):
        for health in (health_of(row["integration_id"]), overall):
            entry = health.calls.setdefault(row["service"], {"calls": 0, "429": 0})
            entry["calls"] += row["n"]
            entry["429"] += row["limited"] or 0

    # An event's last_event (all time) beats the window's newest for the rows; overall likewise.
    for _, health in rows.values():
        overall.last_event = _later(overall.last_event, health.last_event)

    # Every bucket from the one holding ``since`` to the one holding ``now``, empty ones included.
    first, last = int(since.timestamp()) // size, int(now.timestamp()) // size
    chart = [{"start": datetime.fromtimestamp(b * size, tz=dt_timezone.utc),
              "counts": buckets[b]["counts"] if b in buckets else {},
              "lag_avg": buckets[b]["lag"].lag_avg if b in buckets else None,
              "lag_max": buckets[b]["lag"].lag_max if b in buckets else None}
             for b in range(first, last + 1)]
    return {"since": since, "until": now, "window": window, "overall": overall, "rows": list(rows.values()),
            "unrouted": unrouted, "buckets": chart, "services": [s for s in Source]}


def floor_hour(value: datetime) -> datetime:
    return value.replace(minute=0, second=0, microsecond=0)


def roll_up(*, now: datetime | None = None) -> int:
    """Recompute the hourly roll-up (``ActivityHour``) of the last ``ROLL_UP_DAYS`` days' whole hours.

    The first run rolls up all the history; a run after a pause starts from the last hour rolled
    up. Returns the number of rows written. Scheduled every 10 minutes (migration 0015).
    """
    now = now or timezone.now()
    end = floor_hour(now)
    start = end - timedelta(days=ROLL_UP_DAYS)
    last = ActivityHour.objects.aggregate(last=Max("hour"))["last"]
    if last is None:
        oldest = InboundEvent.objects.order_by("received_at").values_list("received_at", flat=True).first()
        start = floor_hour(oldest) if oldest else end
    elif last < start:
        start = last
    counted = (InboundEvent.objects.filter(received_at__gte=start, received_at__lt=end)
               .annotate(bucket=EpochBucket("received_at", 3600)).values("bucket", "integration_id", "status")
               .annotate(n=Count("pk"), lag_count=Count("processed_at"), lag_sum=Sum(_lag()), lag_max=Max(_lag()))
               .order_by())
    hours = [ActivityHour(hour=datetime.fromtimestamp(row["bucket"] * 3600, tz=dt_timezone.utc),
                          integration_id=row["integration_id"], status=row["status"], events=row["n"],
                          lag_count=row["lag_count"], lag_sum=row["lag_sum"] or 0, lag_max=row["lag_max"])
             for row in counted]
    with transaction.atomic():
        ActivityHour.objects.filter(hour__gte=start, hour__lt=end).delete()
        ActivityHour.objects.bulk_create(hours, batch_size=1000)
    return len(hours)
