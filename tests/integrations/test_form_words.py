"""The integration and tenant forms use the words of Zenduty's "Add Outgoing Integration → Xurrent" screen."""
import re

import pytest

from tests.integrations.test_admin import ADD

pytestmark = pytest.mark.django_db(transaction=True)

DIRECTIONS = ("Xurrent → Zenduty: Requests in Xurrent create incidents in Zenduty",
              "Zenduty → Xurrent: Incidents in Zenduty create requests in Xurrent",
              "Bidirectional (Zenduty ↔ Xurrent): Requests and incidents mirror across both platforms")


def labels(html: str) -> list[str]:
    """The text of every <label> of a page, tags and the admin's ':' suffix removed."""
    return [re.sub(r"<[^>]+>", "", text).strip().removesuffix(":").strip()
            for text in re.findall(r"<label[^>]*>(.*?)</label>", html, re.S)]


def test_adding_an_integration_speaks_zenduty_words(admin_client, world):
    step1 = admin_client.get(ADD).content.decode()
    assert "<h1>Add Outgoing Integration: Zenduty service</h1>" in step1
    assert "Tenant" in labels(step1)

    team_id, service_id = world.service("Website")
    step2 = admin_client.get(ADD, {"zenduty_account": world.account.pk, "zenduty_team_id": team_id,
                                   "zenduty_service_id": service_id, "tenant": world.tenant.pk}).content.decode()
    assert "<h1>Add Outgoing Integration</h1>" in step2
    found = labels(step2)
    for label in ("Service Instance", *DIRECTIONS, "Sync Notes", "Default Impact", "Custom Impact Mapping (optional)"):
        assert label in found, (label, found)
    assert "Requires at least 4 priorities in Zenduty" in step2
    assert re.search(r'<input type="submit" value="Save Configuration" class="default" name="_save">', step2)


def test_a_team_with_three_priorities_is_told_the_requirement(admin_client, world):
    team_id, service_id = world.service(world.platform_service)
    step2 = admin_client.get(ADD, {"zenduty_account": world.account.pk, "zenduty_team_id": team_id,
                                   "zenduty_service_id": service_id, "tenant": world.tenant.pk}).content.decode()
    assert "Requires at least 4 priorities in Zenduty: the Platform team has 3 priorities" in step2


def test_the_tenant_form_speaks_xurrent_words(admin_client, db):
    page = admin_client.get("/admin/connections/xurrenttenant/add/").content.decode()
    found = labels(page)
    for label in ("Account ID", "Client ID", "Client Secret", "Region", "Environment"):
        assert label in found, (label, found)


def test_the_zenduty_account_form_spells_url_and_api_as_zenduty_does(admin_client, db):
    found = labels(admin_client.get("/admin/connections/zendutyaccount/add/").content.decode())
    assert "Base URL" in found and "API token" in found, found


def test_no_form_label_lowercases_an_abbreviation(admin_client, db):
    """A form field without a label gets Django's from its name: "Base url", "Api token"."""
    from django.contrib import admin
    from django.urls import reverse

    for model in admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_add")
        response = admin_client.get(url)
        if response.status_code == 200:
            for label in labels(response.content.decode()):
                assert not re.search(r"\b(Url|url|Api|api|Id|Oauth|Jwt|Uuid)\b", label), (url, label)
