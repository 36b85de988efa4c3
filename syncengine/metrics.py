"""Prometheus metrics, read from the portal's own history tables at scrape time.

Why a collector over the tables rather than counters kept in each process:
every delivery (``InboundEvent``, stored before it is acknowledged), every
job's outcome (the event's status) and every outbound call (``OutboundCall``)
is already a row, written by whichever gunicorn worker or qcluster worker
did the work, on whichever host. Counting rows at scrape time therefore
counts across all web and worker processes and all hosts, survives restarts,
and needs no shared directory, no cleanup of dead processes' files
(prometheus-client's multiprocess mode) and no instrumentation in the hot
paths. The cost is a handful of aggregate queries per scrape (one GROUP BY
per table, over the retained history), cheap at a scrape every 15-60 s.

The counters stay monotonic when the daily prune deletes old rows: the prune
adds what it deletes to ``PrunedTally`` (:func:`tally_pruned`) in the same
transaction, and the counters are the rows plus those totals.

Served at ``/metrics`` (``config.metrics``), only with ``METRICS_TOKEN``.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from typing import Iterable

from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from syncengine.models import EventStatus, InboundEvent, OutboundCall, PrunedTally

# Upper bounds (seconds) of the sync-lag histogram: from "as fast as the broker polls" to "retried for a while".
LAG_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
# Final outcomes of a job, and the statuses of events still waiting or running.
JOB_OUTCOMES = (EventStatus.PROCESSED, EventStatus.IGNORED, EventStatus.FAILED)
WAITING = (EventStatus.RECEIVED, EventStatus.PROCESSING, EventStatus.RETRY_SCHEDULED)

# Counter name → its label names (the order of PrunedTally.labels).
COUNTERS = {
    "portal_webhook_deliveries_received": ("source",),
    "portal_webhook_deliveries_rejected": ("source",),
    "portal_sync_jobs": ("source", "outcome"),
    "portal_outbound_calls": ("service", "status"),
    "portal_outbound_rate_limited": ("service",),
}
LAG = "portal_sync_lag_seconds"  # histogram: _bucket (labels source, le), _count and _sum (label source)

Totals = dict[tuple[str, tuple[str, ...]], float]


def history_totals(events=None, calls=None) -> Totals:
    """The counters' values over ``events`` and ``calls`` (default: every row), keyed by (name, label values)."""
    events = InboundEvent.objects.all() if events is None else events
    calls = OutboundCall.objects.all() if calls is None else calls
    totals: Totals = defaultdict(float)
    for row in events.values("source", "status").annotate(n=Count("id"), repeats=Sum("duplicates")).order_by():
        source, status, n = row["source"], row["status"], row["n"]
        # A repeated delivery is acknowledged and counted on the row it repeats.
        totals[("portal_webhook_deliveries_received", (source,))] += n + (row["repeats"] or 0)
        if status == EventStatus.REJECTED:
            totals[("portal_webhook_deliveries_rejected", (source,))] += n
        elif status in JOB_OUTCOMES:
            totals[("portal_sync_jobs", (source, status))] += n
    lag = ExpressionWrapper(F("processed_at") - F("received_at"), output_field=DurationField())
    buckets = {f"le_{i}": Count("id", filter=Q(processed_at__lte=F("received_at") + timedelta(seconds=bound)))
               for i, bound in enumerate(LAG_BUCKETS)}
    synced = events.filter(status=EventStatus.PROCESSED, processed_at__isnull=False)
    for row in synced.values("source").annotate(n=Count("id"), lag=Sum(lag), **buckets).order_by():
        source = row["source"]
        for i, bound in enumerate(LAG_BUCKETS):
            totals[(f"{LAG}_bucket", (source, _bound(bound)))] += row[f"le_{i}"]
        totals[(f"{LAG}_bucket", (source, "+Inf"))] += row["n"]
        totals[(f"{LAG}_count", (source,))] += row["n"]
        totals[(f"{LAG}_sum", (source,))] += _seconds(row["lag"])
    for row in calls.values("service", "status_class").annotate(
            n=Count("id"), limited=Count("id", filter=Q(status=429))).order_by():
        totals[("portal_outbound_calls", (row["service"], row["status_class"]))] += row["n"]
        if row["limited"]:
            totals[("portal_outbound_rate_limited", (row["service"],))] += row["limited"]
    return totals


