"""The sync end to end: incidents and requests made in the simulators, webhooks delivered over real HTTP
to the portal, the portal's calls back to the simulators, counterparts counted in the simulators' own records.

The cast is the demo (``sandbox.demo.seed``): the bidirectional integration Website ⇄ Website (Production),
provisioned against the simulators, with the Operations team's mapping P1 top, P2 high, P3 medium,
P4 low, P5 low. People act through the simulators' own operations (the by-hand UI's person in Xurrent,
the engine in Zenduty); ``settle()`` delivers every pending webhook until none is left.
"""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests

from connections import http
from integrations.models import OutgoingIntegration
from syncengine import jobs
from syncengine.models import EventStatus, InboundEvent, LinkedPair, OutboundCall, PairState

pytestmark = pytest.mark.django_db(transaction=True)


class Demo:
    """Both simulators seeded, the demo integration provisioned and verified."""

    def __init__(self, live_server):
        from sandbox import demo
        from sandbox.xurrent import demo as xurrent_demo
        from sandbox.xurrent.conventions import Origin
        from sandbox.zenduty import demo as zenduty_demo

        self.zenduty = zenduty_demo.seed()
        self.xurrent_account = xurrent_demo.seed()
        demo.seed(check_connections=False)
        self.settle()
        self.integration = OutgoingIntegration.objects.get()
        assert self.integration.provisioning_status == "provisioned", self.integration.provisioning_error
        self.origin = Origin(f"{live_server.url}/sandbox/xurrent/xurrent.com")
        self.person = self.xurrent_account.ui_person()

    # -- delivering ------------------------------------------------------------------------------
    @staticmethod
    def settle(rounds: int = 10) -> None:
        """Deliver pending webhooks (and those the portal's own calls cause) until none is left."""
        from sandbox import deliveries

        for _ in range(rounds):
            if not deliveries.flush():
                return

    # -- Zenduty side -------------------------------------------------------------------------
    def trigger(self, title="Checkout error rate high", priority: str | None = "P1", **fields):
        from sandbox.zenduty import operations

        extra = {"team_priority": self.priority(priority)} if priority else {}
        return operations.create_incident(service=self.zenduty.website, title=title,
                                      summary="5xx above 5% for 10 minutes", **extra, **fields)

    def priority(self, name):
        return next(p for p in self.zenduty.priorities if p.name == name)

    @staticmethod
    def set_incident_status(incident, status):
        from sandbox.zenduty import operations

        incident.refresh_from_db()
        operations.set_status(incident, status)

    @staticmethod
    def incidents():
        from sandbox.zenduty.models import Incident

        return list(Incident.objects.order_by("id"))

    # -- Xurrent side --------------------------------------------------------------------------
    def raise_request(self, instance="Website (Production)", category="incident", impact="high", **fields):
        from sandbox.xurrent import operations
        from sandbox.xurrent.models import ServiceInstance

        data = {"subject": "Checkout is slow", "category": category, "impact": impact,
                "service_instance_id": ServiceInstance.objects.get(name=instance).pk,
                "note": "Customers report 30 s page loads", **fields}
        return operations.create_request(self.xurrent_account, self.person, data, self.origin,
                                          default_source="Xurrent")

    def change_request(self, request, **data):
        from sandbox.xurrent import operations

        request.refresh_from_db()
        return operations.update_request(request, self.person, data, self.origin)

    @staticmethod
    def requests():
        from sandbox.xurrent.models import Request

        return list(Request.objects.order_by("id"))

    @staticmethod
    def notes(request):
        from sandbox.xurrent.models import Note

        return list(Note.objects.filter(request=request).order_by("id"))


@pytest.fixture
def demo(sandbox):
    return Demo(sandbox)


def events(event_type=None):
    qs = InboundEvent.objects.exclude(event_type="webhook.verify").order_by("pk")
    return list(qs.filter(event_type=event_type) if event_type else qs)


def reasons():
    return [(e.source, e.event_type, e.status, e.reason) for e in events()]


