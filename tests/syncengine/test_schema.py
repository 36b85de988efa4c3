"""The webhook endpoints' OpenAPI schema (drf-spectacular) and its viewers, served from the packages."""
from __future__ import annotations

import re

import pytest
from django.urls import reverse
from drf_spectacular.validation import validate_schema

WEBHOOKS = {"/webhooks/xurrent/tenant/{public_id}/": "xurrent_tenant_delivery",
            "/webhooks/xurrent/{public_id}/": "xurrent_integration_delivery",
            "/webhooks/zenduty/{public_id}/": "zenduty_delivery"}


@pytest.mark.django_db
def test_the_schema_lists_the_webhook_endpoints_and_validates(admin_client):
    response = admin_client.get(reverse("schema"), {"format": "json"})

    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)  # OpenAPI 3.0 JSON schema; raises on an invalid document
    assert {path: operations["post"]["operationId"] for path, operations in schema["paths"].items()} == WEBHOOKS
    zenduty = schema["paths"]["/webhooks/zenduty/{public_id}/"]["post"]
    assert {p["name"] for p in zenduty["parameters"]} == {"public_id", "X-SIGNATURE"}
    assert set(zenduty["responses"]) == {"200", "400", "401", "404", "411", "413", "503"}
    assert list(zenduty["requestBody"]["content"]) == ["application/json"]


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["schema", "swagger-ui", "redoc"])
def test_the_schema_and_its_viewers_are_for_staff_only(client, django_user_model, name):
    client.force_login(django_user_model.objects.create_user("viewer", password="x"))  # not staff
    assert client.get(reverse(name)).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["swagger-ui", "redoc"])
def test_a_visitor_not_signed_in_is_sent_to_sign_in_before_a_viewer(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next={reverse(name)}"


@pytest.mark.django_db
def test_a_visitor_not_signed_in_is_told_in_json_to_sign_in_for_the_schema(client):
    response = client.get(reverse("schema"))
    assert response.status_code == 403 and response["Content-Type"] == "application/json"
    assert "sign in" in response.json()["detail"] and reverse("admin:login") in response.json()["detail"]


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["swagger-ui", "redoc"])
def test_the_viewers_load_their_files_from_this_server(admin_client, name):
    page = admin_client.get(reverse(name)).content.decode()

    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(source.startswith("/") and not source.startswith("//") for source in sources), sources
    assert "cdn" not in page.lower()
    for source in sources:
        if source.startswith("/static/"):
            assert admin_client.get(source).status_code == 200, source
