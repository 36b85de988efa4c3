"""Notes both ways and priority ⇄ impact, end to end through the simulators, and the Zenduty poller.

The cast is test_sync.py's ``Demo``: the bidirectional demo integration Website ⇄ Website
(Production), Sync Notes on, the Operations mapping P1 top, P2 high, P3 medium, P4 low, P5 low.
People write notes in the simulators' own operations: in Xurrent a note fires
``request.note-added`` (delivered by ``settle()``); Zenduty sends no webhook for notes or
priorities, so the portal sees them when the poller runs (``polling.run()``, as its schedule would).
"""
from __future__ import annotations

from datetime import timedelta

import pytest
import requests
from django.core.cache import cache
from django.utils import timezone

from connections import http
from syncengine import jobs, polling
from syncengine.models import EventStatus, LinkedPair, NoteState, OutboundCall, PairNote, SyncedNote
from tests.syncengine.test_sync import Demo, events, reasons

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo(sandbox):
    cache.delete(polling.LOCK_KEY)
    return Demo(sandbox)


def linked_request(demo, **fields):
    """A request raised in Xurrent, its incident created by the portal: (request, incident, pair)."""
    request = demo.raise_request(**fields)
    demo.settle()
    [incident] = demo.incidents()
    return request, incident, LinkedPair.objects.get()


def linked_incident(demo, priority="P2"):
    """An incident triggered in Zenduty, its request created by the portal: (incident, request, pair)."""
    incident = demo.trigger(priority=priority)
    demo.settle()
    [request] = demo.requests()
    return incident, request, LinkedPair.objects.get()


def xurrent_note(demo, request, text, *, internal=False):
    from sandbox.xurrent import operations

    request.refresh_from_db()
    return operations.add_note(request, demo.person, text, demo.origin, internal=internal)


def zenduty_note(demo, incident, text):
    from sandbox.zenduty import operations

    return operations.add_note(incident, demo.zenduty.ui_user, text)


def zenduty_notes(incident):
    from sandbox.zenduty.models import Note

    return list(Note.objects.filter(incident=incident).order_by("id"))


def set_priority(demo, incident, name):
    from sandbox.zenduty import operations

    incident.refresh_from_db()
    operations.set_priority(incident, demo.priority(name))


def integration_settings(demo, **values):
    type(demo.integration).objects.filter(pk=demo.integration.pk).update(**values)


def poll():
    cache.delete(polling.LOCK_KEY)
    LinkedPair.objects.update(polled_at=None)  # due now (the minute between runs has not passed in a test)
    report = polling.run()
    demo_settle()
    return report


def demo_settle():
    Demo.settle()


def lose_answers_of(monkeypatch, method, url_end):
    """The call reaches the simulator and is carried out; its answer is lost on the way back."""
    real_send = http.send

    def send(session, m, url, **kwargs):
        response = real_send(session, m, url, **kwargs)
        if m == method and url.rstrip("/").endswith(url_end):
            raise requests.ConnectionError("connection reset after the request was sent")
        return response

    monkeypatch.setattr(http, "send", send)
    return real_send


# -- Xurrent → Zenduty ---------------------------------------------------------------------------------
def test_a_xurrent_note_reaches_the_incident_once_attributed_and_never_comes_back(demo):
    request, incident, pair = linked_request(demo)
    note = xurrent_note(demo, request, "Rolled back the deploy; watching error rates.")
    demo.settle()

    [copy] = zenduty_notes(incident)
    assert copy.note.startswith(f"[Xurrent note #{note.pk}] {demo.person.name} wrote in Xurrent request "
                                f"#{request.pk} at ")
    assert copy.note.endswith("UTC:\n\nRolled back the deploy; watching error rates.")
    row = SyncedNote.objects.exclude(zenduty_note_id="").get()
    assert (row.direction, row.xurrent_note_id, row.zenduty_note_id, row.state) == \
        ("xurrent", str(note.pk), copy.unique_id, NoteState.SYNCED)
    [added] = events("request.note-added")
    assert added.status == EventStatus.PROCESSED and added.pair_id == pair.pk, reasons()

    # Replays and a repeated delivery of the note-added make no second copy.
    for _ in range(2):
        assert jobs.replay_event(added.pk)
        jobs.process_inbound_event(added.pk)
    added.refresh_from_db()
    assert "already on incident" in added.reason
    # The poller reads the incident's notes: the copy is the portal's own, not copied back to Xurrent.
    poll()
    assert len(zenduty_notes(incident)) == 1
    assert [n.text for n in demo.notes(request)] == ["Customers report 30 s page loads",
                                                      "Rolled back the deploy; watching error rates."]


