"""The Xurrent REST client: headers, error mapping, retries, pagination and the calls it makes."""
import logging
import time

import pytest
import requests

from connections import errors, http
from connections.xurrent import XurrentClient
from tests.connections.fixtures.xurrent.fake_api import FakeApi

SECRET = "cs-9f8e7d6c5b4a-very-secret"
BASE = "https://api.xurrent.com/v1"


@pytest.fixture
def api(monkeypatch, settings):
    settings.SANDBOX_API_URL = ""
    fake = FakeApi()
    monkeypatch.setattr(http, "send", fake)
    return fake


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(api, sleeps):
    return XurrentClient("wdc", "cid-123", SECRET, "global", "production", sleep=sleeps.append,
                         max_retries=2, max_inline_wait=5)


def link(*rels):
    return {"link": ", ".join(f'<{url}>; rel="{rel}"' for rel, url in rels)}


# -- headers --------------------------------------------------------------------

def test_it_sends_the_bearer_token_and_the_account_on_every_call(api, client):
    api.add(200, {"id": "wdc"}).add(201, {"id": 7, "subject": "Disk full"})
    client.get_account()
    client.create_request({"subject": "Disk full", "category": "incident", "impact": "high"})
    get, post = api.api_calls
    assert (get.method, get.url) == ("GET", f"{BASE}/account")
    assert (post.method, post.url) == ("POST", f"{BASE}/requests")
    for call in (get, post):
        assert call.headers["Authorization"] == "Bearer tok-1"
        assert call.headers["X-Xurrent-Account"] == "wdc"
        assert call.headers["Accept"] == "application/json"
        assert call.options["allow_redirects"] is False
    assert post.headers["Content-Type"] == "application/json"
    assert post.json == {"subject": "Disk full", "category": "incident", "impact": "high"}


# -- errors ---------------------------------------------------------------------

def test_403_is_permission_denied_and_permanent(api, client):
    api.add(403, {"message": "Forbidden"})
    with pytest.raises(errors.PermissionDeniedError) as caught:
        client.get_request(1)
    assert caught.value.permanent and caught.value.status == 403
    assert "Forbidden" in str(caught.value)
    assert len(api.api_calls) == 1


def test_404_is_not_found(api, client):
    api.add(404, {"message": "Not Found"})
    with pytest.raises(errors.NotFoundError):
        client.get_service_instance(999)


def test_422_lists_every_message_per_field(api, client):
    api.add(422, {"message": "Validation Failed", "errors": [
        ["subject", "Subject can't be blank"], ["category", "Category can't be blank"],
        ["subject", "Subject is too short"]]})
    with pytest.raises(errors.ValidationError) as caught:
        client.create_request({})
    assert caught.value.field_errors == {"subject": ["Subject can't be blank", "Subject is too short"],
                                         "category": ["Category can't be blank"]}
    assert caught.value.message == "Validation Failed"
    assert "Subject is too short" in str(caught.value)


def test_400_keeps_xurrents_message(api, client):
    api.add(400, {"message": "Parameter 'per_page' cannot be less than 1"})
    with pytest.raises(errors.ValidationError, match="per_page"):
        client.get_request(1)


@pytest.mark.parametrize("header", ["retry-after", "Retry-After"])
def test_a_short_429_is_waited_out_then_retried(api, client, sleeps, header):
    api.add(429, {"message": "Too Many Requests"}, {header: "2", "x-ratelimit-remaining": "0"})
    api.add(201, {"id": 5})
    assert client.add_request_note(42, "Investigating") == {"id": 5}
    assert sleeps == [2.0]
    assert len(api.api_calls) == 2  # even a POST: a 429 is answered before anything is done


def test_a_long_429_is_handed_back_with_retry_after(api, client, sleeps):
    api.add(429, {"message": "Too Many Requests"}, {"retry-after": "120"})
    with pytest.raises(errors.RateLimitedError) as caught:
        client.get_request(1)
    assert caught.value.retry_after == 120 and caught.value.retryable
    assert sleeps == [] and len(api.api_calls) == 1


def test_a_429_without_retry_after_waits_a_minute(api, client, sleeps):
    api.add(429, {"message": "Too Many Requests"})
    with pytest.raises(errors.RateLimitedError) as caught:
        client.get_request(1)
    assert caught.value.retry_after == 60
    assert sleeps == []


