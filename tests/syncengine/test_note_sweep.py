"""The note sweep end to end: a Xurrent note whose ``request.note-added`` never reached the portal is copied to
the incident once, through both simulators over real HTTP, and never a second time when the webhook comes late.

The cast is test_sync.py's ``Demo`` (Website ⇄ Website (Production), both ways, Sync Notes on). A dropped
delivery is the simulator's pending webhook marked dropped (``drop_pending``); a late one is a pending
webhook delivered only after the sweep ran (``Demo.settle``). The sweep runs as its schedule would, two
minutes on (a note younger than ``NOTE_GRACE`` is left to its webhook).
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from connections import http
from syncengine import note_sweep, polling
from syncengine.flows import xurrent_to_zenduty
from syncengine.models import EventStatus, LinkedPair, NoteState, OutboundCall, PairNote, SyncedNote
from tests.syncengine.test_notes_and_priority import (integration_settings, linked_incident, linked_request,
                                                      lose_answers_of, poll, xurrent_note, zenduty_note,
                                                      zenduty_notes)
from tests.syncengine.test_reconcile import drop_pending
from tests.syncengine.test_sync import Demo, events

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo(sandbox):
    cache.delete(note_sweep.LOCK_KEY)
    cache.delete(polling.LOCK_KEY)
    return Demo(sandbox)


def sweep(**options) -> note_sweep.NoteSweepReport:
    """One run, as the schedule runs it, after the grace a note's own webhook gets."""
    cache.delete(note_sweep.LOCK_KEY)
    return note_sweep.run(now=timezone.now() + xurrent_to_zenduty.NOTE_GRACE + timedelta(seconds=30), **options)


def copies_of(incident) -> list[str]:
    """The incident's notes that are copies of Xurrent notes, as their text."""
    return [n.note for n in zenduty_notes(incident) if n.note.startswith("[Xurrent note #")]


# -- a lost webhook, repaired once ------------------------------------------------------------------------
def test_a_note_whose_webhook_was_dropped_reaches_the_incident_once_after_the_sweep(demo):
    request, incident, pair = linked_request(demo)
    note = xurrent_note(demo, request, "Rolled back the deploy; watching error rates.")
    assert drop_pending("xurrent") == 1

    report = sweep()

    [copy] = zenduty_notes(incident)
    assert report.notes_copied == 1 and report.reads == 1, report
    assert copy.note.startswith(f"[Xurrent note #{note.pk}] {demo.person.name} wrote in Xurrent request "
                                f"#{request.pk} at ")
    assert copy.note.endswith("UTC:\n\nRolled back the deploy; watching error rates.")
    row = SyncedNote.objects.get(xurrent_note_id=str(note.pk))
    assert (row.direction, row.zenduty_note_id, row.state) == ("xurrent", copy.unique_id, NoteState.SYNCED)
    assert events("request.note-added") == []  # the webhook never came
    # The pair's timeline says what the sweep did; the read and the copy are the pair's calls.
    [said] = PairNote.objects.filter(pair=pair, text__startswith="Note sweep:")
    assert f"Xurrent note #{note.pk} by {demo.person.name} reached the portal by no request.note-added webhook" \
           in said.text and f"copied to incident #{incident.incident_number}" in said.text, said.text
    assert OutboundCall.objects.filter(pair=pair, method="GET", url__endswith=f"/requests/{request.pk}/notes").exists()
    assert OutboundCall.objects.filter(pair=pair, method="POST", url__endswith="/note/").count() == 1
    pair.refresh_from_db()
    assert pair.xurrent_notes_read_at is not None

    again = sweep()  # idempotent: read again, nothing copied

    assert again.reads == 1 and again.notes_copied == 0, again
    assert len(zenduty_notes(incident)) == 1


