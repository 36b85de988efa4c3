"""Simulated Xurrent REST API: collections, requests, notes, limits and faults, over real HTTP.

Reference: https://developer.xurrent.com/v1/requests/ (requests, notes),
https://developer.xurrent.com/v1/general/source (source), https://developer.xurrent.com/v1/service_instances/,
https://developer.4me.com/v1/general/filtering/ and https://developer.4me.com/v1/general/pagination
(filters, pagination; rate limits and errors on https://developer.xurrent.com/v1/).
"""
import http.client
import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from sandbox import faults
from sandbox.xurrent import demo
from sandbox.xurrent.models import Note, Request
from sandbox.xurrent.testing import XurrentApi

pytestmark = pytest.mark.django_db(transaction=True)

INSTANCES = [("Website", "Website (Production)", "in_production"), ("Website", "Website (Staging)", "being_prepared"),
             ("Payments API", "Payments API (Production)", "in_production"),
             ("Email", "Email (Production)", "in_production"), ("Intranet", "Intranet (Legacy)", "discontinued")]


@pytest.fixture
def acme(sandbox):
    made = demo.make_account("acme", "acme-client", "acme-secret", name="Acme")
    for service, name, status in INSTANCES:
        demo.add_service_instance(made.account, service, name, status=status, team=made.team)
    return made


@pytest.fixture
def api(sandbox, acme):
    return XurrentApi.connect(sandbox.url, "acme", "acme-client", "acme-secret")


def instance_id(name):
    from sandbox.xurrent.models import ServiceInstance

    return ServiceInstance.objects.get(name=name).pk


def incident(**overrides):
    data = {"subject": "Website is down", "category": "incident", "impact": "high",
            "service_instance_id": instance_id("Website (Production)")}
    data.update(overrides)
    return data


# -- account, me -------------------------------------------------------------------------------
def test_account_and_me(api, acme):
    assert api.get("/v1").json() == {}
    account = api.get("/v1/account").json()
    assert account["id"] == "acme" and account["name"] == "Acme"
    me = api.get("/v1/me").json()
    assert me["id"] == acme.person.pk and me["name"] == demo.API_PERSON_NAME


def test_unknown_paths_are_json_404s(api):
    response = api.get("/v1/no_such_thing")
    assert response.status_code == 404 and response.json() == {"message": "Not Found"}


# -- pagination ----------------------------------------------------------------------------------
def rels(response):
    return {link["rel"]: link["url"] for link in response.links.values()}


def test_walking_five_instances_two_per_page_follows_cursor_links(api, sandbox):
    first = api.get("/v1/service_instances", params={"per_page": 2})

    assert first.status_code == 200
    assert [i["name"] for i in first.json()] == ["Email (Production)", "Intranet (Legacy)"]  # by name
    assert first.headers["x-pagination-per-page"] == "2"
    assert first.headers["x-pagination-current-page"] == "1"
    assert first.headers["x-pagination-total-pages"] == "3"
    assert first.headers["x-pagination-total-entries"] == "5"
    assert set(rels(first)) == {"next"}  # no first/prev on page 1, never a last (§5.1)
    next_url = rels(first)["next"]
    assert next_url.startswith(f"{sandbox.url}/sandbox/xurrent/xurrent.com/v1/service_instances?")
    assert "search_after" in parse_qs(urlsplit(next_url).query)

    second = api.get(next_url)
    assert second.headers["x-pagination-current-page"] == "2"
    assert set(rels(second)) == {"first", "prev", "next"}
    third = api.get(rels(second)["next"])
    assert third.headers["x-pagination-current-page"] == "3"
    assert set(rels(third)) == {"first", "prev"}
    assert [i["name"] for i in third.json()] == ["Website (Staging)"]

    back = api.get(rels(third)["prev"])
    assert back.json() == second.json()
    assert api.get(rels(third)["first"]).json() == first.json()
    names = [i["name"] for page in (first, second, third) for i in page.json()]
    assert names == sorted(n for _, n, _ in INSTANCES)
    assert set(first.json()[0]) == {"id", "nodeID", "sourceID", "name", "status", "service", "support_team",
                                    "created_at", "updated_at"}