def tally_pruned(*, events=None, calls=None) -> None:
    """Add what ``events`` / ``calls`` (about to be deleted) counted to ``PrunedTally``.

    Call inside the transaction that deletes them, so that the counters
    neither drop (deleted, not tallied) nor double (tallied, not deleted).
    """
    empty = InboundEvent.objects.none(), OutboundCall.objects.none()
    totals = history_totals(events if events is not None else empty[0], calls if calls is not None else empty[1])
    for (metric, labels), value in totals.items():
        if not value:
            continue
        row, _ = PrunedTally.objects.select_for_update().get_or_create(metric=metric, labels=",".join(labels))
        PrunedTally.objects.filter(pk=row.pk).update(value=F("value") + value)


def current_totals() -> Totals:
    """The counters now: the rows in the history plus what the prune took away."""
    totals = history_totals()
    for metric, labels, value in PrunedTally.objects.values_list("metric", "labels", "value"):
        totals[(metric, tuple(labels.split(",")) if labels else ())] += value
    return totals


class PortalCollector:
    """A prometheus-client collector: every metric is read from the database when scraped."""

    def collect(self) -> Iterable:
        # No transaction: on SQLite every transaction takes the write lock at BEGIN (IMMEDIATE, see
        # settings), and a scrape must not hold up the receivers; a row landing between two queries
        # only shows in the next scrape.
        totals = current_totals()
        waiting = dict(InboundEvent.objects.filter(status__in=WAITING).values("status")
                       .annotate(n=Count("id")).order_by().values_list("status", "n"))
        oldest = InboundEvent.objects.filter(status__in=WAITING).aggregate(at=Min("received_at"))["at"]
        yield from _counters(totals)
        yield _histogram(totals)
        events = GaugeMetricFamily("portal_sync_events_waiting",
                                   "Stored events whose job has not finished, by status.", labels=["status"])
        for status in WAITING:
            events.add_metric([status], waiting.get(status, 0))
        yield events
        yield GaugeMetricFamily("portal_sync_oldest_waiting_seconds",
                                "Age of the oldest event whose job has not finished (0 when none): the lag now.",
                                value=(timezone.now() - oldest).total_seconds() if oldest else 0.0)
        queue = _queue_length()
        if queue is not None:
            yield GaugeMetricFamily("portal_queue_length", "Jobs waiting in the django-q2 broker.", value=queue)


HELP = {
    "portal_webhook_deliveries_received": "Webhook deliveries received for a known integration or tenant "
                                          "(stored, repeated or rejected).",
    "portal_webhook_deliveries_rejected": "Webhook deliveries refused (bad signature, malformed, too large, …).",
    "portal_sync_jobs": "Stored events finished, by outcome (processed, ignored, failed).",
    "portal_outbound_calls": "Calls made to Xurrent and Zenduty, by service and status class (none: no answer).",
    "portal_outbound_rate_limited": "Calls answered 429 (rate limited), by service.",
}


def _counters(totals: Totals):
    for name, label_names in COUNTERS.items():
        family = CounterMetricFamily(name, HELP[name], labels=list(label_names))
        for (metric, labels), value in sorted(totals.items()):
            if metric == name:
                family.add_metric(list(labels), value)
        yield family


def _histogram(totals: Totals) -> HistogramMetricFamily:
    family = HistogramMetricFamily(LAG, "Seconds from a delivery's arrival to its job's success.", labels=["source"])
    sources = sorted({labels[0] for (metric, labels) in totals if metric == f"{LAG}_count"})
    for source in sources:
        buckets = [(_bound(bound), totals[(f"{LAG}_bucket", (source, _bound(bound)))]) for bound in LAG_BUCKETS]
        buckets.append(("+Inf", totals[(f"{LAG}_bucket", (source, "+Inf"))]))
        family.add_metric([source], buckets, sum_value=totals[(f"{LAG}_sum", (source,))])
    return family


def _queue_length() -> int | None:
    from django_q.brokers import get_broker

    try:
        return get_broker().queue_size()
    except Exception:  # noqa: BLE001 - a broker that does not answer leaves the gauge out
        return None


def _bound(bound: float) -> str:
    return f"{bound:g}"


def _seconds(value) -> float:
    """A summed duration: a timedelta, or microseconds where the backend returns a number."""
    if value is None:
        return 0.0
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value) / 1_000_000
