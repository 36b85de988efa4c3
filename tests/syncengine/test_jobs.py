"""The job: claiming, dispatch, retries with backoff, permanent failures, replay, recovery, history."""
from __future__ import annotations

import json
from datetime import timedelta

import jwt
import pytest
from django.core import serializers
from django.db import connection
from django.utils import timezone
from django_q.models import Schedule

from connections import http
from connections.xurrent import XurrentClient
from syncengine import dispatch, housekeeping, jobs
from connections.attribution import sync_context
from syncengine.models import EventStatus, InboundEvent, OutboundCall
from tests.syncengine.conftest import (CLIENT_SECRET, SIGNING_SECRET, ZENDUTY_TOKEN, fixture_bytes,
                                       fixture_json)

VERIFY = fixture_json("xurrent/webhook.verify.json")
CALLBACK = VERIFY["payload"]["callback"]
CODE = "d41f0c6e8a2b4c7d9e1f3a5b7c9d0e2f"


def stored_event(integration, *, message=VERIFY, status=EventStatus.RECEIVED, **fields) -> InboundEvent:
    """An event as the webhook view leaves it (already verified), without queueing it."""
    return InboundEvent.objects.create(source="xurrent", integration=integration, event_type=message["event"],
                                       object_id=str(message["object_id"]), payload=message, signature_ok=True,
                                       status=status, delivery_id="d-job", **fields)


def reload(event) -> InboundEvent:
    return InboundEvent.objects.get(pk=event.pk)


def callback_calls(outbound):
    return [r for r in outbound.requests if r["url"] == CALLBACK]


@pytest.mark.django_db
class TestClaiming:
    def test_running_the_job_twice_calls_the_callback_once(self, integration, outbound):
        event = stored_event(integration)

        assert jobs.process_inbound_event(event.pk) == EventStatus.PROCESSED
        assert jobs.process_inbound_event(event.pk) is None

        assert len(callback_calls(outbound)) == 1
        assert reload(event).attempts == 1

    def test_an_event_being_processed_elsewhere_is_left_alone(self, integration, outbound):
        event = stored_event(integration, status=EventStatus.PROCESSING)

        assert jobs.process_inbound_event(event.pk) is None
        assert outbound.requests == [] and reload(event).status == EventStatus.PROCESSING

    def test_a_deleted_event_is_a_no_op(self, db):
        assert jobs.process_inbound_event(987654) is None

    def test_an_event_whose_integration_was_deleted_is_ignored(self, integration, outbound):
        event = stored_event(None)

        assert jobs.process_inbound_event(event.pk) == EventStatus.IGNORED
        assert "integration was deleted" in reload(event).reason
        assert outbound.requests == []