def test_the_link_header_is_lowercase_and_keeps_filters(api):
    response = api.get("/v1/service_instances/active", params={"per_page": 1, "status": "in_production"})
    assert "link" in [k for k in response.raw.headers.keys()]
    assert parse_qs(urlsplit(rels(response)["next"]).query)["status"] == ["in_production"]
    walked = api.walk("/v1/service_instances/active", per_page=1, status="in_production")
    assert len(walked) == 3


def test_per_page_defaults_to_20_and_must_lie_between_1_and_100(api):
    assert api.get("/v1/service_instances").headers["x-pagination-per-page"] == "20"
    assert api.get("/v1/service_instances", params={"per_page": 100}).status_code == 200
    too_small = api.get("/v1/service_instances", params={"per_page": 0})
    assert too_small.status_code == 400
    assert too_small.json() == {"message": "Parameter 'per_page' cannot be less than 1"}
    too_big = api.get("/v1/service_instances", params={"per_page": 101})
    assert too_big.status_code == 400 and "100" in too_big.json()["message"]


# -- filters, sort, fields ----------------------------------------------------------------------------
def test_service_instance_filters_predefined_sort_fields_and_detail(api):
    def names(path, **params):
        return [i["name"] for i in api.get(path, params=params).json()]

    assert names("/v1/service_instances", name="Website (Production)") == ["Website (Production)"]
    assert names("/v1/service_instances", name="website (production)") == []  # case-sensitive (§5.2)
    assert names("/v1/service_instances", status="being_prepared,discontinued") == ["Intranet (Legacy)",
                                                                                    "Website (Staging)"]
    assert names("/v1/service_instances", status="!in_production") == ["Intranet (Legacy)", "Website (Staging)"]
    assert names("/v1/service_instances", **{"status!": "in_production,being_prepared"}) == ["Intranet (Legacy)"]
    assert len(names("/v1/service_instances", created_at=">2020-01-01T00:00:00Z<2999-01-01T00:00:00Z")) == 5
    assert names("/v1/service_instances", created_at="<2020-01-01") == []
    assert names("/v1/service_instances", sourceID="") == names("/v1/service_instances")  # empty = blank
    assert names("/v1/service_instances", sourceID="!") == []  # present
    assert api.get("/v1/service_instances", params={"id": "abc"}).status_code == 400
    assert names("/v1/service_instances/inactive") == ["Intranet (Legacy)"]
    assert "Intranet (Legacy)" not in names("/v1/service_instances/active")
    website = instance_id("Website (Production)")
    assert names("/v1/service_instances", id=str(website)) == ["Website (Production)"]
    assert names("/v1/service_instances", sort="-name")[0] == "Website (Staging)"
    assert api.get("/v1/service_instances", params={"sort": "colour"}).status_code == 400

    slim = api.get("/v1/service_instances", params={"fields": "name,status"}).json()
    assert set(slim[0]) == {"id", "nodeID", "name", "status"}

    detail = api.get(f"/v1/service_instances/{website}").json()
    assert detail["name"] == "Website (Production)" and detail["service"]["name"] == "Website"
    assert detail["support_team"]["name"] == demo.DEMO_TEAM_NAME
    assert api.get(f"/v1/service_instances/{detail['nodeID']}").json()["id"] == website


