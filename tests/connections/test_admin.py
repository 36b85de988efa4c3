"""The connection admin forms, checked live against the sandbox over HTTP."""
import pytest

from connections.models import ConnectionStatus, XurrentAccessToken, XurrentTenant, ZendutyAccount
from syncengine.models import OutboundCall

pytestmark = pytest.mark.django_db(transaction=True)

ADD_TENANT = "/admin/connections/xurrenttenant/add/"
ADD_ZENDUTY = "/admin/connections/zendutyaccount/add/"


@pytest.fixture
def demo(sandbox):
    from sandbox.xurrent import demo as xurrent_demo
    from sandbox.zenduty import demo as zenduty_demo

    xurrent_demo.seed()
    zenduty_demo.seed()
    return sandbox


def tenant_form(**overrides):
    data = {"name": "Widget Data Center", "account_id": "wdc", "client_id": "demo-client-id",
            "client_secret": "demo-client-secret", "region": "global", "environment": "production"}
    data.update(overrides)
    return data


def test_it_saves_a_working_tenant_as_active(admin_client, demo):
    response = admin_client.post(ADD_TENANT, tenant_form())
    assert response.status_code == 302, response.content.decode()[:2000]
    tenant = XurrentTenant.objects.get()
    assert tenant.status == ConnectionStatus.ACTIVE
    assert tenant.client_secret == "demo-client-secret"
    assert tenant.last_checked_at is not None


def test_saving_a_tenant_says_which_person_the_portal_acts_as(admin_client, demo):
    from sandbox.xurrent.models import OAuthApplication

    admin_client.post(ADD_TENANT, tenant_form())

    tenant = XurrentTenant.objects.get()
    person = OAuthApplication.objects.get(client_id="demo-client-id").person  # GET /me answers with it
    assert (tenant.portal_person_id, tenant.portal_person_name) == (str(person.pk), "Portal Integration")
    page = admin_client.get(f"/admin/connections/xurrenttenant/{tenant.pk}/change/").content.decode()
    assert "The portal acts as" in page and "Portal Integration" in page
    # The test action reads it again (here: after it was forgotten).
    XurrentTenant.objects.filter(pk=tenant.pk).update(portal_person_id="", portal_person_name="")
    run_test_action(admin_client, "xurrenttenant", tenant)
    assert XurrentTenant.objects.get().portal_person_name == "Portal Integration"