@pytest.mark.django_db
class TestRetries:
    def test_a_server_error_schedules_a_retry_with_backoff(self, integration, outbound):
        event = stored_event(integration)
        outbound.answer(503, {"message": "maintenance"})
        before = timezone.now()

        assert jobs.process_inbound_event(event.pk) == EventStatus.RETRY_SCHEDULED

        event = reload(event)
        delay = (event.next_attempt_at - before).total_seconds()
        assert 30 <= delay <= 30 * 1.1 + 2
        assert event.attempts == 1 and "Attempt 1 of 5" in event.reason and "server error" in event.reason
        assert "503" in event.last_error
        retry = Schedule.objects.get(func="syncengine.tasks.process_inbound_event")
        assert retry.schedule_type == Schedule.ONCE and retry.args == f"({event.pk},)"
        assert abs((retry.next_run - event.next_attempt_at).total_seconds()) < 1

    def test_retries_back_off_exponentially_then_fail_after_the_bound(self, integration, outbound):
        event = stored_event(integration)
        delays = []
        for attempt in range(1, jobs.MAX_ATTEMPTS + 1):
            outbound.answer(502)
            before = timezone.now()
            status = jobs.process_inbound_event(event.pk)  # as the scheduled run would
            event = reload(event)
            assert event.attempts == attempt
            if attempt < jobs.MAX_ATTEMPTS:
                assert status == EventStatus.RETRY_SCHEDULED
                delays.append((event.next_attempt_at - before).total_seconds())

        assert status == EventStatus.FAILED
        assert event.reason.startswith("Gave up after 5 attempts.") and event.processed_at is not None
        for i, delay in enumerate(delays):  # 30 s doubling, plus up to 10 % jitter
            assert 30 * 2 ** i <= delay <= 30 * 2 ** i * 1.1 + 1
        assert len(callback_calls(outbound)) == 5
        integration.refresh_from_db()
        assert integration.xurrent_webhooks["request.update"]["verified"] is False

    def test_a_rate_limit_waits_at_least_as_long_as_asked(self, integration, outbound):
        event = stored_event(integration)
        outbound.answer(429, {"message": "Too Many Requests"}, {"retry-after": "120"})
        before = timezone.now()

        assert jobs.process_inbound_event(event.pk) == EventStatus.RETRY_SCHEDULED

        event = reload(event)
        assert (event.next_attempt_at - before).total_seconds() >= 120
        assert "rate limiting" in event.reason

    def test_a_network_failure_is_retried(self, integration, outbound):
        import requests

        event = stored_event(integration)
        outbound.answers.append(requests.ConnectionError("refused"))

        assert jobs.process_inbound_event(event.pk) == EventStatus.RETRY_SCHEDULED
        assert OutboundCall.objects.get().status_class == "none"

    def test_the_retry_succeeds_later(self, integration, outbound):
        event = stored_event(integration)
        outbound.answer(503)
        jobs.process_inbound_event(event.pk)

        assert jobs.process_inbound_event(event.pk) == EventStatus.PROCESSED
        event = reload(event)
        assert event.attempts == 2 and event.next_attempt_at is None
        assert "503" in event.last_error  # what went wrong on the way stays visible

    def test_backoff_is_capped_and_honours_retry_after(self):
        assert jobs.retry_delay(30) <= jobs.RETRY_MAX_SECONDS * 1.1
        assert jobs.retry_delay(1, retry_after=900) == 900


@pytest.mark.django_db
class TestPermanentFailures:
    def test_a_refused_callback_fails_with_the_error_explained(self, integration, outbound):
        event = stored_event(integration)
        outbound.answer(404, {"message": "Not found"})

        assert jobs.process_inbound_event(event.pk) == EventStatus.FAILED

        event = reload(event)
        assert event.reason == ("Could not answer Xurrent's webhook verification. Xurrent says it does not exist "
                                "(HTTP 404).")
        assert not Schedule.objects.filter(func="syncengine.tasks.process_inbound_event").exists()

    def test_a_callback_on_a_foreign_host_is_never_called(self, integration, outbound):
        message = json.loads(json.dumps(VERIFY))
        message["payload"]["callback"] = "https://attacker.example/webhooks/4711/verify?code=x"
        event = stored_event(integration, message=message)

        assert jobs.process_inbound_event(event.pk) == EventStatus.FAILED
        assert outbound.requests == []
        assert "attacker.example" in reload(event).reason

    @pytest.mark.parametrize("drop, words", [("callback", "no payload.callback"), ("webhook_id", "no webhook_id")])
    def test_an_incomplete_verify_message_fails(self, drop, words, integration, outbound):
        message = json.loads(json.dumps(VERIFY))
        if drop == "callback":
            del message["payload"]["callback"]
        else:
            del message["webhook_id"]
        event = stored_event(integration, message=message)

        assert jobs.process_inbound_event(event.pk) == EventStatus.FAILED
        assert words in reload(event).reason and outbound.requests == []

    def test_a_bug_in_a_handler_fails_the_event_instead_of_leaving_it_processing(self, integration, monkeypatch):
        def broken(event, integration):
            raise KeyError("surprise")

        monkeypatch.setitem(dispatch.HANDLERS, ("xurrent", "request.update"), broken)
        event = stored_event(integration, message=fixture_json("xurrent/request.update.json"))

        assert jobs.process_inbound_event(event.pk) == EventStatus.FAILED
        assert reload(event).reason == "Unexpected error (KeyError); see the worker log."


