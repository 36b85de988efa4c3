"""The history pages at a million rows: what auditors open, timed and counted.

What: ``HISTORY_ROWS`` (default 1,000,000; ``BENCH_HISTORY_ROWS`` overrides)
history rows spread as real use spreads them — 90 days, 24 integrations on 4
tenants and 2 Zenduty accounts, busier in working hours; inbound events with
bodies, payloads and headers of their real sizes (a Zenduty delivery about
1.3 KB, a Xurrent JWT about 1.8 KB) and a mix of outcomes (most processed,
some ignored, a few failed, rejected or waiting), outbound calls with their
status classes, linked pairs, one of them busy (``BUSY_PAIR_ROWS`` events and
calls). Then, as a superuser through Django's test client: each page
``RUNS`` times, the median time and the number of queries of the slowest-
to-build variant.

Pages: the inbound events list (unfiltered; filtered by integration and
status; searched by an incident number), the outbound calls list (unfiltered;
filtered by status class), the dashboard over 24 hours, 7 days and 30 days
(when installed), and the busy pair's page with its timeline.

Why the targets (median < 300 ms, at most 15 queries): an auditor opens
these pages one after another while answering "what happened to incident
#N"; 300 ms keeps that interactive on the embedded SQLite default, and a
bounded query count catches a per-row query (an N+1) that would grow with
the page size, whatever the machine.
"""
from __future__ import annotations

import json
import os
import random
import statistics
import time
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from bench import Row

HISTORY_ROWS = int(os.environ.get("BENCH_HISTORY_ROWS", "1000000"))
BUSY_PAIR_ROWS = 2000
RUNS = 5
TARGET_MS = 300.0
TARGET_QUERIES = 15
DAYS = 90
BATCH = 5000


def _world():
    from connections.models import ConnectionStatus, XurrentTenant, ZendutyAccount
    from integrations.models import Direction, OutgoingIntegration, ProvisioningStatus

    tenants = [XurrentTenant.objects.create(name=f"Bench history {n}", account_id=f"benchhist{n}",
                                            client_id="c", client_secret="bench-history-secret",
                                            status=ConnectionStatus.ACTIVE) for n in range(4)]
    accounts = [ZendutyAccount.objects.create(name=f"Bench history {n}", api_token="bench-history-token",
                                              status=ConnectionStatus.ACTIVE) for n in range(2)]
    integrations = [OutgoingIntegration.objects.create(
        zenduty_account=accounts[n % 2], zenduty_team_id="team", zenduty_service_id=f"svc-{n}",
        zenduty_service_name=f"Service {n}", tenant=tenants[n % 4], service_instance_id=str(100 + n),
        service_instance_name=f"Instance {n}", direction=Direction.BIDIRECTIONAL,
        provisioning_status=ProvisioningStatus.PROVISIONED) for n in range(24)]
    return integrations


def _when(rng: random.Random, now):
    """A moment in the last 90 days, busier in working hours (UTC 7-19) and on weekdays."""
    while True:
        at = now - timedelta(seconds=rng.uniform(0, DAYS * 86400))
        if (7 <= at.hour < 19 and at.weekday() < 5) or rng.random() < 0.25:
            return at


