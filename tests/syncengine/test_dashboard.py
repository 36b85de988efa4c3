"""The sync dashboard: its numbers against seeded history rows, its query count, who may open it."""
from __future__ import annotations

import html
import re
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from integrations.models import OutgoingIntegration
from syncengine import dashboard
from django.db.models import Sum

from syncengine.models import ActivityHour, InboundEvent, LinkedPair, OutboundCall

NOW = datetime(2026, 11, 30, 12, 30, tzinfo=dt_timezone.utc)


def event(integration, status, at, lag=None, **fields):
    return InboundEvent.objects.create(
        source="xurrent", integration=integration, status=status, received_at=at,
        processed_at=at + timedelta(seconds=lag) if lag is not None else None, **fields)


def call(integration, service, status, at):
    return OutboundCall.objects.create(service=service, method="GET", url="https://x/y", status=status,
                                       status_class=f"{status // 100}xx" if status else "none",
                                       integration=integration, created_at=at)


@pytest.fixture
def other(integration):
    return OutgoingIntegration.objects.create(
        zenduty_account=integration.zenduty_account, zenduty_team_id="t2", zenduty_service_id="svc-pay",
        zenduty_service_name="Payments", tenant=integration.tenant, service_instance_id="2",
        service_instance_name="Payments (Production)")


@pytest.fixture
def seeded(integration, other, monkeypatch):
    """Two hours of one integration's history, one event of another, one unrouted, one outside the window.

    The page asks the clock for its window: it is drawn as of ``NOW``, when this history happened (the
    bars of 11:00 and 12:00 on 2026-11-30 left the real 24 hours on 2026-12-01 at 11:00).
    """
    real_summary = dashboard.summary
    monkeypatch.setattr(dashboard, "summary",
                        lambda window, integration=None, *, now=None: real_summary(window, integration, now=now or NOW))
    hour = NOW.replace(minute=0)  # 12:00, the current hour
    earlier = hour - timedelta(hours=1)  # 11:00
    for minute, lag in ((5, 2), (10, 4), (20, 6)):
        event(integration, "processed", earlier + timedelta(minutes=minute), lag)
    event(integration, "failed", earlier + timedelta(minutes=30), 1)
    event(integration, "ignored", hour + timedelta(minutes=1), 0)
    event(integration, "processed", hour + timedelta(minutes=2), 10)
    event(integration, "retry_scheduled", hour + timedelta(minutes=3))
    event(integration, "received", hour + timedelta(minutes=4))
    event(other, "failed", hour + timedelta(minutes=5), 1)
    event(None, "rejected", hour + timedelta(minutes=6), 0)
    event(integration, "failed", NOW - timedelta(days=2), 1)  # outside 24 h, inside 7 days
    for status in (200, 201, 429, 429):
        call(integration, "zenduty", status, earlier + timedelta(minutes=7))
    call(integration, "xurrent", 200, hour)
    call(other, "xurrent", 429, hour)
    call(integration, "zenduty", 429, NOW - timedelta(days=3))  # outside 24 h
    common = {"tenant": integration.tenant, "zenduty_account": integration.zenduty_account, "origin": "xurrent"}
    for i, state in enumerate(("linked", "creating", "closed", "closed", "failed")):
        LinkedPair.objects.create(integration=integration, state=state, xurrent_request_id=str(i), **common)
    LinkedPair.objects.create(integration=other, state="linked", xurrent_request_id="99", **common)
    # Unlinked by hand: no longer the sync's, counted neither open, closed nor failed.
    LinkedPair.objects.create(integration=other, state="unlinked", xurrent_request_id="98", **common)