def test_internal_xurrent_notes_are_copied_only_when_the_integration_says_so(demo):
    request, incident, pair = linked_request(demo)
    xurrent_note(demo, request, "Vendor contract number is 4471", internal=True)
    demo.settle()
    assert zenduty_notes(incident) == []
    assert "is internal" in events("request.note-added")[-1].reason

    integration_settings(demo, sync_internal_xurrent_notes=True)
    xurrent_note(demo, request, "Escalated to the vendor", internal=True)
    demo.settle()
    [copy] = zenduty_notes(incident)
    assert "(internal note):\n\nEscalated to the vendor" in copy.note


def test_a_lost_zenduty_note_create_answer_is_adopted_not_sent_again(demo, monkeypatch):
    request, incident, pair = linked_request(demo)
    real_send = lose_answers_of(monkeypatch, "POST", "/note")
    xurrent_note(demo, request, "DB failover started")
    demo.settle()
    monkeypatch.setattr(http, "send", real_send)
    [added] = events("request.note-added")
    assert added.status == EventStatus.RETRY_SCHEDULED, added.reason
    assert len(zenduty_notes(incident)) == 1
    assert SyncedNote.objects.get(xurrent_note_id=str(demo.notes(request)[-1].pk)).state == NoteState.SENDING

    jobs.process_inbound_event(added.pk)  # the scheduled retry

    added.refresh_from_db()
    [copy] = zenduty_notes(incident)
    assert added.status == EventStatus.PROCESSED and added.reason.startswith("Adopted Zenduty note"), added.reason
    assert SyncedNote.objects.get(xurrent_note_id=str(demo.notes(request)[-1].pk)).zenduty_note_id == copy.unique_id


# -- Zenduty → Xurrent ---------------------------------------------------------------------------------
def test_a_zenduty_note_is_polled_to_an_internal_request_note_once_and_never_comes_back(demo):
    incident, request, pair = linked_incident(demo)
    note = zenduty_note(demo, incident, "Paged the DBA on call.")
    report = poll()

    assert report.notes_copied == 1, report
    copy = demo.notes(request)[-1]
    assert copy.internal
    assert copy.text.startswith(f"[Zenduty note {note.unique_id}] Dwight Schrute wrote in Zenduty incident "
                                f"#{incident.incident_number} at ")
    assert copy.text.endswith("UTC:\n\nPaged the DBA on call.")
    row = SyncedNote.objects.get()
    assert (row.direction, row.zenduty_note_id, row.xurrent_note_id) == ("zenduty", note.unique_id, str(copy.pk))
    # Its request.note-added came back: the portal's own note, not copied to Zenduty.
    echo = events("request.note-added")[-1]
    assert echo.status == EventStatus.IGNORED and "Echo of the portal's own note" in echo.reason
    assert len(zenduty_notes(incident)) == 1
    # The pair's timeline shows the polled change, the calls are the pair's.
    assert any(n.text.startswith("Polled Zenduty: Zenduty note") for n in PairNote.objects.filter(pair=pair))
    assert OutboundCall.objects.filter(pair=pair, method="POST", url__endswith="/notes").count() == 1

    count = len(demo.notes(request))
    poll()
    assert len(demo.notes(request)) == count and SyncedNote.objects.count() == 1  # nothing added