def test_the_webhook_arriving_after_the_repair_makes_no_second_copy(demo):
    request, incident, pair = linked_request(demo)
    note = xurrent_note(demo, request, "DB failover started")  # its webhook is held up on the way

    assert sweep().notes_copied == 1
    demo.settle()  # ... and arrives now

    [added] = events("request.note-added")
    assert added.status == EventStatus.IGNORED and "already on incident" in added.reason, added.reason
    assert len(copies_of(incident)) == 1 and SyncedNote.objects.filter(xurrent_note_id=str(note.pk)).count() == 1


def test_a_note_is_left_to_its_webhook_while_it_may_still_come(demo):
    request, incident, pair = linked_request(demo)
    xurrent_note(demo, request, "Just written")
    drop_pending("xurrent")
    cache.delete(note_sweep.LOCK_KEY)

    report = note_sweep.run()  # at once: the note is younger than the grace its webhook gets

    assert report.reads == 1 and report.notes_copied == 0 and zenduty_notes(incident) == [], report
    assert LinkedPair.objects.get().xurrent_notes_read_at is None  # first in line next run
    assert sweep().notes_copied == 1 and len(copies_of(incident)) == 1


# -- echoes and settings ------------------------------------------------------------------------------
def test_notes_the_portal_wrote_are_not_copied_back(demo, monkeypatch):
    """The request the portal created carries its own internal note; the poller's copy of a Zenduty note
    carries the marker (its create's answer lost, so no record names it yet); the "reopened" note is the
    portal person's: none comes back, even with every webhook lost and internal notes copied. A
    person's note lost the same way is."""
    from sandbox import deliveries

    integration_settings(demo, sync_internal_xurrent_notes=True)
    incident, request, pair = linked_incident(demo)
    zenduty_note(demo, incident, "Paged the DBA on call.")
    cache.delete(polling.LOCK_KEY)
    LinkedPair.objects.update(polled_at=None)
    real_send = lose_answers_of(monkeypatch, "POST", f"/requests/{request.pk}/notes")
    polling.run()
    monkeypatch.setattr(http, "send", real_send)
    with_marker = demo.notes(request)[-1]
    assert with_marker.text.startswith("[Zenduty note ")
    assert SyncedNote.objects.get(direction="zenduty").xurrent_note_id == ""  # the copy is not known by its id
    demo.change_request(request, status="completed", completion_reason="solved")
    demo.settle()  # the incident is resolved
    demo.change_request(request, status="assigned")  # reopened: the portal notes it on both sides ...
    deliveries.flush()
    drop_pending("xurrent")  # ... and the note-added of its own note on the request is lost
    mine = xurrent_note(demo, request, "Vendor ticket 4471 opened")
    drop_pending("xurrent")
    assert any("was reopened" in n.text for n in demo.notes(request))  # by the portal's own person
    before = [n.note for n in zenduty_notes(incident)]

    report = sweep()

    after = [n.note for n in zenduty_notes(incident)]
    assert report.notes_copied == 1, (report, after)
    assert after[:len(before)] == before and len(after) == len(before) + 1
    assert after[-1].startswith(f"[Xurrent note #{mine.pk}] ") and after[-1].endswith("Vendor ticket 4471 opened")


@pytest.mark.parametrize("copy_internal", [False, True])
def test_internal_notes_are_copied_only_when_the_integration_says_so(demo, copy_internal):
    integration_settings(demo, sync_internal_xurrent_notes=copy_internal)
    request, incident, pair = linked_request(demo)
    xurrent_note(demo, request, "Vendor contract number is 4471", internal=True)
    xurrent_note(demo, request, "Customers informed")
    assert drop_pending("xurrent") == 2

    report = sweep()

    copied = copies_of(incident)
    assert report.notes_copied == len(copied)
    assert any(c.endswith("(internal note):\n\nVendor contract number is 4471") for c in copied) is copy_internal
    assert any(c.endswith(":\n\nCustomers informed") for c in copied)