def test_a_429_without_retry_after_uses_the_rate_limit_reset(api, client):
    api.add(429, {"message": "Too Many Requests"}, {"x-ratelimit-reset": str(int(time.time()) + 900)})
    with pytest.raises(errors.RateLimitedError) as caught:
        client.get_request(1)
    assert 890 <= caught.value.retry_after <= 900


def spent(reset_in: float, **more) -> dict:
    """Headers of an answer that used the last call of the budget (reference §5.3)."""
    return {"x-ratelimit-limit": "3600", "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": str(int(time.time() + reset_in)), **more}


def test_a_spent_budget_that_resets_soon_is_waited_out_before_the_next_call(api, client, sleeps):
    api.add(200, {"id": 1}, spent(reset_in=3)).add(200, {"id": 2}).add(200, {"id": 3})
    client.get_request(1)
    assert sleeps == []
    assert client.get_request(2) == {"id": 2}
    assert len(sleeps) == 1 and 1.5 <= sleeps[0] <= 3
    client.get_request(3)
    assert len(sleeps) == 1  # the wait is served once
    assert len(api.api_calls) == 3


def test_a_spent_budget_that_resets_later_is_handed_back_without_calling(api, client, sleeps):
    api.add(200, {"id": 1}, spent(reset_in=600))
    client.get_request(1)
    with pytest.raises(errors.RateLimitedError) as caught:
        client.get_request(2)
    assert 590 <= caught.value.retry_after <= 600 and caught.value.retryable
    assert len(api.api_calls) == 1 and sleeps == []
    assert "not called" in str(caught.value)


def test_a_spent_budget_is_not_waited_for_past_the_deadline(api, client, sleeps):
    api.add(200, {"id": 1}, spent(reset_in=4))  # fits max_inline_wait (5 s), not the deadline
    client.get_request(1)
    client.deadline = time.monotonic() + 2
    with pytest.raises(errors.RateLimitedError) as caught:
        client.get_request(2)
    assert caught.value.retry_after > 2
    assert len(api.api_calls) == 1 and sleeps == []


def test_a_budget_with_calls_left_or_a_past_reset_does_not_slow_anything(api, client, sleeps):
    api.add(200, {"id": 1}, {"x-ratelimit-remaining": "12", "x-ratelimit-reset": str(int(time.time()) + 600)})
    api.add(200, {"id": 2}, spent(reset_in=-5)).add(200, {"id": 3})
    for request_id in (1, 2, 3):
        client.get_request(request_id)
    assert sleeps == [] and len(api.api_calls) == 3


def test_a_429_waits_its_retry_after_once_even_when_the_reset_is_later(api, client, sleeps):
    # Retry-After is the explicit answer to "when may I call again"; the hourly reset is not.
    api.add(429, {"message": "Too Many Requests"}, spent(reset_in=1800, **{"retry-after": "2"}))
    api.add(200, {"id": 1})
    assert client.get_request(1) == {"id": 1}
    assert sleeps == [2.0] and len(api.api_calls) == 2


def test_call_records_carry_the_rate_limit_headers(api, client, monkeypatch):
    records = []
    monkeypatch.setattr(http, "call_observers", [records.append])
    api.add(200, {"id": 1}, {"x-ratelimit-limit": "3600", "x-ratelimit-remaining": "3599",
                             "x-ratelimit-reset": "1533873527"})
    client.get_request(1)
    token, call = records
    assert token.extra == {}  # the OAuth service sends no budget headers
    assert call.extra == {"x-ratelimit-limit": "3600", "x-ratelimit-remaining": "3599",
                          "x-ratelimit-reset": "1533873527"}


def test_a_500_on_a_get_is_retried(api, client, sleeps):
    api.add(500, {"message": "Internal Server Error"}).add(200, {"id": 1})
    assert client.get_request(1) == {"id": 1}
    assert len(api.api_calls) == 2 and len(sleeps) == 1


def test_a_500_on_a_post_is_not_retried(api, client, sleeps):
    api.add(500, {"message": "Internal Server Error"})
    with pytest.raises(errors.ServerError) as caught:
        client.create_request({"subject": "x", "category": "rfi"})
    assert caught.value.retryable
    assert len(api.api_calls) == 1 and sleeps == []


def test_repeated_5xx_on_a_get_ends_after_the_retry_budget(api, client, sleeps):
    for _ in range(3):
        api.add(503, {"message": "Service Unavailable"})
    with pytest.raises(errors.ServerError):
        client.get_request(1)
    assert len(api.api_calls) == 3 and len(sleeps) == 2


