"""The sync end to end, as ``make run`` runs it: lag per flow and outbound calls per synced change.

What: the portal's web server and worker started as scripts/run starts them
(scripts/supervise.py running gunicorn ``config.wsgi`` with 2 workers x 4
threads, and ``manage.py qcluster`` with ``Q_SYNC`` off), on the bench's
throw-away database (emptied first: the other benchmarks leave rows behind),
with ``SANDBOX_API_URL`` and ``PORTAL_BASE_URL`` pointing at that gunicorn on
127.0.0.1 and the sandbox's delivery thread on. The demo is seeded and its
bidirectional integration provisioned (``sandbox.demo.seed``, as ``make run``
does once the web server answers). Then people act in the simulators, through
the simulators' own operations (as tests/syncengine/test_sync.py's ``Demo``):

* incident → request: 20 incidents triggered on the Website service (priority
  P1), one every 0.5 s; lag = trigger until the request with that
  ``sourceID`` exists in the simulated Xurrent;
* acknowledged → ``in_progress`` and resolved → ``completed``: each of those
  incidents acknowledged, then resolved (one every 0.5 s); lag = change until
  the request shows the status;
* request → incident: 15 requests raised in Website (Production), one a
  second; lag = raise until the incident titled ``[Xurrent #<id>] …`` exists
  in the simulated Zenduty;
* completed → resolved: each of those requests completed (one every 0.5 s);
  lag = change until the incident is resolved.

Status changes come at 2 a second: each makes 3-4 jobs (the change's
webhooks and the echoes of the portal's own write: Xurrent sends
``request.update`` and ``request.status-changed`` for one status change, plus
``request.note-added`` for the resolution note), and on this 2-core machine
(shared with other work) 4 a second queued them up to p95 ~2 s.

The lag is the whole way: the simulator's commit, its webhook over HTTP to
gunicorn, intake, the job in the ORM broker (polled every 0.5 s by the
cluster, ``Q_CLUSTER["poll"]``), the worker's calls back to the simulators
over HTTP, and this process seeing the result (it polls the simulators' tables
every 50 ms). The simulators' changes made here are sent by the sandbox's
sender right after their commit, as its delivery thread does when woken after
a commit (this process has no such thread: it would outlive the bench and hold
a connection to a database about to be dropped); the changes the portal makes
through the API are sent by the thread in gunicorn, and their echoes are part
of the traffic.

Rates: Zenduty's documented limits (simulated per account, fixed
windows) that the portal's side meets are incident POST 15/min (and 1/s, a
limit the simulator keeps by default) and incident GET 30/min, and the portal keeps
to them itself before each call (connections.budget, each window lengthened by
``WINDOW_MARGIN`` for the time a call takes to arrive). So 15 requests 1.3 s
apart make 15 incident POSTs, within both limits with that margin; the 20
incidents cost 20 incident GETs (below), within 30 a minute. Status changes cost Zenduty nothing limited (PATCH). No call may be
refused with 429: a refused call would be retried a minute later and show as
an extra call and a failed lag target.

Calls: every ``OutboundCall`` row of each pair (reads, writes, retries),
counted once all deliveries, jobs and echoes of a phase have settled, as a
mean per pair. Each target is the least the flow needs as built
(syncengine/flows), so any extra call (a retry, a lookup, an echo that calls
out) fails it:

* incident → request: 2. Zenduty's webhook carries no priority, so with the
  demo's custom mapping one ``GET /api/incidents/<id>/``, then ``POST
  /requests``. The request's ``request.create`` echo costs nothing (the pair
  knows it).
* acknowledged / resolved → request: 2 each. ``GET /requests/:id`` (someone
  may have completed it meanwhile), then ``PATCH /requests/:id``. The echoes
  (``request.update``, ``request.status-changed``, ``request.note-added`` by
  the portal's person) cost nothing: the person is known from the connection
  check.
* request → incident: 3. ``GET /requests/:id`` (``request.create`` names no
  service instance or category), ``GET /requests/:id/notes`` (the first note
  becomes the summary), ``POST /api/incidents/``. The "triggered" echo costs
  nothing.
* completed → resolved: 3. Xurrent sends two events for one status change
  (``request.update`` and ``request.status-changed``) and the flow reads the
  request again for each (``GET /requests/:id``: the event's data is not
  trusted for the status), then one ``PATCH /api/incidents/<id>/``; the
  second event waits for the first's lease on the pair, reads, finds the
  incident resolved already and writes nothing. The
  "resolved" echo costs nothing. (Xurrent's limits are hourly and generous, as
  the flow's own comment says; a change that saves the second read lowers
  this target.)

Why the lag target, p95 < 2 s per flow: an operator looking at one tool
should find the other in step within a couple of seconds, and the chain has
fixed waits of about 0.5 s (the broker poll) plus four or five HTTP calls on
127.0.0.1; 2 s leaves room for a busy 2-core host (the issue's suggested
target, #13). With 15-20 samples, p95 is the second-largest (of 20) or the
largest (of 15) value. Peak RSS (VmHWM) of the largest process of the web
server and of the worker is information only.
"""
from __future__ import annotations

