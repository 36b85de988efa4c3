"""Xurrent webhook payloads as sparse as Xurrent sends them.

Xurrent leaves out what is not set (https://developer.xurrent.com/v1/webhooks):
no ``member`` on an unassigned request, no ``source``/``sourceID`` unless
set, ``disabled`` only when true, ``audit_line_id`` only when the change made
an audit entry, no ``person_*`` for a system-triggered event. The
``<event>__sparse.json`` fixtures carry such shapes; the simulator sends them
too, so the end-to-end test at the bottom runs the whole sync on them.
"""
from __future__ import annotations

import pytest

from syncengine.history import describe_event
from syncengine.models import EventStatus, InboundEvent, LinkedPair
from tests.syncengine.conftest import fixture_json

SPARSE = ("request.create__sparse", "request.update__sparse", "request.status-changed__sparse",
          "request.note-added__sparse")


def only_event() -> InboundEvent:
    [event] = InboundEvent.objects.all()
    return event


def test_the_sparse_fixtures_leave_out_what_is_not_set():
    for name in SPARSE:
        message = fixture_json(f"xurrent/{name}.json")
        assert message["event"] == name.split("__")[0]
        payload = message["payload"]
        assert "member" not in payload and "source" not in payload and "sourceID" not in payload
        assert "disabled" not in (payload.get("team") or {})
    assert "audit_line_id" not in fixture_json("xurrent/request.note-added__sparse.json")["payload"]
    assert "person_id" not in fixture_json("xurrent/request.status-changed__sparse.json")


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["request.update__sparse", "request.status-changed__sparse",
                                  "request.note-added__sparse"])
def test_a_sparse_event_of_an_unlinked_request_is_stored_and_ignored_without_a_call(name, integration, post_xurrent,
                                                                                    sign_xurrent, outbound):
    response = post_xurrent(integration, sign_xurrent(name))

    event = only_event()
    assert response.status_code == 200
    assert event.payload == fixture_json(f"xurrent/{name}.json")
    assert event.status == EventStatus.IGNORED, event.reason
    assert outbound.requests == []


@pytest.mark.django_db
def test_a_sparse_create_reads_the_request_and_decides_on_it(integration, post_xurrent, sign_xurrent, outbound):
    integration.tenant.portal_person_id = "1"  # known: the echo check needs no call
    integration.tenant.save()
    outbound.answer(200, {"access_token": "token-1", "token_type": "bearer", "expires_in": 3600})
    outbound.answer(200, {"id": 70232, "category": "incident", "status": "assigned",
                          "service_instance": {"id": 99, "name": "Intranet (Production)"}})

    post_xurrent(integration, sign_xurrent("request.create__sparse"))

    event = only_event()
    assert event.status == EventStatus.IGNORED
    assert event.reason == "Request #70232: no integration for service instance 'Intranet (Production)'."
    assert [r["url"] for r in outbound.requests] == ["https://oauth.xurrent.com/token",
                                                      "https://api.xurrent.com/v1/requests/70232"]


@pytest.mark.parametrize("name, expected", [
    ("request.create__sparse", "Request 70232 — created by Howard Tanner; status assigned"),
    ("request.status-changed__sparse", "Request 70232 — status changed; status completed"),
])
def test_a_sparse_event_says_what_it_is_about(name, expected):
    event = InboundEvent(source="xurrent", event_type=name.split("__")[0], object_id="70232",
                         payload=fixture_json(f"xurrent/{name}.json"))
    assert describe_event(event) == expected


# -- end to end: the simulator's own sparse payloads -------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_request_without_member_or_source_id_syncs_both_ways(sandbox):
    from tests.syncengine.test_sync import Demo

    demo = Demo(sandbox)
    request = demo.raise_request()
    demo.settle()
    [incident] = demo.incidents()
    demo.change_request(request, status="completed", completion_reason="solved")
    demo.settle()

    incident.refresh_from_db()
    assert incident.status == 3  # resolved
    pair = LinkedPair.objects.get()
    assert pair.xurrent_request_id == str(request.pk)
    received = {e.event_type: e.payload["payload"] for e in InboundEvent.objects.filter(source="xurrent")
                .exclude(event_type="webhook.verify")}
    # What reached the portal was sparse: no member, no sourceID, no disabled: false.
    for payload in received.values():
        assert "member" not in payload and "sourceID" not in payload
        assert "disabled" not in payload.get("team", {})
    assert received["request.status-changed"]["audit_line_id"] == received["request.update"]["audit_line_id"]
    assert not InboundEvent.objects.filter(status=EventStatus.FAILED).exists()
