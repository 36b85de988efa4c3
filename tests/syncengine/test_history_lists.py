"""The history lists' search, filters and CSV export (syncengine.history_filters, syncengine.export)."""
from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from connections.models import XurrentTenant
from roles.services import AUDITORS
from syncengine.export import neutralise
from syncengine.models import EventStatus, InboundEvent, LinkedPair, OutboundCall, PairState, Source
from tests.integrations.conftest import make_integration

pytestmark = pytest.mark.django_db

EVENTS = reverse("admin:syncengine_inboundevent_changelist")
CALLS = reverse("admin:syncengine_outboundcall_changelist")
EVENTS_CSV = reverse("admin:syncengine_inboundevent_export")
CALLS_CSV = reverse("admin:syncengine_outboundcall_export")


@pytest.fixture
def history(tenant, account):
    """Two tenants, an integration of the first, a pair (request 70001 ⇄ incident #1042) and rows around them."""
    other_tenant = XurrentTenant.objects.create(name="Other", account_id="other", client_id="c", client_secret="s")
    integration = make_integration(tenant, account)
    pair = LinkedPair.objects.create(integration=integration, tenant=tenant, zenduty_account=account,
                                     origin=Source.ZENDUTY, state=PairState.LINKED, xurrent_request_id="70001",
                                     zenduty_incident_unique_id="inc-uid-1", zenduty_incident_number=1042)
    now = timezone.now()

    def event(name, **fields):
        return InboundEvent.objects.create(**{"source": Source.ZENDUTY, "event_type": "triggered",
                                              "status": EventStatus.PROCESSED, "reason": name, **fields})

    rows = {
        "paired": event("paired", integration=integration, pair=pair, object_id="inc-uid-1"),
        "unpaired request": event("unpaired request", source=Source.XURRENT, event_type="request.create",
                                  tenant=tenant, object_id="1042", status=EventStatus.IGNORED),
        "other tenant": event("other tenant", source=Source.XURRENT, event_type="request.update",
                              tenant=other_tenant, object_id="555", status=EventStatus.FAILED),
        "nowhere": event("=HYPERLINK(\"http://evil\")", event_type="something.new", status=EventStatus.REJECTED,
                         signature_ok=False, object_id="x"),
        "old": event("old", integration=integration, object_id="inc-uid-9", received_at=now - timedelta(days=10)),
    }
    calls = {
        "paired": OutboundCall.objects.create(service="xurrent", method="PATCH", url="https://x/v1/requests/70001",
                                              status=200, status_class="2xx", integration=integration, pair=pair,
                                              inbound_event=rows["paired"]),
        "routing": OutboundCall.objects.create(service="xurrent", method="GET", url="https://x/v1/requests/555",
                                               status=401, status_class="4xx", error_kind="authentication",
                                               error="-1 credentials", inbound_event=rows["other tenant"]),
        "check": OutboundCall.objects.create(service="zenduty", method="GET", url="https://z/api/account/teams/",
                                             status=200, status_class="2xx"),
    }
    return {"events": rows, "calls": calls, "tenant": tenant, "other_tenant": other_tenant,
            "integration": integration, "pair": pair}


def listed(client, url, **params):
    response = client.get(url, params)
    assert response.status_code == 200, response.content.decode()[:2000]
    return {row.reason if isinstance(row, InboundEvent) else row.pk for row in response.context["cl"].result_list}


def reasons(history, *names):
    return {history["events"][name].reason for name in names}


def call_ids(history, *names):
    return {history["calls"][name].pk for name in names}


def auditor(client):
    user = User.objects.create_user("audrey", password="pw", is_staff=True)
    user.groups.add(Group.objects.get(name=AUDITORS))
    client.force_login(user)
    return client


# -- search -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("term", ["1042", "#1042", " #1042 "])
def test_an_incident_number_finds_its_pairs_events_and_calls_and_a_request_of_that_id(admin_client, history, term):
    assert listed(admin_client, EVENTS, q=term) == reasons(history, "paired", "unpaired request")
    assert listed(admin_client, CALLS, q=term) == call_ids(history, "paired")


def test_a_request_id_finds_its_events_and_the_calls_made_for_them(admin_client, history):
    assert listed(admin_client, EVENTS, q="70001") == reasons(history, "paired")
    assert listed(admin_client, EVENTS, q="555") == reasons(history, "other tenant")
    assert listed(admin_client, CALLS, q="555") == call_ids(history, "routing")


def test_other_text_still_searches_reasons_and_ids(admin_client, history):
    assert listed(admin_client, EVENTS, q="inc-uid-9") == reasons(history, "old")
    assert listed(admin_client, CALLS, q="credentials") == call_ids(history, "routing")