# -- requests ---------------------------------------------------------------------------------------------
def test_creating_a_request_answers_201_with_all_fields(api, acme):
    response = api.post("/v1/requests", json=incident(sourceID="ZD-1", source="zenduty",
                                                      note="Raised from Zenduty"))

    assert response.status_code == 201
    body = response.json()
    assert body["subject"] == "Website is down" and body["category"] == "incident" and body["impact"] == "high"
    assert body["status"] == "assigned"  # default (§3.2)
    assert body["team"]["name"] == demo.DEMO_TEAM_NAME  # from the service instance
    assert body["service_instance"]["name"] == "Website (Production)"
    assert body["requested_by"]["id"] == body["requested_for"]["id"] == acme.person.pk
    assert body["source"] == "zenduty" and body["sourceID"] == "ZD-1"
    assert body["completion_reason"] is None and body["completed_at"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", body["created_at"])
    assert "note" not in body
    assert Note.objects.get(request_id=body["id"]).text == "Raised from Zenduty"
    assert api.get(f"/v1/requests/{body['id']}").json() == body
    assert api.get(f"/v1/requests/{body['nodeID']}").json()["id"] == body["id"]


def test_source_falls_back_to_the_source_header_then_user_agent_then_xurrent_api(api):
    with_header = api.post("/v1/requests", json=incident(), headers={"X-Xurrent-Source": "portal"}).json()
    with_agent = api.post("/v1/requests", json=incident(), headers={"User-Agent": "my-agent/2.0"}).json()
    assert (with_header["source"], with_agent["source"]) == ("portal", "my-agent/2.0")
    # http.client sends no User-Agent at all (requests/urllib3 always add one).
    parts = urlsplit(api.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request("POST", "/sandbox/xurrent/xurrent.com/v1/requests", body=json.dumps(incident()),
                       headers={"Authorization": api.session.headers["Authorization"], "X-Xurrent-Account": "acme",
                                "Content-Type": "application/json"})
    bare = json.loads(connection.getresponse().read())
    connection.close()
    assert bare["source"] == "Xurrent API"


def test_validation_errors_are_field_message_pairs(api):
    response = api.post("/v1/requests", json={"impact": "high"})

    assert response.status_code == 422
    assert response.json() == {"message": "Validation Failed", "errors": [["subject", "Subject can't be blank"],
                                                                          ["category", "Category can't be blank"]]}
    bad_enum = api.post("/v1/requests", json=incident(impact="catastrophic")).json()
    assert bad_enum["errors"] == [["impact", "Impact is not included in the list"]]
    no_impact = api.post("/v1/requests", json=incident(impact=None)).json()
    assert no_impact["errors"] == [["impact", "Impact can't be blank"]]  # required for incidents
    assert api.post("/v1/requests", json=incident(category="rfi", impact=None)).status_code == 201
    no_reason = api.post("/v1/requests", json=incident(status="completed")).json()
    assert no_reason["errors"] == [["completion_reason", "Completion reason can't be blank"]]
    no_instance = api.post("/v1/requests", json=incident(service_instance_id=None)).json()
    assert no_instance["team"]["name"] == demo.DEMO_TEAM_NAME  # the account's service desk team
    assert api.post("/v1/requests", json=incident(service_instance_id=999999)).json()["errors"] == [
        ["service_instance", "Service instance is invalid"]]
    broken = api.post("/v1/requests", data="{not json", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json()["message"].startswith("Syntax error in JSON")
    assert Request.objects.count() == 2


def test_requests_filter_on_source_source_id_and_status(api):
    mine = api.post("/v1/requests", json=incident(source="zenduty", sourceID="ZD-7")).json()
    api.post("/v1/requests", json=incident(source="zenduty", sourceID="ZD-8"))
    api.post("/v1/requests", json=incident(source="other", sourceID="ZD-7"))

    found = api.get("/v1/requests", params={"source": "zenduty", "sourceID": "ZD-7"}).json()

    assert [r["id"] for r in found] == [mine["id"]]
    assert found[0]["sourceID"] == "ZD-7" and "source" not in found[0]  # not a default collection field
    all_ids = [r["id"] for r in api.get("/v1/requests").json()]
    assert all_ids == sorted(all_ids, reverse=True)  # newest first (§3.1)
    api.patch(f"/v1/requests/{mine['id']}", json={"status": "completed", "completion_reason": "solved"})
    assert [r["id"] for r in api.get("/v1/requests/completed").json()] == [mine["id"]]
    assert mine["id"] not in [r["id"] for r in api.get("/v1/requests/open").json()]
    assert [r["id"] for r in api.get("/v1/requests", params={"status": "completed"}).json()] == [mine["id"]]
    assert api.get("/v1/requests", params={"id": f"!{mine['id']}"}).json()[0]["id"] != mine["id"]
    si = instance_id("Website (Production)")
    assert len(api.get("/v1/requests", params={"service_instance": si}).json()) == 3
    assert api.get("/v1/requests", params={"fields": "note"}).status_code == 400  # write-only


def test_every_documented_predefined_request_filter_answers(api):
    waiting = api.post("/v1/requests", json=incident()).json()
    api.post("/v1/requests", json=incident())
    api.patch(f"/v1/requests/{waiting['id']}", json={"status": "waiting_for_customer"})

    assert [r["id"] for r in api.get("/v1/requests/waiting_for_me").json()] == [waiting["id"]]
    for name in ("assigned_to_my_team", "problem_management_review", "sla_accountability"):
        response = api.get(f"/v1/requests/{name}")
        assert response.status_code == 200 and response.json() == []
    assert api.get("/v1/requests/not_a_filter").status_code == 404


def test_patch_changes_fields_and_adds_notes(api):
    created = api.post("/v1/requests", json=incident()).json()

    response = api.patch(f"/v1/requests/{created['id']}", json={"impact": "top", "note": "Escalated",
                                                                "internal_note": "Pager went off"})

    assert response.status_code == 200
    assert response.json()["impact"] == "top"
    notes = api.get(f"/v1/requests/{created['id']}/notes").json()
    assert [(n["text"], n["internal"]) for n in notes] == [("Escalated", False), ("Pager went off", True)]
    assert notes[0]["person"]["name"] == demo.API_PERSON_NAME
    completed = api.request("PUT", f"/v1/requests/{created['id']}",
                            json={"status": "completed", "completion_reason": "solved"}).json()
    assert completed["status"] == "completed" and completed["completion_reason"] == "solved"
    assert completed["completed_at"] is not None and completed["next_target_at"] is None
    reopened = api.patch(f"/v1/requests/{created['id']}", json={"status": "in_progress"}).json()
    assert reopened["completion_reason"] is None and reopened["reopen_count"] == 1
    assert api.patch(f"/v1/requests/{created['id']}", json={"status": None}).json()["errors"] == [
        ["status", "Status can't be blank"]]
    bad = api.patch(f"/v1/requests/{created['id']}", json={"status": "finished"})
    assert bad.status_code == 422 and bad.json()["errors"] == [["status", "Status is not included in the list"]]


def test_notes_post_answers_201_with_id_and_location(api):
    created = api.post("/v1/requests", json=incident()).json()

    response = api.post(f"/v1/requests/{created['id']}/notes", json={"text": "Looking into it", "internal": True})

    assert response.status_code == 201
    note_id = response.json()["id"]
    assert response.json() == {"id": note_id}
    assert response.headers["location"].endswith(f"/sandbox/xurrent/xurrent.com/v1/notes/{note_id}")
    note = api.get(response.headers["location"]).json()
    assert note["text"] == "Looking into it" and note["internal"] is True
    assert api.get(f"/v1/requests/{created['id']}/notes/internal").json()[0]["id"] == note_id
    assert api.get(f"/v1/requests/{created['id']}/notes/public").json() == []
    blank = api.post(f"/v1/requests/{created['id']}/notes", json={"text": "  "})
    assert blank.status_code == 422 and blank.json()["errors"] == [["text", "Text can't be blank"]]


def test_notes_are_paginated_oldest_first(api):
    created = api.post("/v1/requests", json=incident()).json()
    for n in range(5):
        api.post(f"/v1/requests/{created['id']}/notes", json={"text": f"note {n}"})

    texts = [n["text"] for n in api.walk(f"/v1/requests/{created['id']}/notes", per_page=2)]

    assert texts == [f"note {n}" for n in range(5)]


def test_records_of_another_account_are_not_found(api, sandbox):
    created = api.post("/v1/requests", json=incident()).json()
    demo.make_account("other", "other-client", "other-secret")
    other = XurrentApi.connect(sandbox.url, "other", "other-client", "other-secret")

    assert other.get(f"/v1/requests/{created['id']}").status_code == 404
    assert other.patch(f"/v1/requests/{created['id']}", json={"impact": "low"}).status_code == 404
    assert other.get("/v1/requests").json() == []


# -- rate limits and faults --------------------------------------------------------------------------------
def test_past_the_budget_calls_get_429_with_retry_after(api, acme):
    knobs = acme.account.simulator_settings()
    knobs.rate_limit = 3
    knobs.save()

    statuses = [api.get("/v1/me") for _ in range(4)]

    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in statuses] == ["2", "1", "0", "0"]
    limited = statuses[-1]
    assert limited.json() == {"message": "Too Many Requests",
                              "documentation_url": "https://developer.xurrent.com/v1/#rate-limiting"}
    assert limited.headers["x-ratelimit-limit"] == "3"
    assert 3500 < int(limited.headers["retry-after"]) <= 3600
    assert int(limited.headers["x-ratelimit-reset"]) > 0


def test_rate_limit_status_costs_no_hit(api, acme):
    knobs = acme.account.simulator_settings()
    knobs.rate_limit = 2
    knobs.save()
    api.get("/v1/me")
    for _ in range(3):
        response = api.get("/v1/rate_limit")
        assert response.status_code == 200 and response.headers["x-ratelimit-remaining"] == "1"
        body = response.json()
        assert (body["limit"], body["remaining"]) == (2, 1)
        assert body["reset"] == int(response.headers["x-ratelimit-reset"])


def test_the_short_burst_limiter_can_be_switched_on(api, acme):
    knobs = acme.account.simulator_settings()
    knobs.burst_limit, knobs.burst_window_seconds = 2, 60
    knobs.save()
    assert [api.get("/v1/me").status_code for _ in range(3)] == [200, 200, 429]


def test_an_injected_500_answers_once_then_the_api_works_again(api):
    faults.inject("xurrent", "error_500", count=1)

    failed = api.get("/v1/me")
    ok = api.get("/v1/me")

    assert failed.status_code == 500 and failed.json() == {"message": "Internal Server Error"}
    assert "x-ratelimit-remaining" in failed.headers
    assert ok.status_code == 200


def test_an_injected_429_carries_retry_after(api):
    faults.inject("xurrent", "rate_limit_429", count=1, path_prefix="/v1/requests", retry_after=7)

    assert api.get("/v1/me").status_code == 200  # other paths are untouched
    limited = api.get("/v1/requests")

    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert limited.json()["message"] == "Too Many Requests"
    assert api.get("/v1/requests").status_code == 200


@pytest.fixture
def slept(monkeypatch):
    """The seconds latency and timeout faults sleep, recorded instead of waited."""
    seen = []
    monkeypatch.setattr(faults, "_sleep", seen.append)
    return seen


def test_an_injected_latency_delays_the_call_which_then_answers(api, slept):
    faults.inject("xurrent", "latency", count=1, path_prefix="/v1/me", latency_ms=1500)

    delayed = api.get("/v1/me")

    assert slept == [1.5]
    assert delayed.status_code == 200 and delayed.json()["name"] == demo.API_PERSON_NAME
    api.get("/v1/me")
    assert slept == [1.5]  # used up


def test_an_injected_timeout_hangs_then_answers_504_as_a_gateway_would(api, slept):
    faults.inject("xurrent", "timeout", count=1, path_prefix="/v1/requests")
    faults.inject("xurrent", "timeout", count=1, path_prefix="/v1/requests", latency_ms=2000)

    first, second = api.get("/v1/requests"), api.get("/v1/requests")

    assert slept == [30.0, 2.0]  # 30 s unless set: longer than any client's read timeout
    for response in (first, second):
        assert response.status_code == 504 and response.json() == {"message": "Gateway timeout"}
    assert api.get("/v1/requests").status_code == 200


def test_post_with_an_unknown_method_is_405(api):
    response = requests.delete(api.url("/v1/requests"), headers=api.session.headers)
    assert response.status_code == 405
