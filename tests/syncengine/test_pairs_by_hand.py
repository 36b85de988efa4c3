"""Pairs by hand, end to end: an integration admin links an existing request and incident, or unlinks a pair,
through the admin pages; both records are read from the simulators over HTTP.

The cast is the demo of ``test_sync.py`` (Website ⇄ Website (Production), bidirectional).
"""
from __future__ import annotations

import html

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from syncengine.models import EventStatus, InboundEvent, LinkedPair, OutboundCall, PairNote, PairState
from tests.syncengine.test_reconcile import drop_pending
from tests.syncengine.test_sync import Demo, events

pytestmark = pytest.mark.django_db(transaction=True)

LINK = "admin:syncengine_linkedpair_link"


@pytest.fixture
def demo(sandbox):
    return Demo(sandbox)


@pytest.fixture
def unlinked_records(demo):
    """An incident and a request about the same outage, each opened while its webhooks were lost."""
    incident = demo.trigger(title="Checkout is down")
    drop_pending("zenduty")
    request = demo.raise_request(subject="Checkout down for customers")
    drop_pending("xurrent")
    assert LinkedPair.objects.count() == 0
    return incident, request


def staff(django_user_model, *perms: str):
    user = django_user_model.objects.create_user("ops", password="pw", is_staff=True)
    for perm in perms:
        app, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=codename))
    return user


ADMIN_PERMS = ("syncengine.view_linkedpair", "integrations.change_outgoingintegration")


def test_an_integration_admin_links_an_incident_and_a_request_and_changes_sync_from_then_on(
        demo, unlinked_records, client, django_user_model):
    incident, request = unlinked_records
    client.force_login(staff(django_user_model, *ADMIN_PERMS))
    assert "Link a request and an incident" in client.get(reverse("admin:syncengine_linkedpair_changelist")).text
    before = OutboundCall.objects.order_by("-pk").values_list("pk", flat=True).first() or 0

    answer = client.post(reverse(LINK), {"integration": demo.integration.pk, "request_id": str(request.pk),
                                         "incident_number": f"#{incident.incident_number}"})

    pair = LinkedPair.objects.get()
    assert answer.status_code == 302 and answer["Location"].endswith(f"/{pair.pk}/change/")
    assert (pair.origin, pair.state, pair.xurrent_request_id, pair.zenduty_incident_unique_id) == (
        "by_hand", PairState.LINKED, str(request.pk), incident.unique_id)
    # Both records read once, nothing written to either side.
    calls = [(c.service, c.method) for c in OutboundCall.objects.filter(pk__gt=before)]
    assert sorted(calls) == [("xurrent", "GET"), ("zenduty", "GET")]
    assert "Linked by hand by ops" in PairNote.objects.get(pair=pair).text

    demo.set_incident_status(incident, 2)
    demo.settle()
    request.refresh_from_db()
    assert request.status == "in_progress" and len(demo.requests()) == 1 and len(demo.incidents()) == 1


@pytest.mark.parametrize("case", ["other instance", "incident linked", "no such request", "no such incident",
                                  "not a number"])
def test_a_link_that_cannot_be_made_says_why_and_makes_nothing(demo, unlinked_records, client, django_user_model,
                                                               case):
    incident, request = unlinked_records
    request_id, number = str(request.pk), str(incident.incident_number)
    if case == "other instance":
        request_id = str(demo.raise_request(instance="Intranet (Production)").pk)
        drop_pending("xurrent")
        expected = "is in service instance 'Intranet (Production)', not in 'Website (Production)'"
    elif case == "incident linked":
        other = demo.trigger(title="Another one")
        demo.settle()  # the sync links it to a request of its own
        number = str(other.incident_number)
        expected = f"Incident #{number} is already linked"
    elif case == "no such request":
        request_id = "999"
        expected = "Xurrent request #999 does not exist"
    elif case == "no such incident":
        number = "999"
        expected = "Zenduty incident #999 does not exist"
    else:
        request_id = "abc"
        expected = "'abc' is not a Xurrent request ID"
    pairs_before = LinkedPair.objects.count()
    client.force_login(staff(django_user_model, *ADMIN_PERMS))

    answer = client.post(reverse(LINK), {"integration": demo.integration.pk, "request_id": request_id,
                                         "incident_number": number})

    assert answer.status_code == 200 and expected in html.unescape(answer.text), answer.text[-3000:]
    assert LinkedPair.objects.count() == pairs_before


def test_unlinking_stops_the_sync_without_a_new_counterpart_and_the_records_can_be_linked_again(
        demo, client, django_user_model):
    incident = demo.trigger()
    demo.settle()
    [request] = demo.requests()
    pair = LinkedPair.objects.get()
    client.force_login(staff(django_user_model, *ADMIN_PERMS))
    page = client.get(reverse("admin:syncengine_linkedpair_change", args=[pair.pk])).text
    assert reverse("admin:syncengine_linkedpair_unlink", args=[pair.pk]) in page

    assert client.get(reverse("admin:syncengine_linkedpair_unlink", args=[pair.pk])).status_code == 405
    client.post(reverse("admin:syncengine_linkedpair_unlink", args=[pair.pk]))

    pair.refresh_from_db()
    assert pair.state == PairState.UNLINKED and "Unlinked by hand by ops" in pair.notes.first().text
    demo.set_incident_status(incident, 2)
    demo.settle()
    request.refresh_from_db()
    [acknowledged] = events("acknowledged")
    assert request.status != "in_progress" and len(demo.requests()) == 1  # not synced, and no new request
    assert acknowledged.status == EventStatus.IGNORED and "was unlinked by hand" in acknowledged.reason

    client.post(reverse(LINK), {"integration": demo.integration.pk, "request_id": str(request.pk),
                                "incident_number": str(incident.incident_number)})
    assert LinkedPair.objects.filter(state=PairState.LINKED).count() == 1
    assert LinkedPair.objects.filter(state=PairState.UNLINKED).count() == 1


def test_view_only_staff_see_no_link_or_unlink_and_are_refused(demo, client, django_user_model):
    demo.trigger()
    demo.settle()
    pair = LinkedPair.objects.get()
    client.force_login(staff(django_user_model, "syncengine.view_linkedpair"))

    assert "Link a request and an incident" not in client.get(
        reverse("admin:syncengine_linkedpair_changelist")).text
    assert "/unlink/" not in client.get(reverse("admin:syncengine_linkedpair_change", args=[pair.pk])).text
    assert client.get(reverse(LINK)).status_code == 403
    assert client.post(reverse("admin:syncengine_linkedpair_unlink", args=[pair.pk])).status_code == 403
    assert LinkedPair.objects.get().state == PairState.LINKED
    assert InboundEvent.objects.filter(status=EventStatus.FAILED).count() == 0