def test_a_poll_that_goes_well_clears_the_error_a_refused_poll_left_on_the_pair(demo, admin_client):
    incident, request, pair = linked_incident(demo)
    refused = "Zenduty answered 404 (not found)"  # what polling.py records when a read is refused
    LinkedPair.objects.filter(pk=pair.pk).update(last_error=refused)

    poll()

    assert LinkedPair.objects.get(pk=pair.pk).last_error == ""
    page = admin_client.get(f"/admin/syncengine/linkedpair/{pair.pk}/change/").content.decode()
    assert refused not in page


def test_zenduty_notes_are_public_in_xurrent_when_the_integration_says_so(demo):
    integration_settings(demo, public_zenduty_notes=True)
    incident, request, pair = linked_incident(demo)
    zenduty_note(demo, incident, "Status page updated")
    poll()
    assert not demo.notes(request)[-1].internal


def test_a_lost_xurrent_note_create_answer_is_adopted_on_the_next_poll(demo, monkeypatch):
    incident, request, pair = linked_incident(demo)
    zenduty_note(demo, incident, "Failover done")
    before = len(demo.notes(request))
    real_send = lose_answers_of(monkeypatch, "POST", f"/requests/{request.pk}/notes")
    poll()
    monkeypatch.setattr(http, "send", real_send)
    assert len(demo.notes(request)) == before + 1 and SyncedNote.objects.get().state == NoteState.SENDING

    poll()

    assert len(demo.notes(request)) == before + 1
    row = SyncedNote.objects.get()
    assert (row.state, row.xurrent_note_id) == (NoteState.SYNCED, str(demo.notes(request)[-1].pk))
    assert any("whose answer was lost" in n.text for n in PairNote.objects.filter(pair=pair))


# -- the settings ----------------------------------------------------------------------------------------
def test_with_sync_notes_off_no_note_goes_either_way(demo):
    integration_settings(demo, sync_notes=False)
    request, incident, pair = linked_request(demo)
    before = len(demo.notes(request))
    xurrent_note(demo, request, "Xurrent side")
    zenduty_note(demo, incident, "Zenduty side")
    demo.settle()
    poll()

    assert [n.note for n in zenduty_notes(incident)] == ["Zenduty side"]
    assert len(demo.notes(request)) == before + 1
    assert "Sync Notes is off" in events("request.note-added")[-1].reason
    assert not SyncedNote.objects.exclude(zenduty_note_id="").exists()  # no copy (the first note is in the summary)


@pytest.mark.parametrize(("direction", "to_zenduty", "to_xurrent"), [
    ("xurrent_to_zenduty", True, False),
    ("zenduty_to_xurrent", False, True),
])
def test_notes_go_only_in_the_integrations_direction(demo, direction, to_zenduty, to_xurrent):
    request, incident, pair = linked_request(demo)
    integration_settings(demo, direction=direction)
    before = len(demo.notes(request))
    xurrent_note(demo, request, "Xurrent side")
    zenduty_note(demo, incident, "Zenduty side")
    demo.settle()
    poll()

    assert ("Xurrent side" in " ".join(n.note for n in zenduty_notes(incident))) is to_zenduty
    assert (len(demo.notes(request)) == before + 2) is to_xurrent


# -- priority ⇄ impact ------------------------------------------------------------------------------------
def test_a_priority_change_sets_the_requests_impact_and_does_not_bounce(demo):
    incident, request, pair = linked_incident(demo, priority="P2")
    request.refresh_from_db()
    assert request.impact == "high"
    poll()  # first sight: recorded, nothing written
    set_priority(demo, incident, "P1")
    report = poll()

    request.refresh_from_db()
    incident.refresh_from_db()
    assert request.impact == "top" and report.priorities_changed == 1
    assert incident.team_priority.name == "P1"
    update = events("request.update")[-1]
    assert update.status == EventStatus.IGNORED and "Echo" in update.reason, reasons()
    assert any("priority → P1" in n.text for n in PairNote.objects.filter(pair=pair))
    writes = OutboundCall.objects.filter(method="PATCH").count()
    poll()
    assert OutboundCall.objects.filter(method="PATCH").count() == writes