# -- filters ----------------------------------------------------------------------------------------
def test_the_tenant_filter_follows_the_delivery_or_the_integration_and_none_is_what_matched_nothing(
        admin_client, history):
    tenant, other = history["tenant"], history["other_tenant"]
    assert listed(admin_client, EVENTS, tenant=tenant.pk) == reasons(history, "paired", "unpaired request", "old")
    assert listed(admin_client, EVENTS, tenant=other.pk) == reasons(history, "other tenant")
    assert listed(admin_client, EVENTS, tenant="none") == reasons(history, "nowhere")
    assert listed(admin_client, CALLS, tenant=tenant.pk) == call_ids(history, "paired")
    assert listed(admin_client, CALLS, tenant=other.pk) == call_ids(history, "routing")
    assert listed(admin_client, CALLS, tenant="none") == call_ids(history, "check")


def test_direction_outcome_event_type_and_integration_filters(admin_client, history):
    assert listed(admin_client, EVENTS, source__exact="xurrent") == reasons(history, "unpaired request",
                                                                           "other tenant")
    assert listed(admin_client, EVENTS, status__exact="failed") == reasons(history, "other tenant")
    assert listed(admin_client, EVENTS, event_type="request.create") == reasons(history, "unpaired request")
    assert listed(admin_client, EVENTS, event_type="_other") == reasons(history, "nowhere")
    assert listed(admin_client, EVENTS, integration__id__exact=history["integration"].pk) == reasons(
        history, "paired", "old")
    assert listed(admin_client, CALLS, inbound_event__source__exact="xurrent") == call_ids(history, "routing")
    assert listed(admin_client, CALLS, status_class__exact="4xx") == call_ids(history, "routing")
    assert listed(admin_client, CALLS, error_kind="authentication") == call_ids(history, "routing")
    assert listed(admin_client, CALLS, error_kind="_none") == call_ids(history, "paired", "check")

    page = admin_client.get(EVENTS).content.decode()
    assert "matched no integration" not in page  # the tenant filter's "no tenant" leaves some of those out
    for words in ("By direction", "Xurrent → Zenduty", "Zenduty → Xurrent", "By outcome", "By Xurrent tenant",
                  "No tenant", "By event type", "By date"):
        assert words in page


def test_the_date_range_includes_both_days_and_a_wrong_date_is_said_and_ignored(admin_client, history):
    today = timezone.localdate()
    old_day = timezone.localtime(history["events"]["old"].received_at).date()
    assert listed(admin_client, EVENTS, received_at__from=old_day.isoformat(),
                  received_at__to=old_day.isoformat()) == reasons(history, "old")
    assert "old" not in listed(admin_client, EVENTS, received_at__from=(today - timedelta(days=6)).isoformat())
    assert listed(admin_client, CALLS, created_at__to=(today - timedelta(days=1)).isoformat()) == set()

    response = admin_client.get(EVENTS, {"received_at__from": "2026-13-45"}, follow=True)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == len(history["events"])
    assert "is not a date (use YYYY-MM-DD" in response.content.decode()


def test_a_list_page_costs_the_same_queries_for_3_rows_and_for_60(admin_client, history):
    def queries(url):
        admin_client.get(url)  # warm the session and the content types
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url).status_code == 200
        return len(captured)

    few = queries(EVENTS), queries(CALLS)
    for i in range(60):
        InboundEvent.objects.create(source=Source.ZENDUTY, integration=history["integration"],
                                    pair=history["pair"], object_id=f"inc-{i}", tenant=history["tenant"])
        OutboundCall.objects.create(service="zenduty", method="GET", url=f"https://z/{i}",
                                    integration=history["integration"], pair=history["pair"],
                                    inbound_event=history["events"]["paired"])
    assert (queries(EVENTS), queries(CALLS)) == few


# -- CSV export -----------------------------------------------------------------------------------
def read_csv(response) -> list[dict]:
    assert response.status_code == 200
    assert response.streaming and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment; filename=")
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_an_auditor_exports_the_filtered_list_as_csv_with_formulas_neutralised(client, history):
    auditor(client)
    listing = client.get(EVENTS, {"tenant": "none"}).content.decode()
    assert f'href="{EVENTS_CSV}?tenant=none"' in listing

    rows = read_csv(client.get(EVENTS_CSV, {"tenant": "none"}))
    assert len(rows) == 1
    assert rows[0]["reason"] == "'=HYPERLINK(\"http://evil\")"
    assert rows[0]["outcome"] == "Rejected" and rows[0]["direction"] == "Zenduty → Xurrent"

    rows = read_csv(client.get(EVENTS_CSV, {"q": "#1042"}))
    assert {r["reason"] for r in rows} == reasons(history, "paired", "unpaired request")
    paired = next(r for r in rows if r["reason"] == "paired")
    assert (paired["Xurrent request"], paired["Zenduty incident number"], paired["Zenduty service"]) == \
        ("70001", "1042", "Website")

    rows = read_csv(client.get(CALLS_CSV, {"status_class__exact": "4xx"}))
    assert [(r["id"], r["error"], r["error kind"]) for r in rows] == [
        (str(history["calls"]["routing"].pk), "'-1 credentials", "authentication")]