def test_network_failures_are_retried_for_gets_and_then_raised(api, client, sleeps):
    for _ in range(3):
        api.fail(requests.ConnectionError("connection refused"))
    with pytest.raises(errors.NetworkError) as caught:
        client.get_request(1)
    assert "api.xurrent.com" in str(caught.value)
    assert len(api.api_calls) == 3


def test_a_timeout_is_a_timeout_error(api, client):
    api.fail(requests.ReadTimeout("read timed out"))
    with pytest.raises(errors.TimeoutError_):
        client.create_request({"subject": "x", "category": "rfi"})
    assert len(api.api_calls) == 1


def test_errors_never_carry_the_secret_or_token(api, client, caplog):
    caplog.set_level(logging.DEBUG)
    api.add(403, {"message": "Forbidden"}).add(422, {"message": "Validation Failed", "errors": [["uri", "bad"]]})
    api.fail(requests.ConnectionError(f"boom {SECRET}"))
    raised = []
    for call in (lambda: client.get_account(), lambda: client.create_webhook("request.update", "https://x.test/h"),
                 lambda: client.create_request({})):
        with pytest.raises(errors.ApiError) as caught:
            call()
        raised.append(caught.value)
    for exc in raised:
        assert SECRET not in str(exc) and "tok-1" not in str(exc) and SECRET not in repr(exc)
    assert SECRET not in caplog.text and "tok-1" not in caplog.text


# -- pagination -------------------------------------------------------------------

def test_it_follows_next_links_across_pages_lazily(api, client):
    page2 = f"{BASE}/service_instances?per_page=100&status=in_production&search_after=abc%3D"
    page3 = f"{BASE}/service_instances?per_page=100&status=in_production&search_after=def%3D"
    api.add(200, [{"id": 1, "name": "A"}, {"id": 2, "name": "B"}], link(("next", page2)))
    api.add(200, [{"id": 3, "name": "C"}], link(("first", f"{BASE}/service_instances"), ("next", page3)))
    api.add(200, [{"id": 4, "name": "D"}], link(("first", f"{BASE}/service_instances"), ("prev", page2)))

    items = client.iter_service_instances(status="in_production")
    assert next(items)["id"] == 1
    assert len(api.api_calls) == 1  # one page at a time
    assert [i["id"] for i in items] == [2, 3, 4]

    first, second, third = api.api_calls
    assert first.path == "/v1/service_instances"
    assert first.query == {"per_page": ["100"], "status": ["in_production"]}
    assert (second.url, third.url) == (page2, page3)  # the server's URL, no params added again


def test_it_stops_at_the_page_cap(api, client, caplog):
    client.max_pages = 3
    for n in range(3):
        api.add(200, [{"id": n}], link(("next", f"{BASE}/webhooks?search_after={n}")))
    assert [w["id"] for w in client.list_webhooks()] == [0, 1, 2]
    assert len(api.api_calls) == 3
    assert "pagination-capped" in caplog.text


def test_it_does_not_follow_a_next_link_to_another_host(api, client):
    api.add(200, [{"id": 1}], link(("next", "https://evil.example/v1/webhooks?page=2")))
    with pytest.raises(errors.PermanentError, match="outside its API"):
        client.list_webhooks()
    assert len(api.api_calls) == 1


def test_search_matches_any_case_substring_and_stops_at_the_limit(api, client):
    api.add(200, [{"id": 1, "name": "Mail"}, {"id": 2, "name": "Website (Production)"}],
            link(("next", f"{BASE}/service_instances?search_after=1")))
    api.add(200, [{"id": 3, "name": "Intranet"}, {"id": 4, "name": "WEBSITE (Test)"},
                  {"id": 5, "name": "Website (QA)"}],
            link(("next", f"{BASE}/service_instances?search_after=2")))
    found = client.search_service_instances("  website ", limit=2)
    assert [i["id"] for i in found] == [2, 4]
    assert len(api.api_calls) == 2  # the third page is never read
    assert api.api_calls[0].query == {"per_page": ["100"]}


def test_an_exact_name_lookup_filters_on_the_server_and_checks_again(api, client):
    api.add(200, [{"id": 1, "name": "Website"}, {"id": 2, "name": "website"}])
    assert [i["id"] for i in client.iter_service_instances(name="Website")] == [1]
    assert api.api_calls[0].query == {"per_page": ["100"], "name": ["Website"]}