@pytest.mark.django_db
class TestVerificationCode:
    """The one-time code of a webhook.verify callback is kept only while the event may still need it."""

    def signed_body(self, integration, rsa_key):
        from tests.syncengine.conftest import make_jwt

        return json.dumps({"jwt": make_jwt(rsa_key[0], VERIFY)})

    def test_it_is_kept_while_a_retry_is_scheduled(self, integration, outbound, rsa_key):
        body = self.signed_body(integration, rsa_key)
        event = stored_event(integration, body=body)
        outbound.answer(503)

        assert jobs.process_inbound_event(event.pk) == EventStatus.RETRY_SCHEDULED

        event = reload(event)
        assert event.payload == VERIFY and event.body == body  # the next attempt needs the code

    @pytest.mark.parametrize("answers, status", [([200], EventStatus.PROCESSED), ([403], EventStatus.FAILED),
                                                 ([502] * 5, EventStatus.FAILED)],
                             ids=["answered", "refused", "gave-up"])
    def test_it_is_removed_when_the_event_is_finished(self, answers, status, integration, outbound, rsa_key):
        event = stored_event(integration, body=self.signed_body(integration, rsa_key))
        for answer in answers:
            outbound.answer(answer)
            last = jobs.process_inbound_event(event.pk)

        assert last == status
        event = reload(event)
        assert CODE in callback_calls(outbound)[0]["url"]
        assert CODE not in json.dumps(event.payload) and CODE not in event.body
        assert event.payload["payload"]["callback"] == CALLBACK.replace(f"code={CODE}&", "")
        claims = jwt.decode(json.loads(event.body)["jwt"], options={"verify_signature": False})
        assert claims["data"] == event.payload

    def test_it_is_removed_when_a_dead_worker_leaves_the_event_out_of_attempts(self, integration):
        event = stored_event(integration, status=EventStatus.PROCESSING, attempts=jobs.MAX_ATTEMPTS,
                             claimed_at=timezone.now() - timedelta(hours=1))

        housekeeping.recover_stalled_events()

        event = reload(event)
        assert event.status == EventStatus.FAILED and CODE not in json.dumps(event.payload)

    def test_other_events_are_left_as_they_are(self, integration, outbound):
        message = fixture_json("xurrent/request.update.json")
        event = stored_event(integration, message=message, body='{"jwt": "x.y.z"}')

        jobs.process_inbound_event(event.pk)

        event = reload(event)
        assert event.payload == message and event.body == '{"jwt": "x.y.z"}'


@pytest.mark.django_db
class TestReplay:
    def test_a_failed_event_can_be_replayed(self, integration, outbound, django_capture_on_commit_callbacks,
                                            monkeypatch):
        calls = []

        def flaky(event, integration):
            calls.append(event.pk)
            if len(calls) == 1:
                raise jobs.EventError("not this time")
            return jobs.Outcome(EventStatus.PROCESSED, "done")

        monkeypatch.setitem(dispatch.HANDLERS, ("xurrent", "request.update"), flaky)
        event = stored_event(integration, message=fixture_json("xurrent/request.update.json"))
        jobs.process_inbound_event(event.pk)
        assert reload(event).status == EventStatus.FAILED

        with django_capture_on_commit_callbacks(execute=True):
            assert jobs.replay_event(event.pk, by="admin") is True

        event = reload(event)
        assert event.status == EventStatus.PROCESSED and event.attempts == 1
        assert calls == [event.pk, event.pk]
        # The replay's outcome, then who asked for it and what the event had done before.
        assert event.reason.startswith("done — Replay requested by admin at ")
        assert event.reason.endswith("(before it: failed, not this time).")

    @pytest.mark.parametrize("first", [200, 404])
    def test_a_finished_verification_cannot_be_replayed_without_its_code(self, first, integration, outbound,
                                                                         django_capture_on_commit_callbacks):
        event = stored_event(integration)
        outbound.answer(first)
        jobs.process_inbound_event(event.pk)

        with django_capture_on_commit_callbacks(execute=True):
            assert jobs.replay_event(event.pk, by="admin") is True

        event = reload(event)
        assert event.status == EventStatus.FAILED
        assert "no verification code" in event.reason and "Retry provisioning" in event.reason
        assert len(callback_calls(outbound)) == 1  # only the first run called it

    @pytest.mark.parametrize("status", [EventStatus.REJECTED, EventStatus.RECEIVED, EventStatus.PROCESSING,
                                        EventStatus.RETRY_SCHEDULED])
    def test_only_finished_trusted_events_are_replayed(self, status, integration):
        event = stored_event(integration, status=status)

        assert jobs.replay_event(event.pk) is False
        assert reload(event).status == status