@pytest.mark.parametrize(("off", "on", "said"), [
    ({"sync_notes": False}, {"sync_notes": True}, "Sync Notes is off for this integration: note #"),
    ({"direction": "zenduty_to_xurrent"}, {"direction": "bidirectional"},
     "This integration's direction is Zenduty → Xurrent"),
    ({"enabled": False}, {"enabled": True}, "The integration is disabled; the event was stored but not processed."),
])
def test_notes_set_aside_by_a_setting_reach_the_incident_once_it_allows_them(demo, off, on, said):
    """The reviewer's steps: Sync Notes off (or the direction, or the integration disabled), a note on each
    side, then on again. The Xurrent note reaches the incident once, as the Zenduty note reaches the request;
    an internal note stays withheld (Copy internal Xurrent notes is off), a note whose webhook was ignored for
    a reason of the note itself stays so, and neither portal copy comes back."""
    request, incident, pair = linked_request(demo)
    internal_before = xurrent_note(demo, request, "Internal, said while notes were copied", internal=True)
    demo.settle()
    assert "is internal" in events("request.note-added")[-1].reason
    integration_settings(demo, **off)
    public = xurrent_note(demo, request, "Said while no note went to Zenduty")
    internal = xurrent_note(demo, request, "Vendor contract 4471, internal", internal=True)
    zenduty_note(demo, incident, "Paged the DBA on call.")
    demo.settle()
    set_aside = events("request.note-added")[-2:]
    assert [e.status for e in set_aside] == [EventStatus.IGNORED] * 2
    assert all(e.reason.startswith(said) for e in set_aside), [e.reason for e in set_aside]
    assert sweep().reads == 0 and copies_of(incident) == []

    integration_settings(demo, **on)
    poll()  # the poller copies the Zenduty note to the request; its note-added comes back as an echo
    report = sweep()

    assert report.notes_copied == 1, report
    [copy] = copies_of(incident)
    assert copy.startswith(f"[Xurrent note #{public.pk}] {demo.person.name} wrote in Xurrent request #{request.pk}")
    assert copy.endswith(":\n\nSaid while no note went to Zenduty")
    assert not SyncedNote.objects.filter(xurrent_note_id__in=[str(internal.pk), str(internal_before.pk)]).exists()
    assert [n.text.rsplit("\n\n", 1)[-1] for n in demo.notes(request) if n.text.startswith("[Zenduty note ")] \
        == ["Paged the DBA on call."]
    [line] = PairNote.objects.filter(pair=pair, text__startswith="Note sweep:")
    assert f"Xurrent note #{public.pk} by {demo.person.name} was not copied when its request.note-added came " \
           f"(\"{said}" in line.text and "the integration copies it now" in line.text, line.text

    again, third = sweep(), sweep()  # idempotent: nothing more, on either side

    assert again.reads == third.reads == 1 and again.notes_copied == third.notes_copied == 0, (again, third)
    assert len(copies_of(incident)) == 1 and len(zenduty_notes(incident)) == 2  # the person's note and the copy
    assert len([n for n in demo.notes(request) if n.text.startswith("[Zenduty note ")]) == 1


def test_the_sweep_and_a_replay_of_the_set_aside_webhook_make_one_copy(demo):
    """Once Sync Notes is on, a replay of the ignored note-added (admin) and the sweep both go through the
    webhook's copy path under the pair's lease and the note's claim: whichever comes second adds nothing."""
    from syncengine import jobs

    request, incident, pair = linked_request(demo)
    integration_settings(demo, sync_notes=False)
    note = xurrent_note(demo, request, "Said while notes were off")
    demo.settle()
    [ignored] = events("request.note-added")
    integration_settings(demo, sync_notes=True)

    assert jobs.replay_event(ignored.pk, by="admin")
    ignored.refresh_from_db()
    assert ignored.status == EventStatus.PROCESSED, ignored.reason
    assert sweep().notes_copied == 0
    assert len(copies_of(incident)) == 1 and SyncedNote.objects.filter(xurrent_note_id=str(note.pk)).count() == 1

    # The other order: the sweep first, then the replay finds the copy.
    integration_settings(demo, sync_notes=False)
    later = xurrent_note(demo, request, "Also said while notes were off")
    demo.settle()
    ignored_later = events("request.note-added")[-1]
    integration_settings(demo, sync_notes=True)
    assert sweep().notes_copied == 1
    assert jobs.replay_event(ignored_later.pk, by="admin")
    ignored_later.refresh_from_db()
    assert ignored_later.status == EventStatus.IGNORED and "already on incident" in ignored_later.reason
    assert len(copies_of(incident)) == 2 and SyncedNote.objects.filter(xurrent_note_id=str(later.pk)).count() == 1