def test_an_impact_change_sets_the_incidents_priority_and_does_not_bounce(demo):
    request, incident, pair = linked_request(demo, impact="high")
    incident.refresh_from_db()
    assert incident.team_priority.name == "P2"
    demo.change_request(request, impact="top")
    demo.settle()

    incident.refresh_from_db()
    assert incident.team_priority.name == "P1"
    assert "incident #" in events("request.update")[-1].reason and "P1" in events("request.update")[-1].reason
    writes = OutboundCall.objects.filter(method="PATCH").count()
    poll()  # the portal's own priority write, read back: nothing to write to Xurrent
    request.refresh_from_db()
    assert request.impact == "top" and OutboundCall.objects.filter(method="PATCH").count() == writes


def test_an_impact_the_current_priority_already_maps_to_leaves_the_incident_alone(demo):
    """P4 and P5 both map to low: a request set to low leaves a P5 incident at P5 (not "back" to P4)."""
    from sandbox.xurrent.models import Request

    incident, request, pair = linked_incident(demo, priority="P5")
    # The request's impact was raised to medium while the incident stayed P5 (say, before the mapping
    # was set): the pair saw both.
    Request.objects.filter(pk=request.pk).update(impact="medium")
    LinkedPair.objects.filter(pk=pair.pk).update(xurrent_impact="medium")
    demo.change_request(request, impact="low")
    demo.settle()

    incident.refresh_from_db()
    assert incident.team_priority.name == "P5"
    assert "already maps to it" in events("request.update")[-1].reason, reasons()


# -- the poller ---------------------------------------------------------------------------------------------
def test_the_poller_reads_active_pairs_first_then_quiet_ones_least_recently_polled(demo):
    now = timezone.now()
    base = dict(integration=demo.integration, tenant=demo.integration.tenant,
                zenduty_account=demo.integration.zenduty_account, origin="zenduty", state="linked")
    quiet_old = LinkedPair.objects.create(**base, xurrent_request_id="1", zenduty_incident_unique_id="a",
                                          polled_at=now - timedelta(minutes=40))
    quiet_never = LinkedPair.objects.create(**base, xurrent_request_id="2", zenduty_incident_unique_id="b")
    active_earlier = LinkedPair.objects.create(**base, xurrent_request_id="3", zenduty_incident_unique_id="c",
                                               active_at=now - timedelta(minutes=10),
                                               polled_at=now - timedelta(minutes=1))
    active_now = LinkedPair.objects.create(**base, xurrent_request_id="4", zenduty_incident_unique_id="d",
                                           active_at=now - timedelta(seconds=5),
                                           polled_at=now - timedelta(minutes=1))
    active_missed_a_run = LinkedPair.objects.create(**base, xurrent_request_id="7", zenduty_incident_unique_id="g",
                                                    active_at=now - timedelta(minutes=20),
                                                    polled_at=now - timedelta(minutes=3))
    just_polled = LinkedPair.objects.create(**base, xurrent_request_id="5", zenduty_incident_unique_id="e",
                                            active_at=now, polled_at=now - timedelta(seconds=10))
    quiet_recent = LinkedPair.objects.create(**base, xurrent_request_id="6", zenduty_incident_unique_id="f",
                                             active_at=now - timedelta(hours=3),
                                             polled_at=now - timedelta(minutes=5))

    active, quiet = polling.order_for_notes(LinkedPair.objects.all(), now)

    assert active == [active_missed_a_run, active_now, active_earlier]
    assert quiet == [quiet_never, quiet_old, quiet_recent]
    assert just_polled not in active + quiet
    # Many active pairs never starve the quiet ones: at most two thirds of a run's reads go to them.
    assert polling.plan_for_notes(active, quiet, 3)[:3] == [active_missed_a_run, active_now, quiet_never]