@pytest.mark.django_db
class TestRecovery:
    def test_it_queues_events_nobody_picked_up(self, integration, outbound):
        old = timezone.now() - timedelta(minutes=30)
        lost = stored_event(integration, received_at=old)
        fresh = stored_event(integration)
        fresh.delivery_id = "other"
        fresh.save()

        assert housekeeping.recover_stalled_events() == 1

        assert reload(lost).status == EventStatus.PROCESSED  # Q_SYNC runs the queued job inline
        assert reload(fresh).status == EventStatus.RECEIVED

    def test_it_revives_an_event_a_dead_worker_left_processing(self, integration, outbound):
        event = stored_event(integration, status=EventStatus.PROCESSING, attempts=1,
                             claimed_at=timezone.now() - timedelta(hours=1))

        assert housekeeping.recover_stalled_events() == 1

        event = reload(event)
        assert event.status == EventStatus.PROCESSED and event.attempts == 2
        assert "worker stopped" in event.last_error

    def test_an_event_past_its_lease_is_queued_again_and_processed_once(self, settings, integration, outbound):
        settings.SYNC_EVENT_LEASE_SECONDS = 5  # shortened: the default is the job timeout + 30 s
        event = stored_event(integration, status=EventStatus.PROCESSING, attempts=1,
                             claimed_at=timezone.now() - timedelta(seconds=6))

        assert housekeeping.recover_stalled_events() == 1

        event = reload(event)
        assert event.status == EventStatus.PROCESSED and event.attempts == 2
        assert "5 s lease" in event.last_error
        # The dead worker's own job, handed out again by the broker, and the next sweep find nothing to do.
        assert jobs.process_inbound_event(event.pk) is None
        assert housekeeping.recover_stalled_events() == 0
        assert len(callback_calls(outbound)) == 1

    def test_an_event_within_its_lease_is_left_alone(self, settings, integration, outbound):
        settings.SYNC_EVENT_LEASE_SECONDS = 5
        event = stored_event(integration, status=EventStatus.PROCESSING, attempts=1,
                             claimed_at=timezone.now() - timedelta(seconds=3))

        assert housekeeping.recover_stalled_events() == 0

        assert reload(event).status == EventStatus.PROCESSING
        assert outbound.requests == []

    def test_an_event_claimed_afresh_while_the_sweep_runs_is_left_alone(self, settings, integration, outbound):
        # Between the sweep reading a dead event and updating it, another sweep
        # revived it and a worker claimed it again: that claim holds a new lease.
        settings.SYNC_EVENT_LEASE_SECONDS = 5
        event = stored_event(integration, status=EventStatus.PROCESSING, attempts=1,
                             claimed_at=timezone.now() - timedelta(seconds=60))
        claimed_again = []

        def claim_before_the_first_update(execute, sql, params, many, context):
            if sql.startswith("UPDATE") and "inboundevent" in sql and not claimed_again:
                claimed_again.append(timezone.now())
                InboundEvent.objects.filter(pk=event.pk).update(claimed_at=claimed_again[0], attempts=2)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(claim_before_the_first_update):
            assert housekeeping.recover_stalled_events() == 0

        event = reload(event)
        assert claimed_again and (event.status, event.claimed_at) == (EventStatus.PROCESSING, claimed_again[0])
        assert outbound.requests == []

    def test_it_fails_a_dead_event_out_of_attempts(self, integration):
        event = stored_event(integration, status=EventStatus.PROCESSING, attempts=jobs.MAX_ATTEMPTS,
                             claimed_at=timezone.now() - timedelta(hours=1))

        assert housekeeping.recover_stalled_events() == 0
        assert reload(event).status == EventStatus.FAILED

    def test_a_dead_event_out_of_attempts_fails_the_claim_it_left_creating(self, integration):
        from syncengine import pairs
        from syncengine.models import LinkedPair, PairState

        pair = pairs.claim(integration, origin="zenduty", owner="dead-worker", incident_unique_id="inc-9")
        LinkedPair.objects.filter(pk=pair.pk).update(lease_until=timezone.now() - timedelta(minutes=1))
        event = stored_event(integration, status=EventStatus.PROCESSING, attempts=jobs.MAX_ATTEMPTS,
                             claimed_at=timezone.now() - timedelta(hours=1), pair=pair)

        housekeeping.recover_stalled_events()

        pair.refresh_from_db()
        assert pair.state == PairState.FAILED
        assert pair.last_error == f"Its event #{event.pk}: the worker stopped while processing it; gave up " \
                                  f"after {jobs.MAX_ATTEMPTS} attempts."

    def test_a_broker_failure_leaves_the_event_received(self, integration, monkeypatch, caplog):
        def down(*args, **kwargs):
            raise ConnectionError("broker down")

        monkeypatch.setattr(jobs, "async_task", down)
        event = stored_event(integration)

        jobs.enqueue(event.pk)

        assert reload(event).status == EventStatus.RECEIVED
        assert "syncengine.enqueue-failed" in caplog.text

    def test_the_recovery_schedule_exists(self, db):
        schedule = Schedule.objects.get(func="syncengine.tasks.recover_stalled_events")
        # Every minute: a dead worker's event waits at most its lease plus about 90 s.
        assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 1, -1)


