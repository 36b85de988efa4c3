"""Contract tests of the simulated Zenduty REST API over real HTTP.

Shapes and behaviours are those of Zenduty's API documentation and its published
examples (https://apidocs.zenduty.com).
"""
import re
import time

import pytest
import requests

from sandbox import faults
from sandbox.models import FaultKind
from sandbox.zenduty import demo
from sandbox.zenduty.models import Incident, SimulatorSettings

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "test-zenduty-token-0001"
SHORT_ID = re.compile(r"^[23456789A-HJ-NP-Za-km-z]{22}$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


_open_sessions: list = []


@pytest.fixture(autouse=True)
def _close_sessions():
    """Close keep-alive connections before the live server's test ends, or its
    request threads close the shared database connection after it."""
    yield
    while _open_sessions:
        _open_sessions.pop().close()


class Api:
    """requests against the simulator, as a Zenduty client would send them."""

    def __init__(self, base: str, token: str | None = TOKEN, keyword: str = "Token"):
        self.base = base + "/sandbox/zenduty"
        self.session = requests.Session()
        _open_sessions.append(self.session)
        self.session.headers["Content-Type"] = "application/json"
        if token is not None:
            self.session.headers["Authorization"] = f"{keyword} {token}"

    def __getattr__(self, method):
        def call(path, **kw):
            url = path if path.startswith("http") else self.base + path
            return self.session.request(method.upper(), url, timeout=10, **kw)
        return call


@pytest.fixture
def world():
    return demo.make_account(TOKEN)


@pytest.fixture
def api(sandbox, world, zenduty_per_minute_limits_only):
    """A client for the contract tests, which send several calls a second (see the fixture)."""
    return Api(sandbox.url)


@pytest.fixture
def api_with_default_limits(sandbox, world):
    """A client of the simulator as it starts: both kinds of limit on, as on the real Zenduty."""
    return Api(sandbox.url)


def create(api, world, title="Checkout down", **fields):
    response = api.post("/api/incidents/", json={"title": title, "service": str(world.website.unique_id), **fields})
    assert response.status_code == 201, response.text
    return response.json()


# -- authentication (§2.1) ------------------------------------------------------------------------------
def test_missing_token_is_401_not_provided(sandbox, world):
    response = Api(sandbox.url, token=None).get("/api/account/teams/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    assert response.headers["WWW-Authenticate"] == "Token"


def test_bearer_keyword_counts_as_no_credentials(sandbox, world):
    response = Api(sandbox.url, keyword="Bearer").get("/api/account/teams/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_wrong_token_is_401_invalid(sandbox, world):
    response = Api(sandbox.url, token="nope").get("/api/account/teams/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


def test_token_keyword_is_case_insensitive(sandbox, world):
    assert Api(sandbox.url, keyword="token").get("/api/account/teams/").status_code == 200
    assert Api(sandbox.url, keyword="TOKEN").get("/api/account/teams/").status_code == 200


def test_tokens_are_stored_only_as_hashes(world):
    key = world.account.api_keys.get()
    assert TOKEN not in key.token_hash and len(key.token_hash) == 64


def test_a_token_sees_only_its_own_account(sandbox, world, api):
    other = demo.make_account("other-account-token", name="Other")
    response = api.get(f"/api/account/teams/{other.operations.unique_id}/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found."}


# -- teams, services, priorities (§5) -----------------------------------------------------------------------
def test_teams_list_shape(api, world):
    teams = api.get("/api/account/teams/").json()
    assert [t["name"] for t in teams] == ["Operations", "Platform"]
    ops = teams[0]
    assert UUID4.match(ops["unique_id"]) and re.match(r"^\d{4}-\d\d-\d\d$", ops["creation_date"])
    assert ops["account"] == str(world.account.unique_id)
    assert ops["owner"] == world.api_user.username and len(world.api_user.username) == 25
    member = ops["members"][0]
    assert set(member) == {"unique_id", "team", "user", "joining_date", "role"}
    assert set(member["user"]) == {"username", "first_name", "last_name", "email"}
    assert ops["roles"][0]["title"] == "Incident Commander"
    assert api.get(f"/api/account/teams/{ops['unique_id']}/").json()["name"] == "Operations"


def test_team_create_update_delete(api):
    created = api.post("/api/account/teams/", json={"name": "Security"})
    assert created.status_code == 201
    team = created.json()
    assert team["roles"][0]["title"] == "Incident Commander" and team["members"][0]["role"] == 1
    assert api.put(f"/api/account/teams/{team['unique_id']}/", json={"name": "SecOps"}).json()["name"] == "SecOps"
    assert api.post("/api/account/teams/", json={}).json() == {"name": ["This field is required."]}
    assert api.delete(f"/api/account/teams/{team['unique_id']}/").status_code == 204
    assert api.get(f"/api/account/teams/{team['unique_id']}/").status_code == 404


def test_priorities_path_is_singular_and_team_is_uuid_on_read_but_int_on_write(api, world):
    team = str(world.operations.unique_id)
    listed = api.get(f"/api/account/teams/{team}/priority/").json()
    assert [p["name"] for p in listed] == ["P1", "P2", "P3", "P4", "P5"]
    assert list(listed[0]) == ["unique_id", "team", "description", "name", "creation_date", "color"]
    assert listed[0]["team"] == team and listed[0]["description"] == "Critical"
    assert api.get(f"/api/account/teams/{team}/priorities/").status_code == 404

    created = api.post(f"/api/account/teams/{team}/priority/", json={"name": "P6"})
    assert created.status_code == 201
    body = created.json()
    assert list(body) == ["unique_id", "name", "description", "creation_date", "color", "team"]
    assert isinstance(body["team"], int) and body["color"] == "" and body["description"] == ""
    got = api.get(f"/api/account/teams/{team}/priority/{body['unique_id']}/").json()
    assert got["team"] == team
    updated = api.put(f"/api/account/teams/{team}/priority/{body['unique_id']}/", json={"color": "geekblue"})
    assert updated.json()["color"] == "geekblue" and updated.json()["name"] == "P6"
    assert isinstance(updated.json()["team"], int)
    bad = api.post(f"/api/account/teams/{team}/priority/", json={"name": "P7", "color": "pink"})
    assert bad.status_code == 400 and bad.json() == {"color": ['"pink" is not a valid choice.']}
    assert api.delete(f"/api/account/teams/{team}/priority/{body['unique_id']}/").status_code == 204


def test_platform_team_has_only_three_priorities(api, world):
    listed = api.get(f"/api/account/teams/{world.platform.unique_id}/priority/").json()
    assert len(listed) == 3


def test_services_list_and_create(api, world):
    team = str(world.operations.unique_id)
    services = api.get(f"/api/account/teams/{team}/services/").json()
    assert [s["name"] for s in services] == ["Website", "Payments API", "Email"]
    website = services[0]
    assert website["team"] == team and website["team_priority"] == str(world.priorities[2].unique_id)
    assert website["escalation_policy"] == str(world.escalation_policy.unique_id)
    assert website["sla"] == str(world.sla.unique_id)
    assert {"acknowledgement_timeout_enabled", "collation", "collation_time", "under_maintenance"} <= set(website)

    missing = api.post(f"/api/account/teams/{team}/services/", json={"name": "Search"})
    assert missing.status_code == 400
    assert missing.json() == {"escalation_policy": ["This field is required."], "sla": ["This field is required."],
                              "team_priority": ["This field is required."]}
    created = api.post(f"/api/account/teams/{team}/services/", json={
        "name": "Search", "escalation_policy": website["escalation_policy"], "sla": website["sla"],
        "team_priority": website["team_priority"]})
    assert created.status_code == 201 and created.json()["created_by"] == world.api_user.username
    detail = api.get(f"/api/account/teams/{team}/services/{created.json()['unique_id']}/")
    assert detail.json()["name"] == "Search"


def test_escalation_policies_and_slas_can_be_listed(api, world):
    team = str(world.operations.unique_id)
    policies = api.get(f"/api/account/teams/{team}/escalation_policies/").json()
    assert policies[0]["rules"][0]["targets"] == [{"target_type": 2, "target_id": world.ui_user.username}]
    assert api.get(f"/api/account/teams/{team}/sla/").json()[0]["acknowledge_time"] == 15


# -- applications and integrations (§5.4) ---------------------------------------------------------------------
def test_applications_include_outgoing_webhooks_and_api(api):
    apps = {a["name"]: a for a in api.get("/api/account/applications/").json()}
    assert {"Outgoing Webhooks", "API", "Generic Integration"} <= set(apps)
    assert UUID4.match(apps["API"]["unique_id"]) and apps["API"]["extension"] == "api"


def test_integration_create_list_update_delete(api, world):
    apps = {a["name"]: a["unique_id"] for a in api.get("/api/account/applications/").json()}
    base = f"/api/account/teams/{world.operations.unique_id}/services/{world.website.unique_id}/integrations/"
    assert api.get(base).json() == []
    missing = api.post(base, json={"name": "x"})
    assert missing.status_code == 400 and missing.json() == {"application": ["This field is required."]}

    created = api.post(base, json={"name": "Xurrent: Website", "application": apps["Outgoing Webhooks"],
                                   "integration_type": 1, "summary": "portal"})
    assert created.status_code == 201
    body = created.json()
    assert UUID4.match(body["integration_key"]) and body["integration_type"] == 1 and body["is_enabled"] is True
    assert body["application_reference"]["name"] == "Outgoing Webhooks"
    assert body["create_incidents_for"] == 1 and body["default_urgency"] == 1
    assert body["webhook_url"].endswith(f"/{body['integration_key']}/")
    assert "signing_secret" not in body and "outgoing_url" not in body  # set in Zenduty's screens only

    api_integration = api.post(base, json={"application": apps["API"]}).json()
    assert api_integration["name"] == "API" and api_integration["integration_type"] == 0
    assert api_integration["webhook_url"] == (
        f"{api.base}/api/events/{api_integration['integration_key']}/")

    assert [i["name"] for i in api.get(base).json()] == ["Xurrent: Website", "API"]
    put = api.put(base + body["unique_id"] + "/", json={"is_enabled": False, "application": apps["Outgoing Webhooks"]})
    assert put.status_code == 200 and put.json()["is_enabled"] is False
    patch = api.patch(base + body["unique_id"] + "/", json={"is_enabled": True})
    assert patch.json()["is_enabled"] is True
    assert api.get(base + body["unique_id"] + "/").json()["summary"] == "portal"
    assert api.delete(base + body["unique_id"] + "/").status_code == 204
    assert api.get(base + body["unique_id"] + "/").status_code == 404


# -- incidents (§3) -------------------------------------------------------------------------------------------
def test_incident_create_201_full_shape(api, world):
    body = create(api, world, summary="Customers cannot pay")
    assert body["incident_number"] == 1 and body["status"] == 1 and body["urgency"] == 1
    assert SHORT_ID.match(body["unique_id"]) and SHORT_ID.match(body["incident_key"])
    assert ISO_Z.match(body["creation_date"])
    assert body["service"] == str(world.website.unique_id)
    assert body["service_object"]["name"] == "Website"
    assert body["service_object"]["team"] == str(world.operations.unique_id)
    assert body["team_priority"] == str(world.priorities[2].unique_id)  # the service default
    assert body["team_priority_object"] == {"unique_id": body["team_priority"], "name": "P3",
                                            "description": "Moderate", "color": "orange"}
    assert body["escalation_policy_object"]["unique_id"] == body["escalation_policy"]
    assert body["sla_object"]["name"] == "Operations SLA"
    assert body["assigned_to"] == world.ui_user.username and body["assigned_to_name"] == "Dwight Schrute"
    assert body["acknowledged_date"] is None and body["resolved_date"] is None
    assert body["summary"] == "Customers cannot pay" and body["tags"] == [] and body["merged_with"] is None
    assert create(api, world, "Second")["incident_number"] == 2


def test_incident_create_with_priority(api, world):
    body = create(api, world, team_priority=str(world.priorities[0].unique_id))
    assert body["team_priority_object"]["name"] == "P1"


def test_incident_create_validation_errors(api, world):
    response = api.post("/api/incidents/", json={})
    assert response.status_code == 400
    assert response.json() == {"title": ["This field is required."], "service": ["This field is required."]}
    blank = api.post("/api/incidents/", json={"title": " ", "service": str(world.website.unique_id)})
    assert blank.json() == {"title": ["This field may not be blank."]}
    unknown = api.post("/api/incidents/", json={"title": "x", "service": "8b1f0e6a-0000-4000-8000-000000000000"})
    assert unknown.status_code == 400 and list(unknown.json()) == ["service"]
    other_team = api.post("/api/incidents/", json={"title": "x", "service": str(world.website.unique_id),
                                                   "team_priority": str(world.platform_priorities[0].unique_id)})
    assert other_team.status_code == 400 and list(other_team.json()) == ["team_priority"]
    broken = api.post("/api/incidents/", data="{not json")
    assert broken.status_code == 400 and broken.json()["detail"].startswith("JSON parse error")


def test_get_by_number_and_by_unique_id(api, world):
    body = create(api, world)
    by_number = api.get(f"/api/incidents/{body['incident_number']}/")
    by_uid = api.get(f"/api/incidents/{body['unique_id']}/")
    assert by_number.status_code == by_uid.status_code == 200
    assert by_number.json() == by_uid.json()
    assert api.get("/api/incidents/999/").json() == {"detail": "Not Found."}


def test_patch_acknowledge_then_resolve_stamps_dates(api, world):
    body = create(api, world)
    acked = api.patch(f"/api/incidents/{body['unique_id']}/", json={"status": 2})
    assert acked.status_code == 200
    assert acked.json()["status"] == 2 and ISO_Z.match(acked.json()["acknowledged_date"])
    assert acked.json()["resolved_date"] is None
    resolved = api.patch(f"/api/incidents/{body['incident_number']}/", json={"status": 3}).json()
    assert resolved["status"] == 3 and ISO_Z.match(resolved["resolved_date"])
    assert resolved["acknowledged_date"] == acked.json()["acknowledged_date"]  # kept after resolution
    reopen = api.patch(f"/api/incidents/{body['unique_id']}/", json={"status": 1})
    assert reopen.status_code == 400 and list(reopen.json()) == ["status"]
    invalid = api.patch(f"/api/incidents/{body['unique_id']}/", json={"status": 7})
    assert invalid.json() == {"status": ['"7" is not a valid choice.']}


def test_patch_other_fields_and_put(api, world):
    body = create(api, world)
    changed = api.patch(f"/api/incidents/{body['unique_id']}/", json={
        "title": "New title", "summary": "More", "urgency": 0,
        "team_priority": str(world.priorities[0].unique_id)}).json()
    assert (changed["title"], changed["summary"], changed["urgency"]) == ("New title", "More", 0)
    assert changed["team_priority_object"]["name"] == "P1" and changed["status"] == 1
    put = api.put(f"/api/incidents/{body['unique_id']}/", json={
        "title": "Via PUT", "summary": "", "status": 2, "service": str(world.website.unique_id)})
    assert put.status_code == 200 and put.json()["title"] == "Via PUT" and put.json()["status"] == 2


def test_filter_pages_with_absolute_next_links(api, world):
    for n in range(5):
        create(api, world, f"Incident {n}")
    first = api.post("/api/incidents/filter/?page=1&page_size=2", json={"status": 0})
    assert first.status_code == 200
    page = first.json()
    assert page["count"] == 5 and page["previous"] is None
    assert [r["incident_number"] for r in page["results"]] == [5, 4]  # newest first
    assert page["next"] == f"{api.base}/api/incidents/filter/?page=2&page_size=2"
    second = api.post(page["next"], json={"status": 0}).json()
    assert [r["incident_number"] for r in second["results"]] == [3, 2]
    assert second["previous"].startswith("http://") and "page_size=2" in second["previous"]
    third = api.post(second["next"], json={"status": 0}).json()
    assert [r["incident_number"] for r in third["results"]] == [1] and third["next"] is None
    slim = page["results"][0]
    assert "summary" not in slim and "urgency" not in slim and "team_priority" not in slim
    assert slim["service_object"] == {"name": "Website", "unique_id": str(world.website.unique_id),
                                      "team": str(world.operations.unique_id), "team_name": "Operations"}
    assert slim["team_priority_object"]["name"] == "P3"
    assert api.post("/api/incidents/filter/?page=9&page_size=2", json={"status": 0}).status_code == 404


def test_filter_by_status_service_and_priority(api, world):
    a = create(api, world, "a")
    create(api, world, "b", team_priority=str(world.priorities[0].unique_id))
    api.patch(f"/api/incidents/{a['unique_id']}/", json={"status": 3})
    email = api.post("/api/incidents/", json={"title": "c", "service": str(world.services["Email"].unique_id)})
    assert email.status_code == 201

    def numbers(body):
        return [r["incident_number"] for r in api.post("/api/incidents/filter/", json=body).json()["results"]]

    assert numbers({"status": -1}) == [3, 2]
    assert numbers({}) == [3, 2]  # status defaults to 1, triggered
    assert numbers({"status": 3}) == [1]
    assert numbers({"status": 0, "service_ids": [str(world.website.unique_id)]}) == [2, 1]
    assert numbers({"status": 0, "priority_ids": [str(world.priorities[0].unique_id)]}) == [2]
    assert numbers({"status": 0, "team_ids": [str(world.platform.unique_id)]}) == []
    assert numbers({"status": 0, "from_date": "2000-01-01", "to_date": []}) == [3, 2, 1]
    bad = api.post("/api/incidents/filter/", json={"status": 5})
    assert bad.status_code == 400 and list(bad.json()) == ["status"]


# -- notes (§4) ---------------------------------------------------------------------------------------------
def test_notes_post_201_and_paginated_list_oldest_first(api, world):
    incident = create(api, world)
    number = incident["incident_number"]
    created = api.post(f"/api/incidents/{number}/note/", json={"note": "Looking into it"})
    assert created.status_code == 201
    note = created.json()
    assert list(note) == ["unique_id", "incident", "user", "note", "user_name", "creation_date"]
    assert SHORT_ID.match(note["unique_id"]) and note["incident"] == number
    assert note["user"] == world.api_user.username and note["user_name"] == "Michael Scott"
    for n in range(11):
        api.post(f"/api/incidents/{incident['unique_id']}/note/", json={"note": f"update {n}"})
    page = api.get(f"/api/incidents/{number}/note/").json()
    assert page["count"] == 12 and len(page["results"]) == 10 and page["previous"] is None
    assert page["results"][0]["note"] == "Looking into it"
    rest = api.get(page["next"]).json()
    assert [n["note"] for n in rest["results"]] == ["update 9", "update 10"] and rest["next"] is None
    assert api.post(f"/api/incidents/{number}/note/", json={}).json() == {"note": ["This field is required."]}


def test_notes_list_as_a_plain_list_when_the_settings_say_so(api, world):
    """The OpenAPI example's form (§4): every note, oldest first, no envelope; a page number changes nothing."""
    number = create(api, world)["incident_number"]
    for n in range(12):
        api.post(f"/api/incidents/{number}/note/", json={"note": f"update {n}"})
    paged = api.get(f"/api/incidents/{number}/note/").json()
    SimulatorSettings.objects.filter(pk=1).update(note_list_shape="list")
    listed = api.get(f"/api/incidents/{number}/note/")
    assert listed.status_code == 200 and isinstance(listed.json(), list)
    assert [n["note"] for n in listed.json()] == [f"update {n}" for n in range(12)]
    assert listed.json()[:10] == paged["results"]  # the same note shape in both forms
    assert api.get(f"/api/incidents/{number}/note/?page=2").json() == listed.json()
    assert api.get("/api/incidents/999/note/").status_code == 404
    assert isinstance(api.post(f"/api/incidents/{number}/note/", json={"note": "x"}).json(), dict)


def test_note_get_put_delete(api, world):
    number = create(api, world)["incident_number"]
    uid = api.post(f"/api/incidents/{number}/note/", json={"note": "first"}).json()["unique_id"]
    url = f"/api/incidents/{number}/note/{uid}/"
    assert api.get(url).json()["note"] == "first"
    assert api.put(url, json={"note": "edited"}).json()["note"] == "edited"
    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404


# -- rate limits and faults (§9) ------------------------------------------------------------------------------
def test_the_16th_incident_post_in_a_minute_is_throttled(api, world):
    for n in range(15):
        create(api, world, f"burst {n}")
    response = api.post("/api/incidents/", json={"title": "one too many", "service": str(world.website.unique_id)})
    assert response.status_code == 429
    assert response.json() == {"detail": "Request was throttled."}
    assert Incident.objects.count() == 15


def test_incident_reads_are_limited_to_30_a_minute(api, world):
    number = create(api, world)["incident_number"]
    statuses = [api.get(f"/api/incidents/{number}/").status_code for _ in range(31)]
    assert statuses[:30] == [200] * 30 and statuses[30] == 429
    assert api.get("/api/account/teams/").status_code == 200  # other endpoints are not limited


def test_rate_limits_can_be_switched_off(api, world):
    SimulatorSettings.objects.update_or_create(pk=1, defaults={"rate_limits": False})
    for n in range(16):
        create(api, world, f"burst {n}")


def test_per_second_limits_are_on_by_default(api_with_default_limits, world):
    api = api_with_default_limits
    create(api, world)
    response = api.post("/api/incidents/", json={"title": "again", "service": str(world.website.unique_id)})
    assert response.status_code == 429 and response.json() == {"detail": "Request was throttled."}  # 1 POST/s
    assert Incident.objects.count() == 1
    number = Incident.objects.get().incident_number
    reads = [api.get(f"/api/incidents/{number}/").status_code for _ in range(4)]
    assert reads == [200, 200, 200, 429]  # 3 incident GETs a second
    time.sleep(1.1)  # the next second's window: the per-minute limits still have room
    assert api.get(f"/api/incidents/{number}/").status_code == 200
    assert api.post("/api/incidents/", json={"title": "later", "service": str(world.website.unique_id)}
                    ).status_code == 201


def test_per_second_limits_can_be_switched_off_alone(api, world):
    # The `api` fixture's settings: per-minute limits only.
    statuses = [api.post("/api/incidents/", json={"title": f"t{n}", "service": str(world.website.unique_id)}
                         ).status_code for n in range(3)]
    assert statuses == [201, 201, 201]


def test_injected_fault_answers_500_once_then_ok(api, world):
    faults.inject("zenduty", FaultKind.ERROR_500, path_prefix="/api/incidents/", method="POST")
    first = api.post("/api/incidents/", json={"title": "x", "service": str(world.website.unique_id)})
    assert first.status_code == 500 and first.json() == {"detail": "A server error occurred."}
    assert api.post("/api/incidents/", json={"title": "x", "service": str(world.website.unique_id)}).status_code == 201


def test_injected_429_fault_looks_like_the_real_throttle(api, world):
    faults.inject("zenduty", FaultKind.RATE_LIMIT_429, path_prefix="/api/account/", retry_after=5)
    injected = api.get("/api/account/teams/")
    for n in range(15):
        create(api, world, f"burst {n}")
    throttled = api.post("/api/incidents/", json={"title": "one too many", "service": str(world.website.unique_id)})

    assert injected.status_code == throttled.status_code == 429
    assert injected.json() == throttled.json() == {"detail": "Request was throttled."}
    # §9.1: no rate-limit or Retry-After headers are documented; the throttle sends none, nor does the fault.
    assert "Retry-After" not in injected.headers and "Retry-After" not in throttled.headers


@pytest.fixture
def slept(monkeypatch):
    """The seconds latency and timeout faults sleep, recorded instead of waited."""
    seen = []
    monkeypatch.setattr(faults, "_sleep", seen.append)
    return seen


def test_injected_latency_delays_the_call_which_then_answers(api, world, slept):
    faults.inject("zenduty", FaultKind.LATENCY, path_prefix="/api/account/teams/", method="GET", latency_ms=1500)

    delayed = api.get("/api/account/teams/")

    assert slept == [1.5]
    assert delayed.status_code == 200 and [t["name"] for t in delayed.json()] == ["Operations", "Platform"]
    api.get("/api/account/teams/")
    assert slept == [1.5]  # used up


def test_injected_timeout_hangs_then_answers_504_and_creates_nothing(api, world, slept):
    faults.inject("zenduty", FaultKind.TIMEOUT, path_prefix="/api/incidents/", method="POST", latency_ms=2000)

    response = api.post("/api/incidents/", json={"title": "x", "service": str(world.website.unique_id)})

    assert slept == [2.0]
    assert response.status_code == 504 and response.json() == {"message": "Gateway timeout"}
    assert not Incident.objects.exists()
    faults.inject("zenduty", FaultKind.TIMEOUT, path_prefix="/api/account/")
    assert api.get("/api/account/teams/").status_code == 504
    assert slept == [2.0, 30.0]  # 30 s unless set: longer than any client's read timeout


def test_unknown_paths_and_methods(api):
    assert api.get("/api/nothing-here/").json() == {"detail": "Not Found."}
    response = api.delete("/api/account/applications/")
    assert response.status_code == 405 and response.json() == {"detail": 'Method "DELETE" not allowed.'}