def _seed(integrations):
    from syncengine.models import EventStatus, InboundEvent, LinkedPair, OutboundCall, PairState, Source, \
        status_class_of

    rng = random.Random(7)
    now = timezone.now()
    zenduty_body = json.dumps({"payload": {"incident": {"unique_id": "x" * 22, "title": "Disk full on db-3 " * 4,
                                                        "summary": "Free space below 5 % " * 20, "status": 1}},
                               "event_type": "triggered"})[:1300]
    xurrent_body = json.dumps({"jwt": "e" * 1750})
    payload = {"event": "request.update", "object_id": 70231, "payload": {"subject": "Checkout is slow " * 8,
                                                                         "status": "in_progress"}}
    headers = {"content-type": "application/json", "user-agent": "Zenduty-Webhook/1.0", "x-forwarded-for": "1.2.3.4"}
    statuses = ([EventStatus.PROCESSED] * 80 + [EventStatus.IGNORED] * 12 + [EventStatus.FAILED] * 3
                + [EventStatus.REJECTED] * 3 + [EventStatus.RETRY_SCHEDULED] * 2)
    pairs = []
    for n in range(HISTORY_ROWS // 30):
        integration = integrations[n % len(integrations)]
        pairs.append(LinkedPair(integration=integration, tenant_id=integration.tenant_id,
                                zenduty_account_id=integration.zenduty_account_id, origin=Source.ZENDUTY,
                                state=PairState.CLOSED if n % 5 else PairState.LINKED,
                                xurrent_request_id=str(100000 + n), zenduty_incident_unique_id=f"inc{n:019d}",
                                zenduty_incident_number=n + 1, created_at=_when(rng, now)))
    LinkedPair.objects.bulk_create(pairs, batch_size=BATCH)
    pair_ids = list(LinkedPair.objects.order_by("pk").values_list("pk", "integration_id"))
    busy_id, busy_integration = pair_ids[-1]
    events_total = HISTORY_ROWS * 2 // 5
    calls_total = HISTORY_ROWS - events_total
    batch: list = []
    for n in range(events_total):
        busy = n < BUSY_PAIR_ROWS // 2
        pair_id, integration_id = (busy_id, busy_integration) if busy else pair_ids[rng.randrange(len(pair_ids))]
        source = Source.ZENDUTY if n % 2 else Source.XURRENT
        status = rng.choice(statuses)
        at = _when(rng, now)
        batch.append(InboundEvent(
            source=source, integration_id=integration_id, pair_id=pair_id, delivery_id=f"d{n}", dedupe_key=f"k{n}",
            event_type="triggered" if source == Source.ZENDUTY else "request.update",
            object_id=str(rng.randrange(100000, 200000)), headers=headers,
            body=zenduty_body if source == Source.ZENDUTY else xurrent_body, body_size=1400,
            payload=payload, signature_ok=status != EventStatus.REJECTED, status=status,
            reason="Incident #1042 acknowledged → request #70231 in progress.", received_at=at, processed_at=at,
            last_error="Xurrent answered 422: Status is not valid" if status == EventStatus.FAILED else ""))
        if len(batch) >= BATCH:
            InboundEvent.objects.bulk_create(batch)
            batch = []
    InboundEvent.objects.bulk_create(batch)
    batch = []
    for n in range(calls_total):
        busy = n < BUSY_PAIR_ROWS // 2
        pair_id, integration_id = (busy_id, busy_integration) if busy else pair_ids[rng.randrange(len(pair_ids))]
        status = rng.choice([200] * 90 + [201] * 5 + [429, 500, 422, 404, None])
        batch.append(OutboundCall(
            service=Source.XURRENT if n % 3 else Source.ZENDUTY, method=rng.choice(["GET", "PATCH", "POST"]),
            url="https://wdc.xurrent.com/v1/requests/70231", status=status, status_class=status_class_of(status),
            duration_ms=rng.randrange(20, 900), error="" if status and status < 400 else "answered with an error",
            error_kind="" if status and status < 400 else "server_error", integration_id=integration_id,
            pair_id=pair_id, created_at=_when(rng, now)))
        if len(batch) >= BATCH:
            OutboundCall.objects.bulk_create(batch)
            batch = []
    OutboundCall.objects.bulk_create(batch)
    return LinkedPair.objects.get(pk=busy_id)


def _measure(client: Client, name: str, url: str) -> list[Row]:
    times, queries = [], 0
    for _ in range(RUNS):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise AssertionError(f"{url} answered {response.status_code}")
        queries = max(queries, len(captured.captured_queries))
    return [Row(f"history: {name}, median", statistics.median(times), "ms", TARGET_MS),
            Row(f"history: {name}, queries", queries, "", TARGET_QUERIES, "<=")]


def run() -> list[Row]:
    started = time.monotonic()
    integrations = _world()
    busy = _seed(integrations)
    seeded = time.monotonic() - started
    user = get_user_model().objects.create_superuser("bench-history", "bench@example.com", "x")
    client = Client()
    client.force_login(user)
    integration = integrations[3]
    events = reverse("admin:syncengine_inboundevent_changelist")
    calls = reverse("admin:syncengine_outboundcall_changelist")
    pages = [("events list", events),
             ("events of one integration, failed", f"{events}?integration__id__exact={integration.pk}&status__exact=failed"),
             ("events searched by incident number", f"{events}?q=%231042"),
             ("calls list", calls),
             ("calls, 5xx only", f"{calls}?status_class__exact=5xx"),
             ("busy pair's timeline", reverse("admin:syncengine_linkedpair_change", args=[busy.pk]))]
    for window in ("24h", "7d", "30d"):
        try:
            pages.append((f"dashboard, last {window}", reverse("syncengine-dashboard") + f"?window={window}"))
        except NoReverseMatch:
            break
    rows = [Row("history: rows seeded", HISTORY_ROWS, "rows"), Row("history: seeding", seeded, "s")]
    for name, url in pages:
        rows += _measure(client, name, url)
    return rows
