"""The Zenduty REST client: URLs, headers, bodies, base URLs, pagination, errors, retries, secrecy.

Outbound HTTP is stubbed at the one seam, ``connections.http.send``; each
call is recorded as ``requests`` would have sent it.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from connections import errors, http
from connections.models import ZendutyAccount
from connections.zenduty import ZendutyClient, constants

# Incident calls take a slot of the account's shared budget (a database row) first.
pytestmark = pytest.mark.django_db

TOKEN = "zd-4c1f9e7a2b8d6053-api-token"
BASE = "https://www.zenduty.com"
TEAM = "61010821-08aa-4098-94f8-f88f1990b54a"
SERVICE = "191f5e2c-515e-4ee0-b501-3a292f8dae2f"
INTEGRATION = "72da1133-a471-4e70-95f3-ce3a5650e9fd"
APPLICATION = "07c84d47-7e71-49ec-b781-1cc81a78086e"


# -- the fake seam ------------------------------------------------------------------

def response(status: int = 200, body=None, headers: dict | None = None, raw: bytes | None = None):
    """A real ``requests.Response``."""
    resp = requests.Response()
    resp.status_code = status
    resp.headers = CaseInsensitiveDict(headers or {})
    if raw is not None:
        resp._content = raw
    elif body is None:
        resp._content = b""
    else:
        resp._content = json.dumps(body).encode()
        resp.headers.setdefault("Content-Type", "application/json")
    resp.encoding = "utf-8"
    return resp


@dataclass
class Sent:
    method: str
    url: str
    headers: CaseInsensitiveDict
    body: bytes | None
    options: dict

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> dict:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.url).query).items()}

    @property
    def json(self):
        return json.loads(self.body) if self.body else None


class FakeSend:
    """Stands in for ``connections.http.send``: records calls, answers from a queue."""

    def __init__(self):
        self.calls: list[Sent] = []
        self.answers: list = []

    def add(self, status: int = 200, body=None, headers: dict | None = None, raw: bytes | None = None):
        self.answers.append(response(status, body, headers, raw))
        return self

    def fail(self, exc: Exception):
        self.answers.append(exc)
        return self

    def __call__(self, session, method, url, *, params=None, json=None, data=None, headers=None, **options):
        prepared = session.prepare_request(
            requests.Request(method, url, params=params, json=json, data=data, headers=headers))
        self.calls.append(Sent(method, prepared.url, prepared.headers, prepared.body, options))
        if not self.answers:
            raise AssertionError(f"unexpected call {method} {prepared.url}")
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        answer.url = prepared.url
        return answer


@pytest.fixture
def api(monkeypatch, settings):
    settings.SANDBOX_API_URL = ""
    fake = FakeSend()
    monkeypatch.setattr(http, "send", fake)
    return fake


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(api, sleeps):
    return ZendutyClient(TOKEN, sleep=sleeps.append, max_retries=2, max_inline_wait=5)


def page(results, next_url=None, count=None):
    body = {"next": next_url, "previous": None, "results": results}
    if count is not None:
        body["count"] = count
    return body


# -- headers, URLs and bodies ----------------------------------------------------------

def test_it_sends_the_token_header_and_json_content_type(api, client):
    api.add(200, [{"unique_id": TEAM, "name": "Operations"}])
    assert client.list_teams() == [{"unique_id": TEAM, "name": "Operations"}]
    (call,) = api.calls
    assert (call.method, call.url) == ("GET", f"{BASE}/api/account/teams/")
    assert call.headers["Authorization"] == f"Token {TOKEN}"
    assert call.headers["Content-Type"] == "application/json"
    assert call.headers["Accept"] == "application/json"
    assert call.options["allow_redirects"] is False
    assert call.options["timeout"] == client.timeout


def test_it_reads_priorities_from_the_singular_priority_path(api, client):
    api.add(200, [{"unique_id": "p1", "name": "P1", "team": TEAM, "unknown_new_field": 1}])
    priorities = client.list_priorities(TEAM)
    assert api.calls[0].url == f"{BASE}/api/account/teams/{TEAM}/priority/"
    assert priorities[0]["unknown_new_field"] == 1  # unknown fields pass through


@pytest.mark.parametrize("call, method, path", [
    (lambda c: c.get_team(TEAM), "GET", f"/api/account/teams/{TEAM}/"),
    (lambda c: c.list_services(TEAM), "GET", f"/api/account/teams/{TEAM}/services/"),
    (lambda c: c.get_service(TEAM, SERVICE), "GET", f"/api/account/teams/{TEAM}/services/{SERVICE}/"),
    (lambda c: c.list_applications(), "GET", "/api/account/applications/"),
    (lambda c: c.list_integrations(TEAM, SERVICE), "GET",
     f"/api/account/teams/{TEAM}/services/{SERVICE}/integrations/"),
    (lambda c: c.get_integration(TEAM, SERVICE, INTEGRATION), "GET",
     f"/api/account/teams/{TEAM}/services/{SERVICE}/integrations/{INTEGRATION}/"),
    (lambda c: c.get_incident(255), "GET", "/api/incidents/255/"),
    (lambda c: c.get_incident("uJVWfdAeoPDm3pk2gG2URn"), "GET", "/api/incidents/uJVWfdAeoPDm3pk2gG2URn/"),
])
def test_it_calls_the_documented_path(api, client, call, method, path):
    api.add(200, [] if path.endswith(("services/", "applications/", "integrations/")) else {"unique_id": "x"})
    call(client)
    (sent,) = api.calls
    assert (sent.method, sent.path, sent.body) == (method, path, None)


def test_it_quotes_ids_in_paths(api, client):
    api.add(200, {})
    client.get_incident("a/b c")
    assert api.calls[0].path == "/api/incidents/a%2Fb%20c/"


def test_create_incident_posts_only_the_fields_given(api, client):
    api.add(201, {"incident_number": 3, "unique_id": "uJVWfdAeoPDm3pk2gG2URn", "status": 1})
    incident = client.create_incident(title="Disk full", service=SERVICE, team_priority="prio-1")
    (call,) = api.calls
    assert (call.method, call.url) == ("POST", f"{BASE}/api/incidents/")
    assert call.json == {"title": "Disk full", "service": SERVICE, "summary": "", "team_priority": "prio-1"}
    assert incident["incident_number"] == 3


def test_create_incident_sends_every_optional_field(api, client):
    api.add(201, {"incident_number": 4})
    client.create_incident(title="T", service=SERVICE, summary="S", team_priority="p", escalation_policy="ep",
                           assigned_to="216bba3d-7268-4a8e-89e9-6", urgency=constants.URGENCY_LOW)
    assert api.calls[0].json == {"title": "T", "service": SERVICE, "summary": "S", "team_priority": "p",
                                 "escalation_policy": "ep", "assigned_to": "216bba3d-7268-4a8e-89e9-6",
                                 "urgency": 0}


def test_update_incident_patches_the_given_fields(api, client):
    api.add(200, {"incident_number": 3, "status": 1, "team_priority": "p2"})
    client.update_incident(3, team_priority="p2", title="New title")
    (call,) = api.calls
    assert (call.method, call.url) == ("PATCH", f"{BASE}/api/incidents/3/")
    assert call.json == {"team_priority": "p2", "title": "New title"}


@pytest.mark.parametrize("action, status", [("acknowledge_incident", 2), ("resolve_incident", 3)])
def test_acknowledge_and_resolve_patch_the_status(api, client, action, status):
    api.add(200, {"unique_id": "uJVWfdAeoPDm3pk2gG2URn", "status": status})
    assert getattr(client, action)("uJVWfdAeoPDm3pk2gG2URn")["status"] == status
    (call,) = api.calls
    assert (call.method, call.path, call.json) == ("PATCH", "/api/incidents/uJVWfdAeoPDm3pk2gG2URn/",
                                                   {"status": status})


@pytest.mark.parametrize("fields", [{}, {"status": 4}, {"status": 0}])
def test_update_incident_refuses_nothing_or_an_unknown_status_without_a_call(api, client, fields):
    with pytest.raises(ValueError):
        client.update_incident(3, **fields)
    assert api.calls == []


def test_notes_go_to_the_singular_note_path(api, client):
    api.add(201, {"unique_id": "KCfA6tgiQTQrQVYuLVx2AK", "incident": 7, "note": "From Xurrent: hi"})
    note = client.add_note(7, "From Xurrent: hi")
    (call,) = api.calls
    assert (call.method, call.url, call.json) == ("POST", f"{BASE}/api/incidents/7/note/",
                                                  {"note": "From Xurrent: hi"})
    assert note["unique_id"] == "KCfA6tgiQTQrQVYuLVx2AK"


def test_create_integration_with_keywords(api, client):
    api.add(201, {"unique_id": INTEGRATION, "integration_key": "k"})
    created = client.create_integration(TEAM, SERVICE, application=APPLICATION, name="Xurrent",
                                        integration_type=constants.INTEGRATION_OUTBOUND, create_incidents_for=0)
    (call,) = api.calls
    assert (call.method, call.path) == ("POST", f"/api/account/teams/{TEAM}/services/{SERVICE}/integrations/")
    assert call.json == {"application": APPLICATION, "name": "Xurrent", "summary": "", "integration_type": 1,
                         "is_enabled": True, "create_incidents_for": 0}
    assert created["unique_id"] == INTEGRATION


def test_create_integration_with_a_data_dict_as_provisioning_calls_it(api, client):
    api.add(201, {"unique_id": INTEGRATION})
    client.create_integration(TEAM, SERVICE, {"application": APPLICATION, "name": "N", "summary": "marker",
                                              "integration_type": 1, "is_enabled": False})
    assert api.calls[0].json == {"application": APPLICATION, "name": "N", "summary": "marker",
                                 "integration_type": 1, "is_enabled": False}


def test_create_integration_needs_an_application_and_a_name(api, client):
    with pytest.raises(ValueError):
        client.create_integration(TEAM, SERVICE, name="no application")
    with pytest.raises(ValueError):
        client.create_integration(TEAM, SERVICE, application=APPLICATION)
    assert api.calls == []


def test_update_integration_puts_and_sends_the_current_application_back(api, client):
    path = f"/api/account/teams/{TEAM}/services/{SERVICE}/integrations/{INTEGRATION}/"
    api.add(200, {"unique_id": INTEGRATION, "application": APPLICATION, "is_enabled": True})
    api.add(200, {"unique_id": INTEGRATION, "application": APPLICATION, "is_enabled": False})
    updated = client.update_integration(TEAM, SERVICE, INTEGRATION, {"is_enabled": False})
    get, put = api.calls
    assert (get.method, get.path) == ("GET", path)
    assert (put.method, put.path, put.json) == ("PUT", path, {"is_enabled": False, "application": APPLICATION})
    assert updated["is_enabled"] is False


def test_update_integration_with_the_application_given_is_one_call(api, client):
    api.add(200, {"unique_id": INTEGRATION})
    client.update_integration(TEAM, SERVICE, INTEGRATION, application=APPLICATION, name="Renamed")
    (put,) = api.calls
    assert put.method == "PUT" and put.json == {"application": APPLICATION, "name": "Renamed"}


def test_delete_integration_accepts_204(api, client):
    api.add(204)
    assert client.delete_integration(TEAM, SERVICE, INTEGRATION) is None
    assert (api.calls[0].method, api.calls[0].path) == (
        "DELETE", f"/api/account/teams/{TEAM}/services/{SERVICE}/integrations/{INTEGRATION}/")


# -- base URL -------------------------------------------------------------------------------

def test_the_default_base_url_is_www_zenduty_com(api):
    api.add(200, [])
    ZendutyClient(TOKEN).list_teams()
    assert api.calls[0].url == "https://www.zenduty.com/api/account/teams/"


@pytest.mark.parametrize("base", ["https://staging.zenduty.com:8443", "https://staging.zenduty.com:8443/"])
def test_a_custom_base_url_may_have_a_port(api, base):
    api.add(200, [])
    ZendutyClient(TOKEN, base_url=base).list_teams()
    assert api.calls[0].url == "https://staging.zenduty.com:8443/api/account/teams/"


@pytest.mark.parametrize("base", ["http://127.0.0.1:8123", "http://127.0.0.1:8123/"])
def test_an_allowed_base_url_may_be_http_with_a_port(api, settings, base):
    settings.ZENDUTY_ALLOWED_BASE_URLS = ["http://127.0.0.1:8123"]
    api.add(200, [])
    ZendutyClient(TOKEN, base_url=base).list_teams()
    assert api.calls[0].url == "http://127.0.0.1:8123/api/account/teams/"


def test_sandbox_api_url_replaces_the_host_at_call_time(api, settings):
    client = ZendutyClient(TOKEN, base_url="https://www.zenduty.com/")
    api.add(200, []).add(200, [])
    settings.SANDBOX_API_URL = "http://127.0.0.1:8000"
    client.list_teams()
    settings.SANDBOX_API_URL = ""
    client.list_teams()
    assert [c.url for c in api.calls] == ["http://127.0.0.1:8000/sandbox/zenduty/api/account/teams/",
                                         "https://www.zenduty.com/api/account/teams/"]


def test_the_sandbox_stands_in_for_zendutys_own_address_only(api, settings):
    # Another base URL keeps its host in the demo too: unreachable there, as it would be.
    settings.SANDBOX_API_URL = "http://127.0.0.1:8000"
    api.add(200, [])
    ZendutyClient(TOKEN, base_url="https://staging.zenduty.com").list_teams()
    assert api.calls[0].url == "https://staging.zenduty.com/api/account/teams/"


def test_for_account_uses_the_accounts_token_and_base_url(api):
    account = ZendutyAccount(name="Ops", api_token=TOKEN, base_url="https://staging.zenduty.com")
    api.add(200, [])
    ZendutyClient.for_account(account, max_retries=0).list_teams()
    assert api.calls[0].url == "https://staging.zenduty.com/api/account/teams/"
    assert api.calls[0].headers["Authorization"] == f"Token {TOKEN}"


# -- pagination -----------------------------------------------------------------------------

def test_it_follows_drf_next_links_across_three_pages(api, client):
    notes = f"{BASE}/api/incidents/9/note/"
    api.add(200, page([{"unique_id": "n1"}], f"{notes}?page=2", count=3))
    api.add(200, page([{"unique_id": "n2"}], f"{notes}?page=3", count=3))
    api.add(200, page([{"unique_id": "n3"}], None, count=3))
    assert [n["unique_id"] for n in client.list_notes(9)] == ["n1", "n2", "n3"]
    assert [c.url for c in api.calls] == [notes, f"{notes}?page=2", f"{notes}?page=3"]
    assert all(c.headers["Authorization"] == f"Token {TOKEN}" for c in api.calls)


def test_it_accepts_a_plain_list_instead_of_a_page(api, client):
    api.add(200, [{"unique_id": "n1"}, {"unique_id": "n2"}])
    assert [n["unique_id"] for n in client.list_notes(9)] == ["n1", "n2"]
    assert len(api.calls) == 1


def test_iter_incidents_posts_the_filter_on_every_page_lazily(api, client):
    filter_url = f"{BASE}/api/incidents/filter/"
    api.add(200, page([{"incident_number": 255}, {"incident_number": 254}], f"{filter_url}?page=2&page_size=2"))
    api.add(200, page([{"incident_number": 253}], None))
    incidents = client.iter_incidents(status=constants.FILTER_OPEN, service_ids=[SERVICE], page_size=2,
                                      priority_ids=["p1"])
    assert api.calls == []  # nothing is sent until the caller iterates
    assert next(incidents)["incident_number"] == 255
    assert len(api.calls) == 1
    assert [i["incident_number"] for i in incidents] == [254, 253]
    first, second = api.calls
    assert (first.method, first.path, first.query) == ("POST", "/api/incidents/filter/",
                                                       {"page": "1", "page_size": "2"})
    assert second.url == f"{filter_url}?page=2&page_size=2"
    for call in (first, second):
        assert call.method == "POST"
        assert call.json == {"status": -1, "service_ids": [SERVICE], "priority_ids": ["p1"]}


def test_iter_incidents_defaults_to_all_statuses_and_pages_of_50(api, client):
    api.add(200, page([], None))
    assert list(client.iter_incidents(team_ids=[TEAM])) == []
    assert api.calls[0].query == {"page": "1", "page_size": "50"}
    assert api.calls[0].json == {"status": 0, "team_ids": [TEAM]}


def test_pagination_stops_at_the_page_cap(api, client, caplog):
    client.max_pages = 3
    for n in range(2, 6):
        api.add(200, page([{"n": n}], f"{BASE}/api/incidents/1/note/?page={n}"))
    with caplog.at_level(logging.WARNING, logger="connections.zenduty"):
        assert len(client.list_notes(1)) == 3
    assert len(api.calls) == 3
    assert "pagination-capped" in caplog.text


def test_a_next_link_to_another_host_is_not_followed(api, client):
    api.add(200, page([{"n": 1}], "https://evil.example/api/incidents/1/note/?page=2"))
    with pytest.raises(errors.PermanentError, match="outside its API"):
        client.list_notes(1)
    assert len(api.calls) == 1


def test_an_http_next_link_on_the_same_host_is_sent_over_https(api, client):
    # DRF behind a TLS proxy may build http:// links; the token must not go in clear text.
    api.add(200, page([{"n": 1}], "http://www.zenduty.com/api/incidents/1/note/?page=2"))
    api.add(200, page([{"n": 2}]))
    client.list_notes(1)
    assert api.calls[1].url == f"{BASE}/api/incidents/1/note/?page=2"


def test_sandbox_next_links_stay_under_the_sandbox_prefix(api, client, settings):
    settings.SANDBOX_API_URL = "http://127.0.0.1:8000"
    notes = "http://127.0.0.1:8000/sandbox/zenduty/api/incidents/1/note/"
    api.add(200, page([{"n": 1}], f"{notes}?page=2")).add(200, page([{"n": 2}]))
    assert len(client.list_notes(1)) == 2
    assert api.calls[1].url == f"{notes}?page=2"
    api.add(200, page([{"n": 1}], "http://127.0.0.1:8000/admin/?page=2"))
    with pytest.raises(errors.PermanentError):
        client.list_notes(1)


def test_an_answer_that_is_neither_list_nor_page_is_an_error(api, client):
    api.add(200, {"unexpected": True})
    with pytest.raises(errors.PermanentError, match="neither a list nor a page"):
        client.list_teams()


@pytest.mark.parametrize("content_type, says", [
    ("text/html; charset=utf-8", "answered with a text/html page, not JSON"),
    ("text/html <b>see https://evil.example</b>", "answered with a page of another content type, not JSON"),
    (None, "answered with a page without a content type, not JSON"),
])
def test_a_page_that_is_not_json_is_named_by_its_media_type_only(api, client, content_type, says):
    api.add(200, raw=b"<html>Welcome</html>", headers={"Content-Type": content_type} if content_type else {})
    with pytest.raises(errors.UnexpectedResponseError) as caught:
        client.list_teams()
    assert says in caught.value.message and "evil" not in caught.value.message


# -- errors -----------------------------------------------------------------------------------

def test_401_is_an_authentication_error(api, client):
    api.add(401, {"detail": "Invalid token."})
    with pytest.raises(errors.AuthenticationError) as caught:
        client.list_teams()
    assert caught.value.permanent and caught.value.status == 401
    assert caught.value.message == "Invalid token."
    assert len(api.calls) == 1  # no refresh: a Zenduty token cannot be renewed


def test_403_is_permission_denied_with_drfs_detail(api, client):
    api.add(403, {"detail": "You do not have permission to perform this action."})
    with pytest.raises(errors.PermissionDeniedError) as caught:
        client.get_team(TEAM)
    assert str(caught.value) == "zenduty HTTP 403: You do not have permission to perform this action."


def test_404_is_not_found(api, client):
    api.add(404, {"detail": "Not Found."})
    with pytest.raises(errors.NotFoundError) as caught:
        client.get_incident(999)
    assert caught.value.kind == "not_found" and caught.value.message == "Not Found."


def test_400_field_errors_become_validation_field_errors(api, client):
    api.add(400, {"title": ["This field is required."],
                  "service": ["This field is required.", "Invalid pk."]})
    with pytest.raises(errors.ValidationError) as caught:
        client.create_incident(title="", service="")
    assert caught.value.field_errors == {"title": ["This field is required."],
                                         "service": ["This field is required.", "Invalid pk."]}
    assert "service: This field is required., Invalid pk." in str(caught.value)
    assert len(api.calls) == 1


@pytest.mark.parametrize("body, message", [
    ({"detail": "This request can not be processed."}, "This request can not be processed."),
    ({"error": "Emails person@example.com exist in account"}, "Emails person@example.com exist in account"),
    ({"non_field_errors": ["Incident is already resolved."]}, "Incident is already resolved."),
    (["Bad status transition."], "Bad status transition."),
])
def test_400_messages_in_each_drf_shape(api, client, body, message):
    api.add(400, body)
    with pytest.raises(errors.ValidationError) as caught:
        client.add_note(1, "x")
    assert caught.value.message == message
    assert caught.value.field_errors == {}


def test_an_error_without_a_json_body_gets_the_default_message(api, client):
    api.add(502, raw=b"<html>Bad gateway</html>", headers={"Content-Type": "text/html"})
    with pytest.raises(errors.ServerError) as caught:
        client.add_note(1, "x")
    assert caught.value.message == errors.ServerError.default_message


def test_429_with_a_short_retry_after_is_waited_out(api, client, sleeps):
    api.add(429, {"detail": "Request was throttled."}, headers={"Retry-After": "2"})
    api.add(200, [])
    assert client.list_teams() == []
    assert sleeps == [2.0] and len(api.calls) == 2


def test_429_with_a_long_retry_after_is_raised_with_it(api, client, sleeps):
    api.add(429, {"detail": "Request was throttled. Expected available in 120 seconds."},
            headers={"Retry-After": "120"})
    with pytest.raises(errors.RateLimitedError) as caught:
        client.get_incident(1)
    assert caught.value.retry_after == 120.0 and caught.value.retryable
    assert sleeps == [] and len(api.calls) == 1


def test_429_without_retry_after_means_retry_in_a_minute(api, client, sleeps):
    api.add(429)
    with pytest.raises(errors.RateLimitedError) as caught:
        client.create_incident(title="T", service=SERVICE)
    assert caught.value.retry_after == 60.0
    assert sleeps == [] and len(api.calls) == 1


def test_500_on_a_get_is_retried(api, client, sleeps):
    api.add(500, {"detail": "A server error occurred."}).add(503).add(200, {"incident_number": 1})
    assert client.get_incident(1) == {"incident_number": 1}
    assert len(api.calls) == 3 and len(sleeps) == 2


def test_500_on_a_get_gives_up_after_the_retries(api, client):
    api.add(500).add(500).add(500)
    with pytest.raises(errors.ServerError) as caught:
        client.get_incident(1)
    assert caught.value.retryable and len(api.calls) == 3


def test_a_deadline_cuts_the_read_timeout_and_stops_retries(api, client, sleeps):
    import time

    client.deadline = time.monotonic() + 3  # less than the 15 s read timeout
    api.add(429, headers={"Retry-After": "4"})  # waiting 4 s would pass the deadline
    with pytest.raises(errors.RateLimitedError):
        client.get_incident(1)
    assert len(api.calls) == 1 and sleeps == []
    connect, read = api.calls[0].options["timeout"]
    assert 0 < read <= 3 and connect <= 3


def test_past_the_deadline_no_call_is_made(api, client):
    import time

    client.deadline = time.monotonic() - 1
    with pytest.raises(errors.TimeoutError_) as caught:
        client.list_teams()
    assert caught.value.retryable and "time allowed" in str(caught.value)
    assert api.calls == []


def test_500_on_a_post_is_not_retried(api, client, sleeps):
    api.add(500, {"detail": "A server error occurred."})
    with pytest.raises(errors.ServerError):
        client.create_incident(title="T", service=SERVICE)
    assert len(api.calls) == 1 and sleeps == []


def test_a_connection_failure_is_a_network_error(api, client):
    for _ in range(3):
        api.fail(requests.ConnectionError("Connection refused"))
    with pytest.raises(errors.NetworkError) as caught:
        client.list_teams()
    assert caught.value.retryable and caught.value.status is None
    assert "www.zenduty.com" in str(caught.value)
    assert len(api.calls) == 3


def test_a_timeout_is_a_timeout_error_and_a_post_is_not_repeated(api, client):
    api.fail(requests.ReadTimeout("read timed out"))
    with pytest.raises(errors.TimeoutError_) as caught:
        client.add_note(1, "x")
    assert caught.value.kind == "timeout"
    assert len(api.calls) == 1


# -- the token stays secret -------------------------------------------------------------------

def test_the_token_is_never_logged_nor_in_errors(api, client, caplog, monkeypatch):
    records = []
    monkeypatch.setattr(http, "call_observers", [records.append])
    api.add(401, {"detail": f"Invalid token {TOKEN}."})
    api.add(400, {"note": [f"bad note for {TOKEN}"]})
    api.add(500).add(500).add(500)
    api.fail(requests.ConnectionError(f"refused, token {TOKEN}"))
    raised = []
    with caplog.at_level(logging.DEBUG):
        for call in (client.list_teams, lambda: client.add_note(1, "x"), lambda: client.get_incident(1),
                     lambda: client.add_note(2, "y")):
            with pytest.raises(errors.ApiError) as caught:
                call()
            raised.append(caught.value)
    assert len(raised) == 4 and caplog.records
    assert TOKEN not in caplog.text
    for error in raised:
        assert TOKEN not in str(error) and TOKEN not in repr(error) and TOKEN not in error.message
    assert raised[0].message == "Invalid token ********."
    assert raised[1].field_errors == {"note": ["bad note for ********"]}
    assert records and all(TOKEN not in repr(r) for r in records)
    assert TOKEN not in repr(client)


def test_a_client_used_as_a_context_manager_closes_its_session(monkeypatch):
    from connections.zenduty import ZendutyClient

    closed = []
    with ZendutyClient("token-for-the-test") as client:
        monkeypatch.setattr(client.session, "close", lambda: closed.append(True))
        assert not closed
    assert closed == [True]