# -- incident → request ----------------------------------------------------------------------------
def test_an_incident_becomes_one_request_with_its_fields(demo, admin_client):
    incident = demo.trigger(priority="P1")
    demo.settle()

    [request] = demo.requests()
    assert (request.subject, request.category, request.impact, request.status) == \
        ("Checkout error rate high", "incident", "top", "assigned")  # P1 → top
    assert (request.source, request.sourceID, request.service_instance.name) == \
        ("Zenduty", incident.unique_id, "Website (Production)")
    [note] = demo.notes(request)
    assert note.internal and "5xx above 5% for 10 minutes" in note.text
    assert f"Zenduty incident #{incident.incident_number}: " in note.text
    link = urlsplit(note.text.rsplit(": ", 1)[1])  # the incident's page (here the simulator's)
    assert link.path == f"/sandbox/zenduty/dashboard/incidents/{incident.incident_number}"
    assert admin_client.get(link.path)["Location"] == f"/sandbox/zenduty/ui/incidents/{incident.pk}/"
    pair = LinkedPair.objects.get()
    assert (pair.state, pair.origin, pair.xurrent_request_id, pair.zenduty_incident_unique_id) == \
        (PairState.LINKED, "zenduty", str(request.pk), incident.unique_id)
    # The request's own request.create came back: recognised as the portal's, not synced back.
    [echo] = events("request.create")
    assert echo.status == EventStatus.IGNORED and echo.reason.startswith("Echo of the portal's own request")
    assert len(demo.incidents()) == 1
    # The pair's timeline: its events and the calls made for it.
    assert set(InboundEvent.objects.filter(pair=pair).values_list("event_type", flat=True)) >= \
        {"triggered", "request.create"}
    assert OutboundCall.objects.filter(pair=pair, method="POST", url__endswith="/requests").count() == 1


def test_acknowledge_and_resolve_move_the_request_on(demo):
    incident = demo.trigger()
    demo.settle()
    demo.set_incident_status(incident, 2)
    demo.settle()
    [request] = demo.requests()
    assert request.status == "in_progress"

    demo.set_incident_status(incident, 3)
    demo.settle()

    request.refresh_from_db()
    assert (request.status, request.completion_reason) == ("completed", "solved")
    assert "Resolved in Zenduty (assignee: Dwight Schrute)." in [n.text for n in demo.notes(request)]
    assert LinkedPair.objects.get().state == PairState.CLOSED
    # The portal's own status changes came back from Xurrent as echoes, never written to Zenduty again.
    assert all(e.status == EventStatus.IGNORED and "Echo of the portal's own change" in e.reason
               for e in events("request.status-changed")), reasons()
    assert len(demo.incidents()) == 1 and len(demo.requests()) == 1


def test_an_incident_resolved_before_its_triggered_was_seen_is_created_then_completed(demo):
    from sandbox.models import DeliveryState, OutboundDelivery

    incident = demo.trigger()
    OutboundDelivery.objects.filter(service="zenduty").update(state=DeliveryState.DROPPED)  # triggered lost
    demo.set_incident_status(incident, 3)
    demo.settle()

    [request] = demo.requests()
    assert (request.sourceID, request.status, request.completion_reason) == (incident.unique_id, "completed",
                                                                              "solved")


def test_a_resolved_delivered_before_the_acknowledged_leaves_the_newest_state(demo):
    from sandbox import faults

    incident = demo.trigger()
    demo.settle()
    faults.inject("zenduty", "reorder_delivery")  # the acknowledged is held back until the resolved went out
    demo.set_incident_status(incident, 2)
    demo.set_incident_status(incident, 3)
    demo.settle()

    [request] = demo.requests()
    assert request.status == "completed"
    acknowledged = events("acknowledged")[0]
    assert acknowledged.pk > events("resolved")[0].pk  # it did arrive last
    assert acknowledged.status == EventStatus.IGNORED and "older than what the pair last saw" in acknowledged.reason


def test_ten_copies_of_a_delivery_and_replays_make_one_request(demo):
    from sandbox.models import OutboundDelivery

    demo.trigger()
    original = OutboundDelivery.objects.get(service="zenduty")
    for _ in range(9):
        OutboundDelivery.objects.create(service="zenduty", url=original.url, body=original.body,
                                        headers=original.headers, description=original.description,
                                        meta=original.meta)
    demo.settle()
    triggered = events("triggered")
    assert len(triggered) == 1 and triggered[0].duplicates == 9
    for _ in range(3):
        assert jobs.replay_event(triggered[0].pk)
        jobs.process_inbound_event(triggered[0].pk)
    demo.settle()

    assert len(demo.requests()) == 1 and LinkedPair.objects.count() == 1