@pytest.mark.parametrize(("changes", "why"), [
    ({"sync_notes": False}, "Sync Notes off"),
    ({"direction": "zenduty_to_xurrent"}, "direction Zenduty → Xurrent"),
    ({"enabled": False}, "integration disabled"),
])
def test_integrations_that_copy_no_notes_to_zenduty_are_not_read(demo, changes, why):
    request, incident, pair = linked_request(demo)
    xurrent_note(demo, request, "Not for Zenduty")
    drop_pending("xurrent")
    integration_settings(demo, **changes)

    report = sweep()

    assert report.reads == 0 and zenduty_notes(incident) == [], (why, report)


# -- budget and order ------------------------------------------------------------------------------------
def test_a_run_keeps_to_its_reads_and_to_its_share_of_xurrents_budget(demo):
    from sandbox.models import RateCounter
    from sandbox.xurrent.models import SimulatorSettings

    for n in range(3):
        request = demo.raise_request(subject=f"Request {n}")
        demo.settle()
        xurrent_note(demo, request, f"Lost note {n}")
        drop_pending("xurrent")

    report = sweep(reads_per_run=2)

    assert report.reads == 2 and report.notes_copied == 2, report
    assert "this run's 2 note reads are used" in report.stopped[0]
    assert LinkedPair.objects.filter(xurrent_notes_read_at__isnull=True).count() == 1

    # Less than half of the tenant's budget is left: the run reads one pair (the one not read yet) and stops.
    used = max(RateCounter.objects.filter(key__startswith=f"xurrent:{demo.xurrent_account.account_id}:person:")
               .exclude(key__endswith=":burst").values_list("count", flat=True))
    assert used > 8
    SimulatorSettings.objects.filter(account=demo.xurrent_account).update(rate_limit=used + 4)
    report = sweep()

    assert report.reads == 1 and report.notes_copied == 1, report
    assert "Xurrent's budget is down to" in report.stopped[0] and "left to the webhooks" in report.stopped[0]
    assert not LinkedPair.objects.filter(xurrent_notes_read_at__isnull=True).exists()


def test_a_429_from_xurrent_backs_the_tenant_off(demo):
    from sandbox import faults

    request, incident, pair = linked_request(demo)
    xurrent_note(demo, request, "Waiting on the vendor")
    drop_pending("xurrent")
    tenant_id = demo.integration.tenant_id
    cache.delete(note_sweep.BACKOFF_KEY.format(tenant_id=tenant_id))
    faults.inject("xurrent", "rate_limit_429", path_prefix=f"/v1/requests/{request.pk}/notes", method="GET",
                  retry_after=300)

    first = sweep()

    assert "Xurrent answered 429: backing off for 300 s" in " ".join(first.stopped), first
    assert zenduty_notes(incident) == [] and LinkedPair.objects.get().xurrent_notes_read_at is None
    calls = OutboundCall.objects.filter(service="xurrent").count()
    second = sweep()
    assert "backing off after a 429" in " ".join(second.stopped) and second.reads == 0, second
    assert OutboundCall.objects.filter(service="xurrent").count() == calls

    cache.delete(note_sweep.BACKOFF_KEY.format(tenant_id=tenant_id))
    assert sweep().notes_copied == 1 and len(copies_of(incident)) == 1