def test_find_requests_filters_on_source_and_source_id(api, client):
    api.add(200, [{"id": 70, "sourceID": "ZD-1"}])
    assert client.find_requests("zenduty", "ZD-1") == [{"id": 70, "sourceID": "ZD-1"}]
    assert api.api_calls[0].path == "/v1/requests"
    assert api.api_calls[0].query == {"per_page": ["100"], "source": ["zenduty"], "sourceID": ["ZD-1"]}


def test_a_collection_that_is_not_a_list_is_an_error(api, client):
    api.add(200, {"message": "odd"})
    with pytest.raises(errors.PermanentError, match="other than a list"):
        client.list_request_notes(1)


# -- the calls --------------------------------------------------------------------

def test_request_and_note_calls(api, client):
    api.add(200, {"id": 42}).add(200, {"id": 42, "status": "in_progress"}).add(201, {"id": 9})
    api.add(200, [{"id": 9, "text": "hi"}])
    client.get_request(42)
    client.update_request(42, {"status": "in_progress", "internal_note": "Acknowledged in Zenduty"})
    assert client.add_request_note(42, "Resolved in Zenduty", internal=True) == {"id": 9}
    assert client.list_request_notes(42) == [{"id": 9, "text": "hi"}]
    get, patch, note, notes = api.api_calls
    assert (get.method, get.path) == ("GET", "/v1/requests/42")
    assert (patch.method, patch.path) == ("PATCH", "/v1/requests/42")
    assert patch.json == {"status": "in_progress", "internal_note": "Acknowledged in Zenduty"}
    assert (note.method, note.path, note.json) == ("POST", "/v1/requests/42/notes",
                                                   {"text": "Resolved in Zenduty", "internal": True})
    assert (notes.method, notes.path) == ("GET", "/v1/requests/42/notes")


def test_ids_are_quoted_into_the_path(api, client):
    api.add(200, {"id": 1})
    client.get_request("NG1lLmNvbS9SZXEvMQ==/../x")
    assert api.api_calls[0].path == "/v1/requests/NG1lLmNvbS9SZXEvMQ%3D%3D%2F..%2Fx"


def test_webhook_calls(api, client):
    api.add(201, {"id": 3}).add(200, [{"id": 3}]).add(200, {"id": 3}).add(200, {"id": 3, "disabled": True})
    api.add(204)
    client.create_webhook("request.update", "https://portal.test/webhooks/xurrent/1", webhook_policy_id=12)
    client.list_webhooks()
    client.get_webhook(3)
    client.update_webhook(3, disabled=True)
    assert client.delete_webhook(3) is None
    create, listing, get, patch, delete = api.api_calls
    assert (create.method, create.path) == ("POST", "/v1/webhooks")
    assert create.json == {"event": "request.update", "uri": "https://portal.test/webhooks/xurrent/1",
                           "disabled": False, "webhook_policy_id": 12}
    assert (listing.method, listing.path, get.path) == ("GET", "/v1/webhooks", "/v1/webhooks/3")
    assert (patch.method, patch.json) == ("PATCH", {"disabled": True})
    assert (delete.method, delete.path) == ("DELETE", "/v1/webhooks/3")


def test_webhook_policy_calls(api, client):
    api.add(201, {"id": 12, "jwt_alg": "es256", "public_key_pem": "-----BEGIN PUBLIC KEY-----..."})
    api.add(200, {"id": 12}).add(200, {"id": 12}).add(204)
    created = client.create_webhook_policy("es256", jwt_audience="portal", jwt_claim_expires_in=10)
    assert created["public_key_pem"].startswith("-----BEGIN")
    client.get_webhook_policy(12)
    client.update_webhook_policy(12, disabled=True)
    client.delete_webhook_policy(12)
    create, get, patch, delete = api.api_calls
    assert (create.method, create.path) == ("POST", "/v1/webhook_policies")
    assert create.json == {"jwt_alg": "es256", "disabled": False, "jwt_audience": "portal",
                           "jwt_claim_expires_in": 10}
    assert [(c.method, c.path) for c in (get, patch, delete)] == [
        ("GET", "/v1/webhook_policies/12"), ("PATCH", "/v1/webhook_policies/12"),
        ("DELETE", "/v1/webhook_policies/12")]


@pytest.mark.parametrize("alg", ["none", "hs256", "RS256"])
def test_it_refuses_policies_it_could_not_verify(api, client, alg):
    with pytest.raises(ValueError, match="jwt_alg"):
        client.create_webhook_policy(alg)
    assert api.calls == []