def test_a_lost_create_answer_is_adopted_on_retry_without_a_second_request(demo, monkeypatch):
    real_send = http.send

    def send(session, method, url, **kwargs):
        response = real_send(session, method, url, **kwargs)
        if method == "POST" and url.endswith("/v1/requests"):
            raise requests.ConnectionError("connection reset after the request was sent")  # the answer is lost
        return response

    monkeypatch.setattr(http, "send", send)
    incident = demo.trigger()
    demo.settle()
    [event] = events("triggered")
    assert event.status == EventStatus.RETRY_SCHEDULED, event.reason
    assert len(demo.requests()) == 1 and LinkedPair.objects.get().state == PairState.CREATING

    monkeypatch.setattr(http, "send", real_send)
    jobs.process_inbound_event(event.pk)  # the scheduled retry

    event.refresh_from_db()
    [request] = demo.requests()
    assert event.status == EventStatus.PROCESSED and event.reason.startswith("Adopted Xurrent request")
    pair = LinkedPair.objects.get()
    assert (pair.state, pair.xurrent_request_id) == (PairState.LINKED, str(request.pk))
    assert request.sourceID == incident.unique_id


def test_an_incident_waiting_for_the_zenduty_budget_calls_xurrent_only_once_its_read_goes(demo):
    """A backlog: the account's 30 Zenduty incident reads a minute are spent, so the read the create needs
    (the webhook carries no priority) is refused before any call and the event rescheduled. A retry
    refused again must not have looked in Xurrent first (bench/backlog.py measured 3.3 Xurrent calls an
    incident for 200 at once: one lookup per refused retry)."""
    import time

    from django.db.models import Max

    from connections.models import ApiBudget

    reads = f"zenduty:account:{demo.integration.zenduty_account_id}:incident-reads"
    ApiBudget.objects.update_or_create(key=reads, defaults={"recent": [time.time()] * 30})
    set_up = OutboundCall.objects.aggregate(last=Max("pk"))["last"]
    incident = demo.trigger()
    demo.settle()
    [event] = events("triggered")
    assert event.status == EventStatus.RETRY_SCHEDULED, event.reason
    jobs.process_inbound_event(event.pk)  # the scheduled retry, the budget still spent
    event.refresh_from_db()
    assert event.status == EventStatus.RETRY_SCHEDULED, event.reason
    assert not OutboundCall.objects.filter(pk__gt=set_up).exists()

    ApiBudget.objects.filter(key=reads).delete()  # the minute has passed
    jobs.process_inbound_event(event.pk)
    event.refresh_from_db()
    [request] = demo.requests()
    assert event.status == EventStatus.PROCESSED and request.sourceID == incident.unique_id, event.reason
    calls = [(c.service, c.method) for c in OutboundCall.objects.filter(pk__gt=set_up).order_by("pk")]
    # The claim is not fresh, so the request is looked for before it is created (a lost answer).
    assert calls == [("zenduty", "GET"), ("xurrent", "GET"), ("xurrent", "POST")]


def test_waiting_for_the_zenduty_budget_is_no_failed_attempt(demo):
    """The portal's own budget refusing a read sends nothing: however many times an event waits for its
    slot (a backlog of 200 incidents waits minutes), it is not given up, and it syncs once the slot comes.
    Counted as attempts, 50 of 200 incidents at once never got a request (bench/backlog.py)."""
    import time

    from connections.models import ApiBudget

    reads = f"zenduty:account:{demo.integration.zenduty_account_id}:incident-reads"
    ApiBudget.objects.update_or_create(key=reads, defaults={"recent": [time.time()] * 30})
    incident = demo.trigger()
    demo.settle()
    [event] = events("triggered")
    for _ in range(jobs.MAX_ATTEMPTS + 2):  # the scheduled retries, the budget still spent
        jobs.process_inbound_event(event.pk)
        event.refresh_from_db()
        assert event.status == EventStatus.RETRY_SCHEDULED, event.reason
    assert event.attempts == 0
    assert event.reason.startswith("Attempt 0 of 5: Not sent yet: the portal keeps to Zenduty's rate limits")
    assert "Zenduty is rate limiting" not in event.reason

    ApiBudget.objects.filter(key=reads).delete()  # the minute has passed
    jobs.process_inbound_event(event.pk)
    event.refresh_from_db()
    [request] = demo.requests()
    assert event.status == EventStatus.PROCESSED and request.sourceID == incident.unique_id, event.reason