def test_the_export_needs_the_view_permission(client, history):
    client.force_login(User.objects.create_user("nobody", password="pw", is_staff=True))
    assert client.get(EVENTS_CSV).status_code == 403
    assert client.get(CALLS_CSV).status_code == 403


def test_the_export_streams_every_row_in_a_fixed_number_of_queries(admin_client, history, settings):
    from syncengine import export

    for i in range(25):
        InboundEvent.objects.create(source=Source.ZENDUTY, integration=history["integration"],
                                    pair=history["pair"], object_id=f"inc-{i}", reason=f"bulk {i}")
    original = export.CHUNK_ROWS
    export.CHUNK_ROWS = 10
    try:
        with CaptureQueriesContext(connection) as captured:
            rows = read_csv(admin_client.get(EVENTS_CSV))
    finally:
        export.CHUNK_ROWS = original
    assert len(rows) == len(history["events"]) + 25
    # Session, user, the list's count and page, then the export's one query (SQLite reads it in chunks).
    assert len(captured) <= 8


@pytest.mark.parametrize("value, cell", [
    ("=1+2", "'=1+2"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
    ("plain", "plain"), (None, ""), (42, "42"), (True, "yes"), ("a=b", "a=b"),
])
def test_cells_that_a_spreadsheet_would_run_are_neutralised(value, cell):
    assert neutralise(value) == cell


# -- what to do ------------------------------------------------------------------------------------
def test_failed_and_rejected_rows_say_what_to_do_next(client, history):
    auditor(client)

    def page(kind, obj):
        return client.get(reverse(f"admin:syncengine_{kind}_change", args=[obj.pk])).content.decode()

    assert "then replay the event" in page("inboundevent", history["events"]["other tenant"])
    assert "paste the key Zenduty shows" in page("inboundevent", history["events"]["nowhere"])
    assert "Check the connection under Connections" in page("outboundcall", history["calls"]["routing"])
    assert "Nothing to do." in page("outboundcall", history["calls"]["check"])


def test_a_long_list_is_counted_only_up_to_a_cap(admin_client, history, monkeypatch):
    from syncengine.history_filters import CappedPaginator

    monkeypatch.setattr(CappedPaginator, "CAP", 3)
    response = admin_client.get(EVENTS)
    assert response.context["cl"].result_count == 4  # the cap + 1: "more than 3"
    assert "more than 3 inbound events" in response.content.decode()
    assert "more than" not in admin_client.get(EVENTS, {"tenant": "none"}).content.decode()


def test_a_number_too_large_for_an_incident_searches_request_ids_only(admin_client, history):
    assert listed(admin_client, EVENTS, q="123456789012345678") == set()
    assert listed(admin_client, CALLS, q="#123456789012345678") == set()


@pytest.mark.parametrize("changelist", ["admin:syncengine_inboundevent_changelist",
                                        "admin:syncengine_outboundcall_changelist",
                                        "admin:syncengine_linkedpair_changelist",
                                        "admin:roles_configchange_changelist"])
def test_show_all_is_offered_only_when_a_filter_or_a_search_narrows_the_list(admin_client, changelist):
    """The long lists are not counted whole; Django then said "N results (Show all)" on every list,
    even one nothing narrowed, where "Show all" led to the same page."""
    url = reverse(changelist)
    assert "Show all" not in admin_client.get(url).content.decode()
    assert "Show all" not in admin_client.get(url, {"o": "1", "p": "1"}).content.decode()  # ordered, paged

    searched = admin_client.get(url, {"q": "no-such-thing"}).content.decode()
    assert '0 results (<a href="?">Show all</a>)' in searched
    filtered = admin_client.get(url, {"integration__id__exact": "999"} if "roles" not in changelist
                                else {"action_flag__exact": "1"}).content.decode()
    assert 'results (<a href="?">Show all</a>)' in filtered


@pytest.mark.parametrize("url", [EVENTS, CALLS])
@pytest.mark.parametrize("tenant_filter", [None, "tenant", "none"])
def test_show_counts_counts_each_tenant_with_or_without_a_filter(admin_client, history, url, tenant_filter):
    """With "Show counts" the admin hands the filter each tenant's pk as an int, not as text."""
    params = {"_facets": "True"}
    if tenant_filter:
        params["tenant"] = history["tenant"].pk if tenant_filter == "tenant" else "none"
    response = admin_client.get(url, params)
    assert response.status_code == 200
    expected = 3 if url == EVENTS else 1  # a filter's own counts leave its own choice aside
    assert f"{history['tenant'].name} ({expected})" in response.content.decode()