@pytest.mark.django_db
class TestHistory:
    def test_calls_outside_a_job_are_recorded_without_context(self, tenant, outbound):
        outbound.answer(200, {"access_token": "tok-outside-1234567", "token_type": "Bearer", "expires_in": 7200})
        outbound.answer(200, {"id": "wdc", "name": "Widget Data Center"})

        XurrentClient.for_tenant(tenant).get_account()

        calls = list(OutboundCall.objects.order_by("pk"))
        assert [(c.method, c.url.rsplit("/", 1)[-1], c.status) for c in calls] == [("POST", "token", 200),
                                                                                    ("GET", "account", 200)]
        assert all(c.integration_id is None and c.inbound_event_id is None for c in calls)

    def test_no_secret_reaches_any_history_row(self, integration, tenant, outbound, post_xurrent, post_zenduty,
                                              sign_xurrent):
        access_token = "xurrent-access-token-5f1e2d3c4b"
        # A job verifies a webhook; an authenticated call and a refused one run in its context.
        post_xurrent(integration, sign_xurrent("webhook.verify"), HTTP_AUTHORIZATION="Basic c2VjcmV0OnNlY3JldA==")
        event = InboundEvent.objects.get()
        outbound.answer(200, {"access_token": access_token, "token_type": "Bearer", "expires_in": 7200})
        outbound.answer(401, {"message": f"token {access_token} was revoked"})
        outbound.answer(401, {"message": "still refused"})
        with sync_context(integration_id=integration.pk, inbound_event_id=event.pk):
            client = XurrentClient.for_tenant(tenant)
            with pytest.raises(Exception):
                client.get_account()
        post_zenduty(integration, fixture_bytes("zenduty/triggered.json"))

        assert OutboundCall.objects.filter(inbound_event=event).count() >= 3
        events = serializers.serialize("json", InboundEvent.objects.all())
        calls = serializers.serialize("json", OutboundCall.objects.all())
        # The bearer token was sent (so it existed) ...
        assert any(access_token in json.dumps(r.get("headers") or {}) for r in outbound.requests)
        # ... and no secret is in the history.
        for secret in (access_token, CLIENT_SECRET, SIGNING_SECRET, ZENDUTY_TOKEN, "c2VjcmV0OnNlY3JldA=="):
            assert secret not in events and secret not in calls
        # The one-time verification code is in neither, once the verification was answered.
        assert CODE not in calls and CODE not in events

    def test_a_history_failure_never_breaks_the_call(self, tenant, outbound, monkeypatch):
        def broken(*args, **kwargs):
            raise RuntimeError("history table gone")

        monkeypatch.setattr(OutboundCall.objects, "create", broken)
        outbound.answer(200, {"access_token": "tok-broken-history-1", "token_type": "Bearer", "expires_in": 7200})
        outbound.answer(200, {"id": "wdc"})

        assert XurrentClient.for_tenant(tenant).get_account() == {"id": "wdc"}

    def test_the_observer_is_registered_once(self):
        from syncengine.history import record_call

        assert http.call_observers.count(record_call) == 1

    def test_the_context_is_reset_after_the_job(self, integration, outbound):
        from connections import attribution as context

        jobs.process_inbound_event(stored_event(integration).pk)

        assert context.current() is None