@pytest.mark.django_db
class TestNumbers:
    def test_events_per_hour_by_outcome_with_their_lag(self, seeded):
        data = dashboard.summary(dashboard.WINDOWS["24h"], now=NOW)

        buckets = {b["start"].hour: b for b in data["buckets"]}
        assert len(data["buckets"]) == 25  # 12:30 yesterday's hour to this one
        assert buckets[11]["counts"] == {"processed": 3, "failed": 1}
        assert buckets[12]["counts"] == {"ignored": 1, "processed": 1, "retry_scheduled": 1, "received": 1,
                                         "failed": 1, "rejected": 1}
        assert buckets[10]["counts"] == {}
        # Lag of processed events only: (2 + 4 + 6) / 3 and max 6 at 11:00; 10 at 12:00.
        assert buckets[11]["lag_avg"] == pytest.approx(4, abs=0.01) and buckets[11]["lag_max"] == pytest.approx(6, abs=0.01)
        assert buckets[12]["lag_avg"] == pytest.approx(10, abs=0.01)

    def test_overall_and_per_integration_health(self, seeded, integration, other):
        data = dashboard.summary(dashboard.WINDOWS["24h"], now=NOW)

        overall = data["overall"]
        assert overall.events == 10 and overall.failed == 2 and overall.rejected == 1
        assert overall.finished == 7 and overall.failure_percent == "28.6 %"  # 2 of 3+1+1+1 processed/failed/ignored
        assert overall.backlog == 2 and overall.oldest_waiting == NOW.replace(minute=3)
        assert overall.lag_avg == pytest.approx((2 + 4 + 6 + 10) / 4, abs=0.01)
        assert (overall.pairs_open, overall.pairs_closed, overall.pairs_failed) == (3, 2, 1)
        assert (overall.zenduty_calls, overall.zenduty_429, overall.xurrent_calls, overall.xurrent_429) == (4, 2, 2, 1)
        rows = {i.pk: h for i, h in data["rows"]}
        mine = rows[integration.pk]
        assert (mine.events, mine.failed, mine.finished, mine.backlog) == (8, 1, 6, 2)
        assert mine.failure_rate == pytest.approx(1 / 6)
        assert (mine.pairs_open, mine.pairs_closed) == (2, 2)
        assert (mine.zenduty_calls, mine.zenduty_429, mine.xurrent_calls, mine.xurrent_429) == (4, 2, 1, 0)
        assert mine.last_event == NOW.replace(minute=4)
        assert (rows[other.pk].events, rows[other.pk].failure_rate, rows[other.pk].xurrent_429) == (1, 1.0, 1)
        assert data["unrouted"].rejected == 1

    def test_a_longer_window_and_one_integration(self, seeded, integration):
        week = dashboard.summary(dashboard.WINDOWS["7d"], integration, now=NOW)
        assert [i.pk for i, _ in week["rows"]] == [integration.pk]
        assert week["overall"].events == 9 and week["overall"].failed == 2
        assert week["overall"].zenduty_429 == 3 and week["overall"].xurrent_429 == 0
        assert sum(sum(b["counts"].values()) for b in week["buckets"]) == 9
        month = dashboard.summary(dashboard.WINDOWS["30d"], now=NOW)
        assert all((b["start"].hour % 4, b["start"].minute) == (0, 0) for b in month["buckets"])
        assert sum(sum(b["counts"].values()) for b in month["buckets"]) == 11

    def test_the_newest_event_counts_even_before_the_window(self, integration):
        event(integration, "processed", NOW - timedelta(days=40), 1)
        data = dashboard.summary(dashboard.WINDOWS["24h"], now=NOW)
        assert data["overall"].events == 0 and data["overall"].last_event == NOW - timedelta(days=40)
        assert data["overall"].failure_rate is None and data["overall"].failure_percent == "—"


def numbers(data):
    """What a page shows of a summary, comparable between two ways of counting."""
    overall = data["overall"]
    return {"buckets": [(b["start"], b["counts"], b["lag_avg"] and round(b["lag_avg"], 3)) for b in data["buckets"]],
            "overall": (overall.events, dict(overall.by_status), round(overall.lag_avg or 0, 3), overall.lag_max),
            "rows": [(i.pk, h.events, dict(h.by_status)) for i, h in data["rows"]],
            "unrouted": dict(data["unrouted"].by_status)}