def test_events_waiting_for_the_zenduty_budget_come_back_each_at_a_turn_of_its_own(demo):
    """Told only when the next read frees, every event of a backlog came back at once and all but one were
    refused again, round after round (bench/backlog.py: 2.4x the time the limits allow). Each gets a turn."""
    import time

    from connections.models import ApiBudget

    reads = f"zenduty:account:{demo.integration.zenduty_account_id}:incident-reads"
    spent_at = time.time()
    ApiBudget.objects.update_or_create(key=reads, defaults={"recent": [spent_at] * 30})
    for _ in range(4):
        demo.trigger()
    demo.settle()
    waiting = events("triggered")
    assert [e.status for e in waiting] == [EventStatus.RETRY_SCHEDULED] * 4
    comebacks = sorted(e.next_attempt_at.timestamp() - spent_at for e in waiting)
    # Zenduty's 30 reads a minute free together, its 3 a second then spread them: three now, one a second on.
    assert comebacks == pytest.approx([60.25, 60.25, 60.25, 61.5], abs=0.1)
    assert sorted(ApiBudget.objects.get(key=reads).booked) == pytest.approx(
        [spent_at + c for c in comebacks], abs=0.1)


def test_a_429_from_the_service_itself_still_counts_as_an_attempt(demo):
    """Only a wait decided before sending is free; a refusal by Zenduty is a failed attempt, bounded."""
    from sandbox import faults

    faults.inject("zenduty", "rate_limit_429", method="GET", path_prefix="/api/incidents/", retry_after=1)
    demo.trigger()
    demo.settle()
    [event] = events("triggered")
    assert event.status == EventStatus.RETRY_SCHEDULED and event.attempts == 1, event.reason
    assert "Not sent yet" not in event.reason


def test_two_events_of_one_incident_at_the_same_moment_make_one_request(demo, monkeypatch):
    """While the first event is creating the request, the second finds the claim and waits."""
    real_send = http.send
    second_outcome = []

    incident = demo.trigger()
    demo.set_incident_status(incident, 2)
    from sandbox import deliveries
    from sandbox.models import OutboundDelivery

    triggered, acknowledged = OutboundDelivery.objects.filter(service="zenduty").order_by("id")

    def send(session, method, url, **kwargs):
        if method == "POST" and url.endswith("/v1/requests") and not second_outcome:
            # The acknowledged arrives now, on another worker, while the create is under way.
            second_outcome.append(deliveries.flush())
            event = events("acknowledged")[0]
            second_outcome.append((event.status, event.reason))
        return real_send(session, method, url, **kwargs)

    monkeypatch.setattr(http, "send", send)
    # Here both run in one thread, so the holder cannot finish while the second waits for it.
    monkeypatch.setattr(jobs, "BUSY_WAIT_SECONDS", 0.3)
    assert deliveries._claim(triggered.pk)  # the triggered goes first, as the outbox sends it
    deliveries.send_one(OutboundDelivery.objects.get(pk=triggered.pk))

    status, reason = second_outcome[1]
    assert status == EventStatus.RETRY_SCHEDULED and "being processed" in reason
    assert len(demo.requests()) == 1
    acknowledged_event = events("acknowledged")[0]
    jobs.process_inbound_event(acknowledged_event.pk)  # its retry, a few seconds later

    acknowledged_event.refresh_from_db()
    assert acknowledged_event.status == EventStatus.PROCESSED, acknowledged_event.reason
    [request] = demo.requests()
    assert request.status == "in_progress" and LinkedPair.objects.count() == 1


def test_an_event_whose_pair_is_busy_for_a_moment_waits_for_it_rather_than_a_scheduled_retry(demo):
    """A scheduled retry starts when a cluster next looks for due schedules (django-q2's own: every 30 s),
    and waiting in place for a lease given back in a moment is quicker still."""
    from datetime import timedelta

    from django.utils import timezone

    incident = demo.trigger()
    demo.settle()
    # Another event (another worker) holds the pair for one more second.
    LinkedPair.objects.update(lease_owner="event-0-other", lease_until=timezone.now() + timedelta(seconds=1))

    demo.set_incident_status(incident, 2)
    demo.settle()

    acknowledged = events("acknowledged")[0]
    assert acknowledged.status == EventStatus.PROCESSED, acknowledged.reason
    assert acknowledged.attempts == 1
    assert demo.requests()[0].status == "in_progress"


