"""OAuth client credentials: the token request, the shared token cache and refreshes."""
import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from connections import errors, http
from connections.models import XurrentAccessToken, XurrentTenant
from connections.xurrent import XurrentClient
from connections.xurrent.auth import AccessToken, MemoryTokenStore
from tests.connections.fixtures.xurrent.fake_api import FakeApi, response

SECRET = "cs-9f8e7d6c5b4a-very-secret"
ACCOUNT = {"id": "wdc", "name": "Widget Data Center"}


@pytest.fixture
def api(monkeypatch, settings):
    settings.SANDBOX_API_URL = ""
    fake = FakeApi()
    monkeypatch.setattr(http, "send", fake)
    return fake


@pytest.fixture
def tenant(db):
    return XurrentTenant.objects.create(name="WDC", account_id="wdc", client_id="cid-123", client_secret=SECRET,
                                        region="au", environment="production")


def client_for(tenant, **kw):
    return XurrentClient.for_tenant(tenant, sleep=lambda s: None, **kw)


def test_it_requests_a_token_form_encoded_with_client_credentials(api):
    client = XurrentClient("wdc", "cid-123", SECRET, "au", "qa")
    assert client.access_token() == "tok-1"
    (call,) = api.calls
    assert (call.method, call.url) == ("POST", "https://oauth.au.xurrent.qa/token")
    assert call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert call.headers["Accept"] == "application/json"
    assert call.form == {"grant_type": ["client_credentials"], "client_id": ["cid-123"], "client_secret": [SECRET]}
    assert "Authorization" not in call.headers
    assert call.options["allow_redirects"] is False and call.options["timeout"]


@pytest.mark.django_db
def test_it_shares_one_token_between_clients_of_a_tenant(api, tenant):
    api.add(200, ACCOUNT).add(200, ACCOUNT)
    client_for(tenant).get_account()
    client_for(tenant).get_account()
    assert len(api.token_calls) == 1
    assert [c.headers["Authorization"] for c in api.api_calls] == ["Bearer tok-1", "Bearer tok-1"]
    row = XurrentAccessToken.objects.get(tenant=tenant)
    assert row.token == "tok-1"
    assert abs((row.expires_at - timezone.now()) - timedelta(hours=1)) < timedelta(seconds=30)


@pytest.mark.django_db
def test_it_keeps_the_token_encrypted_in_the_database(api, tenant):
    from django.db import connection

    client_for(tenant).access_token()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT token FROM {XurrentAccessToken._meta.db_table}")
        (stored,) = cursor.fetchone()
    assert "tok-1" not in stored and stored.startswith("fernet:")


@pytest.mark.django_db
def test_the_stored_fingerprint_is_keyed_so_a_database_read_cannot_test_guesses(api, tenant):
    import hashlib

    client_for(tenant).access_token()
    row = XurrentAccessToken.objects.get(tenant=tenant)
    token_url = "https://oauth.au.xurrent.com/token"
    unkeyed = hashlib.sha256(f"cid-123\0{SECRET}\0{token_url}".encode()).hexdigest()
    assert row.fingerprint != unkeyed and len(row.fingerprint) == 64
    assert SECRET not in row.fingerprint
    # Still the same for every client with these credentials: one token between them.
    assert client_for(tenant).access_token() == "tok-1"
    assert len(api.token_calls) == 1


@pytest.mark.django_db
def test_a_new_secret_key_only_costs_one_fresh_token(api, tenant, settings):
    client_for(tenant).access_token()
    settings.SECRET_KEY = "another-secret-key-after-rotation"
    assert client_for(tenant).access_token() == "tok-2"
    assert client_for(tenant).access_token() == "tok-2"
    assert len(api.token_calls) == 2


