"""Every flow of the sync × every fault on the way, end to end through both simulators.

Each cell arms one fault, lets people act in the simulators, then lets the portal's own recovery run as
it would in production — scheduled retries come due, a dead worker's lease runs out, the reconciliation
sweep runs — and counts, in the simulators' own records, exactly one counterpart per source record in
the state its source has reached, with no event left failed or waiting.

Flows: an incident becomes a request; a request becomes an incident; an incident acknowledged moves its
request to in progress; acknowledged then resolved completes it; a request completed resolves its
incident.

Faults: the source's webhook deliveries duplicated, reordered, dropped or delayed (arriving after the
sweep has repaired what they would have done); the critical write of the flow answered with a 500, a
504 after a gateway timeout, or a 429; a timeout before anything was sent; a timeout after the write
was done (its answer lost); the worker killed right after the write was done.

The cast is the demo of ``test_sync.py`` (Website ⇄ Website (Production), bidirectional).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable
from urllib.parse import urlsplit

import pytest
import requests
from django.db.models import F
from django.utils import timezone

from connections import http
from integrations.models import OutgoingIntegration
from syncengine import housekeeping, jobs, reconcile
from syncengine.models import CLAIMABLE, EventStatus, InboundEvent, LinkedPair, PairState
from tests.syncengine.test_sync import Demo

pytestmark = pytest.mark.django_db(transaction=True)


class WorkerKilled(BaseException):
    """The worker process dies (SIGKILL): nothing in the job gets to handle it."""


# -- flows -----------------------------------------------------------------------------------------
@dataclass
class Flow:
    """What people do, on which side it starts, the portal's critical write, and what must hold at the end."""

    name: str
    source: str                     # the service whose webhooks carry the change
    write: tuple[str, str, str]     # (service, method, path regex) of the write that makes the change
    prefix: str                     # the simulator's path prefix of that write (for its API faults)
    act: Callable[[Demo, dict], None]
    check: Callable[[Demo, dict], None]
    setup: Callable[[Demo, dict], None] = lambda demo, ctx: None


def _incident_setup(demo, ctx):
    ctx["incident"] = demo.trigger()
    demo.settle()
    [ctx["request"]] = demo.requests()


def _request_setup(demo, ctx):
    ctx["request"] = demo.raise_request()
    demo.settle()
    [ctx["incident"]] = demo.incidents()


def _one_request_for(demo, ctx):
    incident = ctx["incident"]
    mine = [r for r in demo.requests() if r.sourceID == incident.unique_id]
    assert len(mine) == 1 and len(demo.requests()) == 1, [(r.pk, r.sourceID) for r in demo.requests()]
    return mine[0]


def _one_incident_for(demo, ctx):
    marker = f"[Xurrent #{ctx['request'].pk}]"
    mine = [i for i in demo.incidents() if i.title.startswith(marker)]
    assert len(mine) == 1 and len(demo.incidents()) == 1, [i.title for i in demo.incidents()]
    return mine[0]


def _check_created_request(demo, ctx):
    request = _one_request_for(demo, ctx)
    assert request.status not in ("in_progress", "completed"), request.status
    pair = LinkedPair.objects.get()
    assert (pair.state, pair.xurrent_request_id) == (PairState.LINKED, str(request.pk))


def _check_created_incident(demo, ctx):
    incident = _one_incident_for(demo, ctx)
    assert incident.status == 1
    pair = LinkedPair.objects.get()
    assert (pair.state, pair.zenduty_incident_unique_id) == (PairState.LINKED, incident.unique_id)


def _check_request_status(status):
    def check(demo, ctx):
        request = _one_request_for(demo, ctx)
        assert request.status == status, request.status
        assert LinkedPair.objects.count() == 1
    return check


def _check_incident_resolved(demo, ctx):
    incident = _one_incident_for(demo, ctx)
    assert incident.status == 3, incident.status
    assert LinkedPair.objects.get().state == PairState.CLOSED


def _trigger(demo, ctx):
    ctx["incident"] = demo.trigger()


def _raise(demo, ctx):
    ctx["request"] = demo.raise_request()


def _acknowledge(demo, ctx):
    demo.set_incident_status(ctx["incident"], 2)


def _acknowledge_and_resolve(demo, ctx):
    demo.set_incident_status(ctx["incident"], 2)
    demo.set_incident_status(ctx["incident"], 3)


def _complete(demo, ctx):
    demo.change_request(ctx["request"], status="completed", completion_reason="solved")


FLOWS = [
    Flow("incident→request", "zenduty", ("xurrent", "POST", r"/v1/requests$"), "/v1/requests",
         _trigger, _check_created_request),
    Flow("request→incident", "xurrent", ("zenduty", "POST", r"/api/incidents/$"), "/api/incidents/",
         _raise, _check_created_incident),
    Flow("acknowledged→in progress", "zenduty", ("xurrent", "PATCH", r"/v1/requests/\d+$"), "/v1/requests/",
         _acknowledge, _check_request_status("in_progress"), _incident_setup),
    Flow("resolved→completed", "zenduty", ("xurrent", "PATCH", r"/v1/requests/\d+$"), "/v1/requests/",
         _acknowledge_and_resolve, _check_request_status("completed"), _incident_setup),
    Flow("completed→resolved", "xurrent", ("zenduty", "PATCH", r"/api/incidents/\w+/$"), "/api/incidents/",
         _complete, _check_incident_resolved, _request_setup),
]


