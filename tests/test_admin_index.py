"""The admin's front page and the demo-mode banner."""
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