@pytest.mark.django_db
class TestRollUp:
    def test_the_long_windows_count_the_same_from_the_hourly_roll_up(self, seeded, integration):
        before = {key: numbers(dashboard.summary(dashboard.WINDOWS[key], now=NOW)) for key in ("7d", "30d")}
        one = numbers(dashboard.summary(dashboard.WINDOWS["30d"], integration, now=NOW))

        written = dashboard.roll_up(now=NOW)

        assert written == ActivityHour.objects.count() > 0
        # Whole hours before 12:00 are rolled up; the current hour is still counted from the events.
        assert ActivityHour.objects.filter(hour__gte=NOW.replace(minute=0)).count() == 0
        for key in ("7d", "30d"):
            assert numbers(dashboard.summary(dashboard.WINDOWS[key], now=NOW)) == before[key]
        assert numbers(dashboard.summary(dashboard.WINDOWS["30d"], integration, now=NOW)) == one

    def test_a_later_outcome_is_rolled_up_again_and_new_events_count_at_once(self, seeded, integration):
        dashboard.roll_up(now=NOW)
        failed = InboundEvent.objects.get(status="failed", received_at__lt=NOW - timedelta(days=1))
        failed.status = "processed"  # replayed, and it went through
        failed.processed_at = failed.received_at + timedelta(seconds=5)
        failed.save()
        event(integration, "failed", NOW - timedelta(minutes=1), 1)  # after the roll-up, this hour

        later = NOW + timedelta(minutes=15)
        assert dashboard.summary(dashboard.WINDOWS["7d"], now=later)["overall"].failed == 4  # not rolled up again yet
        dashboard.roll_up(now=later)
        week = dashboard.summary(dashboard.WINDOWS["7d"], now=later)["overall"]
        assert week.failed == 3 and week.events == 12
        assert ActivityHour.objects.filter(status="failed").aggregate(n=Sum("events"))["n"] == 1  # 11:00's

    def test_a_run_after_a_pause_starts_from_the_last_hour_rolled_up(self, integration):
        event(integration, "processed", NOW - timedelta(days=20), 1)
        dashboard.roll_up(now=NOW - timedelta(days=19))
        event(integration, "processed", NOW - timedelta(days=15), 1)  # rolled up by no run yet

        dashboard.roll_up(now=NOW)

        assert ActivityHour.objects.aggregate(n=Sum("events"))["n"] == 2
        assert dashboard.summary(dashboard.WINDOWS["30d"], now=NOW)["overall"].events == 2


@pytest.fixture
def auditor(db):
    user = User.objects.create_user("auditor", "auditor@example.com", "pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(
        content_type__app_label__in=["syncengine", "integrations"], codename__startswith="view_"))
    return user


