"""Mappings that drift (#11) and the mapping shown as a table (#12), end to end through the sandbox.

The cast is the demo (``sandbox.demo.seed``): the bidirectional Website ⇄ Website (Production)
integration, provisioned against the simulators, with the Operations team's mapping P1 top, P2 high,
P3 medium, P4 low, P5 low and the default impact medium. The team's priorities change in the
simulated Zenduty as a person would change them there; the scheduled refresh
(``integrations.priority_refresh.refresh``) reads them; the pages compare with what it read.
"""
from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from connections import http
from connections.models import ApiBudget
from integrations import priority_refresh, team_priorities
from integrations.models import OutgoingIntegration, TeamPriorities
from tests.integrations.test_admin import post_change

pytestmark = pytest.mark.django_db(transaction=True)

MEDIUM = "Medium – Service Down for One User"
HIGH = "High – Service Degraded for Several Users"
LOW = "Low – Service Degraded for One User"


class Demo:
    """The demo seeded and provisioned; the Operations team's priorities at hand in the simulator."""

    def __init__(self):
        from sandbox import demo

        demo.seed(check_connections=False)
        self.settle()
        self.integration = OutgoingIntegration.objects.get()
        assert self.integration.provisioning_status == "provisioned", self.integration.provisioning_error
        # The seed records what it read; these tests start where nothing was read yet (an integration
        # made before the portal kept the teams' priorities, or before the first refresh).
        TeamPriorities.objects.all().delete()

    @staticmethod
    def settle(rounds: int = 10) -> None:
        from sandbox import deliveries

        for _ in range(rounds):
            if not deliveries.flush():
                return

    @staticmethod
    def priority(name):
        from sandbox.zenduty.models import Priority

        return Priority.objects.get(team__name="Operations", name=name)

    def change_priorities_in_zenduty(self):
        """P5 deleted, P6 added, P2 renamed "Sev-2" (as a Zenduty admin would on the team's page)."""
        from sandbox.zenduty.models import Priority

        p5 = self.priority("P5")
        gone = str(p5.unique_id)
        p5.delete()
        p2 = self.priority("P2")
        p2.name = "Sev-2"
        p2.save()
        p6 = Priority.objects.create(team=p2.team, name="P6", description="Cosmetic", color="blue")
        return gone, p6

    def trigger(self, priority, title="Checkout error rate high"):
        from sandbox.zenduty import operations

        return operations.create_incident(service=self.website(), title=title, summary="5xx above 5%",
                                          team_priority=priority)

    @staticmethod
    def website():
        from sandbox.zenduty.models import Service

        return Service.objects.get(name="Website")

    @staticmethod
    def request_for(incident):
        from sandbox.xurrent.models import Request

        return Request.objects.get(sourceID=incident.unique_id)


@pytest.fixture
def demo(sandbox):
    return Demo()