# -- webhook.verify callback ----------------------------------------------------------

def test_it_calls_the_verification_callback_on_the_account_host(api, client):
    api.add(200)
    url = "https://wdc.xurrent.com/webhooks/219/verify?code=abc123&expires_at=1610618451"
    client.call_verification_callback(url)
    (call,) = api.calls  # no token was needed
    assert (call.method, call.url) == ("GET", url)
    assert "Authorization" not in call.headers
    assert call.options["allow_redirects"] is False


@pytest.mark.parametrize("url", [
    "https://evil.example/webhooks/219/verify?code=abc",
    "https://widget.xurrent.com/webhooks/219/verify?code=abc",  # another account
    "https://wdc.xurrent.com.evil.example/webhooks/219/verify",
    "https://wdc.xurrent.com@evil.example/webhooks/219/verify",
    "http://wdc.xurrent.com/webhooks/219/verify",
    "https://wdc.us.xurrent.com/webhooks/219/verify",  # another region
    "/webhooks/219/verify",
])
def test_it_refuses_a_foreign_verification_callback(api, client, url):
    with pytest.raises(errors.PermanentError, match="Refusing the webhook verification callback"):
        client.call_verification_callback(url)
    assert api.calls == []


def test_in_the_sandbox_the_callback_must_be_under_the_simulator(api, client, settings):
    settings.SANDBOX_API_URL = "http://127.0.0.1:8000"
    with pytest.raises(errors.PermanentError):
        client.call_verification_callback("http://127.0.0.1:8000/admin/logout/")
    api.add(200)
    client.call_verification_callback("http://127.0.0.1:8000/sandbox/xurrent/xurrent.com/webhooks/1/verify?code=x")
    assert [c.path for c in api.calls] == ["/sandbox/xurrent/xurrent.com/webhooks/1/verify"]
    # Another instance's account host is another host, in the sandbox as in production.
    with pytest.raises(errors.PermanentError, match="Refusing the webhook verification callback"):
        client.call_verification_callback("http://127.0.0.1:8000/sandbox/xurrent/au.xurrent.com/webhooks/1/verify")
    assert len(api.calls) == 1


@pytest.mark.parametrize("path", [
    "/sandbox/xurrent/xurrent.com/../../admin/logout/",
    "/sandbox/xurrent/xurrent.com/webhooks/../../../admin/logout/",
    "/sandbox/xurrent/xurrent.com/./../admin/logout/",
    "/sandbox/xurrent/xurrent.com/%2e%2e/%2E%2E/admin/logout/",
    "/sandbox/xurrent/xurrent.com/.%2e/admin/logout/",
    "/sandbox/xurrent/xurrent.com/..%2f..%2fadmin/logout/",
    "/sandbox/xurrent/xurrent.com/%252e%252e/admin/logout/",
    "/sandbox/xurrent/xurrent.com/..\\..\\admin/logout/",
])
def test_in_the_sandbox_dot_segments_cannot_leave_the_simulator(api, client, settings, path):
    settings.SANDBOX_API_URL = "http://127.0.0.1:8000"
    with pytest.raises(errors.PermanentError, match="Refusing the webhook verification callback"):
        client.call_verification_callback(f"http://127.0.0.1:8000{path}?code=x")
    assert api.calls == []


def test_dot_segments_are_refused_on_the_account_host_too(api, client):
    with pytest.raises(errors.PermanentError):
        client.call_verification_callback("https://wdc.xurrent.com/webhooks/1/../../logout?code=x")
    assert api.calls == []


def test_a_redirecting_callback_is_not_followed(api, client):
    api.add(302, None, {"location": "https://evil.example/"})
    with pytest.raises(errors.PermanentError, match="redirect"):
        client.call_verification_callback("https://wdc.xurrent.com/webhooks/1/verify?code=x")
    assert len(api.calls) == 1


def test_the_client_refuses_an_impossible_instance():
    with pytest.raises(ValueError, match="Demo"):
        XurrentClient("wdc", "cid", SECRET, "us", "demo")


def test_sandbox_mode_sends_api_calls_to_the_simulator(api, client, settings):
    settings.SANDBOX_API_URL = "http://127.0.0.1:8000"
    api.add(200, {"id": "wdc"})
    client.get_account()
    assert [c.url for c in api.calls] == ["http://127.0.0.1:8000/sandbox/xurrent/xurrent.com/oauth/token",
                                          "http://127.0.0.1:8000/sandbox/xurrent/xurrent.com/v1/account"]
