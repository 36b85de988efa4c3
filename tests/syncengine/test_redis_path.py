"""The Redis path: django-q2's Redis broker and Django's Redis cache, used for real.

Runs only with ``REDIS_URL`` set (``.ci/run`` starts Debian's redis-server and
runs these with the end-to-end sync tests); without it the tests are skipped,
unless REQUIRE_REDIS_TESTS=1 makes that a failure. The rest of the suite runs
jobs in place (``Q_SYNC``); here a delivery's job goes through Redis and is
taken off it the way a qcluster does (pusher → worker → monitor, in this
process so that it sees the test database).
"""
from __future__ import annotations

import os
from multiprocessing import Event, Queue, Value

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def redis_url():
    if not settings.REDIS_URL:
        if os.environ.get("REQUIRE_REDIS_TESTS") == "1":
            pytest.fail("REDIS_URL is not set, and REQUIRE_REDIS_TESTS=1 requires the Redis path to be tested.")
        pytest.skip("REDIS_URL is not set")
    return settings.REDIS_URL


@pytest.fixture
def broker():
    """The configured broker, emptied."""
    from django_q.brokers import get_broker

    queue = get_broker()
    queue.delete_queue()
    yield queue
    queue.delete_queue()


def run_queued(broker) -> int:
    """Take every queued job off the broker and run it, as a qcluster's pusher, worker and monitor do."""
    from django_q.monitor import monitor
    from django_q.pusher import pusher
    from django_q.worker import worker

    ran = 0
    while broker.queue_size():
        tasks, results, once = Queue(), Queue(), Event()
        once.set()  # the pusher takes one batch and returns
        pusher(tasks, once, broker=broker)
        tasks.put("STOP")
        worker(tasks, results, Value("f", -1))
        results.put("STOP")
        monitor(results, broker=broker)
        ran += 1
    return ran


def test_the_broker_and_the_cache_are_redis(broker):
    import redis
    from django.core.cache import cache, caches
    from django.core.cache.backends.redis import RedisCache
    from django_q.brokers.redis_broker import Redis

    assert isinstance(broker, Redis) and broker.ping()
    assert isinstance(caches["default"], RedisCache)
    cache.set("redis-path-check", "seen", 30)
    assert redis.from_url(settings.REDIS_URL).keys("*redis-path-check*")  # in Redis, not elsewhere


def test_an_incident_syncs_through_the_redis_broker(sandbox, broker, monkeypatch):
    from django_q.conf import Conf
    from django_q.models import Success

    from sandbox import deliveries
    from syncengine.models import EventStatus, InboundEvent, LinkedPair
    from tests.syncengine.test_sync import Demo

    demo = Demo(sandbox)  # provisioned with its verify jobs run in place (Q_SYNC)
    monkeypatch.setattr(Conf, "SYNC", False)  # from here on, jobs are queued on the broker
    Success.objects.all().delete()
    incident = demo.trigger(title="Queue through Redis")
    deliveries.flush()

    event = InboundEvent.objects.get(source="zenduty", event_type="triggered")
    assert broker.queue_size() == 1 and event.status == EventStatus.RECEIVED  # waiting in Redis
    assert demo.requests() == []

    for _ in range(5):  # the job, then the echoes its calls cause, until nothing is left
        ran = run_queued(broker)
        if not deliveries.flush() and not ran:
            break

    [request] = demo.requests()
    assert request.subject == "Queue through Redis" and request.sourceID == incident.unique_id
    assert LinkedPair.objects.get().xurrent_request_id == str(request.pk)
    event.refresh_from_db()
    assert event.status == EventStatus.PROCESSED, event.reason
    assert Success.objects.filter(func="syncengine.tasks.process_inbound_event").count() >= 2  # the echo too
    assert broker.queue_size() == 0
