"""Paginated reads through the real API clients, against the simulators over real HTTP.

What: the portal's own clients walking a large collection of the sandbox,
served by a live HTTP server in a thread (``SANDBOX_API_URL`` pointed at it),
exactly as the portal reads the real services:

* Xurrent: ``XurrentClient.for_tenant(tenant).iter_service_instances()`` over
  3,000 service instances (30 pages of 100, ``Link`` cursors, OAuth token).
  This is the walk behind the service-instance picker's search.
* Zenduty: ``ZendutyClient.for_account(account).iter_incidents()`` over 1,000
  incidents (30 pages of 50, the client's default, ``POST
  /api/incidents/filter/``). The simulator's rate limit (30 filter calls a
  minute) is switched off: three walks of 30 pages would exceed it, and the
  limiter is not what is measured.

Each collection is walked three times, each time with a fresh client: timed
(records per second, pages, seconds), then under ``tracemalloc`` counting the
records as they stream by (peak memory, the target), then keeping them all in
a list (peak memory, for comparison only). The OAuth token must be issued
once for all three Xurrent walks: it is cached in the database and shared by
every client of the tenant.

Why the targets: the iterators are generators so that a picker or a poll can
stop early and so that memory does not grow with the account. ``tracemalloc``
sees the whole process, so the streaming peak also includes the simulator
building one page in the server thread and the history row written per call:
about 1 MB, whatever the size of the collection. Keeping all 3,000 service
instances costs about 4.5 MB more (the "all kept" row), so a streaming peak
under 2 MB proves the pages are not kept. Throughput has no target: most of
each call is the simulator's own work (a count, an unindexed sort, 100 model
objects and their JSON), not the portal's; the first walk runs without
tracemalloc, which slows every allocation in the process.
"""
from __future__ import annotations

import threading
import time
import tracemalloc
from contextlib import contextmanager
from datetime import timedelta

from django.core.handlers.wsgi import WSGIHandler
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.test.utils import override_settings
from django.urls import get_resolver
from django.utils import timezone

from bench import Row
from connections import http
from connections.models import ConnectionStatus, XurrentTenant, ZendutyAccount
from connections.xurrent import XurrentClient
from connections.zenduty.client import ZendutyClient
from connections.zenduty.constants import FILTER_ALL

SERVICE_INSTANCES = 3000
INCIDENTS = 1500
TARGET_PEAK_MB = 2.0
# Credentials of the simulated accounts made here, not real ones.
XURRENT_ACCOUNT = "benchpages"
XURRENT_CLIENT_ID = "bench-pages-client"
XURRENT_CLIENT_SECRET = "bench-pages-client-secret"
ZENDUTY_TOKEN = "bench-pages-zenduty-token"


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):  # no access log on the table
        pass


@contextmanager
def live_server():
    """This Django app served over HTTP from a thread; yields its base URL with SANDBOX_API_URL set to it."""
    server = ThreadedWSGIServer(("127.0.0.1", 0), _QuietHandler, allow_reuse_address=False)
    server.set_app(WSGIHandler())  # not get_wsgi_application(): it would set up logging again
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    get_resolver().url_patterns  # import the URLconf now, not during the first timed call
    try:
        with override_settings(SANDBOX_API_URL=url):
            yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _walks(label: str, open_walk, expected: int) -> tuple[list[Row], list[http.CallRecord]]:
    """Walk a collection three times (timed, streaming, kept); rows and the calls made."""
    calls: list[http.CallRecord] = []
    observer = calls.append
    http.call_observers.append(observer)
    try:
        client, records = open_walk()
        started = time.perf_counter()
        count = sum(1 for _ in records)
        seconds = time.perf_counter() - started
        client.session.close()
        pages = len(calls)

        peaks = []
        for keep in (False, True):
            client, records = open_walk()
            tracemalloc.start()
            try:
                read = len(list(records)) if keep else sum(1 for _ in records)
                peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
            finally:
                tracemalloc.stop()
                client.session.close()
            if read != expected:
                raise AssertionError(f"{label}: {read} records read, {expected} expected")
    finally:
        http.call_observers.remove(observer)
    if count != expected:
        raise AssertionError(f"{label}: {count} records read, {expected} expected")
    rows = [
        Row(f"{label}: throughput ({expected:,} records)", count / seconds, "records/s"),
        Row(f"{label}: time per call", seconds / pages * 1000, "ms"),
        Row(f"{label}: peak memory, streaming", peaks[0], "MB", TARGET_PEAK_MB),
        Row(f"{label}: peak memory, all kept (reference)", peaks[1], "MB"),
    ]
    return rows, calls


