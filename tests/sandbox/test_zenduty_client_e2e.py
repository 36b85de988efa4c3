"""The portal's ZendutyClient against the Zenduty simulator over real HTTP.

The ``sandbox`` fixture sets SANDBOX_API_URL, so the client (configured with
the real https://www.zenduty.com) sends every call to the simulator.
"""
import pytest

from connections import errors
from connections.zenduty import ZendutyClient, constants
from sandbox import deliveries, faults
from sandbox.models import FaultKind
from sandbox.zenduty import demo

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "test-zenduty-token-0004"


@pytest.fixture(autouse=True)
def _simulators_limits_only(settings, zenduty_per_minute_limits_only):
    # These tests prove the client against the simulator's own answers, its 429s included; the
    # portal's own budget (which would pace or refuse these bursts first) has its own tests in
    # tests/connections/test_zenduty_budget.py. They send bursts, so the simulator keeps only its
    # per-minute limits; the client under both (the defaults) is in test_zenduty_notes_e2e.py.
    for name in ("READS", "CREATES"):
        setattr(settings, f"ZENDUTY_INCIDENT_{name}_PER_SECOND", 1000)
        setattr(settings, f"ZENDUTY_INCIDENT_{name}_PER_MINUTE", 1000)


@pytest.fixture
def world():
    return demo.make_account(TOKEN)


@pytest.fixture
def client(sandbox, world):
    c = ZendutyClient(TOKEN, sleep=lambda seconds: None)
    yield c
    c.session.close()


def test_client_reads_the_configuration(client, world):
    teams = client.list_teams()
    assert [t["name"] for t in teams] == ["Operations", "Platform"]
    team_id = teams[0]["unique_id"]
    assert [s["name"] for s in client.list_services(team_id)] == ["Website", "Payments API", "Email"]
    assert [p["name"] for p in client.list_priorities(team_id)] == ["P1", "P2", "P3", "P4", "P5"]
    assert len(client.list_priorities(teams[1]["unique_id"])) == 3
    assert client.get_team(team_id)["name"] == "Operations"
    assert client.get_service(team_id, str(world.website.unique_id))["name"] == "Website"
    assert "Outgoing Webhooks" in {a["name"] for a in client.list_applications()}


def test_client_manages_the_outgoing_integration(client, world):
    team, service = str(world.operations.unique_id), str(world.website.unique_id)
    app = next(a["unique_id"] for a in client.list_applications() if a["name"] == "Outgoing Webhooks")
    created = client.create_integration(team, service, {
        "application": app, "name": "Xurrent: Website", "summary": "marker-123",
        "integration_type": constants.INTEGRATION_OUTBOUND, "is_enabled": True})
    assert created["integration_type"] == constants.INTEGRATION_OUTBOUND and created["integration_key"]
    assert [i["summary"] for i in client.list_integrations(team, service)] == ["marker-123"]
    updated = client.update_integration(team, service, created["unique_id"], {"is_enabled": False})
    assert updated["is_enabled"] is False
    assert client.get_integration(team, service, created["unique_id"])["is_enabled"] is False
    client.delete_integration(team, service, created["unique_id"])
    assert client.list_integrations(team, service) == []
    with pytest.raises(errors.NotFoundError):
        client.delete_integration(team, service, created["unique_id"])


def test_client_incident_lifecycle_and_notes(client, world):
    p1 = str(world.priorities[0].unique_id)
    incident = client.create_incident(title="Checkout down", service=str(world.website.unique_id),
                                      summary="from Xurrent", team_priority=p1)
    assert incident["incident_number"] == 1 and incident["team_priority"] == p1
    assert client.get_incident(1)["unique_id"] == incident["unique_id"]
    assert client.get_incident(incident["unique_id"])["incident_number"] == 1
    assert client.update_incident(1, team_priority=str(world.priorities[1].unique_id))["team_priority_object"][
        "name"] == "P2"
    acked = client.acknowledge_incident(incident["unique_id"])
    assert acked["status"] == constants.ACKNOWLEDGED and acked["acknowledged_date"]
    resolved = client.resolve_incident(1)
    assert resolved["status"] == constants.RESOLVED and resolved["resolved_date"]

    note = client.add_note(1, "[Xurrent] first")
    assert note["user_name"] == "Michael Scott" and note["incident"] == 1
    for n in range(11):
        client.add_note(incident["unique_id"], f"[Xurrent] {n}")
    notes = client.list_notes(1)  # 12 notes over two DRF pages
    assert len(notes) == 12 and notes[0]["unique_id"] == note["unique_id"] and notes[-1]["note"] == "[Xurrent] 10"