import re
import time
from collections import Counter

from bench import Row, percentile
from bench.stack import demo_stack, peak_rss_rows, settle

INCIDENTS = 20
INCIDENT_SPACING = 0.5  # s; 20 incident GETs in 10 s, within Zenduty's 30 a minute
REQUESTS = 15  # Zenduty allows 15 incident POSTs a minute
REQUEST_SPACING = 1.3  # s; and 1 a second, with the budget's margin (connections.budget.WINDOW_MARGIN)
STATUS_SPACING = 0.5  # s; status changes cost Zenduty only unlimited PATCHes
POLL = 0.05  # s between looks at the simulators' tables
ITEM_TIMEOUT = 30.0  # s; a change not synced by then breaks the bench
TARGET_P95_S = 2.0
MIN_CALLS = {"incident → request": 2, "acknowledged → request": 2, "resolved → request": 2,
             "request → incident": 3, "completed → incident": 3}
TITLE_MARKER = re.compile(r"^\[Xurrent #(\d+)\]")


def _timed(label: str, count: int, spacing: float, act, done) -> list[float]:
    """Start ``act(n)`` for n in range(count), ``spacing`` apart; ``done(waiting)`` names the finished ones.

    Returns each one's lag in seconds, from just before ``act`` to the first look that saw it done.
    """
    from sandbox import deliveries

    started: dict[int, float] = {}
    lags: dict[int, float] = {}
    next_at = time.monotonic()
    while len(lags) < count:
        now = time.monotonic()
        if len(started) < count and now >= next_at:
            n = len(started)
            started[n] = time.monotonic()
            act(n)
            deliveries.deliver_due()  # what the delivery thread does once woken after the commit
            next_at += spacing
        waiting = [n for n in started if n not in lags]
        if waiting:
            seen = time.monotonic()
            for n in done(waiting):
                lags[n] = seen - started[n]
            late = [n for n in waiting if n not in lags and seen - started[n] > ITEM_TIMEOUT]
            if late:
                raise AssertionError(f"{label}: {len(late)} not synced within {ITEM_TIMEOUT:g} s")
        time.sleep(POLL)
    return [lags[n] for n in range(count)]


def _calls_per_pair() -> Counter:
    from django.db.models import Count
    from django.db.models.functions import Coalesce

    from syncengine.models import OutboundCall

    # A call made before its event's pair was claimed (request.create's read) has no pair of its own.
    calls = OutboundCall.objects.annotate(of=Coalesce("pair", "inbound_event__pair")).filter(of__isnull=False)
    return Counter(dict(calls.values("of").annotate(n=Count("id")).values_list("of", "n")))


def _flow_rows(label: str, lags: list[float], calls: float) -> list[Row]:
    return [
        Row(f"sync: {label} p50", percentile(lags, 50), "s"),
        Row(f"sync: {label} p95", percentile(lags, 95), "s", TARGET_P95_S),
        Row(f"sync: {label} calls per pair", calls, "calls", MIN_CALLS[label], "<="),
    ]


