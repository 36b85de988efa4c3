"""Simulated Xurrent: OAuth token endpoint and API authentication, over real HTTP.

Reference: https://developer.xurrent.com/v1/oauth/client_credentials_grant (OAuth),
https://developer.xurrent.com/v1/ (headers, rate limits, errors).
"""
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from sandbox import faults
from sandbox.xurrent import demo
from sandbox.xurrent.models import AccessToken, OAuthApplication, PersonalAccessToken
from sandbox.xurrent.testing import XurrentApi, fetch_token, token_url

pytestmark = pytest.mark.django_db(transaction=True)

CLIENT_ID, SECRET = "test-client", "test-secret-value"


@pytest.fixture
def sim(sandbox):
    demo.make_account("acme", CLIENT_ID, SECRET, name="Acme")
    return sandbox


def grant(**overrides):
    data = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET}
    data.update(overrides)
    return {k: val for k, val in data.items() if val is not None}


def test_form_encoded_client_credentials_give_a_one_hour_bearer_token(sim):
    response = requests.post(token_url(sim.url), data=grant(), headers={"Accept": "application/json"})

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert response.headers["cache-control"] == "no-store"
    me = XurrentApi(sim.url, "acme", body["access_token"]).get("/v1/me")
    assert me.status_code == 200 and me.json()["name"] == demo.API_PERSON_NAME


def test_a_json_body_works_too(sim):
    response = requests.post(token_url(sim.url), json=grant())
    assert response.status_code == 200 and response.json()["access_token"]


def test_secrets_and_tokens_are_stored_only_as_hashes(sim):
    token = fetch_token(sim.url, CLIENT_ID, SECRET)
    app = OAuthApplication.objects.get(client_id=CLIENT_ID)
    assert SECRET not in app.client_secret_hash
    row = AccessToken.objects.get(application=app)
    assert token not in row.token_hash and len(row.token_hash) == 64
    assert timedelta(minutes=59) < row.expires_at - timezone.now() <= timedelta(hours=1)


def test_each_instance_knows_only_its_own_accounts_and_tokens(sim):
    # acme lives in Global Production (xurrent.com); Australia Production is another host.
    refused = requests.post(token_url(sim.url, "au.xurrent.com"), data=grant())
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_client"
    token = fetch_token(sim.url, CLIENT_ID, SECRET)
    assert XurrentApi(sim.url, "acme", token).get("/v1/me").status_code == 200
    elsewhere = XurrentApi(sim.url, "acme", token, instance="xurrent.qa").get("/v1/me")
    assert elsewhere.status_code == 401 and elsewhere.json() == {"message": "Unauthorized"}
    # A domain that is no Xurrent instance is no host at all.
    assert requests.post(f"{sim.url}/sandbox/xurrent/eu.xurrent.com/oauth/token", data=grant()).status_code == 404


def test_an_account_of_another_instance_gets_its_tokens_there(sim):
    demo.make_account("aussie", "au-client", SECRET, instance="au.xurrent.com")
    token = fetch_token(sim.url, "au-client", SECRET, "au.xurrent.com")
    assert XurrentApi(sim.url, "aussie", token, instance="au.xurrent.com").get("/v1/me").status_code == 200
    assert requests.post(token_url(sim.url), data=grant(client_id="au-client")).status_code == 400


@pytest.mark.parametrize("overrides", [{"client_secret": "Zq9-not-it"}, {"client_id": "nobody"}])
def test_bad_credentials_are_invalid_client(sim, overrides):
    response = requests.post(token_url(sim.url), data=grant(**overrides))

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_client" and body["error_description"]
    assert "Zq9-not-it" not in response.text


def test_a_disabled_application_gets_no_token(sim):
    OAuthApplication.objects.filter(client_id=CLIENT_ID).update(disabled=True)
    assert requests.post(token_url(sim.url), data=grant()).json()["error"] == "invalid_client"


def test_other_grants_are_unsupported_and_missing_parameters_invalid(sim):
    unsupported = requests.post(token_url(sim.url), data=grant(grant_type="authorization_code"))
    assert unsupported.status_code == 400 and unsupported.json()["error"] == "unsupported_grant_type"

    missing = requests.post(token_url(sim.url), data=grant(client_secret=None))
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"

    # Parameters in the query string are refused: they belong in the body (§1.2).
    in_query = requests.post(token_url(sim.url), params=grant())
    assert in_query.status_code == 400 and in_query.json()["error"] == "invalid_request"


def test_an_injected_500_fails_one_token_request_in_the_oauth_error_shape(sim):
    faults.inject("xurrent", "error_500", path_prefix="/oauth/token")

    failed = requests.post(token_url(sim.url), data=grant())

    assert failed.status_code == 500
    assert failed.json() == {"error": "server_error", "error_description": "Internal Server Error"}
    assert failed.headers["cache-control"] == "no-store"
    assert not AccessToken.objects.exists()  # no token was issued
    again = requests.post(token_url(sim.url), data=grant())
    assert again.status_code == 200 and again.json()["access_token"]