def test_a_permanent_422_fails_with_xurrents_message_flags_the_integration_and_can_be_replayed(demo, admin_client):
    OutgoingIntegration.objects.filter(pk=demo.integration.pk).update(service_instance_id="999999")
    demo.trigger()
    demo.settle()

    [event] = events("triggered")
    assert event.status == EventStatus.FAILED and event.attempts == 1
    assert "Xurrent rejected the data: service_instance: Service instance is invalid" in event.reason
    integration = OutgoingIntegration.objects.get()
    assert "Service instance is invalid" in integration.sync_error and integration.sync_error_at
    assert LinkedPair.objects.get().state == PairState.FAILED and demo.requests() == []
    page = admin_client.get(f"/admin/integrations/outgoingintegration/{integration.pk}/change/").content.decode()
    assert "Service instance is invalid" in page and "replay the failed event" in page

    OutgoingIntegration.objects.filter(pk=demo.integration.pk).update(
        service_instance_id=demo.integration.service_instance_id)
    assert jobs.replay_event(event.pk)
    jobs.process_inbound_event(event.pk)

    event.refresh_from_db()
    assert event.status == EventStatus.PROCESSED, event.reason
    assert len(demo.requests()) == 1 and LinkedPair.objects.get().state == PairState.LINKED
    assert OutgoingIntegration.objects.get().sync_error == ""


def fail_permanently(integration):
    from connections import errors
    from syncengine.flows.common import flagged_on_permanent_error

    with pytest.raises(errors.PermanentError):
        with flagged_on_permanent_error(integration, "create the request"):
            raise errors.PermissionDeniedError("Xurrent answered 403 Forbidden", status=403)


def succeed(integration):
    from syncengine.flows.common import flagged_on_permanent_error

    with flagged_on_permanent_error(integration, "create the request"):
        pass


@pytest.mark.parametrize("who_failed", ["this object", "another worker"])
def test_a_later_success_clears_the_sync_error_from_the_integration_page(admin_client, integration, who_failed):
    """The poller and the sweep use one integration object for all its pairs, and a worker's object
    may be read before another worker's failure: either way the success after it clears the error."""
    page = f"/admin/integrations/outgoingintegration/{integration.pk}/change/"
    fail_permanently(integration if who_failed == "this object" else OutgoingIntegration.objects.get())
    assert "Could not create the request" in admin_client.get(page).content.decode()

    succeed(integration)

    assert OutgoingIntegration.objects.filter(sync_error="", sync_error_at=None).count() == 1
    html = admin_client.get(page).content.decode()
    assert "No sync error." in html and "Could not create the request" not in html


# -- request → incident ----------------------------------------------------------------------------
def test_a_request_becomes_one_incident_with_the_marker_and_the_reverse_mapping(demo):
    request = demo.raise_request(impact="low")  # P4 and P5 map to low: the highest-ranked, P4, is used
    demo.settle()

    [incident] = demo.incidents()
    assert incident.title == f"[Xurrent #{request.pk}] Checkout is slow"
    assert incident.team_priority.name == "P4" and incident.service == demo.zenduty.website
    assert "Customers report 30 s page loads" in incident.summary
    assert f"Xurrent request #{request.pk}: " in incident.summary and f"/requests/{request.pk}" in incident.summary
    pair = LinkedPair.objects.get()
    assert (pair.origin, pair.state, pair.zenduty_incident_unique_id) == ("xurrent", PairState.LINKED,
                                                                          incident.unique_id)
    # The incident's own "triggered" came back: recognised by the marker.
    [echo] = events("triggered")
    assert echo.status == EventStatus.IGNORED and echo.reason.startswith("Echo of the portal's own incident")
    assert len(demo.requests()) == 1


def test_completing_the_request_resolves_the_incident_and_reopening_tells_both_sides(demo):
    from sandbox.zenduty.models import Note

    request = demo.raise_request()
    demo.settle()
    demo.change_request(request, status="completed", completion_reason="workaround")
    demo.settle()
    [incident] = demo.incidents()
    assert incident.status == 3 and LinkedPair.objects.get().state == PairState.CLOSED

    demo.change_request(request, status="assigned")
    demo.settle()

    incident.refresh_from_db()
    assert incident.status == 3  # Zenduty cannot reopen it
    assert any("was reopened" in n.note for n in Note.objects.filter(incident=incident))
    assert any("stays resolved" in n.text and n.internal for n in demo.notes(request))
    assert LinkedPair.objects.get().state == PairState.LINKED
    # The Zenduty "resolved" the portal caused came back and changed nothing.
    [resolved] = events("resolved")
    assert resolved.status == EventStatus.IGNORED and "already known as resolved" in resolved.reason


def test_requests_elsewhere_or_of_other_categories_create_nothing_and_say_why(demo):
    demo.raise_request(instance="Intranet (Production)")
    demo.raise_request(category="rfc")
    demo.settle()

    assert demo.incidents() == [] and LinkedPair.objects.count() == 0
    first, second = events("request.create")
    assert first.status == second.status == EventStatus.IGNORED
    assert "no integration for service instance 'Intranet (Production)'" in first.reason
    assert "category 'rfc'" in second.reason and "'incident'" in second.reason