def test_a_pair_busy_with_an_event_is_left_for_the_next_run(demo):
    request, incident, pair = linked_request(demo)
    xurrent_note(demo, request, "Busy pair")
    drop_pending("xurrent")
    LinkedPair.objects.update(lease_owner="event-9-live", lease_until=timezone.now() + timedelta(seconds=60))

    report = sweep()

    assert report.skipped_busy == 1 and zenduty_notes(incident) == [], report
    assert LinkedPair.objects.get().xurrent_notes_read_at is None
    LinkedPair.objects.update(lease_owner="", lease_until=None)
    assert sweep().notes_copied == 1


def test_active_pairs_are_read_first_then_quiet_ones_least_recently_read(demo, settings):
    settings.SYNC_NOTE_SWEEP_MINUTES = 5
    now = timezone.now()
    base = dict(integration=demo.integration, tenant=demo.integration.tenant,
                zenduty_account=demo.integration.zenduty_account, origin="zenduty", state="linked")
    quiet_old = LinkedPair.objects.create(**base, xurrent_request_id="1", zenduty_incident_unique_id="a",
                                          xurrent_notes_read_at=now - timedelta(hours=2))
    quiet_never = LinkedPair.objects.create(**base, xurrent_request_id="2", zenduty_incident_unique_id="b")
    active_earlier = LinkedPair.objects.create(**base, xurrent_request_id="3", zenduty_incident_unique_id="c",
                                               active_at=now - timedelta(minutes=10),
                                               xurrent_notes_read_at=now - timedelta(minutes=5))
    active_now = LinkedPair.objects.create(**base, xurrent_request_id="4", zenduty_incident_unique_id="d",
                                           active_at=now - timedelta(seconds=5),
                                           xurrent_notes_read_at=now - timedelta(minutes=5))
    active_missed_a_run = LinkedPair.objects.create(**base, xurrent_request_id="5", zenduty_incident_unique_id="e",
                                                    active_at=now - timedelta(minutes=20),
                                                    xurrent_notes_read_at=now - timedelta(minutes=12))
    quiet_recent = LinkedPair.objects.create(**base, xurrent_request_id="6", zenduty_incident_unique_id="f",
                                             active_at=now - timedelta(hours=3),
                                             xurrent_notes_read_at=now - timedelta(minutes=5))

    active, quiet = note_sweep.order_for_notes(LinkedPair.objects.all(), now)

    assert active == [active_missed_a_run, active_now, active_earlier]
    assert quiet == [quiet_never, quiet_old, quiet_recent]


@pytest.mark.django_db(transaction=False)  # as migrated (transactional tests flush the schedules)
def test_the_schedule_follows_the_setting(settings):
    from django.utils.module_loading import import_string
    from django_q.models import Schedule

    schedule = Schedule.objects.get(func="syncengine.tasks.sweep_xurrent_notes")
    assert (schedule.name, schedule.schedule_type, schedule.minutes, schedule.repeats) == \
        (note_sweep.SCHEDULE_NAME, Schedule.MINUTES, 5, -1)
    cache.delete(note_sweep.LOCK_KEY)
    assert import_string(schedule.func)() == {"tenants": 0, "reads": 0, "pairs_read": 0, "notes_copied": 0,
                                              "skipped_busy": 0, "stopped": []}
    settings.SYNC_NOTE_SWEEP_MINUTES = 15
    note_sweep.align_schedule()
    assert Schedule.objects.get(pk=schedule.pk).minutes == 15


def test_reading_notes_leaves_the_integrations_sync_error_to_what_set_it(demo):
    """Only a copy is a success of the sync: a read every few minutes must not wipe an error no one saw yet."""
    from integrations.models import OutgoingIntegration

    request, incident, pair = linked_request(demo)
    integration_settings(demo, sync_error="Zenduty refused the incident (403).", sync_error_at=timezone.now())

    assert sweep().reads == 1
    assert OutgoingIntegration.objects.get().sync_error == "Zenduty refused the incident (403)."

    xurrent_note(demo, request, "Lost")
    drop_pending("xurrent")
    assert sweep().notes_copied == 1
    assert OutgoingIntegration.objects.get().sync_error == ""  # a copy went through: the sync works again