# -- faults ----------------------------------------------------------------------------------------
@dataclass
class Fault:
    """How one fault is armed before people act, and what it needs of the run."""

    name: str
    deliveries: str = ""     # a sandbox delivery fault on the flow's source service
    count: int = 1
    api: str = ""            # a sandbox API fault on the flow's critical write
    seam: str = ""           # a failure at the HTTP seam on the critical write: unsent, lost, killed
    sweep_first: bool = False  # deliver held deliveries only after a sweep
    options: dict = field(default_factory=dict)


FAULTS = [
    Fault("none"),
    Fault("duplicated deliveries", deliveries="duplicate_delivery", count=10),
    Fault("reordered deliveries", deliveries="reorder_delivery", count=1),
    Fault("dropped deliveries", deliveries="drop_delivery", count=10),
    Fault("delayed deliveries", deliveries="reorder_delivery", count=10, sweep_first=True),
    Fault("500 on the write", api="error_500"),
    Fault("504 gateway timeout on the write", api="timeout", options={"latency_ms": 1}),
    Fault("429 on the write", api="rate_limit_429", options={"retry_after": 1}),
    Fault("timeout before the write was sent", seam="unsent"),
    Fault("timeout after the write (answer lost)", seam="lost"),
    Fault("worker killed right after the write", seam="killed"),
]


class Seam:
    """The one HTTP seam, failing the flow's critical write once in the way the fault says."""

    def __init__(self, flow: Flow, how: str):
        self.service, self.method, self.pattern = flow.write
        self.how = how
        self.fired = False
        self.real_send = http.send

    def matches(self, method: str, url: str) -> bool:
        path = urlsplit(url).path
        return (method == self.method and f"/sandbox/{self.service}/" in path
                and re.search(self.pattern, path) is not None)

    def send(self, session, method, url, **kwargs):
        if self.fired or not self.matches(method, url):
            return self.real_send(session, method, url, **kwargs)
        self.fired = True
        if self.how == "unsent":
            raise requests.ReadTimeout("timed out before an answer (the request never reached the service)")
        self.real_send(session, method, url, **kwargs)  # done on the other side
        if self.how == "lost":
            raise requests.ReadTimeout("timed out waiting for the answer")
        raise WorkerKilled()


# -- the portal's own recovery, as time passes -----------------------------------------------------
def process_waiting() -> None:
    """Scheduled retries and replays come due: run them, as django-q2's scheduler would."""
    for pk in InboundEvent.objects.filter(status__in=CLAIMABLE).order_by("pk").values_list("pk", flat=True):
        jobs.process_inbound_event(pk)


def time_passes() -> None:
    """Leases run out (a dead worker's pair and event), and the stalled-event sweep runs."""
    LinkedPair.objects.filter(lease_until__isnull=False).update(lease_until=timezone.now() - timedelta(seconds=1))
    housekeeping.recover_stalled_events(now=timezone.now() + housekeeping.event_lease() + timedelta(seconds=1))


def sweep() -> None:
    """The reconciliation sweep, a few minutes on (what was created just now is old enough to repair)."""
    reconcile.run(now=timezone.now() + timedelta(minutes=2))


def converge(demo: Demo, rounds: int = 4) -> None:
    for _ in range(rounds):
        demo.settle()
        time_passes()
        process_waiting()
        demo.settle()
        sweep()
    demo.settle()


# -- the matrix --------------------------------------------------------------------------------------
@pytest.fixture
def demo(sandbox, monkeypatch):
    from sandbox import faults

    monkeypatch.setattr(faults, "_sleep", lambda seconds: None)
    monkeypatch.setattr(jobs, "BUSY_WAIT_SECONDS", 0.3)  # a dead worker's pair: wait briefly, then retry later
    demo = Demo(sandbox)
    # The integration has been there for a while (records created since are its to sync).
    OutgoingIntegration.objects.filter(pk=demo.integration.pk).update(created_at=F("created_at") - timedelta(hours=1))
    return demo


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
@pytest.mark.parametrize("flow", FLOWS, ids=[f.name for f in FLOWS])
def test_each_flow_survives_each_fault_with_exactly_one_counterpart(demo, flow, fault):
    from sandbox import faults

    ctx: dict = {}
    flow.setup(demo, ctx)
    if fault.deliveries:
        faults.inject(flow.source, fault.deliveries, count=fault.count)
    if fault.api:
        service, method, _ = flow.write
        faults.inject(service, fault.api, method=method, path_prefix=flow.prefix, **fault.options)
    seam = Seam(flow, fault.seam)
    queued: list[int] = []
    with pytest.MonkeyPatch.context() as patch:
        if fault.seam:
            patch.setattr(http, "send", seam.send)
        if fault.seam == "killed":
            # "Our" worker below takes the jobs, so that its death does not reach the webhook's answer.
            patch.setattr(jobs, "enqueue", queued.append)
        flow.act(demo, ctx)
        if fault.sweep_first:
            sweep()  # the deliveries are late: the sweep repairs first, then they arrive
        demo.settle()
        for pk in queued:
            try:
                jobs.process_inbound_event(pk)
            except WorkerKilled:
                pass  # the event stays "processing", the pair's lease held: what a killed worker leaves
    if fault.seam:
        assert seam.fired, f"the fault never fired: no {flow.write} call was made"

    converge(demo)

    flow.check(demo, ctx)
    left = InboundEvent.objects.exclude(status__in=[EventStatus.PROCESSED, EventStatus.IGNORED])
    assert not left.exists(), [(e.event_type, e.status, e.reason) for e in left]