def test_the_triggered_echo_arriving_before_the_create_answer_is_stored_is_recognised(demo, monkeypatch):
    """Zenduty's "triggered" for the incident the portal creates is delivered while the pair is still
    ``creating`` (the create's answer not yet recorded): the marker tells it is the portal's own."""
    from sandbox import deliveries

    real_send = http.send
    during = []

    def send(session, method, url, **kwargs):
        response = real_send(session, method, url, **kwargs)
        if method == "POST" and url.endswith("/api/incidents/"):
            during.append(LinkedPair.objects.get().state)
            deliveries.flush(service="zenduty")  # the webhook overtakes the answer
        return response

    monkeypatch.setattr(http, "send", send)
    demo.raise_request()
    demo.settle()

    assert during == [PairState.CREATING]
    [incident] = demo.incidents()
    [echo] = events("triggered")
    assert echo.status == EventStatus.IGNORED and "Echo of the portal's own incident" in echo.reason
    pair = LinkedPair.objects.get()
    assert (pair.state, pair.zenduty_incident_unique_id) == (PairState.LINKED, incident.unique_id)
    assert len(demo.requests()) == 1


def test_a_lost_incident_create_answer_is_found_by_its_marker(demo, monkeypatch):
    real_send = http.send

    def send(session, method, url, **kwargs):
        response = real_send(session, method, url, **kwargs)
        if method == "POST" and url.endswith("/api/incidents/"):
            raise requests.ConnectionError("connection reset after the request was sent")
        return response

    from sandbox import faults

    monkeypatch.setattr(http, "send", send)
    faults.inject("zenduty", "drop_delivery")  # its triggered webhook is lost too: only the marker can find it
    demo.raise_request()
    demo.settle()
    monkeypatch.setattr(http, "send", real_send)
    [event] = events("request.create")
    assert event.status == EventStatus.RETRY_SCHEDULED, event.reason
    assert LinkedPair.objects.get().state == PairState.CREATING and events("triggered") == []

    jobs.process_inbound_event(event.pk)

    event.refresh_from_db()
    [incident] = demo.incidents()
    assert event.status == EventStatus.PROCESSED and event.reason.startswith("Adopted Zenduty incident")
    assert LinkedPair.objects.get().zenduty_incident_unique_id == incident.unique_id


def test_a_worker_killed_after_creating_leaves_a_claim_the_next_event_adopts(demo):
    """The claim is still ``creating`` and its lease has run out; the request exists in Xurrent."""
    from datetime import timedelta

    from django.utils import timezone

    from connections.xurrent import XurrentClient
    from sandbox.models import DeliveryState, OutboundDelivery

    incident = demo.trigger()
    OutboundDelivery.objects.filter(service="zenduty").update(state=DeliveryState.DROPPED)
    LinkedPair.objects.create(integration=demo.integration, tenant=demo.integration.tenant,
                              zenduty_account=demo.integration.zenduty_account, origin="zenduty",
                              zenduty_incident_unique_id=incident.unique_id, lease_owner="event-1-dead",
                              lease_until=timezone.now() - timedelta(seconds=1))
    with XurrentClient.for_tenant(demo.integration.tenant) as xurrent:  # what the dead worker had sent
        xurrent.create_request({"subject": incident.title, "category": "incident", "impact": "top",
                                "service_instance_id": demo.integration.service_instance_id,
                                "source": "Zenduty", "sourceID": incident.unique_id})
    demo.set_incident_status(incident, 2)
    demo.settle()

    [request] = demo.requests()
    [event] = events("acknowledged")
    assert event.status == EventStatus.PROCESSED and event.reason.startswith("Adopted Xurrent request"), event.reason
    assert request.status == "in_progress" and LinkedPair.objects.get().state == PairState.LINKED


def test_a_500_on_the_create_is_retried_and_makes_one_request(demo):
    from sandbox import faults

    faults.inject("xurrent", "error_500", path_prefix="/v1/requests", method="POST")
    demo.trigger()
    demo.settle()
    [event] = events("triggered")
    assert event.status == EventStatus.RETRY_SCHEDULED and "server error" in event.reason
    assert demo.requests() == []

    jobs.process_inbound_event(event.pk)  # the scheduled retry

    event.refresh_from_db()
    assert event.status == EventStatus.PROCESSED and event.reason.startswith("Created Xurrent request")
    assert len(demo.requests()) == 1