@pytest.mark.django_db
def test_it_reuses_the_token_until_five_minutes_before_expiry(api, tenant):
    client_for(tenant).access_token()
    XurrentAccessToken.objects.update(expires_at=timezone.now() + timedelta(minutes=6))
    assert client_for(tenant).access_token() == "tok-1"
    XurrentAccessToken.objects.update(expires_at=timezone.now() + timedelta(minutes=4))
    assert client_for(tenant).access_token() == "tok-2"
    assert len(api.token_calls) == 2
    assert XurrentAccessToken.objects.get().token == "tok-2"


@pytest.mark.django_db
def test_a_long_lived_client_renews_its_own_copy_too(api, tenant):
    client = client_for(tenant)
    client.access_token()
    client._token = (client._token[0], AccessToken("tok-1", timezone.now() + timedelta(minutes=2)))
    XurrentAccessToken.objects.update(expires_at=timezone.now() + timedelta(minutes=2))
    assert client.access_token() == "tok-2"


@pytest.mark.django_db
def test_it_fetches_a_new_token_once_after_a_401(api, tenant):
    api.add(401, {"message": "Unauthorized"}).add(200, ACCOUNT)
    assert client_for(tenant).get_account() == ACCOUNT
    assert [c.path for c in api.calls] == ["/token", "/v1/account", "/token", "/v1/account"]
    assert [c.headers["Authorization"] for c in api.api_calls] == ["Bearer tok-1", "Bearer tok-2"]
    assert XurrentAccessToken.objects.get().token == "tok-2"


@pytest.mark.django_db
def test_it_gives_up_when_a_fresh_token_is_refused_too(api, tenant):
    api.add(401, {"message": "Unauthorized"}).add(401, {"message": "Unauthorized"})
    with pytest.raises(errors.AuthenticationError) as caught:
        client_for(tenant).get_account()
    assert caught.value.status == 401
    assert len(api.token_calls) == 2 and len(api.api_calls) == 2


@pytest.mark.django_db
def test_a_401_does_not_discard_a_token_another_process_already_replaced(api, tenant):
    client = client_for(tenant)
    client.access_token()  # tok-1 in the DB and in this client
    client_for(tenant).token_store.save(client._token[0], AccessToken("tok-new", timezone.now() + timedelta(hours=1)))
    client.on_auth_failure()
    assert XurrentAccessToken.objects.get().token == "tok-new"
    assert client.access_token() == "tok-new"
    assert len(api.token_calls) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("change", [{"client_secret": "a-brand-new-secret"}, {"client_id": "cid-456"},
                                    {"region": "uk"}, {"environment": "qa"}])
def test_it_never_reuses_a_token_after_the_credentials_or_instance_change(api, tenant, change):
    client_for(tenant).access_token()
    for name, value in change.items():
        setattr(tenant, name, value)
    tenant.save()
    tenant.refresh_from_db()
    assert client_for(tenant).access_token() == "tok-2"
    second = api.token_calls[1]
    assert second.form["client_secret"] == [tenant.client_secret]
    assert XurrentAccessToken.objects.count() == 1


@pytest.mark.django_db
def test_the_sandbox_and_the_real_host_never_share_a_token(api, tenant, settings):
    client_for(tenant).access_token()
    settings.SANDBOX_API_URL = "http://127.0.0.1:8000"
    assert client_for(tenant).access_token() == "tok-2"
    assert api.token_calls[1].url == "http://127.0.0.1:8000/sandbox/xurrent/au.xurrent.com/oauth/token"


def test_an_unsaved_tenant_keeps_its_token_in_memory(api):
    client = XurrentClient("wdc", "cid-123", SECRET)
    assert isinstance(client.token_store, MemoryTokenStore)
    api.add(200, ACCOUNT).add(200, ACCOUNT)
    client.get_account()
    client.get_account()
    assert len(api.token_calls) == 1
    # A second client object does not see the first one's token.
    XurrentClient("wdc", "cid-123", SECRET).access_token()
    assert len(api.token_calls) == 2