class Phases:
    """The people acting in the simulators, and what the bench looks for."""

    def __init__(self, url: str):
        from sandbox.xurrent.conventions import Origin
        from sandbox.xurrent.models import Account, ServiceInstance
        from sandbox.zenduty.models import Service

        self.origin = Origin(f"{url}/sandbox/xurrent/xurrent.com")
        self.xurrent_account = Account.objects.get()
        self.person = self.xurrent_account.ui_person()
        self.website = Service.objects.get(name="Website")
        self.priority = self.website.team.priorities.get(name="P1")
        self.instance = ServiceInstance.objects.get(name="Website (Production)")
        self.incidents: list = []
        self.requests_for_incidents: list[int] = []
        self.requests: list = []
        self.incidents_for_requests: list[int] = []

    # -- Zenduty side --
    def trigger(self, n: int) -> None:
        from sandbox.zenduty import operations

        self.incidents.append(operations.create_incident(service=self.website, title=f"Checkout errors {n}",
                                                         summary="5xx above 5% for 10 minutes",
                                                         team_priority=self.priority))

    def requests_created(self, waiting: list[int]) -> list[int]:
        from sandbox.xurrent.models import Request

        by_source = {uid: n for n in waiting if (uid := self.incidents[n].unique_id)}
        found = dict(Request.objects.filter(sourceID__in=list(by_source)).values_list("sourceID", "pk"))
        return [by_source[uid] for uid in found]

    def set_incident_status(self, n: int, status: int) -> None:
        from sandbox.zenduty import operations

        incident = self.incidents[n]
        incident.refresh_from_db()
        operations.set_status(incident, status)

    def requests_in(self, waiting: list[int], status: str) -> list[int]:
        from sandbox.xurrent.models import Request

        ids = {self.requests_for_incidents[n]: n for n in waiting}
        return [ids[pk] for pk in Request.objects.filter(pk__in=list(ids), status=status).values_list("pk", flat=True)]

    # -- Xurrent side --
    def raise_request(self, n: int) -> None:
        from sandbox.xurrent import operations

        data = {"subject": f"Checkout is slow {n}", "category": "incident", "impact": "high",
                "service_instance_id": self.instance.pk, "note": "Customers report 30 s page loads"}
        self.requests.append(operations.create_request(self.xurrent_account, self.person, data, self.origin,
                                                       default_source="Xurrent"))

    def incidents_created(self, waiting: list[int]) -> list[int]:
        from sandbox.zenduty.models import Incident

        by_request = {str(self.requests[n].pk): n for n in waiting}
        titles = Incident.objects.filter(title__startswith="[Xurrent #").values_list("title", flat=True)
        marked = {match.group(1) for title in titles if (match := TITLE_MARKER.match(title))}
        return [n for request_id, n in by_request.items() if request_id in marked]

    def complete_request(self, n: int) -> None:
        from sandbox.xurrent import operations

        request = self.requests[n]
        request.refresh_from_db()
        operations.update_request(request, self.person, {"status": "completed", "completion_reason": "solved"},
                                  self.origin)

    def incidents_resolved(self, waiting: list[int]) -> list[int]:
        from sandbox.zenduty.models import Incident

        ids = {self.incidents_for_requests[n]: n for n in waiting}
        return [ids[pk] for pk in Incident.objects.filter(pk__in=list(ids), status=3).values_list("pk", flat=True)]

    def link_up(self) -> None:
        """Each incident's request and each request's incident, once created."""
        from sandbox.xurrent.models import Request
        from sandbox.zenduty.models import Incident

        by_source = dict(Request.objects.values_list("sourceID", "pk"))
        self.requests_for_incidents = [by_source[incident.unique_id] for incident in self.incidents]
        by_marker = {}
        for pk, title in Incident.objects.filter(title__startswith="[Xurrent #").values_list("pk", "title"):
            by_marker[TITLE_MARKER.match(title).group(1)] = pk
        self.incidents_for_requests = [by_marker[str(request.pk)] for request in self.requests]


def _run_flows(phases: Phases) -> list[Row]:
    from syncengine.models import EventStatus, InboundEvent

    rows: list[Row] = []
    before = _calls_per_pair()

    def phase(label: str, count: int, spacing: float, act, done) -> None:
        nonlocal before
        lags = _timed(label, count, spacing, act, done)
        settle()
        phases.link_up()
        after = _calls_per_pair()
        if len(after - before) > count:
            raise AssertionError(f"{label}: calls on {len(after - before)} pairs for {count} changes")
        rows.extend(_flow_rows(label, lags, sum((after - before).values()) / count))
        before = after

    phase("incident → request", INCIDENTS, INCIDENT_SPACING, phases.trigger, phases.requests_created)
    phase("acknowledged → request", INCIDENTS, STATUS_SPACING, lambda n: phases.set_incident_status(n, 2),
          lambda waiting: phases.requests_in(waiting, "in_progress"))
    phase("resolved → request", INCIDENTS, STATUS_SPACING, lambda n: phases.set_incident_status(n, 3),
          lambda waiting: phases.requests_in(waiting, "completed"))
    phase("request → incident", REQUESTS, REQUEST_SPACING, phases.raise_request, phases.incidents_created)
    phase("completed → incident", REQUESTS, STATUS_SPACING, phases.complete_request, phases.incidents_resolved)

    failed = list(InboundEvent.objects.filter(status__in=[EventStatus.FAILED, EventStatus.REJECTED])
                  .values_list("event_type", "reason")[:5])
    if failed:
        raise AssertionError(f"events failed or were rejected: {failed}")
    return rows


def run() -> list[Row]:
    from django.db.models import Max

    from sandbox.xurrent.models import AccessToken
    from syncengine.models import OutboundCall

    with demo_stack("sync") as stack:
        set_up_last = OutboundCall.objects.aggregate(last=Max("pk"))["last"] or 0
        began = time.monotonic()
        rows = _run_flows(Phases(stack.url))
        rows.append(Row("sync: flows, wall time", time.monotonic() - began, "s"))
        rows.append(Row("sync: calls without a pair (after set-up)", OutboundCall.objects.filter(
            pair__isnull=True, inbound_event__pair__isnull=True, pk__gt=set_up_last).count(), "calls"))
        # The OAuth token is cached (encrypted) in the database and shared by every process: one
        # token per tenant per token lifetime (an hour), however many web and worker processes ask.
        rows.append(Row("sync: Xurrent OAuth tokens issued (all processes, whole run)",
                        AccessToken.objects.count(), "tokens", 1, "=="))
        rows += peak_rss_rows(stack, "sync")
    return rows
