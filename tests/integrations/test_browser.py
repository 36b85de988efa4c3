"""The add flow in a real browser: the search box, the mapping table, the copy buttons.

Needs the ``playwright`` Python package (requirements.txt) and Debian's
Chromium at /usr/bin/chromium (Playwright's own browser download is not used).
Without Chromium the test is skipped, unless REQUIRE_BROWSER_TESTS=1 (set by
.ci/run, which installs Chromium), where a missing browser is a failure.
"""
import os
import shutil

import pytest

from integrations.models import OutgoingIntegration, ProvisioningStatus

CHROMIUM = "/usr/bin/chromium"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser_page(monkeypatch):
    required = os.environ.get("REQUIRE_BROWSER_TESTS") == "1"
    if not os.path.exists(CHROMIUM) and not shutil.which("chromium"):
        message = f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
        if required:
            pytest.fail(message)
        pytest.skip(message)
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the playwright package is not installed (pip install playwright)")
    # Playwright's sync API runs an event loop in this thread; the ORM calls
    # made by the test itself are still synchronous and safe.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        context = browser.new_context()
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        page = context.new_page()
        page.set_default_timeout(15000)
        yield page
        # Playwright's loop counts as "running" here, so Django keeps the test's
        # connections apart from the ones pytest-django closes (asgiref's
        # context-local storage); close them while that context is current.
        from django.db import connections

        connections.close_all()
        browser.close()


def start_adding(page, live_server, world, service: str) -> None:
    """Log in as the admin and do step 1 of the add form: the Zenduty service, then the tenant."""
    page.goto(f"{live_server.url}/admin/login/?next=/admin/integrations/outgoingintegration/add/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "password")
    page.click("input[type=submit]")
    team_id, service_id = world.service(service)
    page.select_option("#id_zenduty_service", f"{world.account.pk}:{team_id}:{service_id}")
    page.select_option("#id_tenant", str(world.tenant.pk))
    page.click("text=Next: service instance and options")


def test_it_adds_an_integration_in_the_browser(browser_page, world, live_server, admin_user, settings):
    settings.PORTAL_BASE_URL = live_server.url
    page = browser_page
    # Step 1: services grouped by team, then the tenant.
    start_adding(page, live_server, world, "Website")

    # Step 2: the search box narrows the instances through the JSON endpoint.
    page.wait_for_selector(".integration-summary")
    page.fill(".service-instance-search", "website (prod")
    page.wait_for_function("document.querySelector('.service-instance-status').textContent.includes('found')")
    options = page.locator("#id_service_instance_id option").all_inner_texts()
    assert "Website (Production)" in options and world.other_instance not in options
    page.select_option("#id_service_instance_id", label="Website (Production)")
    # The choices by the words of Zenduty's screen, as a person reads them.
    page.get_by_label("Bidirectional (Zenduty ↔ Xurrent): Requests and incidents mirror across both platforms").check()
    first_priority = f"#id_priority_mapping__{world.priority_ids('Operations')[0]}"
    assert not page.is_visible(first_priority)  # the table appears once the mapping is wanted
    page.get_by_label("Custom Impact Mapping (optional)").check()
    assert page.is_visible(first_priority)
    for pid, impact in zip(world.priority_ids("Operations"), ["top", "high", "medium", "low", "low"]):
        page.select_option(f"#id_priority_mapping__{pid}", impact)
    page.get_by_role("button", name="Save Configuration").last.click()

    # The change page: status, the manual Zenduty step and its copy buttons.
    page.wait_for_selector("#provisioning")
    integration = OutgoingIntegration.objects.get()
    assert integration.provisioning_status == ProvisioningStatus.ACTION_REQUIRED, integration.provisioning_error
    assert integration.use_custom_mapping and len(integration.priority_mapping) == 5
    assert "a manual step is left" in page.inner_text(".provisioning-badge")
    page.click("[data-copy=zenduty-webhook-url]")
    assert page.evaluate("navigator.clipboard.readText()") == f"{live_server.url}/webhooks/zenduty/" \
                                                              f"{integration.public_id}/"
    page.click("[data-copy=zenduty-signing-key]")
    assert page.evaluate("navigator.clipboard.readText()") == integration.zenduty_signing_secret
    assert page.get_attribute("#zenduty-signing-key", "type") == "password"
    page.click("[data-reveal=zenduty-signing-key]")
    assert page.get_attribute("#zenduty-signing-key", "type") == "text"

    page.click("text=I have done this in Zenduty")
    page.wait_for_selector("text=Noted: Zenduty")
    integration.refresh_from_db()
    assert integration.zenduty_step_confirmed_at is not None

    # Xurrent's verification messages reach the portal; the page then says Provisioned.
    from sandbox import deliveries

    deliveries.flush(service="xurrent")
    # No reload: the panel refreshes itself while Xurrent verifies.
    page.wait_for_function("document.querySelector('.provisioning-badge').textContent.trim() === 'Provisioned'",
                           timeout=15000)
    assert page.locator("#provisioning").inner_text().count("verified") >= 4
    remote = world.remote_webhooks(integration)
    assert len(remote) == 4 and not any(h["disabled"] for h in remote)
    assert world.counts() == {"webhooks": 4, "policies": 1, "zenduty_integrations": 1}

    # Deleting, as a person would, removes what was provisioned on both sides.
    page.click("a.deletelink")
    assert "the tenant's Xurrent webhooks and policy" in page.inner_text("#content")
    page.click("input[type=submit][value*='sure']")
    page.wait_for_selector(".messagelist")
    assert not OutgoingIntegration.objects.exists()
    assert world.counts() == {"webhooks": 0, "policies": 0, "zenduty_integrations": 0}


def test_a_team_with_three_priorities_gets_no_mapping_table_in_the_browser(browser_page, world, live_server,
                                                                           admin_user, settings):
    settings.PORTAL_BASE_URL = live_server.url
    page = browser_page
    start_adding(page, live_server, world, world.platform_service)

    page.wait_for_selector(".integration-summary")
    message = page.inner_text(".priority-mapping-message")
    assert "Requires at least 4 priorities in Zenduty: the Platform team has 3 priorities" in message
    assert page.locator(".priority-mapping select").count() == 0
    page.fill(".service-instance-search", "email")
    page.wait_for_function("document.querySelector('.service-instance-status').textContent.includes('found')")
    page.select_option("#id_service_instance_id", label=world.other_instance)
    page.check("#id_direction_0")  # Xurrent → Zenduty
    # The custom mapping is not offered: its box cannot be ticked, and says why.
    assert page.is_disabled("#id_use_custom_mapping")
    assert "Requires at least 4 priorities in Zenduty" in page.inner_text(".field-use_custom_mapping")
    page.select_option("#id_default_impact", "high")
    page.click("input[name=_save]")
    page.wait_for_selector("#provisioning")
    integration = OutgoingIntegration.objects.get()
    assert (integration.use_custom_mapping, integration.default_impact) == (False, "high")
    assert integration.direction == "xurrent_to_zenduty"
    # Zenduty's outgoing webhook is needed whatever the direction: its manual step is left.
    assert integration.provisioning_status == ProvisioningStatus.ACTION_REQUIRED, integration.provisioning_error