def test_a_wrong_secret_is_refused_with_a_field_error_and_nothing_stored(admin_client, demo):
    response = admin_client.post(ADD_TENANT, tenant_form(client_secret="not-the-right-secret"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    message = " ".join(errors["client_secret"])
    assert "did not accept this client ID and secret" in message
    assert "Xurrent said: invalid_client" in message  # what the OAuth service answered, said once
    assert message.count("did not accept") == 1
    assert XurrentTenant.objects.count() == 0
    assert b"not-the-right-secret" not in response.content
    # The token call's record says the credentials were refused, not the data sent.
    [call] = OutboundCall.objects.filter(url__endswith="/token")
    assert (call.status, call.error_kind) == (400, "authentication"), call.error


def test_a_wrong_account_id_is_blamed_on_the_account_id(admin_client, demo):
    response = admin_client.post(ADD_TENANT, tenant_form(account_id="no-such-account"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "account_id" in errors
    assert "no-such-account" in " ".join(errors["account_id"])
    assert XurrentTenant.objects.count() == 0


@pytest.mark.parametrize("region, environment, instance", [
    ("au", "production", "Australia Production"),
    ("global", "qa", "Global QA"),
    ("global", "demo", "Global Demo"),
])
def test_a_wrong_region_or_environment_is_refused_as_xurrent_refuses_it(admin_client, demo, region, environment,
                                                                         instance):
    # The demo account lives in Global Production. Each instance is a host of its own in the
    # sandbox, as in Xurrent, and its OAuth service does not know another instance's application.
    response = admin_client.post(ADD_TENANT, tenant_form(region=region, environment=environment))
    assert response.status_code == 200
    message = " ".join(response.context["adminform"].form.errors["client_secret"])
    assert f"Xurrent ({instance}) did not accept this client ID and secret" in message
    assert "region and environment are those of the account" in message
    assert "Xurrent said: invalid_client" in message
    assert XurrentTenant.objects.count() == 0
    assert b"demo-client-secret" not in response.content


def test_an_account_in_another_region_works_with_that_region_only(admin_client, demo):
    from sandbox.xurrent import demo as xurrent_demo

    xurrent_demo.make_account("acme", "acme-client-id", "acme-client-secret", instance="au.xurrent.com")
    acme = tenant_form(name="Acme", account_id="acme", client_id="acme-client-id", client_secret="acme-client-secret")
    refused = admin_client.post(ADD_TENANT, acme)  # region Global, as the form suggests
    assert "Xurrent (Global Production) did not accept" in " ".join(
        refused.context["adminform"].form.errors["client_secret"])
    assert admin_client.post(ADD_TENANT, {**acme, "region": "au"}).status_code == 302
    assert XurrentTenant.objects.get().status == ConnectionStatus.ACTIVE


def test_a_tenant_moved_to_the_wrong_region_is_refused_and_kept(admin_client, demo):
    assert admin_client.post(ADD_TENANT, tenant_form()).status_code == 302
    tenant = XurrentTenant.objects.get()
    response = admin_client.post(f"/admin/connections/xurrenttenant/{tenant.pk}/change/",
                                 tenant_form(client_secret="", region="uk"))
    assert "Xurrent (United Kingdom Production) did not accept" in " ".join(
        response.context["adminform"].form.errors["client_secret"])
    assert XurrentTenant.objects.get().region == "global"


def test_an_unreachable_host_is_explained(admin_client, demo, settings):
    settings.SANDBOX_API_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    response = admin_client.post(ADD_TENANT, tenant_form())
    errors = response.context["adminform"].form.errors
    assert "Cannot reach Xurrent" in " ".join(errors["region"])
    assert XurrentTenant.objects.count() == 0


def test_an_application_without_access_to_the_account_is_explained(admin_client, demo):
    # The simulator has no scopes; its 403 on /account comes from an application of
    # another account, which is what Xurrent answers when access is not granted.
    from sandbox.xurrent import demo as xurrent_demo

    xurrent_demo.make_account("other", "other-client-id", "other-client-secret")
    response = admin_client.post(ADD_TENANT, tenant_form(client_id="other-client-id",
                                                         client_secret="other-client-secret"))
    assert response.status_code == 200
    message = " ".join(response.context["adminform"].form.errors["account_id"])
    assert "refused to show account 'wdc'" in message
    assert "lacks the scope 'Account – Read'" in message
    assert "Xurrent said: Forbidden" in message
    assert XurrentTenant.objects.count() == 0


def test_account_id_format_is_validated_before_any_call(admin_client, demo):
    response = admin_client.post(ADD_TENANT, tenant_form(account_id="WDC Corp"))
    assert "lowercase letters, digits and dashes" in " ".join(response.context["adminform"].form.errors["account_id"])


def test_demo_environment_only_exists_in_the_global_region(admin_client, demo):
    response = admin_client.post(ADD_TENANT, tenant_form(region="au", environment="demo"))
    assert "only in the Global region" in " ".join(response.context["adminform"].form.errors["environment"])


def test_a_duplicate_tenant_is_refused(admin_client, demo):
    assert admin_client.post(ADD_TENANT, tenant_form()).status_code == 302
    response = admin_client.post(ADD_TENANT, tenant_form(name="Again"))
    assert "already connected" in " ".join(response.context["adminform"].form.errors["account_id"])


def test_the_secret_is_write_only_and_blank_keeps_it(admin_client, demo):
    admin_client.post(ADD_TENANT, tenant_form())
    tenant = XurrentTenant.objects.get()
    url = f"/admin/connections/xurrenttenant/{tenant.pk}/change/"
    page = admin_client.get(url)
    assert page.status_code == 200
    assert b"demo-client-secret" not in page.content
    response = admin_client.post(url, tenant_form(name="Renamed", client_secret=""))
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.name == "Renamed" and tenant.client_secret == "demo-client-secret"


def test_the_test_action_records_a_failure(admin_client, demo):
    admin_client.post(ADD_TENANT, tenant_form())
    tenant = XurrentTenant.objects.get()
    XurrentTenant.objects.filter(pk=tenant.pk).update(client_id="revoked-client")
    response = admin_client.post("/admin/connections/xurrenttenant/",
                                 {"action": "test_connections", "_selected_action": [tenant.pk]}, follow=True)
    assert response.status_code == 200
    tenant.refresh_from_db()
    assert tenant.status == ConnectionStatus.FAILED
    assert "did not accept" in tenant.last_error


@pytest.mark.parametrize("model", ["xurrenttenant", "zendutyaccount"])
def test_a_view_only_user_neither_sees_nor_runs_the_test_action(client, admin_client, demo, model):
    from django.contrib.auth.models import Permission, User

    from connections.http import call_observers

    admin_client.post(ADD_TENANT, tenant_form())
    admin_client.post(ADD_ZENDUTY, {"name": "Zenduty", "api_token": "demo-zenduty-token",
                                    "base_url": "https://www.zenduty.com"})
    connection = (XurrentTenant if model == "xurrenttenant" else ZendutyAccount).objects.get()
    checked_at = connection.last_checked_at
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename=f"view_{model}"))
    client.force_login(viewer)

    listing = client.get(f"/admin/connections/{model}/").content.decode()
    assert "test_connections" not in listing

    calls = []
    call_observers.append(calls.append)
    try:
        response = run_test_action(client, model, connection)
    finally:
        call_observers.remove(calls.append)
    assert response.status_code == 200
    assert calls == []
    connection.refresh_from_db()
    assert connection.last_checked_at == checked_at


def run_test_action(admin_client, model, obj):
    return admin_client.post(f"/admin/connections/{model}/", {"action": "test_connections",
                                                              "_selected_action": [obj.pk]}, follow=True)


def test_a_disabled_oauth_application_is_blamed_on_the_credentials_not_the_account(admin_client, demo):
    # The shared token is cached, then the application is disabled in Xurrent: the
    # account read answers 401 and the fresh token request is refused (invalid_client).
    from sandbox.xurrent.models import OAuthApplication

    admin_client.post(ADD_TENANT, tenant_form())
    tenant = XurrentTenant.objects.get()
    run_test_action(admin_client, "xurrenttenant", tenant)
    assert XurrentAccessToken.objects.filter(tenant=tenant).exists()
    OAuthApplication.objects.filter(client_id="demo-client-id").update(disabled=True)

    run_test_action(admin_client, "xurrenttenant", tenant)
    tenant.refresh_from_db()
    assert tenant.status == ConnectionStatus.FAILED
    assert "did not accept this client ID and secret" in tenant.last_error
    assert "still enabled" in tenant.last_error
    assert "Xurrent said: invalid_client" in tenant.last_error
    assert "refused access to account" not in tenant.last_error
    assert "demo-client-secret" not in tenant.last_error


def test_zenduty_account_good_and_bad_token(admin_client, demo):
    bad = admin_client.post(ADD_ZENDUTY, {"name": "ZD", "api_token": "wrong-token-value",
                                          "base_url": "https://www.zenduty.com"})
    assert "did not accept this API token" in " ".join(bad.context["adminform"].form.errors["api_token"])
    assert b"wrong-token-value" not in bad.content
    assert ZendutyAccount.objects.count() == 0
    good = admin_client.post(ADD_ZENDUTY, {"name": "ZD", "api_token": "demo-zenduty-token",
                                           "base_url": "https://www.zenduty.com"})
    assert good.status_code == 302
    assert ZendutyAccount.objects.get().status == ConnectionStatus.ACTIVE


def zenduty_form(**overrides):
    return {"name": "ZD", "api_token": "demo-zenduty-token", "base_url": "https://www.zenduty.com", **overrides}


def demo_zenduty_account_id() -> str:
    from sandbox.zenduty.demo import DEMO_ACCOUNT_NAME
    from sandbox.zenduty.models import Account

    return str(Account.objects.get(name=DEMO_ACCOUNT_NAME).unique_id)


def test_a_zenduty_account_already_connected_is_refused_whatever_its_token(admin_client, demo):
    from sandbox.zenduty.demo import add_api_key, make_account
    from sandbox.zenduty.models import ApiKey

    assert admin_client.post(ADD_ZENDUTY, zenduty_form()).status_code == 302
    first = ZendutyAccount.objects.get()
    assert first.account_unique_id == demo_zenduty_account_id()  # as Zenduty names it (its teams' account)

    key = ApiKey.objects.first()
    add_api_key(key.account, key.user, "second-key-of-the-demo-account")
    for token in ("demo-zenduty-token", "second-key-of-the-demo-account"):
        response = admin_client.post(ADD_ZENDUTY, zenduty_form(name="Again", api_token=token))
        assert response.status_code == 200
        message = " ".join(response.context["adminform"].form.non_field_errors())
        assert "already connected as “ZD”" in message
        assert token not in response.content.decode()
    assert list(ZendutyAccount.objects.values_list("name", flat=True)) == ["ZD"]

    make_account("token-of-another-account")  # another Zenduty account: connected beside the first
    assert admin_client.post(ADD_ZENDUTY, zenduty_form(name="Other", api_token="token-of-another-account")
                             ).status_code == 302
    # Editing the connection keeps its own account: not refused as a duplicate of itself.
    assert admin_client.post(f"/admin/connections/zendutyaccount/{first.pk}/change/",
                             zenduty_form(name="Renamed", api_token="")).status_code == 302


def test_two_submits_of_one_zenduty_account_at_once_store_one(admin_client, client, demo, monkeypatch):
    from django.contrib.auth.models import User

    from connections.admin import ZendutyAccountAdmin

    client.force_login(User.objects.get(username="admin"))
    real_save = ZendutyAccountAdmin.save_model
    seconds = []

    def save_model(self, request, obj, form, change):
        if obj.name == "First" and not seconds:  # the other submit, checked as this one was, is stored first
            seconds.append(None)
            seconds[0] = client.post(ADD_ZENDUTY, zenduty_form(name="Second"))
        return real_save(self, request, obj, form, change)

    monkeypatch.setattr(ZendutyAccountAdmin, "save_model", save_model)
    response = admin_client.post(ADD_ZENDUTY, zenduty_form(name="First"))
    assert seconds[0].status_code == 302
    assert list(ZendutyAccount.objects.values_list("name", flat=True)) == ["Second"]
    assert response.status_code == 200
    assert "already connected as “Second”" in " ".join(response.context["adminform"].form.non_field_errors())


def test_a_connection_stored_before_the_account_was_recorded_gets_it_at_its_next_check(admin_client, demo):
    legacy = ZendutyAccount.objects.create(name="Legacy", api_token="demo-zenduty-token",
                                           base_url="https://www.zenduty.com")
    assert legacy.account_unique_id is None  # as the migration leaves existing rows
    assert run_test_action(admin_client, "zendutyaccount", legacy).status_code == 200
    legacy.refresh_from_db()
    assert legacy.account_unique_id == demo_zenduty_account_id() and legacy.status == ConnectionStatus.ACTIVE
    response = admin_client.post(ADD_ZENDUTY, zenduty_form())
    assert "already connected as “Legacy”" in " ".join(response.context["adminform"].form.non_field_errors())
    assert ZendutyAccount.objects.count() == 1


def test_an_unreachable_zenduty_is_a_base_url_error(admin_client, demo, settings):
    settings.SANDBOX_API_URL = "http://127.0.0.1:9"  # discard port: nothing listens
    response = admin_client.post(ADD_ZENDUTY, {"name": "ZD", "api_token": "demo-zenduty-token",
                                               "base_url": "https://www.zenduty.com"})
    message = " ".join(response.context["adminform"].form.errors["base_url"])
    assert "Cannot reach Zenduty" in message and "127.0.0.1:9" in message
    assert ZendutyAccount.objects.count() == 0


def test_a_zenduty_base_url_other_than_the_simulated_one_is_unreachable_in_the_demo(admin_client, demo, settings):
    # The simulator stands in for https://www.zenduty.com only; another address (here one an operator
    # allowed) keeps its host, and nothing answers there in the demo, as nothing would.
    settings.ZENDUTY_ALLOWED_BASE_URLS = ["https://zenduty.example.invalid"]
    response = admin_client.post(ADD_ZENDUTY, {"name": "ZD", "api_token": "demo-zenduty-token",
                                               "base_url": "https://zenduty.example.invalid"})
    assert response.status_code == 200
    message = " ".join(response.context["adminform"].form.errors["base_url"])
    assert "Cannot reach Zenduty" in message and "zenduty.example.invalid" in message
    assert ZendutyAccount.objects.count() == 0
    # The simulated one works.
    assert admin_client.post(ADD_ZENDUTY, {"name": "ZD", "api_token": "demo-zenduty-token",
                                           "base_url": "https://www.zenduty.com"}).status_code == 302


def test_a_base_url_that_serves_something_else_is_a_base_url_error(admin_client, demo, settings):
    # Over real HTTP: the portal itself answers, with its HTML 404 page.
    settings.SANDBOX_API_URL = f"{demo.url}/not-zenduty"
    response = admin_client.post(ADD_ZENDUTY, {"name": "ZD", "api_token": "demo-zenduty-token",
                                               "base_url": "https://www.zenduty.com"})
    message = " ".join(response.context["adminform"].form.errors["base_url"])
    assert "does not serve the Zenduty API (HTTP 404" in message
    assert ZendutyAccount.objects.count() == 0


@pytest.mark.parametrize("url", [
    "/admin/", "/admin/connections/xurrenttenant/", ADD_TENANT,
    "/admin/connections/zendutyaccount/", ADD_ZENDUTY,
])
def test_admin_pages_render(admin_client, url):
    assert admin_client.get(url).status_code == 200


def test_the_live_check_runs_outside_any_transaction(admin_client, demo, monkeypatch):
    # Inside Django's default atomic admin view the check would hold SQLite's write
    # lock (IMMEDIATE mode) while Xurrent answers: "database is locked" in `make run`.
    from django.db import connection

    from connections import http

    seen = []
    real_send = http.send

    def send(*args, **kwargs):
        seen.append(connection.in_atomic_block)
        return real_send(*args, **kwargs)

    monkeypatch.setattr(http, "send", send)
    assert admin_client.post(ADD_TENANT, tenant_form()).status_code == 302
    tenant = XurrentTenant.objects.get()
    change = admin_client.post(f"/admin/connections/xurrenttenant/{tenant.pk}/change/",
                               tenant_form(client_secret=""))
    assert change.status_code == 302
    assert admin_client.post(ADD_ZENDUTY, {"name": "Zenduty", "api_token": "demo-zenduty-token",
                                           "base_url": "https://www.zenduty.com"}).status_code == 302
    assert seen and not any(seen)


# -- answers the sandbox cannot give: at the seam (connections.http.send) --------------------------

@pytest.fixture
def answers(monkeypatch, settings):
    """Stub the one seam with real hosts; each call takes the next prepared answer."""
    import requests
    from requests.structures import CaseInsensitiveDict

    from connections import http

    settings.SANDBOX_API_URL = ""
    queue, sent = [], []

    def add(status, body=b"", headers=None):
        response = requests.Response()
        response.status_code, response._content = status, body
        response.headers = CaseInsensitiveDict(headers or {})
        response.encoding = "utf-8"
        queue.append(response)

    def send(session, method, url, **kwargs):
        sent.append((method, url))
        if not queue:
            raise AssertionError(f"unexpected call {method} {url}")
        answer = queue.pop(0)
        answer.url = url
        return answer

    monkeypatch.setattr(http, "send", send)
    add.sent = sent
    return add


def zenduty_errors(admin_client, base_url="https://www.zenduty.com"):
    response = admin_client.post(ADD_ZENDUTY, {"name": "ZD", "api_token": "zd-token-value", "base_url": base_url})
    assert response.status_code == 200 and ZendutyAccount.objects.count() == 0
    assert b"zd-token-value" not in response.content
    return response.context["adminform"].form.errors


def test_a_redirecting_zenduty_base_url_is_a_base_url_error(admin_client, answers):
    # The bare domain redirects to www.
    answers(301, headers={"Location": "https://www.zenduty.com/api/account/teams/?from=<script>"})
    errors = zenduty_errors(admin_client, base_url="https://zenduty.com")
    assert answers.sent == [("GET", "https://zenduty.com/api/account/teams/")]  # not followed
    message = " ".join(errors["base_url"])
    assert "redirects (HTTP 301) to https://www.zenduty.com instead" in message
    assert "script" not in message  # the target's origin only, not the remote server's text
    assert "__all__" not in errors


def test_a_web_page_instead_of_zenduty_api_is_a_base_url_error(admin_client, answers):
    answers(200, b"<!doctype html><html><body>Welcome</body></html>", {"Content-Type": "text/html; charset=utf-8"})
    errors = zenduty_errors(admin_client, base_url="https://status.zenduty.com")
    message = " ".join(errors["base_url"])
    assert "does not serve Zenduty's API" in message and "text/html page, not JSON" in message
    assert "__all__" not in errors


def test_a_zenduty_token_without_permission_is_an_api_token_error(admin_client, answers):
    # The simulated Zenduty has no roles; Zenduty's DRF answers 403 with its standard detail.
    answers(403, b'{"detail": "You do not have permission to perform this action."}',
            {"Content-Type": "application/json"})
    errors = zenduty_errors(admin_client)
    message = " ".join(errors["api_token"])
    assert "Zenduty answered 403 (forbidden)" in message
    assert "may not read teams" in message and "Account Owner or Admin" in message
    assert "You do not have permission" not in message  # summarised, not quoted




def test_a_refused_change_keeps_the_stored_tenants_name_in_the_title_and_heading(admin_client, demo):
    assert admin_client.post(ADD_TENANT, tenant_form()).status_code == 302
    tenant = XurrentTenant.objects.get()
    response = admin_client.post(f"/admin/connections/xurrenttenant/{tenant.pk}/change/",
                                 tenant_form(name="Widget Data Center (sandbox)", client_secret="", region="au"))
    page = response.content.decode()
    assert response.status_code == 200 and response.context["adminform"].form.errors  # refused
    stored = str(XurrentTenant.objects.get())
    assert stored == "Widget Data Center (wdc, Global Production)"
    assert response.context["subtitle"] == stored and str(response.context["original"]) == stored
    assert f"<title>Error: {stored} |" in page and f"<h2>{stored}</h2>" in page
    assert "Australia Production" not in page.split('<div id="content-main">')[0]  # breadcrumb, title, heading
    assert 'value="Widget Data Center (sandbox)"' in page  # what was typed is kept in the form