def test_the_poller_keeps_to_its_reads_per_run(demo):
    for n in range(3):
        demo.trigger(title=f"Incident {n}", priority="P3")
    demo.settle()
    assert LinkedPair.objects.count() == 3
    cache.delete(polling.LOCK_KEY)
    LinkedPair.objects.update(polled_at=None)
    before = OutboundCall.objects.filter(service="zenduty").count()

    report = polling.run(reads_per_run=3)  # the filter, then two pairs' notes

    assert report.reads == 3 and report.pairs_polled == 2, report
    assert OutboundCall.objects.filter(service="zenduty").count() - before == 3
    assert "reads are used" in report.stopped[0]
    assert LinkedPair.objects.filter(polled_at__isnull=True).count() == 1


def test_a_429_from_zenduty_backs_the_poller_off(demo):
    from sandbox import faults

    incident, request, pair = linked_incident(demo)
    zenduty_note(demo, incident, "Waiting on the vendor")
    cache.delete(polling.BACKOFF_KEY.format(account_id=demo.integration.zenduty_account_id))
    faults.inject("zenduty", "rate_limit_429", path_prefix="/api/incidents/", count=1)
    first = poll()
    assert "Zenduty answered 429: backing off for 60 s" in " ".join(first.stopped), first
    assert polling.backing_off_until(demo.integration.zenduty_account_id) > 0
    calls = OutboundCall.objects.filter(service="zenduty").count()

    second = poll()  # within the minute: no call at all

    assert "backing off after a 429" in " ".join(second.stopped), second
    assert OutboundCall.objects.filter(service="zenduty").count() == calls
    cache.delete(polling.BACKOFF_KEY.format(account_id=demo.integration.zenduty_account_id))
    third = poll()
    assert third.notes_copied == 1, third


def test_the_poller_leaves_the_reads_that_waiting_jobs_have_turns_for(demo):
    """A backlog's jobs have turns for the minute's reads: the poller takes none of them and the
    next run reads as usual once they have passed (connections.budget, yield_to_turns)."""
    import time

    from connections.models import ApiBudget
    from connections.zenduty import ZendutyClient

    incident, request, pair = linked_incident(demo)
    zenduty_note(demo, incident, "Waiting on the vendor")
    reads = f"{ZendutyClient.for_account(demo.integration.zenduty_account).budget_key}:incident-reads"
    now = time.time()
    ApiBudget.objects.update_or_create(key=reads, defaults={"recent": [], "booked": [
        now + 0.5 * n for n in range(1, 31)]})  # thirty turns in the next fifteen seconds
    calls = OutboundCall.objects.filter(service="zenduty").count()

    waiting = poll()

    assert "shared Zenduty budget is used up" in " ".join(waiting.stopped), waiting
    assert waiting.notes_copied == 0
    assert OutboundCall.objects.filter(service="zenduty").count() == calls
    ApiBudget.objects.filter(key=reads).update(booked=[])  # the turns have passed
    assert poll().notes_copied == 1


def test_the_requests_first_note_is_in_the_incidents_summary_and_never_copied_as_a_note(demo):
    """Should Xurrent send note-added for the note a request was raised with, it is not copied again."""
    from sandbox.xurrent import webhooks as hooks

    request, incident, pair = linked_request(demo)
    [first] = demo.notes(request)
    incident.refresh_from_db()
    assert first.text in incident.summary
    hooks.emit_request_event(request, "request.note-added", demo.person, demo.origin, note=first)
    demo.settle()

    [added] = events("request.note-added")
    assert added.status == EventStatus.IGNORED and "in its summary" in added.reason, added.reason
    assert zenduty_notes(incident) == []


def test_setting_the_impact_back_to_what_the_portal_once_wrote_is_a_change_too(demo):
    incident, request, pair = linked_incident(demo, priority="P2")  # the portal wrote impact high
    demo.change_request(request, impact="top")
    demo.settle()
    demo.change_request(request, impact="high")
    demo.settle()

    incident.refresh_from_db()
    assert incident.team_priority.name == "P2", reasons()