@pytest.mark.django_db
class TestPage:
    def test_it_draws_svg_charts_for_every_window_within_its_query_budget(self, client, auditor, seeded, integration,
                                                                         django_assert_max_num_queries):
        client.force_login(auditor)
        for query in ("", "?window=7d", "?window=30d", f"?window=24h&integration={integration.pk}", "?window=bogus"):
            with django_assert_max_num_queries(15):
                response = client.get(reverse("sync_dashboard") + query)
            assert response.status_code == 200, query
            html = response.content.decode()
            assert html.count("<svg class=\"sync-svg\"") == 2 and "<script" not in html.split('id="content-main"')[1]
        assert f'data-status="failed"' in html and "Website" in html

    def test_the_bars_show_the_counts_of_the_hour(self, client, auditor, seeded):
        client.force_login(auditor)
        html = client.get(reverse("sync_dashboard")).content.decode()
        assert "<title>2026-11-30 11:00: 3 processed</title>" in html
        assert "<title>2026-11-30 12:00: 1 failed</title>" in html

    def test_one_integrations_dashboard_opens_its_own_history(self, client, auditor, seeded, integration):
        client.force_login(auditor)
        history = re.compile(r'href="(/admin/syncengine/(?:inboundevent|outboundcall|linkedpair)/[^"]*)"')
        overall = history.findall(client.get(reverse("sync_dashboard")).content.decode())
        assert [link for link in overall if "integration__isnull" not in link] == [  # the row of no integration's
            "/admin/syncengine/inboundevent/", "/admin/syncengine/outboundcall/", "/admin/syncengine/linkedpair/"]

        page = client.get(reverse("sync_dashboard") + f"?integration={integration.pk}").content.decode()
        links = [html.unescape(link) for link in history.findall(page)]
        assert links == [f"/admin/syncengine/{model}/?integration__id__exact={integration.pk}"
                         for model in ("inboundevent", "outboundcall", "linkedpair")]
        events = client.get(links[0]).context["cl"]
        assert {e.integration_id for e in events.result_list} == {integration.pk}
        assert events.result_count == InboundEvent.objects.filter(integration=integration).count()
        assert InboundEvent.objects.exclude(integration=integration).exists()  # the others are left out
        calls = client.get(links[1]).context["cl"]
        assert calls.result_count and {c.integration_id for c in calls.result_list} == {integration.pk}

    def test_the_row_of_events_that_matched_no_integration_lists_them(self, client, auditor, integration):
        now = timezone.now()
        event(None, "rejected", now - timedelta(minutes=5), 0)
        # Delivered to a tenant's webhook, but no integration of the tenant matched it.
        event(None, "ignored", now - timedelta(minutes=4), 0, tenant=integration.tenant)
        event(integration, "processed", now - timedelta(minutes=3), 1)
        client.force_login(auditor)

        page = client.get(reverse("sync_dashboard")).content.decode()
        row = re.search(r'<tr class="quiet">(.*?)</tr>', page, re.DOTALL).group(1)
        assert "Matched no integration" in row and "<td>2</td>" in row
        events = client.get(html.unescape(re.search(r'href="([^"]+)"', row).group(1))).context["cl"]
        assert events.result_count == 2 and {e.integration_id for e in events.result_list} == {None}

    def test_it_needs_the_history_view_permissions(self, client, db):
        staff = User.objects.create_user("staff", "s@example.com", "pw", is_staff=True)
        client.force_login(staff)
        assert client.get(reverse("sync_dashboard")).status_code == 403
        client.logout()
        assert client.get(reverse("sync_dashboard")).status_code == 302  # to the login

    def test_the_admin_index_and_the_integration_page_link_to_it(self, admin_client, integration):
        assert reverse("sync_dashboard") in admin_client.get(reverse("admin:index")).content.decode()
        page = admin_client.get(reverse("admin:integrations_outgoingintegration_change", args=[integration.pk]))
        assert f'{reverse("sync_dashboard")}?integration={integration.pk}' in page.content.decode()


@pytest.mark.django_db
def test_the_roll_up_is_scheduled_every_ten_minutes(integration):
    from django_q.models import Schedule

    from syncengine import tasks

    schedule = Schedule.objects.get(func="syncengine.tasks.roll_up_activity")
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 10, -1)
    event(integration, "processed", NOW - timedelta(hours=3), 1)
    assert tasks.roll_up_activity() == 1


def test_the_time_axis_names_the_day_when_the_chart_spans_several():
    from syncengine.charts import _time_label

    four = datetime(2026, 11, 30, 4, 0, tzinfo=dt_timezone.utc)
    assert _time_label(four, 3600, 86400) == "04:00"  # a day's chart: the hour
    assert _time_label(four, 3600, 7 * 86400) == "30 Nov 04:00"  # a week of hourly bars: day and hour
    assert _time_label(four.replace(hour=0), 3600, 7 * 86400) == "30 Nov"


@pytest.mark.parametrize("buckets, seconds", [(169, 3600), (168, 3600), (24, 3600), (31, 86400), (288, 300)])
def test_no_time_label_passes_the_charts_edges(buckets, seconds):
    from syncengine import charts

    end = datetime(2026, 12, 1, 6, 0, tzinfo=dt_timezone.utc)
    starts = [end - timedelta(seconds=seconds * i) for i in reversed(range(buckets))]
    svg = charts.stacked_bars([{"start": s, "counts": {"processed": 1}} for s in starts],
                              [("processed", "Processed", "#198754")], seconds)
    ticks = re.findall(rf'<text x="([\d.]+)" y="{charts.HEIGHT - 8}" text-anchor="(\w+)" class="axis">([^<]+)</text>',
                       svg)
    assert len(ticks) >= 4
    char = 6.2  # 11 px text: about 0.56 em a character on average
    for x, anchor, label in ticks:
        width = len(label) * char
        left = {"start": 0, "middle": width / 2, "end": width}[anchor]
        assert float(x) - left >= 0 and float(x) - left + width <= charts.WIDTH, (x, anchor, label)