def run_xurrent() -> list[Row]:
    from sandbox.xurrent import demo
    from sandbox.xurrent.models import Service, ServiceInstance

    sim = demo.make_account(XURRENT_ACCOUNT, XURRENT_CLIENT_ID, XURRENT_CLIENT_SECRET, name="Bench pages")
    service = Service.objects.create(account=sim.account, name="Bench service", support_team=sim.team)
    ServiceInstance.objects.bulk_create(
        [ServiceInstance(account=sim.account, service=service, name=f"Bench instance {n:05d}",
                         status="in_production", support_team=sim.team) for n in range(SERVICE_INSTANCES)],
        batch_size=500)
    tenant = XurrentTenant.objects.create(name="Bench pages", account_id=XURRENT_ACCOUNT,
                                          client_id=XURRENT_CLIENT_ID, client_secret=XURRENT_CLIENT_SECRET,
                                          status=ConnectionStatus.ACTIVE)

    def open_walk():
        client = XurrentClient.for_tenant(tenant)
        return client, client.iter_service_instances()

    with live_server():
        rows, calls = _walks("Xurrent service instances", open_walk, SERVICE_INSTANCES)
    tokens = sum(1 for call in calls if call.url.endswith("/oauth/token"))
    pages = sum(1 for call in calls if call.url.endswith("/v1/service_instances"))
    per_walk = -(-SERVICE_INSTANCES // XurrentClient.per_page)
    return rows + [
        Row("Xurrent service instances: pages per walk", pages / 3, "pages", per_walk, "=="),
        Row("Xurrent service instances: tokens issued (3 walks)", tokens, "", 1, "=="),
    ]


def run_zenduty() -> list[Row]:
    from sandbox.zenduty import demo
    from sandbox.zenduty.models import Incident, SimulatorSettings

    world = demo.make_account(ZENDUTY_TOKEN, "Bench pages")
    switches = SimulatorSettings.load()
    switches.rate_limits = False
    switches.save()
    service, now = world.website, timezone.now()
    Incident.objects.bulk_create(
        [Incident(account=world.account, incident_number=n + 1, title=f"Bench incident {n}", service=service,
                  status=n % 3 + 1, team_priority=service.team_priority, escalation_policy=service.escalation_policy,
                  sla=service.sla, assigned_to=world.ui_user, created_by=world.api_user,
                  creation_date=now - timedelta(minutes=n)) for n in range(INCIDENTS)],
        batch_size=500)
    world.account.last_incident_number = INCIDENTS
    world.account.save(update_fields=["last_incident_number"])
    account = ZendutyAccount.objects.create(name="Bench pages", api_token=ZENDUTY_TOKEN,
                                            status=ConnectionStatus.ACTIVE)

    def open_walk():
        client = ZendutyClient.for_account(account)
        return client, client.iter_incidents(status=FILTER_ALL)

    # This measures the client's paging and memory, not Zenduty's limits: 90 filter pages in a
    # few seconds are far over 30 incident reads a minute, so both the simulator's limits (above)
    # and the portal's own budget (connections.budget) are lifted for it.
    with live_server(), override_settings(ZENDUTY_INCIDENT_READS_PER_SECOND=10_000,
                                          ZENDUTY_INCIDENT_READS_PER_MINUTE=10_000):
        rows, calls = _walks("Zenduty incidents", open_walk, INCIDENTS)
    per_walk = -(-INCIDENTS // 50)
    return rows + [Row("Zenduty incidents: pages per walk", len(calls) / 3, "pages", per_walk, "==")]