def test_an_injected_429_on_the_token_endpoint_carries_retry_after(sim):
    faults.inject("xurrent", "rate_limit_429", path_prefix="/oauth/token", retry_after=7)

    limited = requests.post(token_url(sim.url), data=grant())

    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert limited.json() == {"error": "temporarily_unavailable", "error_description": "Too Many Requests"}
    assert requests.post(token_url(sim.url), data=grant()).status_code == 200


def test_an_injected_timeout_on_the_token_endpoint_answers_504_and_issues_no_token(sim, monkeypatch):
    slept = []
    monkeypatch.setattr(faults, "_sleep", slept.append)
    faults.inject("xurrent", "timeout", path_prefix="/oauth/token", latency_ms=2000)

    response = requests.post(token_url(sim.url), data=grant())

    assert slept == [2.0]
    assert response.status_code == 504 and not AccessToken.objects.exists()


def test_a_fault_on_api_paths_leaves_the_token_endpoint_alone(sim):
    faults.inject("xurrent", "error_500", path_prefix="/v1/")
    api = XurrentApi.connect(sim.url, "acme", CLIENT_ID, SECRET)  # the token request is not a /v1/ call
    assert api.get("/v1/me").status_code == 500


def test_calls_without_a_valid_bearer_token_are_unauthorized_with_rate_limit_headers(sim):
    for api in (XurrentApi(sim.url, "acme", None), XurrentApi(sim.url, "acme", "not-a-token")):
        response = api.get("/v1/me")
        assert response.status_code == 401
        assert response.json() == {"message": "Unauthorized"}
        assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(response.headers)
    basic = requests.get(f"{sim.url}/sandbox/xurrent/xurrent.com/v1/me", auth=(CLIENT_ID, SECRET),
                         headers={"X-Xurrent-Account": "acme"})
    assert basic.status_code == 401  # only bearer tokens work (§1.1)


def test_an_expired_token_is_unauthorized(sim):
    api = XurrentApi.connect(sim.url, "acme", CLIENT_ID, SECRET)
    assert api.get("/v1/me").status_code == 200
    AccessToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    response = api.get("/v1/me")

    assert response.status_code == 401 and response.json() == {"message": "Unauthorized"}


def test_the_account_header_is_required_by_default(sim):
    token = fetch_token(sim.url, CLIENT_ID, SECRET)
    response = XurrentApi(sim.url, None, token).get("/v1/account")

    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}  # the bare word, as the reference documents
    assert response.headers["x-ratelimit-limit"]


def test_a_lenient_account_runs_headerless_calls_in_the_tokens_account(sim):
    sim_account = demo.make_account("acme", CLIENT_ID, SECRET).account
    knobs = sim_account.simulator_settings()
    knobs.strict_account_header = False
    knobs.save()
    token = fetch_token(sim.url, CLIENT_ID, SECRET)

    response = XurrentApi(sim.url, None, token).get("/v1/account")

    assert response.status_code == 200 and response.json()["id"] == "acme"


def test_another_accounts_header_is_forbidden(sim):
    demo.make_account("other", "other-client", "other-secret")
    token = fetch_token(sim.url, CLIENT_ID, SECRET)

    response = XurrentApi(sim.url, "other", token).get("/v1/account")

    assert response.status_code == 403
    assert response.json() == {"message": "Forbidden"}
    assert XurrentApi(sim.url, "no-such-account", token).get("/v1/account").status_code == 403


def test_the_legacy_4me_header_and_any_header_case_are_accepted(sim):
    token = fetch_token(sim.url, CLIENT_ID, SECRET)
    for name in ("X-4me-Account", "x-xurrent-account", "X-XURRENT-ACCOUNT"):
        response = requests.get(f"{sim.url}/sandbox/xurrent/xurrent.com/v1/account",
                                headers={"Authorization": f"Bearer {token}", name: "acme"})
        assert response.status_code == 200, name
        assert response.json()["id"] == "acme" and response.json()["name"] == "Acme"


def test_a_personal_access_token_acts_as_its_person(sim):
    person = demo.make_account("acme", CLIENT_ID, SECRET).account.ui_person()
    _, raw = PersonalAccessToken.issue(person)

    response = XurrentApi(sim.url, "acme", raw).get("/v1/me")

    assert response.status_code == 200 and response.json()["name"] == "Howard Tanner"
    PersonalAccessToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert XurrentApi(sim.url, "acme", raw).get("/v1/me").status_code == 401


def test_response_headers_are_lowercase_on_the_wire(sim):
    import http.client
    from urllib.parse import urlsplit

    token = fetch_token(sim.url, CLIENT_ID, SECRET)
    parts = urlsplit(sim.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request("GET", "/sandbox/xurrent/xurrent.com/v1/service_instances",
                       headers={"Authorization": f"Bearer {token}", "X-Xurrent-Account": "acme"})
    response = connection.getresponse()
    names = [name for name, _ in response.getheaders()]
    connection.close()

    for expected in ("x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "x-pagination-per-page",
                     "x-pagination-total-entries", "content-type"):
        assert expected in names, names
