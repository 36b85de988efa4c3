"""Screens that fit a 1,280 px laptop: no list scrolls sideways and its named columns stay visible.

Each admin list (connections, integrations, inbound events, outbound calls,
linked pairs) and the sync dashboard is opened in headless Chromium at
1280 × 800, with rows whose texts are as long as real ones get (long names,
reasons, URLs). Chromium as in tests/integrations/test_browser.py: skipped
without it, unless REQUIRE_BROWSER_TESTS=1.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.integrations.test_browser import browser_page  # noqa: F401 - the fixture

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTH = 1280
LONG = ("Xurrent answered 422 Unprocessable Entity: Validation failed: Service instance is not available for "
        "the requested service of the customer account and the impact is not allowed for this category")


@pytest.fixture
def history(db):
    from connections.models import ConnectionStatus, XurrentTenant, ZendutyAccount
    from integrations.models import OutgoingIntegration
    from syncengine.models import InboundEvent, LinkedPair, OutboundCall

    tenant = XurrentTenant.objects.create(
        name="Widget Data Center — Enterprise Operations Europe", account_id="widget-data-center-enterprise-eu",
        client_id="c", client_secret="s", region="uk", environment="production", status=ConnectionStatus.FAILED,
        last_error=LONG, last_checked_at=timezone.now())
    account = ZendutyAccount.objects.create(name="Zenduty (Operations and Platform teams)", api_token="t",
                                            base_url="https://www.zenduty.com", status=ConnectionStatus.ACTIVE,
                                            last_checked_at=timezone.now())
    integration = OutgoingIntegration.objects.create(
        zenduty_account=account, zenduty_team_id="t", zenduty_team_name="Operations and Site Reliability Engineering",
        zenduty_service_id="s", zenduty_service_name="Customer Checkout and Payments Gateway (EU)", tenant=tenant,
        service_instance_id="1", service_instance_name="Customer Checkout and Payments Gateway (Production EU)",
        provisioning_status="action_required")
    now = timezone.now()
    for i, status in enumerate(["processed", "failed", "ignored", "rejected", "retry_scheduled"] * 4):
        event = InboundEvent.objects.create(
            source="xurrent" if i % 2 else "zenduty", integration=integration, tenant=tenant, status=status,
            event_type="request.status-changed" if i % 2 else "incident.acknowledged",
            object_id="4f6e2c3a-9b1d-4c2e-8f7a-1234567890ab" if i % 2 == 0 else "7012345",
            reason=LONG, received_at=now - timedelta(minutes=i), processed_at=now - timedelta(minutes=i))
        OutboundCall.objects.create(
            service="zenduty", method="PATCH", status=429 if i % 3 else 200, status_class="4xx" if i % 3 else "2xx",
            url="https://www.zenduty.com/api/account/teams/4f6e2c3a-9b1d-4c2e-8f7a-1234567890ab/incidents/"
                "7e1c2d3e-4f5a-6b7c-8d9e-0123456789ab/notes/?page=2",
            error_kind="rate_limited" if i % 3 else "", integration=integration, inbound_event=event,
            created_at=now - timedelta(minutes=i), duration_ms=1234)
        LinkedPair.objects.create(
            integration=integration, tenant=tenant, zenduty_account=account, origin="xurrent", state="linked",
            xurrent_request_id=str(7012345 + i), zenduty_incident_unique_id=f"4f6e2c3a-9b1d-4c2e-8f7a-{i:012d}",
            zenduty_incident_number=100000 + i, xurrent_status="waiting_for_customer", zenduty_status=2)
    return integration


# Each page and the columns (header texts) that must stay in view.
PAGES = {
    "admin:connections_xurrenttenant_changelist": ["Name", "Account ID", "Region", "Environment", "Status"],
    "admin:connections_zendutyaccount_changelist": ["Name", "Base URL", "Status"],
    "admin:integrations_outgoingintegration_changelist": ["Status", "Direction", "Zenduty team",
                                                          "Xurrent tenant"],
    "admin:syncengine_inboundevent_changelist": ["Received at", "Status", "Reason", "About", "Integration"],
    "admin:syncengine_outboundcall_changelist": ["At", "Status", "Service", "URL", "Integration", "Event"],
    "admin:syncengine_linkedpair_changelist": ["Pair", "State", "Integration", "Xurrent request",
                                               "Zenduty incident", "Updated"],
    "sync_dashboard": ["Integration", "Last event", "Failure rate", "Backlog", "Zenduty calls (429)"],
}

MEASURE = """(names) => {
  const doc = document.scrollingElement;
  const table = document.querySelector('#result_list, #dashboard-integrations');
  const box = table.parentElement;
  const headers = [...table.querySelectorAll('thead th')].map(th => {
    const r = th.getBoundingClientRect();
    return {text: th.innerText.trim(), left: r.left, right: r.right, width: r.width};
  });
  return {page: [doc.scrollWidth, doc.clientWidth], table: [box.scrollWidth, box.clientWidth],
          headers, missing: names.filter(n => !headers.some(h => h.text.toLowerCase() === n.toLowerCase()))};
}"""


def test_every_list_and_the_dashboard_fit_1280_pixels(browser_page, live_server, admin_user, history):  # noqa: F811
    page = browser_page
    page.set_viewport_size({"width": WIDTH, "height": 800})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    problems = []
    for name, columns in PAGES.items():
        page.goto(live_server.url + reverse(name))
        result = page.evaluate(MEASURE, columns)
        if result["missing"]:
            problems.append(f"{name}: no column {result['missing']}")
        if result["page"][0] > result["page"][1]:
            problems.append(f"{name}: the page scrolls sideways ({result['page'][0]} > {result['page'][1]} px)")
        if result["table"][0] > result["table"][1]:
            problems.append(f"{name}: the table is wider than its box ({result['table'][0]} > {result['table'][1]})")
        for header in result["headers"]:
            if header["text"].lower() in [c.lower() for c in columns] and \
                    (header["right"] > WIDTH or header["left"] < 0 or header["width"] < 20):
                problems.append(f"{name}: column {header['text']!r} is not in view ({header})")
    assert not problems, "\n".join(problems)


def test_an_auditor_reads_the_dashboard_and_a_pairs_timeline_at_1280_pixels(browser_page, live_server, history,
                                                                            django_user_model):  # noqa: F811
    """Issue #12: an auditor, in a browser, answers "what happened to incident #N" from the dashboard and the
    pair's page: both render, fit the screen, and offer nothing that would change anything."""
    from django.contrib.auth.models import Group

    from syncengine.models import InboundEvent, LinkedPair, OutboundCall

    auditor = django_user_model.objects.create_user("eve", password="audit-pass-123", is_staff=True)
    auditor.groups.add(Group.objects.get(name="Auditors"))
    pair = LinkedPair.objects.order_by("pk").first()
    InboundEvent.objects.update(pair=pair)  # its timeline: the long reasons and URLs of the fixture
    OutboundCall.objects.update(pair=pair)
    page = browser_page
    page.set_viewport_size({"width": WIDTH, "height": 800})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "eve")
    page.fill("#id_password", "audit-pass-123")
    page.click("input[type=submit]")

    page.goto(live_server.url + reverse("sync_dashboard"))
    page.wait_for_load_state()
    assert page.locator("svg").count() >= 2  # the charts
    page.goto(live_server.url + reverse("admin:syncengine_linkedpair_changelist") +
              f"?q=%23{pair.zenduty_incident_number}")
    page.click(f"text=request #{pair.xurrent_request_id}")
    page.wait_for_selector("table.pair-timeline")  # the pair's page, with its timeline
    assert page.locator("table.pair-timeline tbody tr").count() >= 20
    sizes = page.evaluate("() => [document.scrollingElement.scrollWidth, document.scrollingElement.clientWidth]")
    assert sizes[0] <= sizes[1], sizes
    assert page.locator("text=Unlink").count() == 0 and page.locator("input[type=submit][name=_save]").count() == 0