def test_client_iterates_filter_pages(client, world):
    for n in range(5):
        client.create_incident(title=f"i{n}", service=str(world.website.unique_id))
    client.resolve_incident(1)
    everything = list(client.iter_incidents(status=constants.FILTER_ALL, page_size=2))
    assert [i["incident_number"] for i in everything] == [5, 4, 3, 2, 1]
    open_ones = list(client.iter_incidents(status=constants.FILTER_OPEN, page_size=2,
                                           service_ids=[str(world.website.unique_id)]))
    assert [i["incident_number"] for i in open_ones] == [5, 4, 3, 2]
    assert list(client.iter_incidents(status=constants.FILTER_ALL, team_ids=[str(world.platform.unique_id)])) == []


def test_client_maps_validation_errors(client, world):
    with pytest.raises(errors.ValidationError) as caught:
        client.create_incident(title="", service=str(world.website.unique_id))
    assert caught.value.field_errors == {"title": ["This field may not be blank."]}
    number = client.create_incident(title="x", service=str(world.website.unique_id))["incident_number"]
    with pytest.raises(errors.ValidationError) as caught:
        client.update_incident(number, team_priority=str(world.platform_priorities[0].unique_id))
    assert list(caught.value.field_errors) == ["team_priority"]
    with pytest.raises(errors.NotFoundError):
        client.get_incident(42)


def test_client_maps_authentication_errors(sandbox, world):
    bad = ZendutyClient("not-the-token", sleep=lambda seconds: None)
    with pytest.raises(errors.AuthenticationError) as caught:
        bad.list_teams()
    assert caught.value.status == 401 and "Invalid token" in str(caught.value)


def test_client_maps_rate_limits(client, world):
    for n in range(15):
        client.create_incident(title=f"burst {n}", service=str(world.website.unique_id))
    with pytest.raises(errors.RateLimitedError) as caught:
        client.create_incident(title="one too many", service=str(world.website.unique_id))
    assert caught.value.status == 429
    assert caught.value.retry_after == 60  # no Retry-After from Zenduty: the client waits a minute


def test_an_injected_429_makes_the_client_back_off_a_minute_as_the_real_throttle_does(sandbox, world):
    waits = []
    client = ZendutyClient(TOKEN, sleep=waits.append)
    faults.inject("zenduty", FaultKind.RATE_LIMIT_429, path_prefix="/api/account/teams/", retry_after=2)
    try:
        with pytest.raises(errors.RateLimitedError) as caught:
            client.list_teams()
    finally:
        client.session.close()
    assert caught.value.retry_after == 60  # no Retry-After: Zenduty's advice, "retry after 1 minute"
    assert waits == []  # too long to wait inline: the job layer reschedules


def test_client_retries_a_get_after_a_500_but_never_an_incident_post(client, world):
    faults.inject("zenduty", FaultKind.ERROR_500, path_prefix="/api/account/teams/", method="GET")
    assert len(client.list_teams()) == 2  # retried once, then fine
    faults.inject("zenduty", FaultKind.ERROR_500, path_prefix="/api/incidents/", method="POST")
    with pytest.raises(errors.ServerError):
        client.create_incident(title="x", service=str(world.website.unique_id))
    assert client.create_incident(title="x", service=str(world.website.unique_id))["incident_number"] == 1


def test_client_retries_the_incident_filter_after_a_500_because_it_only_reads(client, world):
    client.create_incident(title="listed", service=str(world.website.unique_id))
    faults.inject("zenduty", FaultKind.ERROR_500, path_prefix="/api/incidents/filter/", method="POST")
    assert [i["title"] for i in client.iter_incidents()] == ["listed"]


def test_provisioned_integration_delivers_once_configured_by_hand(client, world):
    """The portal creates the integration through the API; a person sets URL and key in Zenduty's screens."""
    team, service = str(world.operations.unique_id), str(world.website.unique_id)
    app = next(a["unique_id"] for a in client.list_applications() if a["name"] == "Outgoing Webhooks")
    created = client.create_integration(team, service, application=app, name="Xurrent: Website",
                                        integration_type=constants.INTEGRATION_OUTBOUND)
    client.create_incident(title="before configuration", service=service)
    assert deliveries.pending("zenduty").count() == 0
    integration = world.website.integrations.get(unique_id=created["unique_id"])
    demo.configure_outgoing_webhook(world.website, "http://127.0.0.1:9/hook/", "k", integration=integration)
    client.create_incident(title="after configuration", service=service)
    (row,) = deliveries.pending("zenduty")
    assert row.meta["event_type"] == "triggered" and row.meta["integration"] == created["unique_id"]
