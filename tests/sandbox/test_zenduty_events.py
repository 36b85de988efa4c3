"""The simulated Events API and Generic Integration (https://zenduty.com/docs/api-integration, https://zenduty.com/docs/generic-integration/) over real HTTP."""
import uuid

import pytest
import requests

from sandbox.zenduty import demo
from sandbox.zenduty.models import Alert, Incident

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "test-zenduty-token-0002"


@pytest.fixture
def world():
    return demo.make_account(TOKEN)


@pytest.fixture
def base(sandbox, zenduty_per_minute_limits_only):
    return sandbox.url + "/sandbox/zenduty"


@pytest.fixture
def api_integration(world):
    return demo.add_integration(world.website, "api")


def send(base, integration, **body):
    # No Authorization header: the integration key in the path is the credential.
    return requests.post(f"{base}/api/events/{integration.integration_key}/", json=body, timeout=10)


def test_critical_alert_opens_an_incident_and_answers_201(base, api_integration):
    response = send(base, api_integration, message="CPU high", alert_type="critical", summary="web-1 at 99%",
                    entity_id="cpu-web-1", payload={"host": "web-1"},
                    urls=[{"link_url": "https://example.com/a", "link_text": "Graph"}])
    assert response.status_code == 201
    body = response.json()
    assert body["incident_created"] is True and body["incident"] == 1
    assert body["alert_type"] == "3" and body["entity_id"] == "cpu-web-1" and body["payload"] == {"host": "web-1"}
    assert body["integration"] == str(api_integration.unique_id)
    assert body["integration_object"]["integration_key"] == str(api_integration.integration_key)
    assert body["urls"][0]["link_text"] == "Graph" and len(body["unique_id"]) == 22
    incident = Incident.objects.get()
    assert (incident.title, incident.summary, incident.status) == ("CPU high", "web-1 at 99%", 1)
    assert incident.context_window_start is not None


def test_alerts_group_by_entity_id_then_acknowledge_and_resolve(base, api_integration, world):
    first = send(base, api_integration, message="Disk full", alert_type="critical", entity_id="disk").json()
    again = send(base, api_integration, message="Disk still full", alert_type="critical", entity_id="disk").json()
    other = send(base, api_integration, message="Other", alert_type="critical", entity_id="other").json()
    assert again["incident"] == first["incident"] and again["incident_created"] is False
    assert other["incident"] != first["incident"] and other["incident_created"] is True

    ack = send(base, api_integration, message="on it", alert_type="acknowledged", entity_id="disk").json()
    assert ack["incident"] == first["incident"]
    assert Incident.objects.get(incident_number=first["incident"]).status == Incident.ACKNOWLEDGED
    resolved = send(base, api_integration, message="ok", alert_type="resolved", entity_id="disk").json()
    assert resolved["incident"] == first["incident"] and resolved["alert_type"] == "5"
    incident = Incident.objects.get(incident_number=first["incident"])
    assert incident.status == Incident.RESOLVED and incident.resolved_date and incident.acknowledged_date

    reopened = send(base, api_integration, message="Disk full again", alert_type="critical", entity_id="disk").json()
    assert reopened["incident_created"] is True and reopened["incident"] not in (first["incident"], other["incident"])

    listed = requests.get(f"{base}/api/incidents/{first['incident']}/alerts/",
                          headers={"Authorization": f"Token {TOKEN}"}, timeout=10).json()
    assert listed["count"] == 4
    assert [a["alert_type"] for a in listed["results"]] == ["3", "3", "4", "5"]


def test_create_incidents_for_decides_which_types_open_incidents(base, world):
    critical_only = demo.add_integration(world.website, "api", create_incidents_for=1)
    with_warnings = demo.add_integration(world.services["Email"], "api", create_incidents_for=3)
    assert send(base, critical_only, message="w", alert_type="warning").json()["incident_created"] is False
    assert send(base, critical_only, message="e", alert_type="error").json()["incident_created"] is False
    assert send(base, with_warnings, message="w", alert_type="warning").json()["incident_created"] is True
    info = send(base, with_warnings, message="i", alert_type="info").json()
    assert info["incident_created"] is False and info["incident"] is None and info["alert_type"] == "0"
    suppressed = send(base, with_warnings, message="s", alert_type="critical", suppressed=True).json()
    assert suppressed["incident_created"] is False
    assert Incident.objects.count() == 1


def test_missing_entity_id_is_generated(base, api_integration):
    body = send(base, api_integration, message="x", alert_type="critical").json()
    assert body["entity_id"]
    body2 = send(base, api_integration, message="x", alert_type="critical").json()
    assert body2["entity_id"] != body["entity_id"] and body2["incident"] != body["incident"]


def test_validation_and_unknown_or_disabled_keys(base, api_integration):
    response = send(base, api_integration)
    assert response.status_code == 400
    assert response.json() == {"message": ["This field is required."], "alert_type": ["This field is required."]}
    bad_type = send(base, api_integration, message="x", alert_type="fatal")
    assert bad_type.json() == {"alert_type": ['"fatal" is not a valid choice.']}
    unknown = requests.post(f"{base}/api/events/{uuid.uuid4()}/", json={"message": "x", "alert_type": "critical"},
                            timeout=10)
    assert unknown.status_code == 404 and unknown.json() == {"detail": "Not Found."}
    assert requests.post(f"{base}/api/events/not-a-key/", json={}, timeout=10).status_code == 404
    api_integration.is_enabled = False
    api_integration.save()
    assert send(base, api_integration, message="x", alert_type="critical").status_code == 404
    assert Alert.objects.count() == 0


def test_generic_integration_answers_a_trace_id_to_poll(base, world):
    generic = demo.add_integration(world.website, "generic")
    url = f"{base}/integration/{world.account.unique_id}/generic/{generic.integration_key}/"
    response = requests.post(url, json={"message": "Queue stuck", "alert_type": "critical",
                                        "priority": str(world.priorities[0].unique_id)}, timeout=10)
    assert response.status_code == 200 and response.json()["message"] == "success"
    trace_id = response.json()["trace_id"]
    status = requests.get(f"{base}/api/alert/status/{trace_id}/", headers={"Authorization": f"Token {TOKEN}"},
                          timeout=10).json()
    assert status["status"] == "completed" and status["is_incident_created"] is True
    incident = Incident.objects.get(incident_number=status["incident"]["incident_number"])
    assert incident.team_priority == world.priorities[0]
    bad = requests.post(url, json={"alert_type": "critical"}, timeout=10)
    assert bad.status_code == 400 and bad.json() == {"error": "This request can not be processed."}


def test_alert_posts_are_limited_to_30_a_minute(base, api_integration):
    statuses = [send(base, api_integration, message="m", alert_type="info").status_code for _ in range(31)]
    assert statuses[:30] == [201] * 30 and statuses[30] == 429


def test_alert_posts_are_limited_to_5_a_second_by_default(sandbox, api_integration):
    base = sandbox.url + "/sandbox/zenduty"  # the simulator as it starts: per-second limits on
    statuses = [send(base, api_integration, message="m", alert_type="info").status_code for _ in range(6)]
    assert statuses == [201] * 5 + [429]
