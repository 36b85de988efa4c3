"""The opt-in backfill end to end: records opened while their webhooks were lost (as if before the
integration), previewed and then backfilled through the admin, against both simulators over HTTP.

The cast is the demo of ``test_sync.py`` (Website ⇄ Website (Production), bidirectional).
"""
from __future__ import annotations

import pytest
from django.urls import reverse

from syncengine import backfill
from syncengine.models import Backfill, BackfillStatus, LinkedPair, OutboundCall, PairNote, PairState
from tests.syncengine.test_pairs_by_hand import ADMIN_PERMS, staff
from tests.syncengine.test_reconcile import drop_pending
from tests.syncengine.test_sync import Demo

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo(sandbox):
    return Demo(sandbox)


@pytest.fixture
def open_records(demo):
    """Two incidents and two requests nobody synced (their webhooks lost), plus one pair the sync made."""
    synced = demo.trigger(title="Already synced")
    demo.settle()
    incidents = [demo.trigger(title="Disk full"), demo.trigger(title="Slow search")]
    drop_pending("zenduty")
    requests = [demo.raise_request(subject="Printer on fire"), demo.raise_request(subject="VPN down")]
    change = demo.raise_request(subject="Upgrade the database", category="rfc")
    drop_pending("xurrent")
    return {"synced": synced, "incidents": incidents, "requests": requests, "rfc": change}


def test_the_preview_reads_both_sides_once_says_what_it_would_do_and_changes_nothing(demo, open_records, client,
                                                                                     django_user_model):
    client.force_login(staff(django_user_model, *ADMIN_PERMS))
    before = OutboundCall.objects.order_by("-pk").values_list("pk", flat=True).first() or 0

    page = client.get(reverse("admin:syncengine_linkedpair_backfill", args=[demo.integration.pk])).text

    calls = [(c.service, c.method, c.url.rsplit("/sandbox/", 1)[-1])
             for c in OutboundCall.objects.filter(pk__gt=before)]
    assert sorted(calls) == [("xurrent", "GET", "xurrent/xurrent.com/v1/requests"),
                             ("zenduty", "POST", "zenduty/api/incidents/filter/")]
    for record in open_records["incidents"]:
        assert f"incident #{record.incident_number} {record.title}" in page
    assert page.count("create request") == 2 and page.count("create incident") == 2
    assert "already linked" in page and "of category &#x27;rfc&#x27;" in page
    assert "Start the backfill (4 records)" in page
    assert LinkedPair.objects.count() == 1 and Backfill.objects.count() == 0


def test_started_it_makes_one_counterpart_each_and_says_so_on_each_pair(demo, open_records, client,
                                                                       django_user_model):
    client.force_login(staff(django_user_model, *ADMIN_PERMS, "syncengine.view_backfill"))

    answer = client.post(reverse("admin:syncengine_linkedpair_backfill", args=[demo.integration.pk]))

    run = Backfill.objects.get()
    assert answer["Location"].endswith(reverse("admin:syncengine_backfill_change", args=[run.pk]))
    assert (run.status, run.position, len(run.items)) == (BackfillStatus.DONE, 4, 4)
    demo.settle()  # the counterparts' own webhooks come back: echoes
    assert len(demo.requests()) == 6 and len(demo.incidents()) == 5, run.items  # the rfc stays alone
    assert LinkedPair.objects.filter(state=PairState.LINKED).count() == 5
    for incident in open_records["incidents"]:
        pair = LinkedPair.objects.get(zenduty_incident_unique_id=incident.unique_id)
        assert "Backfill: incident" in PairNote.objects.get(pair=pair).text
    assert "processed: Created Xurrent request" in client.get(
        reverse("admin:syncengine_backfill_change", args=[run.pk])).text

    backfill.run(run.pk)  # run again (a retried job): nothing more
    assert len(demo.requests()) == 6 and len(demo.incidents()) == 5


