"""The reconciliation sweep end to end: webhooks dropped on the way, the sweep run as its schedule would run it,
both simulators answering over real HTTP, counterparts and calls counted in their own records.

The cast is the demo of ``test_sync.py`` (Website ⇄ Website (Production), bidirectional).
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from integrations.models import OutgoingIntegration
from syncengine import reconcile
from syncengine.models import EventStatus, LinkedPair, OutboundCall, PairNote, PairState, ReconcileCursor
from tests.syncengine.test_sync import Demo, events

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo(sandbox):
    demo = Demo(sandbox)
    # The integration has been there for a while (requests created since are its to sync).
    OutgoingIntegration.objects.filter(pk=demo.integration.pk).update(created_at=F("created_at") - timedelta(hours=1))
    return demo


def drop_pending(service: str) -> int:
    """The webhooks waiting to leave ``service`` are lost (Zenduty does not retry; a dropped delivery)."""
    from sandbox.models import DeliveryState, OutboundDelivery

    return OutboundDelivery.objects.filter(service=service, state=DeliveryState.PENDING).update(
        state=DeliveryState.DROPPED)


def sweep() -> tuple[reconcile.SweepReport, list[OutboundCall]]:
    """One sweep, as the schedule runs it; returns its report and the calls it made, oldest first."""
    last = OutboundCall.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    report = reconcile.run()
    return report, list(OutboundCall.objects.filter(pk__gt=last).order_by("pk"))


def calls_of(calls, service, integration=None):
    return [(c.method, c.url.rsplit("/sandbox/", 1)[-1]) for c in calls
            if c.service == service and (integration is None or c.integration_id == integration.pk)]


FILTER = ("POST", "zenduty/api/incidents/filter/")
LISTING = ("GET", "xurrent/xurrent.com/v1/requests")


def test_dropped_zenduty_acknowledged_and_resolved_are_repaired_by_one_sweep_each(demo, admin_client):
    incident = demo.trigger()
    demo.settle()
    [request] = demo.requests()
    pair = LinkedPair.objects.get()

    demo.set_incident_status(incident, 2)
    assert drop_pending("zenduty") == 1
    report, calls = sweep()

    request.refresh_from_db()
    assert request.status == "in_progress" and report.repaired == 1, report
    # One incident filter, one request listing; the repair: read the request, then write it.
    assert calls_of(calls, "zenduty") == [FILTER]
    assert calls_of(calls, "xurrent") == [LISTING, ("GET", f"xurrent/xurrent.com/v1/requests/{request.pk}"),
                                          ("PATCH", f"xurrent/xurrent.com/v1/requests/{request.pk}")]
    [note] = PairNote.objects.filter(pair=pair)
    assert f"Zenduty incident #{incident.incident_number} is acknowledged, and no webhook had said so" in note.text
    assert "→ request" in note.text and "in progress" in note.text
    demo.settle()  # the request's status change comes back from Xurrent: the portal's own
    assert all("Echo of the portal's own change" in e.reason for e in events("request.status-changed"))

    demo.set_incident_status(incident, 3)
    drop_pending("zenduty")
    report, calls = sweep()

    request.refresh_from_db()
    assert (request.status, request.completion_reason) == ("completed", "solved")
    assert "Resolved in Zenduty (assignee: Dwight Schrute)." in [n.text for n in demo.notes(request)]
    pair.refresh_from_db()
    assert pair.state == PairState.CLOSED and pair.closed_at is not None and pair.last_checked_at is not None
    assert calls_of(calls, "zenduty") == [FILTER]
    assert len(demo.requests()) == 1 and len(demo.incidents()) == 1
    # The pair's page says what the sweep repaired, among its events and calls.
    page = admin_client.get(f"/admin/syncengine/linkedpair/{pair.pk}/change/").content.decode()
    timeline = page.split('class="pair-timeline"', 1)[1]
    assert timeline.count('class="pair-note"') == 2
    assert timeline.index("is resolved, and no webhook had said so") < timeline.index("is acknowledged, and no")


def test_a_dropped_xurrent_status_change_is_repaired_by_one_sweep(demo):
    request = demo.raise_request()
    demo.settle()
    [incident] = demo.incidents()

    demo.change_request(request, status="completed", completion_reason="solved")
    assert drop_pending("xurrent") >= 1  # request.update and request.status-changed, both lost
    report, calls = sweep()

    incident.refresh_from_db()
    assert incident.status == 3 and report.repaired == 1, report
    # The listing carries the request's status: no GET of it; one PATCH resolves the incident.
    assert calls_of(calls, "xurrent") == [LISTING]
    assert calls_of(calls, "zenduty") == [FILTER, ("PATCH", f"zenduty/api/incidents/{incident.unique_id}/")]
    pair = LinkedPair.objects.get()
    assert pair.state == PairState.CLOSED and pair.closed_at is not None
    [note] = PairNote.objects.filter(pair=pair)
    assert f"Xurrent request #{request.pk} is completed, and no webhook had said so" in note.text
    assert "incident" in note.text and "resolved" in note.text
    # The resolved that Zenduty sends for the portal's own change is known already.
    demo.settle()
    [resolved] = events("resolved")
    assert resolved.status == EventStatus.IGNORED and "already known as resolved" in resolved.reason


def test_a_reopened_request_of_a_closed_pair_is_found_by_the_listing(demo):
    from sandbox.zenduty.models import Note

    request = demo.raise_request()
    demo.settle()
    demo.change_request(request, status="completed", completion_reason="solved")
    demo.settle()
    assert LinkedPair.objects.get().state == PairState.CLOSED

    demo.change_request(request, status="assigned")
    drop_pending("xurrent")
    report, calls = sweep()

    [incident] = demo.incidents()
    assert incident.status == 3 and any("was reopened" in n.note for n in Note.objects.filter(incident=incident))
    assert LinkedPair.objects.get().state == PairState.LINKED and report.repaired == 1
    # No open pair waits on an unresolved incident: the one filter is for new incidents (the integration
    # creates requests from Zenduty), then only the note written.
    assert calls_of(calls, "zenduty") == [FILTER, ("POST", f"zenduty/api/incidents/{incident.incident_number}/note/")]


def test_each_integration_costs_one_zenduty_call_and_nothing_is_written_when_nothing_differs(demo):
    from integrations import provisioning
    from sandbox import demo as sandbox_demo
    from sandbox.xurrent.models import ServiceInstance

    first = demo.integration
    payments = demo.zenduty.services["Payments API"]
    second = OutgoingIntegration.objects.create(
        zenduty_account=first.zenduty_account, zenduty_team_id=first.zenduty_team_id,
        zenduty_team_name="Operations", zenduty_service_id=str(payments.unique_id),
        zenduty_service_name="Payments API", tenant=first.tenant,
        service_instance_id=str(ServiceInstance.objects.get(name="Payments API (Production)").pk),
        service_instance_name="Payments API (Production)")
    provisioning.provision(second.pk)
    sandbox_demo.configure_zenduty_side(OutgoingIntegration.objects.get(pk=second.pk))
    demo.settle()
    for title in ("Disk full", "Checkout errors", "Slow search"):  # three open pairs on Website
        demo.trigger(title=title)
    demo.raise_request()
    from sandbox.zenduty import operations

    operations.create_incident(service=payments, title="Card payments failing", summary="")  # one on Payments
    demo.settle()
    assert LinkedPair.objects.filter(state=PairState.LINKED).count() == 5
    before = {p.pk: _comparable(p) for p in LinkedPair.objects.all()}
    requests_before = {r.pk: r.updated_at for r in demo.requests()}
    incidents_before = {i.pk: (i.status, i.acknowledged_date, i.resolved_date) for i in demo.incidents()}
    events_before = len(events())

    report, calls = sweep()

    # Exactly one incident filter per integration, and one request listing each: nothing else.
    assert calls_of(calls, "zenduty", first) == [FILTER] and calls_of(calls, "zenduty", second) == [FILTER]
    assert calls_of(calls, "xurrent", first) == [LISTING] and calls_of(calls, "xurrent", second) == [LISTING]
    assert len(calls) == 4
    # Nothing written: no note, no pair changed but for when it was checked, neither side touched.
    assert PairNote.objects.count() == 0 and report.repaired == report.created == report.closed == 0
    assert {p.pk: _comparable(p) for p in LinkedPair.objects.all()} == before
    assert all(p.last_checked_at for p in LinkedPair.objects.all()) and report.checked == 5
    assert {r.pk: r.updated_at for r in demo.requests()} == requests_before
    assert {i.pk: (i.status, i.acknowledged_date, i.resolved_date) for i in demo.incidents()} == incidents_before
    demo.settle()
    assert len(events()) == events_before  # and neither side had anything to tell


def _comparable(pair: LinkedPair) -> dict:
    return {f.name: getattr(pair, f.attname) for f in LinkedPair._meta.concrete_fields
            if f.name not in ("last_checked_at",)}


def test_a_request_moved_into_the_service_instance_gets_its_incident_once(demo):
    from sandbox.xurrent.models import Request, ServiceInstance

    request = demo.raise_request(instance="Intranet (Production)")
    demo.settle()
    [created] = events("request.create")
    assert "no integration for service instance 'Intranet (Production)'" in created.reason
    Request.objects.filter(pk=request.pk).update(created_at=F("created_at") - timedelta(minutes=5))
    website = ServiceInstance.objects.get(name="Website (Production)")
    demo.change_request(request, service_instance_id=website.pk)
    demo.settle()  # request.update arrives: not a request.create, so it creates nothing
    assert demo.incidents() == []

    report, _ = sweep()
    second, calls = sweep()

    [incident] = demo.incidents()
    assert incident.title == f"[Xurrent #{request.pk}] Checkout is slow" and report.created == 1
    assert second.created == 0 and calls_of(calls, "zenduty") == [FILTER]
    pair = LinkedPair.objects.get()
    assert (pair.origin, pair.state, pair.zenduty_incident_unique_id) == ("xurrent", PairState.LINKED,
                                                                          incident.unique_id)
    [note] = PairNote.objects.filter(pair=pair)
    assert "is in 'Website (Production)' but no request.create for it reached this integration" in note.text
    demo.settle()
    [echo] = events("triggered")
    assert echo.status == EventStatus.IGNORED and "Echo of the portal's own incident" in echo.reason


def test_an_incident_whose_webhooks_were_all_lost_gets_its_request_once(demo):
    """Zenduty does not retry a delivery: an incident whose triggered and acknowledged were both lost
    would never get its request without the sweep."""
    from sandbox.zenduty.models import Incident

    incident = demo.trigger(priority="P2")
    demo.set_incident_status(incident, 2)
    assert drop_pending("zenduty") == 2
    Incident.objects.filter(pk=incident.pk).update(creation_date=F("creation_date") - timedelta(minutes=5))

    report, calls = sweep()
    second, again = sweep()

    [request] = demo.requests()
    assert report.created == 1 and second.created == 0
    assert (request.source, request.sourceID, request.impact, request.status) == (
        "Zenduty", incident.unique_id, "high", "in_progress")
    assert "5xx above 5% for 10 minutes" in demo.notes(request)[0].text  # the summary, read by the GET
    # One filter, then the incident's GET (the filter leaves out summary and priority).
    assert calls_of(calls, "zenduty") == [FILTER, ("GET", f"zenduty/api/incidents/{incident.unique_id}/")]
    assert calls_of(again, "zenduty") == [FILTER] and calls_of(again, "xurrent") == [LISTING]
    pair = LinkedPair.objects.get()
    assert (pair.origin, pair.state, pair.zenduty_status) == ("zenduty", PairState.LINKED, 2)
    [note] = PairNote.objects.filter(pair=pair)
    assert f"incident #{incident.incident_number} is on the service but none of its webhooks reached" in note.text
    demo.settle()  # the request's create comes back from Xurrent: the portal's own
    assert all(e.status == EventStatus.IGNORED for e in events()), [e.reason for e in events()]


def test_incidents_older_than_the_integration_just_made_or_its_own_create_nothing(demo):
    from sandbox.zenduty.models import Incident

    old = demo.trigger(title="Old news")
    fresh = demo.trigger(title="Just now")
    drop_pending("zenduty")
    Incident.objects.filter(pk=old.pk).update(creation_date=F("creation_date") - timedelta(days=1))
    demo.raise_request()  # its incident is the portal's own, marked in its title
    demo.settle()
    assert LinkedPair.objects.count() == 1

    report, _ = sweep()

    assert report.created == 0 and LinkedPair.objects.count() == 1 and demo.requests()[1:] == []
    Incident.objects.filter(pk=fresh.pk).update(creation_date=F("creation_date") - timedelta(minutes=5))
    assert sweep()[0].created == 1


def test_a_one_way_xurrent_to_zenduty_integration_creates_no_request_from_a_lost_incident(demo):
    from sandbox.zenduty.models import Incident

    OutgoingIntegration.objects.filter(pk=demo.integration.pk).update(direction="xurrent_to_zenduty")
    incident = demo.trigger()
    drop_pending("zenduty")
    Incident.objects.filter(pk=incident.pk).update(creation_date=F("creation_date") - timedelta(minutes=5))

    report, calls = sweep()

    assert report.created == 0 and demo.requests() == [] and calls_of(calls, "zenduty") == []


def test_a_create_the_sweep_left_half_done_is_finished_by_the_next_sweep(demo):
    """A 429 on the incident create stops the sweep after its claim: the next sweep takes the claim over
    (it would otherwise wait for a webhook that never comes) and makes one incident."""
    from sandbox import faults
    from sandbox.xurrent.models import Request, ServiceInstance

    request = demo.raise_request(instance="Intranet (Production)")
    demo.settle()
    Request.objects.filter(pk=request.pk).update(created_at=F("created_at") - timedelta(minutes=5))
    demo.change_request(request, service_instance_id=ServiceInstance.objects.get(name="Website (Production)").pk)
    demo.settle()
    # One way: the sweep reads no Zenduty incidents (no filter), so the 429 falls on the create.
    OutgoingIntegration.objects.filter(pk=demo.integration.pk).update(direction="xurrent_to_zenduty")
    faults.inject("zenduty", "rate_limit_429", path_prefix="/api/incidents/", method="POST")

    first, _ = sweep()
    assert first.created == 0 and first.stopped and demo.incidents() == []
    assert LinkedPair.objects.get().state == PairState.CREATING
    second, _ = sweep()

    [incident] = demo.incidents()
    assert second.created == 1 and incident.title.startswith(f"[Xurrent #{request.pk}]")
    assert LinkedPair.objects.get().state == PairState.LINKED


def test_requests_older_than_the_integration_or_of_other_categories_are_not_back_filled(demo):
    from sandbox.xurrent.models import Request, ServiceInstance

    old = demo.raise_request(instance="Intranet (Production)")
    rfc = demo.raise_request(instance="Intranet (Production)", category="rfc")
    demo.settle()
    Request.objects.filter(pk=old.pk).update(created_at=F("created_at") - timedelta(days=1))
    Request.objects.filter(pk=rfc.pk).update(created_at=F("created_at") - timedelta(minutes=5))
    website = ServiceInstance.objects.get(name="Website (Production)").pk
    demo.change_request(old, service_instance_id=website)
    demo.change_request(rfc, service_instance_id=website)
    demo.settle()

    report, _ = sweep()

    assert demo.incidents() == [] and LinkedPair.objects.count() == 0 and report.created == 0


def test_a_zenduty_429_ends_the_sweep_politely_and_the_next_one_repairs(demo):
    from sandbox import faults

    incident = demo.trigger()
    demo.settle()
    demo.set_incident_status(incident, 2)
    drop_pending("zenduty")
    faults.inject("zenduty", "rate_limit_429", path_prefix="/api/incidents/filter/", method="POST")

    report, calls = sweep()

    [request] = demo.requests()
    assert request.status == "assigned" and report.repaired == 0
    assert report.stopped and "Zenduty asked to back off" in report.stopped[0]
    assert [c.status for c in calls if c.service == "zenduty"] == [429]  # asked once, not again
    assert calls_of(calls, "xurrent") == []  # the integration's sweep stopped there
    assert LinkedPair.objects.get().last_checked_at is None
    assert not ReconcileCursor.objects.exists()  # the next sweep lists the same changes

    report, _ = sweep()

    request.refresh_from_db()
    assert request.status == "in_progress" and report.repaired == 1 and not report.stopped


def test_a_xurrent_429_on_a_repair_stops_and_keeps_the_cursor(demo):
    from sandbox import faults

    incident = demo.trigger()
    demo.settle()
    demo.set_incident_status(incident, 3)
    drop_pending("zenduty")
    faults.inject("xurrent", "rate_limit_429", path_prefix="/v1/requests/", method="GET", retry_after=120)

    report, _ = sweep()

    [request] = demo.requests()
    assert request.status == "assigned" and "Xurrent asked to back off" in report.stopped[0]
    assert not ReconcileCursor.objects.exists() and LinkedPair.objects.get().last_checked_at is None

    report, _ = sweep()

    request.refresh_from_db()
    assert request.status == "completed" and LinkedPair.objects.get().state == PairState.CLOSED


def test_a_pair_busy_with_an_event_is_left_for_the_next_sweep(demo):
    incident = demo.trigger()
    demo.settle()
    demo.set_incident_status(incident, 2)
    drop_pending("zenduty")
    LinkedPair.objects.update(lease_owner="event-9-live", lease_until=timezone.now() + timedelta(seconds=60))

    report, _ = sweep()

    assert report.skipped_busy == 1 and demo.requests()[0].status == "assigned"
    assert LinkedPair.objects.get().last_checked_at is None
    LinkedPair.objects.update(lease_owner="", lease_until=None)
    assert sweep()[0].repaired == 1 and demo.requests()[0].status == "in_progress"


@pytest.mark.django_db(transaction=False)  # as migrated (transactional tests flush the schedules)
def test_the_schedule_follows_the_setting(settings):
    from django.utils.module_loading import import_string
    from django_q.models import Schedule

    schedule = Schedule.objects.get(func="syncengine.tasks.reconcile")
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 5, -1)
    assert import_string(schedule.func)() == {"integrations": 0, "checked": 0, "repaired": 0, "created": 0,
                                              "closed": 0, "skipped_busy": 0, "stopped": []}
    settings.SYNC_RECONCILE_MINUTES = 15
    reconcile.align_schedule()
    assert Schedule.objects.get(pk=schedule.pk).minutes == 15


def test_a_webhook_whose_request_read_was_rate_limited_is_applied_by_its_retry(demo):
    """The flow records the incident's status only once the request is in line: before, the retry of an
    acknowledged whose request read got a 429 found the status "already known" and wrote nothing."""
    from syncengine import jobs
    from sandbox import faults

    incident = demo.trigger()
    demo.settle()
    faults.inject("xurrent", "rate_limit_429", path_prefix="/v1/requests/", method="GET", retry_after=120)
    demo.set_incident_status(incident, 2)
    demo.settle()
    [event] = events("acknowledged")
    assert event.status == EventStatus.RETRY_SCHEDULED, event.reason

    jobs.process_inbound_event(event.pk)  # the scheduled retry

    event.refresh_from_db()
    assert event.status == EventStatus.PROCESSED, event.reason
    assert demo.requests()[0].status == "in_progress"


def test_a_pair_whose_both_sides_were_seen_finished_is_closed_without_a_call(demo):
    incident = demo.trigger()
    demo.settle()
    demo.set_incident_status(incident, 3)
    drop_pending("zenduty")
    demo.change_request(demo.requests()[0], status="completed", completion_reason="solved")
    drop_pending("xurrent")
    # Both seen finished, the pair left linked (e.g. by an older version); the listing has nothing new.
    LinkedPair.objects.update(xurrent_status="completed", zenduty_status=3)
    ReconcileCursor.objects.create(integration=demo.integration,
                                   xurrent_listed_until=timezone.now() + timedelta(minutes=5))

    report, calls = sweep()

    pair = LinkedPair.objects.get()
    assert (pair.state, report.closed) == (PairState.CLOSED, 1) and pair.closed_at is not None
    # Nothing waits on an unresolved incident: the one filter looks for new incidents only.
    assert calls_of(calls, "zenduty") == [FILTER]
    assert calls_of(calls, "xurrent") == [LISTING]
    assert "the pair is closed" in PairNote.objects.get(pair=pair).text
    assert incident.unique_id == pair.zenduty_incident_unique_id


def test_a_resolved_incident_whose_request_was_completed_already_closes_the_pair(demo):
    """The webhook flow: Zenduty's resolved finds the request completed (its own webhook lost): nothing to
    write, and the pair is closed all the same."""
    request = demo.raise_request()
    demo.settle()
    [incident] = demo.incidents()
    demo.change_request(request, status="completed", completion_reason="solved")
    drop_pending("xurrent")
    demo.set_incident_status(incident, 3)
    demo.settle()

    [resolved] = events("resolved")
    assert resolved.status == EventStatus.PROCESSED and "nothing to write" in resolved.reason, resolved.reason
    pair = LinkedPair.objects.get()
    assert pair.state == PairState.CLOSED and pair.closed_at is not None