@pytest.mark.django_db
def test_an_unsaved_tenant_gets_a_memory_store(api):
    tenant = XurrentTenant(name="New", account_id="wdc", client_id="cid-123", client_secret=SECRET)
    assert client_for(tenant).access_token() == "tok-1"
    assert isinstance(client_for(tenant).token_store, MemoryTokenStore)
    assert XurrentAccessToken.objects.count() == 0


def test_expires_in_defaults_to_one_hour(api):
    api.token_answers.append(response(200, {"access_token": "no-expiry-token", "token_type": "bearer"}))
    client = XurrentClient("wdc", "cid-123", SECRET)
    assert client.access_token() == "no-expiry-token"
    expires_at = client._token[1].expires_at
    assert abs((expires_at - timezone.now()) - timedelta(hours=1)) < timedelta(seconds=30)


@pytest.mark.parametrize("answer", [
    response(400, {"error": "invalid_client", "error_description": "Client authentication failed"}),
    response(401, {"message": "Unauthorized"}),
])
def test_refused_credentials_raise_a_readable_authentication_error(api, answer, caplog):
    caplog.set_level(logging.DEBUG)
    api.token_answers.append(answer)
    client = XurrentClient("wdc", "cid-123", SECRET, "au", "production")
    with pytest.raises(errors.CredentialsRejectedError) as caught:  # an AuthenticationError, marked as the token's
        client.get_account()
    message = str(caught.value)
    assert isinstance(caught.value, errors.AuthenticationError) and caught.value.kind == "authentication"
    assert "did not accept the client ID and secret" in message
    assert "region and environment" in message
    if answer.status_code == 400:
        assert "(invalid_client)" in message
    assert api.api_calls == []  # no API call without a token
    assert SECRET not in message and SECRET not in repr(caught.value) and SECRET not in repr(client)
    assert SECRET not in caplog.text


def test_another_oauth_400_is_a_permanent_error_not_a_credentials_one(api):
    api.token_answers.append(response(400, {"error": "unsupported_grant_type"}))
    with pytest.raises(errors.PermanentError) as caught:
        XurrentClient("wdc", "cid-123", SECRET).access_token()
    assert not isinstance(caught.value, errors.AuthenticationError)
    assert "unsupported_grant_type" in str(caught.value)


def test_a_token_answer_without_a_token_is_an_error(api):
    api.token_answers.append(response(200, {"token_type": "bearer"}))
    with pytest.raises(errors.PermanentError, match="without an access token"):
        XurrentClient("wdc", "cid-123", SECRET).access_token()


@pytest.mark.django_db
def test_the_secret_and_token_never_reach_the_logs(api, tenant, caplog):
    caplog.set_level(logging.DEBUG)
    api.add(401, {"message": "Unauthorized"}).add(200, ACCOUNT).add(500, {"message": "Internal Server Error"})
    client = client_for(tenant, max_retries=0)
    client.get_account()
    with pytest.raises(errors.ServerError) as caught:
        client.get_account()
    assert caplog.records  # the calls were logged ...
    for text in (caplog.text, str(caught.value), repr(client), repr(client.token_store),
                 repr(client._token[1]), repr(XurrentAccessToken.objects.get())):
        assert SECRET not in text  # ... without the secret
        assert "tok-1" not in text and "tok-2" not in text


@pytest.mark.django_db(transaction=True)
def test_the_migration_forgets_tokens_cached_under_unkeyed_fingerprints(tenant):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate([("connections", "0001_initial")])
    XurrentAccessToken.objects.create(tenant=tenant, fingerprint="0" * 64, token="old-token-value",
                                      expires_at=timezone.now() + timedelta(hours=1))
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    try:
        executor.migrate([("connections", "0002_forget_unkeyed_token_fingerprints")])
        assert not XurrentAccessToken.objects.exists()
        assert XurrentTenant.objects.filter(pk=tenant.pk).exists()
    finally:
        # Later migrations (and the tests after this one) need the latest schema back.
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