@pytest.fixture
def viewer(client, django_user_model):
    """A staff user who may only look at integrations (an auditor)."""
    user = django_user_model.objects.create_user("look-only", password="auditor-pass-123", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_outgoingintegration"))
    client.force_login(user)
    return client


@pytest.fixture
def no_calls(monkeypatch):
    """Any outbound call fails the test (the single outbound seam)."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a page view called out: {args[1:3]}")

    monkeypatch.setattr(http, "send", refuse)


def change_url(integration):
    return reverse("admin:integrations_outgoingintegration_change", args=[integration.pk])


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def mapping_rows(html: str) -> list[tuple[str, str]]:
    """(priority, impact) of each row of the read-only mapping table."""
    table = re.search(r'<table class="mapping-table">(.*?)</table>', html, re.S)
    assert table, "no mapping table on the page"
    rows = re.findall(r"<tr class=\"mapping-\w+\">\s*<td>(.*?)</td>\s*<td>(.*?)</td>", table.group(1), re.S)
    return [(text_of(a).strip(), text_of(b).strip()) for a, b in rows]


# -- #12: the read-only page shows the mapping as a table ----------------------------------------------
def test_a_view_only_user_sees_the_mapping_as_a_table_of_names_and_impacts(demo, viewer):
    priority_refresh.refresh()
    html = viewer.get(change_url(demo.integration)).content.decode()

    assert mapping_rows(html) == [("P1", "Top – Service Down for Several Users"), ("P2", HIGH), ("P3", MEDIUM),
                                  ("P4", LOW), ("P5", LOW)]
    for priority_id in demo.integration.priority_mapping:  # no UUIDs, no JSON
        assert priority_id not in html
    assert '"impact"' not in html and "&quot;impact&quot;" not in html
    assert "mapping-drift" not in html
    # The other stored values by name too: the instance, and the categories rather than a JSON list.
    page = text_of(html)
    assert f"Website (Production) (ID {demo.integration.service_instance_id})" in page
    assert "Incident – Request for Incident Resolution" in page and "[&quot;incident&quot;]" not in html
    listing = viewer.get(reverse("admin:integrations_outgoingintegration_changelist")).content.decode()
    assert "Mapping out of date" not in listing


def test_before_the_first_read_the_mapping_is_shown_as_saved(demo, viewer, no_calls):
    html = viewer.get(change_url(demo.integration)).content.decode()
    assert [name for name, _ in mapping_rows(html)] == ["P1", "P2", "P3", "P4", "P5"]
    assert "have not been read from Zenduty yet" in html


# -- #11: mappings that drift ---------------------------------------------------------------------------
def test_the_page_flags_a_mapping_the_teams_priorities_drifted_from_without_calling_zenduty(
        demo, viewer, monkeypatch):
    assert priority_refresh.refresh().read == 1
    gone_id, p6 = demo.change_priorities_in_zenduty()

    # Until the refresh has read them again the page shows what was read before: no live call.
    html = viewer.get(change_url(demo.integration)).content.decode()
    assert "P6" not in html and "mapping-drift" not in html

    assert priority_refresh.refresh().as_dict() == {"read": 1, "failed": 0, "left": 0, "stopped": []}
    monkeypatch.setattr(http, "send", lambda *a, **k: pytest.fail(f"a page view called out: {a[1:3]}"))
    html = viewer.get(change_url(demo.integration)).content.decode()
    page = text_of(html)
    # A priority the team now has and the mapping lacks: what applies meanwhile.
    assert ("P6 is a priority of the Operations team in Zenduty that the mapping lacks: incidents with it get the "
            f"Default Impact, {MEDIUM}, until the mapping gives it one.") in page
    # A priority the mapping names and the team no longer has.
    assert f"The mapping names P5 ({LOW}), which the Operations team no longer has in Zenduty" in page
    assert "A request whose impact maps back to it would ask Zenduty for a priority it no longer has." in page
    assert "An integration admin brings the mapping up to date" in page
    # The renamed priority keeps its impact (the mapping is keyed by id) and shows its new name only.
    assert mapping_rows(html) == [("P1", "Top – Service Down for Several Users"), ("Sev-2", HIGH), ("P3", MEDIUM),
                                  ("P4", LOW), ("P6 (new in Zenduty)", f"{MEDIUM} (the Default Impact: not in the "
                                                                      f"mapping)"),
                                  ("P5 (no longer in Zenduty)", LOW)]
    assert "Sev-2" not in " ".join(re.findall(r'<li class="warning">(.*?)</li>', html))  # no flag for a rename

    listing = viewer.get(reverse("admin:integrations_outgoingintegration_changelist")).content.decode()
    assert "⚠ Mapping out of date (1 unmapped, 1 gone)" in listing


def test_the_sync_gives_a_priority_missing_from_the_mapping_the_default_impact(demo):
    priority_refresh.refresh()
    _, p6 = demo.change_priorities_in_zenduty()

    new = demo.trigger(p6, title="Typo on the pricing page")
    renamed = demo.trigger(demo.priority("Sev-2"), title="Checkout slow")
    demo.settle()

    assert demo.request_for(new).impact == "medium"  # not in the mapping: the default impact
    assert demo.request_for(renamed).impact == "high"  # renamed P2: still its impact


def test_the_form_reads_the_priorities_live_refreshes_the_snapshot_and_saving_clears_the_flags(demo, admin_client):
    _, p6 = demo.change_priorities_in_zenduty()
    assert not TeamPriorities.objects.exists()

    html = admin_client.get(change_url(demo.integration)).content.decode()

    snapshot = TeamPriorities.objects.get()
    assert [p["name"] for p in snapshot.priorities] == ["P1", "Sev-2", "P3", "P4", "P6"]
    assert snapshot.read_at is not None
    # The form's table has the new priority, marked; the check under it says what applies meanwhile.
    assert f'<label for="id_priority_mapping__{p6.unique_id}">P6</label> <span class="mapping-new' in html
    assert "P6 is a priority of the Operations team in Zenduty that the mapping lacks" in text_of(html)
    assert "Choose an impact for every priority above and save" in html

    integration = demo.integration
    data = {"zenduty_account": integration.zenduty_account_id, "zenduty_team_id": integration.zenduty_team_id,
            "zenduty_service_id": integration.zenduty_service_id, "tenant": integration.tenant_id,
            "service_instance_id": integration.service_instance_id, "direction": integration.direction,
            "sync_notes": "on", "default_impact": "medium", "use_custom_mapping": "on", "enabled": "on",
            **{f"priority_mapping__{p['id']}": impact
               for p, impact in zip(snapshot.priorities, ["top", "high", "medium", "low", "low"])}}
    response = post_change(admin_client, change_url(integration), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    integration.refresh_from_db()
    assert integration.priority_mapping[str(p6.unique_id)]["impact"] == "low"
    html = admin_client.get(change_url(integration)).content.decode()
    assert "mapping-drift" not in html and "mapping-new" not in html


def test_the_refresh_keeps_to_the_accounts_budget_least_recently_read_first(demo, settings):
    from sandbox.zenduty.models import Service

    platform = Service.objects.get(name="Internal Tools")
    OutgoingIntegration.objects.create(
        zenduty_account=demo.integration.zenduty_account, zenduty_team_id=str(platform.team.unique_id),
        zenduty_team_name="Platform", zenduty_service_id=str(platform.unique_id), zenduty_service_name="Internal Tools",
        tenant=demo.integration.tenant, service_instance_id="999", service_instance_name="Elsewhere")
    settings.ZENDUTY_PRIORITY_READS_PER_MINUTE = 1
    calls = []
    http.call_observers.append(calls.append)
    try:
        first = priority_refresh.refresh()
        assert (first.read, first.left) == (1, 1) and "rate limits" in first.stopped[0]
        assert len([c for c in calls if "/priority/" in c.url]) == 1
        assert ApiBudget.objects.filter(key__endswith=":priority-reads").count() == 1

        ApiBudget.objects.all().delete()  # a minute later
        assert priority_refresh.refresh().read == 1
    finally:
        http.call_observers.remove(calls.append)
    # Each team read once: the second run took the one the first left.
    assert {s.team_id for s in TeamPriorities.objects.all()} == {demo.integration.zenduty_team_id,
                                                                 str(platform.team.unique_id)}
    assert len([c for c in calls if "/priority/" in c.url]) == 2


def test_a_failed_refresh_keeps_what_was_read_and_says_so(demo, viewer):
    priority_refresh.refresh()
    account = demo.integration.zenduty_account
    account.api_token = "no-longer-valid"
    account.save()

    report = priority_refresh.refresh()

    assert (report.read, report.failed) == (0, 1)
    html = viewer.get(change_url(demo.integration)).content.decode()
    assert [name for name, _ in mapping_rows(html)] == ["P1", "P2", "P3", "P4", "P5"]
    assert "The last refresh failed: Could not read the team&#x27;s priorities in Zenduty." in html


@pytest.mark.django_db(transaction=False)  # as migrated (transactional tests flush the schedules)
def test_the_refresh_is_scheduled_and_follows_the_setting(settings):
    from django.utils.module_loading import import_string
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name=team_priorities.SCHEDULE_NAME)
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 15, -1)
    assert import_string(schedule.func)() == {"read": 0, "failed": 0, "left": 0, "stopped": []}
    settings.ZENDUTY_PRIORITY_REFRESH_MINUTES = 30
    team_priorities.align_schedule()
    assert Schedule.objects.get(pk=schedule.pk).minutes == 30


# -- the comparison alone --------------------------------------------------------------------------------
def saved_mapping(*names_and_impacts):
    return {f"id-{name}": {"name": name, "impact": impact, "rank": rank}
            for rank, (name, impact) in enumerate(names_and_impacts)}


def snapshot(*names, error=""):
    from django.utils import timezone

    return TeamPriorities(priorities=[{"id": f"id-{n}", "name": n} for n in names], read_at=timezone.now(),
                          error=error)


def test_without_a_custom_mapping_nothing_drifts():
    from integrations import drift

    integration = OutgoingIntegration(use_custom_mapping=False, default_impact="low",
                                      priority_mapping=saved_mapping(("P1", "top")))
    check = drift.check(integration, snapshot("P2"))
    assert not check.drifted and check.rows == [] and check.flags() == []


def test_a_one_way_integration_from_zenduty_is_not_warned_about_the_reverse_rule():
    from integrations import drift

    integration = OutgoingIntegration(use_custom_mapping=True, default_impact="low", direction="zenduty_to_xurrent",
                                      zenduty_team_name="Ops",
                                      priority_mapping=saved_mapping(("P1", "top"), ("P2", "high")))
    check = drift.check(integration, snapshot("P1"))
    assert [(r.name, r.state) for r in check.rows] == [("P1", "mapped"), ("P2", "gone")]
    assert check.drift_summary() == "1 gone"
    [flag] = check.flags()
    assert "which the Ops team no longer has" in flag and "would ask Zenduty" not in flag