@pytest.mark.django_db
class TestPruning:
    def test_it_deletes_old_finished_history_and_keeps_the_rest(self, integration):
        old = timezone.now() - timedelta(days=120)
        for status in (EventStatus.PROCESSED, EventStatus.IGNORED, EventStatus.REJECTED, EventStatus.FAILED):
            stored_event(integration, status=status, received_at=old)
        waiting = stored_event(integration, status=EventStatus.RETRY_SCHEDULED, received_at=old)
        recent = stored_event(integration, status=EventStatus.PROCESSED)
        OutboundCall.objects.create(service="xurrent", method="GET", url="https://x/old", created_at=old)
        kept_call = OutboundCall.objects.create(service="xurrent", method="GET", url="https://x/new")

        assert housekeeping.prune_history(days=90, batch=2) == (4, 1)

        assert set(InboundEvent.objects.values_list("pk", flat=True)) == {waiting.pk, recent.pk}
        assert list(OutboundCall.objects.values_list("pk", flat=True)) == [kept_call.pk]

    def test_a_pair_that_loses_rows_keeps_a_note_of_what_was_pruned(self, integration):
        from syncengine.models import LinkedPair, PairNote

        pair = LinkedPair.objects.create(integration=integration, tenant=integration.tenant, state="closed",
                                         zenduty_account=integration.zenduty_account, origin="zenduty",
                                         xurrent_request_id="70231", zenduty_incident_unique_id="abc")
        old = timezone.now() - timedelta(days=120)
        for n in range(3):
            event = stored_event(integration, status=EventStatus.PROCESSED, received_at=old + timedelta(hours=n))
            InboundEvent.objects.filter(pk=event.pk).update(pair=pair)
        OutboundCall.objects.create(service="xurrent", method="PATCH", url="https://x/old", created_at=old,
                                    pair=pair)
        stored_event(integration, status=EventStatus.PROCESSED, received_at=old)  # no pair: no note

        housekeeping.prune_history(days=90, batch=2)

        [note] = PairNote.objects.all()
        assert note.pair_id == pair.pk
        assert note.text.startswith("History older than 90 days was pruned: 3 events and 1 calls of this pair, "
                                    f"from {old:%Y-%m-%d %H:%M} to {old + timedelta(hours=2):%Y-%m-%d %H:%M} UTC")
        assert LinkedPair.objects.filter(pk=pair.pk).exists()  # the pair itself stays, with its dates

    def test_the_daily_schedule_exists(self, db):
        assert Schedule.objects.get(func="syncengine.tasks.prune_history").schedule_type == Schedule.DAILY
