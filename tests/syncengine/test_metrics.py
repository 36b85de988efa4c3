"""/metrics: not public, counts from the history tables, monotonic across the daily prune."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from syncengine.housekeeping import prune_history
from syncengine.models import EventStatus, InboundEvent, OutboundCall
from tests.syncengine.conftest import fixture_bytes

TOKEN = "metrics-test-token-5d1e"


@pytest.fixture
def scrape(client, settings):
    settings.METRICS_TOKEN = TOKEN

    def scrape() -> dict:
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200, response.content
        assert response["Content-Type"].startswith("text/plain; version=")  # the exposition format
        samples = {}
        for family in text_string_to_metric_families(response.content.decode()):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return samples
    return scrape


@pytest.mark.django_db
def test_metrics_do_not_exist_without_a_token(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", TOKEN])
def test_metrics_need_the_bearer_token(client, settings, authorization):
    settings.METRICS_TOKEN = TOKEN
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = client.get("/metrics", **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"portal_" not in response.content


@pytest.mark.django_db
def test_deliveries_jobs_calls_and_lag_are_counted(integration, post_zenduty, post_xurrent, sign_xurrent,
                                                   outbound, sync_handlers, scrape):
    before = scrape()
    assert before.get(("portal_webhook_deliveries_received_total", (("source", "zenduty"),)), 0) == 0

    triggered = fixture_bytes("zenduty/triggered.json")
    assert post_zenduty(integration, triggered).status_code == 200          # processed by the stand-in
    assert post_zenduty(integration, triggered).json()["status"] == "duplicate"
    assert post_zenduty(integration, triggered, signature="forged").status_code == 401
    # webhook.verify calls Xurrent back: the call is answered 429, the job is retried later.
    outbound.answer(429, {"message": "Too Many Requests"}, {"Retry-After": "120"})
    assert post_xurrent(integration, sign_xurrent("webhook.verify")).status_code == 200

    samples = scrape()
    zenduty, xurrent = (("source", "zenduty"),), (("source", "xurrent"),)
    assert samples[("portal_webhook_deliveries_received_total", zenduty)] == 3  # one stored twice, one refused
    assert samples[("portal_webhook_deliveries_rejected_total", zenduty)] == 1
    assert samples[("portal_webhook_deliveries_received_total", xurrent)] == 1
    assert samples[("portal_sync_jobs_total", (("outcome", "processed"), ("source", "zenduty")))] == 1
    assert ("portal_sync_jobs_total", (("outcome", "processed"), ("source", "xurrent"))) not in samples
    assert samples[("portal_outbound_calls_total", (("service", "xurrent"), ("status", "4xx")))] == 1
    assert samples[("portal_outbound_rate_limited_total", (("service", "xurrent"),))] == 1
    assert samples[("portal_sync_events_waiting", (("status", "retry_scheduled"),))] == 1
    assert samples[("portal_sync_oldest_waiting_seconds", ())] >= 0
    assert samples[("portal_queue_length", ())] >= 0
    assert samples[("portal_sync_lag_seconds_count", zenduty)] == 1
    assert samples[("portal_sync_lag_seconds_bucket", (("le", "+Inf"), ("source", "zenduty")))] == 1


@pytest.mark.django_db
def test_the_lag_histogram_sorts_events_into_buckets(integration, scrape):
    now = timezone.now()
    for seconds in (0.2, 1.5, 1.5, 40):
        InboundEvent.objects.create(source="zenduty", integration=integration, status=EventStatus.PROCESSED,
                                    received_at=now - timedelta(seconds=seconds), processed_at=now)

    samples = scrape()
    bucket = {le: samples[("portal_sync_lag_seconds_bucket", (("le", le), ("source", "zenduty")))]
              for le in ("0.5", "1", "2", "30", "60", "+Inf")}
    assert bucket == {"0.5": 1, "1": 1, "2": 3, "30": 3, "60": 4, "+Inf": 4}
    assert samples[("portal_sync_lag_seconds_sum", (("source", "zenduty"),))] == pytest.approx(43.2, abs=0.01)


@pytest.mark.django_db
def test_counters_do_not_go_down_when_the_history_is_pruned(integration, scrape):
    old = timezone.now() - timedelta(days=200)
    for status in (EventStatus.PROCESSED, EventStatus.REJECTED, EventStatus.FAILED):
        InboundEvent.objects.create(source="zenduty", integration=integration, status=status, duplicates=2,
                                    received_at=old, processed_at=old + timedelta(seconds=3))
    InboundEvent.objects.create(source="zenduty", integration=integration, status=EventStatus.PROCESSED,
                                received_at=timezone.now(), processed_at=timezone.now())
    for status in (200, 429, None):
        OutboundCall.objects.create(service="zenduty", method="GET", url="https://x", status=status,
                                    status_class={200: "2xx", 429: "4xx"}.get(status, "none"), created_at=old)
    before = scrape()

    assert prune_history(days=90) == (3, 3)

    assert InboundEvent.objects.count() == 1 and not OutboundCall.objects.exists()
    after = scrape()
    counters = {key: value for key, value in before.items()
                if key[0].endswith(("_total", "_bucket", "_count", "_sum"))}
    assert counters and {key: after.get(key) for key in counters} == counters
    assert before[("portal_webhook_deliveries_received_total", (("source", "zenduty"),))] == 10
    # Pruned again (nothing left to prune): nothing is counted twice.
    prune_history(days=90)
    assert json.dumps(sorted(scrape().items()), default=str) == json.dumps(sorted(after.items()), default=str)