def test_a_rate_limit_pauses_it_and_it_goes_on_where_it_stopped(demo, open_records):
    from django_q.models import Schedule

    from sandbox import faults

    items = backfill.plan(demo.integration)
    faults.inject("zenduty", "rate_limit_429", path_prefix="/api/incidents/", method="POST")
    run = backfill.start(demo.integration, items, by="ops")

    run.refresh_from_db()
    # The incidents' requests were made; the first incident create got the 429: it waits, scheduled again.
    assert (run.status, run.position) == (BackfillStatus.WAITING, 2), run.items
    assert Schedule.objects.filter(func=backfill.TASK).count() == 1
    assert run.get_status_display() == "Waiting to try again" and "429" in run.last_error
    assert backfill.run(run.pk) == BackfillStatus.DONE
    run.refresh_from_db()
    assert len(demo.incidents()) == 5 and len(demo.requests()) == 6
    assert run.last_error == ""  # the wait is over: its error is not shown on a done backfill


def test_view_only_staff_cannot_preview_or_start(demo, client, django_user_model):
    client.force_login(staff(django_user_model, "syncengine.view_linkedpair",
                             "integrations.view_outgoingintegration"))
    url = reverse("admin:syncengine_linkedpair_backfill", args=[demo.integration.pk])
    assert client.get(url).status_code == 403 and client.post(url).status_code == 403
    page = client.get(reverse("admin:integrations_outgoingintegration_change", args=[demo.integration.pk]))
    assert "Backfill open records" not in page.text


def test_records_unlinked_by_hand_are_left_alone_and_the_preview_says_why(demo, client, django_user_model):
    from syncengine import by_hand

    demo.trigger(title="Unlinked on purpose")
    demo.settle()
    by_hand.unlink(LinkedPair.objects.get(), by="ops")
    client.force_login(staff(django_user_model, *ADMIN_PERMS))

    page = client.get(reverse("admin:syncengine_linkedpair_backfill", args=[demo.integration.pk])).text

    assert page.count("unlinked by hand (link it again on the pairs page to sync it)") == 2  # both records
    assert "already linked" not in page and "Start the backfill" not in page


def test_a_second_start_while_one_is_unfinished_starts_nothing_and_shows_the_first(demo, open_records, client,
                                                                                    django_user_model):
    from django.db import IntegrityError, transaction

    from sandbox import faults

    client.force_login(staff(django_user_model, *ADMIN_PERMS, "syncengine.view_backfill"))
    url = reverse("admin:syncengine_linkedpair_backfill", args=[demo.integration.pk])
    items = backfill.plan(demo.integration)
    faults.inject("zenduty", "rate_limit_429", path_prefix="/api/incidents/", method="POST")
    run = backfill.start(demo.integration, items, by="ops")  # it waits for Zenduty's rate limit: unfinished
    run.refresh_from_db()
    assert run.status == BackfillStatus.WAITING

    again = client.post(url, follow=True)  # a double click, or a second admin

    assert Backfill.objects.count() == 1
    assert again.redirect_chain[-1][0] == reverse("admin:syncengine_backfill_change", args=[run.pk])
    assert "is not finished yet; nothing else was started" in again.text
    # Two starts at the same moment: the database keeps one.
    with pytest.raises(IntegrityError), transaction.atomic():
        Backfill.objects.create(integration=demo.integration, requested_by="ops", status=BackfillStatus.RUNNING)
    assert backfill.run(run.pk) == BackfillStatus.DONE
    assert len(demo.incidents()) == 5 and len(demo.requests()) == 6
    assert client.post(url).status_code in (200, 302)  # once done, another may start


def test_the_preview_says_when_a_counterpart_is_being_created_or_failed(demo, open_records, client,
                                                                        django_user_model):
    from syncengine import pairs

    client.force_login(staff(django_user_model, *ADMIN_PERMS))
    creating, failed = open_records["incidents"]
    pairs.claim(demo.integration, origin="zenduty", owner="an-event", incident_unique_id=creating.unique_id,
                incident_number=creating.incident_number)
    claim = pairs.claim(demo.integration, origin="zenduty", owner="an-event", incident_unique_id=failed.unique_id,
                        incident_number=failed.incident_number)
    pairs.mark_failed(claim, "Gave up after 5 attempts.")

    page = client.get(reverse("admin:syncengine_linkedpair_backfill", args=[demo.integration.pk])).text

    assert page.count("its counterpart is being created (an event is on it)") == 1
    assert page.count("creating its counterpart failed (replay the event named on the pair&#x27;s page)") == 1
    assert page.count("already linked") == 2  # the pair the sync made: its incident and its request
