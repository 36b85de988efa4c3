"""The read-only history admin: smoke test of every page, replay, the inlines."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import RequestFactory
from django.urls import resolve, reverse
from django.utils import timezone

from syncengine.admin import RecentInboundEventsInline, RecentOutboundCallsInline
from syncengine.models import EventStatus, InboundEvent, OutboundCall
from tests.syncengine.conftest import fixture_json


@pytest.fixture
def history(integration, sign_xurrent, post_xurrent, post_zenduty, outbound):
    """A verified webhook, a request event, a rejected delivery, a Zenduty event, and their calls."""
    from tests.syncengine.conftest import fixture_bytes

    post_xurrent(integration, sign_xurrent("webhook.verify"), HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")
    post_xurrent(integration, sign_xurrent("request.update"))
    post_xurrent(integration, b'{"jwt": "not.a.token"}')
    post_zenduty(integration, fixture_bytes("zenduty/resolved.json"))
    return {e.event_type or "rejected": e for e in InboundEvent.objects.all()}


@pytest.mark.django_db
class TestPages:
    def test_every_page_renders(self, admin_client, history, integration):
        urls = [reverse("admin:syncengine_inboundevent_changelist"),
                reverse("admin:syncengine_outboundcall_changelist"),
                reverse("sync_dashboard"),
                reverse("sync_dashboard") + f"?integration={integration.pk}",
                reverse("admin:syncengine_inboundevent_changelist") + "?status__exact=rejected&source__exact=xurrent",
                reverse("admin:syncengine_outboundcall_changelist") + "?status_class__exact=2xx",
                reverse("admin:syncengine_inboundevent_changelist") + "?q=request.update"]
        urls += [reverse("admin:syncengine_inboundevent_change", args=[e.pk]) for e in InboundEvent.objects.all()]
        urls += [reverse("admin:syncengine_outboundcall_change", args=[c.pk]) for c in OutboundCall.objects.all()]
        for url in urls:
            response = admin_client.get(url)
            assert response.status_code == 200, url

    def test_history_cannot_be_added_edited_or_deleted(self, admin_client, history):
        event = history["webhook.verify"]
        assert admin_client.get(reverse("admin:syncengine_inboundevent_add")).status_code == 403
        assert admin_client.get(reverse("admin:syncengine_inboundevent_delete", args=[event.pk])).status_code == 403
        page = admin_client.get(reverse("admin:syncengine_inboundevent_change", args=[event.pk])).content.decode()
        assert 'name="_save"' not in page

    def test_the_detail_shows_headers_body_and_decoded_claims_but_no_credentials(self, admin_client, history):
        event = history["webhook.verify"]

        page = admin_client.get(reverse("admin:syncengine_inboundevent_change", args=[event.pk])).content.decode()

        assert "x-xurrent-delivery" in page
        assert "verified on receipt" in page and "zenduty-xurrent-portal:test" in page  # the aud claim
        assert "https://wdc.xurrent.com/webhooks/4711/verify" in page  # the call made for it (inline)
        assert "dXNlcjpwYXNz" not in page
        assert "&quot;authorization&quot;" not in page.lower()

    def test_viewers_do_not_see_the_code_of_an_answered_verification(self, client, django_user_model, history):
        viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
        viewer.user_permissions.add(Permission.objects.get(codename="view_inboundevent"))
        client.force_login(viewer)
        event = history["webhook.verify"]
        assert event.status == EventStatus.PROCESSED

        page = client.get(reverse("admin:syncengine_inboundevent_change", args=[event.pk])).content.decode()

        assert "/webhooks/4711/verify?expires_at=1750236069" in page  # the message and decoded token are shown
        assert "d41f0c6e8a2b4c7d9e1f3a5b7c9d0e2f" not in page

    def test_a_rejected_token_is_labelled_unverified(self, admin_client, history):
        event = history["rejected"]

        page = admin_client.get(reverse("admin:syncengine_inboundevent_change", args=[event.pk])).content.decode()

        assert "no readable JWT" in page or "NOT verified" in page

    def test_a_rejected_deeply_nested_body_renders(self, admin_client, integration, post_xurrent):
        post_xurrent(integration, b"[" * 200_000)
        event = InboundEvent.objects.get()

        response = admin_client.get(reverse("admin:syncengine_inboundevent_change", args=[event.pk]))

        assert response.status_code == 200
        assert "[[[[" in response.content.decode()  # shown as text

    def test_the_list_shows_a_coloured_status_badge(self, admin_client, history):
        page = admin_client.get(reverse("admin:syncengine_inboundevent_changelist")).content.decode()
        assert "background:#198754" in page  # processed
        assert "background:#d63384" in page  # rejected

    def test_a_waiting_event_says_in_the_list_when_it_comes_back(self, admin_client, history):
        from datetime import datetime, timezone as tz

        event = history["request.update"]
        InboundEvent.objects.filter(pk=event.pk).update(
            status=EventStatus.RETRY_SCHEDULED, next_attempt_at=datetime(2026, 12, 1, 10, 44, 15, tzinfo=tz.utc),
            reason="Attempt 0 of 5: Not sent yet: the portal keeps to Zenduty's rate limits: GET /api/incidents/1/ "
                   "would wait another 36.0 s. Next attempt in 36 s, at 10:44:15 UTC.")
        page = admin_client.get(reverse("admin:syncengine_inboundevent_changelist")).content.decode()
        assert "next at 10:44:15</small>" in page  # the reason itself is cut before it says so


@pytest.mark.django_db
class TestReplay:
    def test_the_action_replays_failed_events(self, admin_client, integration, outbound, history,
                                              django_capture_on_commit_callbacks):
        event = history["request.update"]
        InboundEvent.objects.filter(pk=event.pk).update(status=EventStatus.FAILED)

        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(reverse("admin:syncengine_inboundevent_changelist"),
                                         {"action": "replay_events", "_selected_action": [event.pk]}, follow=True)

        assert "1 event queued again." in response.content.decode()
        event.refresh_from_db()
        assert event.status == EventStatus.IGNORED and event.attempts == 1  # back through the job

    def test_the_action_refuses_the_whole_batch_when_one_cannot_be_replayed(self, admin_client, history):
        ids = [history["request.update"].pk, history["rejected"].pk]

        response = admin_client.post(reverse("admin:syncengine_inboundevent_changelist"),
                                     {"action": "replay_events", "_selected_action": ids}, follow=True)

        assert "Nothing replayed" in response.content.decode()
        assert InboundEvent.objects.get(pk=ids[0]).reason.startswith("Request #70231 is not linked")

    def test_the_button_replays_one_event(self, admin_client, history, django_capture_on_commit_callbacks):
        event = history["request.update"]
        change_url = reverse("admin:syncengine_inboundevent_change", args=[event.pk])
        assert "Replay</button>" in admin_client.get(change_url).content.decode()

        with django_capture_on_commit_callbacks(execute=True):
            response = admin_client.post(reverse("admin:syncengine_inboundevent_replay", args=[event.pk]))

        assert response.status_code == 302 and response["Location"] == change_url
        event.refresh_from_db()
        assert event.attempts == 1 and event.status == EventStatus.IGNORED

    def test_no_button_for_rejected_events_and_get_is_refused(self, admin_client, history):
        event = history["rejected"]
        page = admin_client.get(reverse("admin:syncengine_inboundevent_change", args=[event.pk])).content.decode()
        assert "Replay</button>" not in page
        assert admin_client.get(reverse("admin:syncengine_inboundevent_replay", args=[event.pk])).status_code == 405

    def test_viewers_without_change_permission_cannot_replay(self, client, django_user_model, history):
        viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
        viewer.user_permissions.add(Permission.objects.get(codename="view_inboundevent"))
        client.force_login(viewer)
        event = history["request.update"]

        assert client.get(reverse("admin:syncengine_inboundevent_changelist")).status_code == 200
        assert client.post(reverse("admin:syncengine_inboundevent_replay", args=[event.pk])).status_code == 403
        page = client.get(reverse("admin:syncengine_inboundevent_change", args=[event.pk])).content.decode()
        assert "Replay</button>" not in page


@pytest.mark.django_db
class TestActivity:
    def test_the_old_activity_chart_leads_to_the_dashboard(self, admin_client, integration):
        # The per-day chart was superseded by the dashboard (tests/syncengine/test_dashboard.py).
        response = admin_client.get(reverse("admin:syncengine_activity") + f"?integration={integration.pk}")
        assert response.status_code == 302
        assert response["Location"] == reverse("sync_dashboard") + f"?integration={integration.pk}"


@pytest.mark.django_db
class TestIntegrationInlines:
    def _request(self, integration):
        request = RequestFactory().get(f"/admin/integrations/outgoingintegration/{integration.pk}/change/")
        request.resolver_match = resolve(f"/admin/integrations/outgoingintegration/{integration.pk}/change/")
        return request

    def test_the_integration_page_gets_the_two_inlines_but_the_add_page_none(self, integration, admin_user):
        from django.contrib import admin as django_admin

        from integrations.models import OutgoingIntegration

        model_admin = django_admin.site._registry[OutgoingIntegration]
        request = self._request(integration)
        assert model_admin.get_inlines(request, integration) == [RecentInboundEventsInline, RecentOutboundCallsInline]
        assert model_admin.get_inlines(request, None) == []

    def test_the_inline_shows_only_the_latest_events_of_that_integration(self, integration, admin_user):
        from django.contrib import admin as django_admin

        from integrations.models import OutgoingIntegration

        now = timezone.now()
        for i in range(12):
            InboundEvent.objects.create(source="zenduty", integration=integration, event_type=f"e{i}",
                                        received_at=now - timedelta(minutes=i))
        InboundEvent.objects.create(source="zenduty", event_type="elsewhere", received_at=now)
        inline = RecentInboundEventsInline(OutgoingIntegration, django_admin.site)
        request = self._request(integration)
        request.user = admin_user

        rows = list(inline.get_queryset(request))

        assert [e.event_type for e in rows] == [f"e{i}" for i in range(10)]

    def test_the_inline_is_empty_on_the_add_page(self, integration, admin_user):
        from django.contrib import admin as django_admin

        from integrations.models import OutgoingIntegration

        InboundEvent.objects.create(source="zenduty", integration=integration)
        request = RequestFactory().get("/admin/integrations/outgoingintegration/add/")
        request.resolver_match = resolve("/admin/integrations/outgoingintegration/add/")
        request.user = admin_user

        assert list(RecentOutboundCallsInline(OutgoingIntegration, django_admin.site).get_queryset(request)) == []


def test_fixture_files_are_valid_deliveries():
    for name in ("webhook.verify", "request.create", "request.update", "request.status-changed",
                 "request.note-added", "problem.create"):
        message = fixture_json(f"xurrent/{name}.json")
        assert message["event"] == name and "payload" in message
    for name in ("triggered", "acknowledged", "resolved"):
        assert fixture_json(f"zenduty/{name}.json")["payload"]["event_type"] == name


@pytest.mark.django_db
def test_the_call_list_shows_short_paths_with_the_full_url_on_hover(admin_client):
    url = ("https://www.zenduty.com/api/account/teams/e6c3cbc5-5323-4e7f-8639-a7c546a1deb3/services/"
           "ba2ee505-f24f-4a97-af1f-fdc654c0b330/integrations/")
    OutboundCall.objects.create(service="zenduty", method="GET", url=url, status=200, status_class="2xx")

    page = admin_client.get(reverse("admin:syncengine_outboundcall_changelist")).content.decode()

    assert "/api/account/teams/e6c3cbc5…/services/ba2ee505…/integrations/" in page
    assert f'title="{url}"' in page


@pytest.mark.parametrize("source, fixture, event_type, object_id, expected", [
    ("zenduty", "zenduty/triggered.json", "triggered", "x",
     "Incident #1042 “Checkout error rate high” — triggered"),
    ("xurrent", "xurrent/request.create.json", "request.create", "70231",
     "Request 70231 — created by Tom Edwards; status assigned"),
    ("xurrent", "xurrent/request.note-added.json", "request.note-added", "70231",
     "Request 70231 — note added by Howard Tanner; status workflow pending"),
    ("xurrent", "xurrent/webhook.verify.json", "webhook.verify", "", "Verification of Xurrent webhook"),
])
def test_each_event_says_what_it_is_about(source, fixture, event_type, object_id, expected):
    from syncengine.history import describe_event

    from .conftest import fixture_json

    message = fixture_json(fixture)
    if source == "zenduty":
        message = message["payload"]
    event = InboundEvent(source=source, event_type=event_type, object_id=object_id, payload=message)
    assert describe_event(event).startswith(expected)
    assert describe_event(InboundEvent(source=source, event_type=event_type, payload={})) == ""


@pytest.mark.django_db
def test_a_malformed_event_id_in_the_address_is_not_a_server_error(admin_client):
    response = admin_client.get("/admin/syncengine/inboundevent/abc/change/")
    assert response.status_code == 302  # Django's "does not exist" redirect to the admin index, with a message
    assert admin_client.get("/admin/syncengine/inboundevent/abc/replay/").status_code == 404
    assert admin_client.post("/admin/syncengine/inboundevent/abc/replay/").status_code == 404


@pytest.mark.django_db
def test_a_pairs_timeline_counts_routine_polling_reads_instead_of_listing_them(admin_client, integration):
    from syncengine.models import LinkedPair

    pair = LinkedPair.objects.create(integration=integration, tenant=integration.tenant, state="linked",
                                     zenduty_account=integration.zenduty_account, origin="zenduty",
                                     xurrent_request_id="70231", zenduty_incident_unique_id="abc")
    for _ in range(3):  # the poller reading the incident's notes, minute after minute
        OutboundCall.objects.create(service="zenduty", method="GET", status=200, status_class="2xx", pair=pair,
                                    url="https://www.zenduty.com/api/incidents/1042/note/")
    OutboundCall.objects.create(service="zenduty", method="GET", status=429, status_class="4xx", pair=pair,
                                url="https://www.zenduty.com/api/incidents/1042/note/")
    OutboundCall.objects.create(service="xurrent", method="PATCH", status=200, status_class="2xx", pair=pair,
                                url="https://api.xurrent.com/v1/requests/70231")

    page = admin_client.get(reverse("admin:syncengine_linkedpair_change", args=[pair.pk])).content.decode()

    assert "Not shown: 3 routine reads by the poller and the sweep" in page
    assert page.count("called <a") == 2  # the refused read and the write are listed


@pytest.mark.django_db
def test_a_pairs_page_says_in_words_what_the_portal_wrote_to_each_side(admin_client, integration):
    from integrations.models import TeamPriorities
    from syncengine.models import LinkedPair

    TeamPriorities.objects.create(zenduty_account=integration.zenduty_account, team_id=integration.zenduty_team_id,
                                  priorities=[{"id": "prio-p1", "name": "P1"}], read_at=timezone.now())
    pair = LinkedPair.objects.create(integration=integration, tenant=integration.tenant, state="linked",
                                     zenduty_account=integration.zenduty_account, origin="zenduty",
                                     xurrent_request_id="70231", zenduty_incident_unique_id="abc", last_written={
                                         "xurrent": {"status": "in_progress", "impact": "high", "reopen_noted": 1},
                                         "zenduty": {"status": 2, "team_priority": "prio-p1"}})
    url = reverse("admin:syncengine_linkedpair_change", args=[pair.pk])

    page = admin_client.get(url).content.decode()

    assert ("Xurrent request: status in_progress · impact high · reopening noted (reopen count 1)<br>"
            "Zenduty incident: status acknowledged · priority P1") in page
    assert "&quot;xurrent&quot;" not in page and '"team_priority"' not in page  # no JSON

    LinkedPair.objects.filter(pk=pair.pk).update(last_written={})
    assert "Nothing yet." in admin_client.get(url).content.decode()


@pytest.mark.django_db
def test_an_events_error_from_before_its_success_is_said_to_be_past(admin_client, integration):
    at = timezone.now()
    failed_once = InboundEvent.objects.create(source="zenduty", integration=integration, event_type="triggered",
                                              object_id="inc-1", status=EventStatus.PROCESSED, attempts=2,
                                              processed_at=at, last_error="Zenduty answered 503")
    failing = InboundEvent.objects.create(source="zenduty", integration=integration, event_type="triggered",
                                          object_id="inc-2", status=EventStatus.RETRY_SCHEDULED, attempts=1,
                                          last_error="Zenduty answered 503")

    page = admin_client.get(reverse("admin:syncengine_inboundevent_change", args=[failed_once.pk])).content.decode()
    local = timezone.localtime(at).strftime("%Y-%m-%d %H:%M:%S")
    assert f"Zenduty answered 503<br><span class=\"quiet\">From an earlier attempt, before the success at {local}" in page

    page = admin_client.get(reverse("admin:syncengine_inboundevent_change", args=[failing.pk])).content.decode()
    assert "Zenduty answered 503" in page and "From an earlier attempt" not in page
