"""The portal's ZendutyClient reads incident notes in both forms Zenduty documents.

Zenduty's OpenAPI example shows ``GET /api/incidents/<n>/note/`` answering a
plain list, oldest first; its Go and Python SDKs read a DRF page
``{count, next, previous, results}`` (https://apidocs.zenduty.com,
github.com/Zenduty/zenduty-go-sdk, github.com/Zenduty/zenduty-python-sdk).
The simulator serves either, as its settings say, and the client must take
both. Here the simulator runs as it starts, with Zenduty's per-second and
per-minute limits, and the client with the portal's own budget at its
defaults (settings ZENDUTY_INCIDENT_*): reading notes gets no 429.
"""
import pytest

from connections import http
from connections.zenduty import ZendutyClient
from sandbox.zenduty import demo, operations
from sandbox.zenduty.models import NoteListShape, SimulatorSettings

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "test-zenduty-token-0005"


@pytest.fixture
def world():
    return demo.make_account(TOKEN)


@pytest.fixture
def client(sandbox, world):
    c = ZendutyClient(TOKEN)  # the real sleep: the budget paces the reads
    yield c
    c.session.close()


@pytest.fixture
def calls():
    """(method, path, status) of every call the portal's clients make."""
    seen = []

    def observe(record):
        seen.append((record.method, record.url.split("/sandbox/zenduty", 1)[-1], record.status))
    http.call_observers.append(observe)
    yield seen
    http.call_observers.remove(observe)


def incident_with_notes(world, count: int):
    """An incident on which people wrote ``count`` notes in Zenduty's screens (no webhook tells the portal)."""
    incident = operations.create_incident(service=world.website, title="Checkout down", created_by=world.ui_user)
    notes = [operations.add_note(incident, world.ui_user, f"#{incident.incident_number} update {n}")
             for n in range(count)]
    return incident, notes


@pytest.mark.parametrize(("shape", "reads_per_incident"), [
    (NoteListShape.PAGE, 2),  # a page of 10, then the page its absolute ``next`` link names
    (NoteListShape.LIST, 1),  # every note at once
])
def test_list_notes_reads_every_note_oldest_first_in_either_form_within_the_limits(
        client, world, calls, shape, reads_per_incident):
    SimulatorSettings.objects.update_or_create(pk=1, defaults={"note_list_shape": shape})
    switches = SimulatorSettings.load()
    assert switches.rate_limits and switches.per_second_limits  # as the simulator starts, as the real Zenduty
    incidents = [incident_with_notes(world, 12) for _ in range(3)]

    for incident, written in incidents:
        notes = client.list_notes(incident.incident_number)
        assert [n["unique_id"] for n in notes] == [w.unique_id for w in written]
        assert [n["note"] for n in notes] == [w.note for w in written]
        assert {(n["incident"], n["user_name"]) for n in notes} == {(incident.incident_number, "Dwight Schrute")}

    statuses = {path: [] for path in (f"/api/incidents/{i.incident_number}/note/" for i, _ in incidents)}
    for method, path, status in calls:
        assert method == "GET"
        statuses[path].append(status)
    # Six (or three) incident reads in a burst, twice Zenduty's 3 a second: the portal's budget paced them.
    assert list(statuses.values()) == [[200] * reads_per_incident] * 3


def test_a_plain_list_is_read_in_one_call_however_long(client, world, calls):
    """No envelope, no ``next``: the client takes the list as complete and asks for nothing more."""
    SimulatorSettings.objects.update_or_create(pk=1, defaults={"note_list_shape": NoteListShape.LIST})
    incident, written = incident_with_notes(world, 25)
    assert len(client.list_notes(incident.unique_id)) == 25  # by unique_id too (§3.1)
    assert calls == [("GET", f"/api/incidents/{incident.unique_id}/note/", 200)]