def test_a_create_given_up_after_its_retries_leaves_a_failed_pair_that_a_replay_links(demo, admin_client):
    from sandbox import faults

    faults.inject("xurrent", "error_500", count=jobs.MAX_ATTEMPTS, path_prefix="/v1/requests", method="POST")
    demo.trigger()
    demo.settle()
    [event] = events("triggered")
    for _ in range(jobs.MAX_ATTEMPTS - 1):  # the scheduled retries
        jobs.process_inbound_event(event.pk)

    event.refresh_from_db()
    assert event.status == EventStatus.FAILED and event.reason.startswith("Gave up after 5 attempts.")
    pair = LinkedPair.objects.get()
    assert pair.state == PairState.FAILED and pair.lease_owner == ""
    assert pair.last_error.startswith("Gave up after 5 attempts.") and "server error" in pair.last_error
    listed = admin_client.get("/admin/syncengine/linkedpair/?state__exact=failed").content.decode()
    assert f"/admin/syncengine/linkedpair/{pair.pk}/change/" in listed
    assert demo.requests() == []

    assert jobs.replay_event(event.pk)  # the fault is spent, as a fixed outage would be
    jobs.process_inbound_event(event.pk)

    event.refresh_from_db()
    assert event.status == EventStatus.PROCESSED, event.reason
    assert len(demo.requests()) == 1 and LinkedPair.objects.get().state == PairState.LINKED


def test_giving_up_leaves_a_pair_that_another_event_works_on_alone(demo):
    from django.utils import timezone

    from syncengine import pairs

    pair = pairs.claim(demo.integration, origin="zenduty", owner="another-event", incident_unique_id="inc-1")

    assert pairs.give_up_claim(pair.pk, "Gave up after 5 attempts.") is False
    assert LinkedPair.objects.get().state == PairState.CREATING
    LinkedPair.objects.update(lease_until=timezone.now())  # its lease ran out: nobody works on it
    assert pairs.give_up_claim(pair.pk, "Gave up after 5 attempts.") is True
    assert LinkedPair.objects.get().state == PairState.FAILED


def test_zenduty_rate_limiting_the_create_backs_off_a_minute_then_makes_one_incident(demo):
    from django.utils import timezone

    from sandbox import faults

    faults.inject("zenduty", "rate_limit_429", path_prefix="/api/incidents/", method="POST")
    demo.raise_request()
    before = timezone.now()
    demo.settle()
    [event] = events("request.create")
    assert event.status == EventStatus.RETRY_SCHEDULED, event.reason
    # Zenduty's 429 names no Retry-After; its docs say to wait about a minute.
    assert (event.next_attempt_at - before).total_seconds() >= 59
    assert demo.incidents() == []

    jobs.process_inbound_event(event.pk)

    event.refresh_from_db()
    assert event.status == EventStatus.PROCESSED, event.reason
    assert len(demo.incidents()) == 1 and LinkedPair.objects.get().state == PairState.LINKED


def test_xurrents_webhook_test_is_ignored_and_says_what_it_was(demo):
    """"Test webhook" in Xurrent sends a sample message about request 12345, which the account does not
    have: each event is ignored with a reason, none fails, nothing is created."""
    from sandbox.xurrent import webhooks as xurrent_webhooks
    from sandbox.xurrent.models import Webhook

    for webhook in Webhook.objects.filter(verified=True).order_by("pk"):
        assert xurrent_webhooks.send_test(webhook, demo.person, demo.origin)
    demo.settle()

    tested = [e for e in events() if e.object_id == "12345"]
    assert {e.event_type for e in tested} >= {"request.create", "request.update"}
    assert all(e.status == EventStatus.IGNORED for e in tested), [(e.event_type, e.reason) for e in tested]
    [create] = [e for e in tested if e.event_type == "request.create"]
    assert create.reason.startswith("Xurrent's webhook test: its sample message always names request #12345")
    assert demo.incidents() == [] and not LinkedPair.objects.exists()


def test_the_direction_decides_which_side_creates_pairs(demo):
    OutgoingIntegration.objects.filter(pk=demo.integration.pk).update(direction="xurrent_to_zenduty")
    demo.trigger()
    demo.settle()
    OutgoingIntegration.objects.filter(pk=demo.integration.pk).update(direction="zenduty_to_xurrent")
    demo.raise_request()
    demo.settle()

    assert len(demo.requests()) == 1 and len(demo.incidents()) == 1  # each made by hand, neither synced
    assert LinkedPair.objects.count() == 0
    [triggered] = events("triggered")
    assert triggered.status == EventStatus.IGNORED and "direction is Xurrent → Zenduty" in triggered.reason
    [created] = events("request.create")
    assert created.status == EventStatus.IGNORED and "direction is Zenduty → Xurrent" in created.reason


