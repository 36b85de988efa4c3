"""The admin's front page, the demo-mode banner and the error pages (404, 500, a refused form)."""
import pytest

pytestmark = pytest.mark.django_db


def test_the_index_says_where_to_start(admin_client):
    page = admin_client.get("/admin/").content.decode()
    assert "Getting started" in page
    assert "View site" not in page  # the admin is the site
    for url in ("/admin/connections/xurrenttenant/", "/admin/connections/zendutyaccount/",
                "/admin/integrations/outgoingintegration/add/", "/admin/syncengine/inboundevent/",
                "/admin/syncengine/outboundcall/"):
        assert f'href="{url}"' in page


def test_a_banner_says_when_the_portal_talks_to_the_simulators(admin_client, settings):
    settings.SANDBOX_API_URL = "http://127.0.0.1:8000"
    page = admin_client.get("/admin/connections/xurrenttenant/").content.decode()
    assert "Demo mode" in page and 'href="http://127.0.0.1:8000/sandbox/"' in page

    settings.SANDBOX_API_URL = ""
    assert "Demo mode" not in admin_client.get("/admin/connections/xurrenttenant/").content.decode()


def test_the_favicon_request_is_answered_without_a_404(client):
    assert client.get("/favicon.ico").status_code == 204


@pytest.mark.parametrize("url", ["/admin/no-such-page/", "/admin/syncengine/linkedpair/backfill/999999/",
                                 "/no-such-page"])
def test_an_address_that_does_not_exist_gets_the_admins_styled_page(admin_client, url):
    response = admin_client.get(url)
    page = response.content.decode()
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")
    assert "There is nothing at this address" in page
    assert "Zenduty ⇄ Xurrent integration portal" in page and 'href="/admin/"' in page  # the header, Home
    assert "Log out" in page  # the admin's user links: still signed in


def test_a_visitor_who_is_not_signed_in_gets_the_styled_page_without_user_links(client):
    page = client.get("/no-such-page").content.decode()
    assert "There is nothing at this address" in page and "Log out" not in page


def test_a_webhook_address_that_does_not_exist_is_answered_in_json(client):
    response = client.post("/webhooks/zenduty/not-an-integration-id/", data=b"{}", content_type="application/json")
    assert response.status_code == 404
    assert response.json() == {"status": "unknown", "reason": "No webhook endpoint has this address."}


def test_the_styled_page_says_what_a_portal_page_did_not_find(admin_client):
    page = admin_client.get("/admin/syncengine/linkedpair/backfill/999999/").content.decode()
    assert "There is nothing at this address" in page and "No such enabled integration." in page
    assert "Resolver404" not in admin_client.get("/admin/no-such-page/").content.decode()


def test_an_unexpected_error_gets_the_styled_500_page(admin_client, monkeypatch):
    """Django renders 500.html without the request: the page must stand on its own."""
    from django.contrib import admin
    from syncengine import dashboard

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")
    monkeypatch.setattr(dashboard, "summary", broken)
    admin_client.raise_request_exception = False
    response = admin_client.get("/admin/dashboard/")
    page = response.content.decode()
    assert response.status_code == 500 and response["Content-Type"].startswith("text/html")
    assert "Something went wrong in the portal" in page and "a bug" not in page
    assert admin.site.site_header in page and 'href="/admin/"' in page and "admin/css/base.css" in page


def test_a_form_refused_by_the_csrf_check_gets_the_styled_page(django_user_model):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(django_user_model.objects.create_superuser("ada", password="pw"))
    response = client.post("/admin/connections/xurrenttenant/add/", {"name": "x"})
    page = response.content.decode()
    assert response.status_code == 403
    assert "The form could not be checked, so nothing was changed" in page
    assert "Zenduty ⇄ Xurrent integration portal" in page and "Log out" in page  # the header, still signed in


def test_the_403_page_asks_a_visitor_who_is_not_signed_in_to_sign_in(rf, admin_user):
    from django.contrib.auth.models import AnonymousUser
    from django.core.exceptions import PermissionDenied
    from django.views.defaults import permission_denied

    request = rf.get("/admin/somewhere/")
    request.user = AnonymousUser()
    page = permission_denied(request, PermissionDenied()).content.decode()
    assert "Sign in first" in page and 'href="/admin/login/?next=/admin/somewhere/"' in page
    assert "You may look" not in page and "Your account" not in page

    request.user = admin_user
    assert "You may look, but not do this" in permission_denied(request, PermissionDenied()).content.decode()