def test_no_database_transaction_is_held_across_a_call(demo, monkeypatch):
    # A transaction held while the other side answers would hold SQLite's write lock (IMMEDIATE
    # mode) or PostgreSQL row locks: the webhook intake and other workers would wait on it.
    from django.db import connection

    real_send = http.send
    seen = []

    def send(session, method, url, **kwargs):
        seen.append((method, url.rsplit("/sandbox/", 1)[-1], connection.in_atomic_block))
        return real_send(session, method, url, **kwargs)

    monkeypatch.setattr(http, "send", send)
    incident = demo.trigger()
    demo.settle()
    demo.set_incident_status(incident, 3)
    demo.raise_request()
    demo.settle()

    assert len(demo.requests()) == 2 and len(demo.incidents()) == 2
    assert {m for m, _, _ in seen} >= {"GET", "POST", "PATCH"}
    assert [call for call in seen if call[2]] == []


# -- the pair's page -------------------------------------------------------------------------------
def test_each_pair_has_a_page_with_both_ids_links_and_its_timeline(demo, client, django_user_model):
    from django.contrib.auth.models import Permission
    from django.urls import reverse

    incident = demo.trigger(title="Disk full on web-1")
    demo.settle()
    demo.set_incident_status(incident, 2)
    demo.settle()
    [request] = demo.requests()
    pair = LinkedPair.objects.get()

    auditor = django_user_model.objects.create_user("pair-auditor", password="pw", is_staff=True)
    auditor.user_permissions.add(*Permission.objects.filter(codename__startswith="view_"))
    client.force_login(auditor)

    listing = reverse("admin:syncengine_linkedpair_changelist")
    for term in (f"#{incident.incident_number}", str(incident.incident_number), str(request.pk), incident.unique_id):
        found = client.get(listing, {"q": term}).content.decode()
        assert reverse("admin:syncengine_linkedpair_change", args=[pair.pk]) in found, term
    assert reverse("admin:syncengine_linkedpair_change", args=[pair.pk]) not in \
        client.get(listing, {"q": "999999"}).content.decode()

    page = client.get(reverse("admin:syncengine_linkedpair_change", args=[pair.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    # Both ids, with links to the records (the simulators stand in for the tenant's and Zenduty's hosts).
    assert f'/sandbox/xurrent/xurrent.com/requests/{request.pk}"' in html and f">#{request.pk}</a>" in html
    assert f'/sandbox/zenduty/dashboard/incidents/{incident.incident_number}"' in html
    assert f">#{incident.incident_number}</a>" in html
    # The timeline: the events received for the pair and the calls made for it, linked, newest first.
    timeline = html.split('class="pair-timeline"', 1)[1]
    for event in InboundEvent.objects.filter(pair=pair):
        assert reverse("admin:syncengine_inboundevent_change", args=[event.pk]) in timeline
    for call in OutboundCall.objects.filter(pair=pair):
        assert reverse("admin:syncengine_outboundcall_change", args=[call.pk]) in timeline
    assert timeline.index("Zenduty acknowledged") < timeline.index("Zenduty triggered")
    # An auditor reads it and cannot change anything on it.
    assert "Save" not in html and "deletelink" not in html
    # Each event's page leads back to its pair.
    [triggered] = events("triggered")
    event_page = client.get(reverse("admin:syncengine_inboundevent_change", args=[triggered.pk])).content.decode()
    assert reverse("admin:syncengine_linkedpair_change", args=[pair.pk]) in event_page


def test_the_reverse_rule_skips_a_priority_the_team_no_longer_has(demo):
    """P4 and P5 both map to low; P4 is deleted in Zenduty. Once the portal has read the team's
    priorities, a low-impact request gets P5, not the deleted P4 (which Zenduty refuses)."""
    from integrations import priority_refresh

    demo.priority("P4").delete()
    priority_refresh.refresh()

    request = demo.raise_request(impact="low")
    demo.settle()

    [incident] = demo.incidents()
    [created] = events("request.create")
    assert created.status == EventStatus.PROCESSED, created.reason
    assert incident.title.startswith(f"[Xurrent #{request.pk}]") and incident.team_priority.name == "P5"
