"""Deliveries with text and numbers that no database column holds as they are.

Lone UTF-16 surrogates (an emoji cut in half), ``\\u0000`` and NaN / ±Infinity
are legal for Python's JSON reader; both databases and UTF-8 pages refuse
them. A signed delivery carrying them is still genuine: it is acknowledged
and stored (see syncengine.sanitize), and its pages render. The property
tests (test_intake_properties.py) generate such deliveries at random; these
are the cases from the bug report.
"""
from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.db import connection
from django.urls import reverse

from syncengine.models import EventStatus, InboundEvent
from tests.syncengine.conftest import fixture_json, make_jwt


def only_event() -> InboundEvent:
    events = list(InboundEvent.objects.all())
    assert len(events) == 1, events
    return events[0]


def zenduty_body(**incident) -> bytes:
    message = fixture_json("zenduty/triggered.json")
    message["payload"]["incident"].update(incident)
    return json.dumps(message).encode()  # escapes: "\ud83d" stays six ASCII characters; NaN a bare word


def page(client, event: InboundEvent) -> str:
    response = client.get(reverse("admin:syncengine_inboundevent_change", args=[event.pk]))
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.django_db
@pytest.mark.usefixtures("sync_handlers")  # the intake is under test; the sync has its own tests
class TestZenduty:
    def test_an_incident_id_ending_in_half_an_emoji_is_stored_and_its_retry_is_a_duplicate(
            self, integration, post_zenduty, admin_client):
        body = zenduty_body(unique_id="trunc-\ud83d")

        first, retry = post_zenduty(integration, body), post_zenduty(integration, body)

        event = only_event()
        assert first.status_code == 200 and first.json() == {"status": "accepted", "event": event.pk}
        assert retry.json() == {"status": "duplicate", "event": event.pk}
        assert event.object_id == "trunc-\ufffd" and event.payload["incident"]["unique_id"] == "trunc-\ufffd"
        assert '"trunc-\\ud83d"' in event.body  # the raw body keeps what was sent
        assert "trunc-\ufffd" in page(admin_client, event)

    def test_another_half_emoji_is_another_incident(self, integration, post_zenduty):
        # Both ids are stored as "trunc-\ufffd"; they are still two incidents (identities use the text as sent).
        post_zenduty(integration, zenduty_body(unique_id="trunc-\ud83d"))
        post_zenduty(integration, zenduty_body(unique_id="trunc-\ud83e"))

        assert InboundEvent.objects.filter(status=EventStatus.PROCESSED).count() == 2  # both reached the sync

    def test_non_standard_numbers_are_stored_as_their_names(self, integration, post_zenduty, admin_client):
        body = zenduty_body(title=float("nan"), urgency=float("inf"), status=float("-inf"))
        assert b'"title": NaN' in body

        response = post_zenduty(integration, body)

        event = only_event()
        assert response.status_code == 200 and event.status == EventStatus.PROCESSED
        incident = event.payload["incident"]
        assert (incident["title"], incident["urgency"], incident["status"]) == ("NaN", "Infinity", "-Infinity")
        assert '"title": NaN' in event.body
        assert "Incident #1042 “NaN”" in page(admin_client, event)

    def test_nul_is_stored_as_the_replacement_character(self, integration, post_zenduty):
        post_zenduty(integration, zenduty_body(title="Disk\u0000full", **{"key\u0000": 1}))

        incident = only_event().payload["incident"]
        assert incident["title"] == "Disk\ufffdfull" and incident["key\ufffd"] == 1

    def test_a_message_nested_too_deeply_to_store_is_refused_with_400(self, integration, post_zenduty):
        # Readable by Python's parser, but not storable or showable: was an unhandled RecursionError.
        response = post_zenduty(integration, zenduty_body(title="x").replace(b'"x"', b"[" * 500 + b"]" * 500))

        event = only_event()
        assert response.status_code == 400 and event.status == EventStatus.REJECTED and event.signature_ok
        assert event.reason == "The message is nested more than 100 levels deep."


@pytest.mark.django_db
@pytest.mark.usefixtures("sync_handlers")  # the intake is under test; the sync has its own tests
class TestXurrent:
    @pytest.mark.parametrize("jti", ["jti-\ud83d", "long-\ud83d" + "j" * 200], ids=["short", "long"])
    def test_event_object_and_jti_with_half_an_emoji_and_infinity_are_stored(self, jti, integration, post_xurrent,
                                                                             rsa_key, admin_client):
        message = {**fixture_json("xurrent/request.update.json"), "event": "request.update\ud83d",
                   "object_id": "70231\udc00", "payload": {"status": "in_progress", "impact": float("inf")}}
        body = json.dumps({"jwt": make_jwt(rsa_key[0], message, jti=jti)}).encode()

        first = post_xurrent(integration, body)
        retry = post_xurrent(integration, body)  # fresh delivery id: the jti makes it the same message

        event = only_event()
        assert first.status_code == 200 and first.json() == {"status": "ignored", "event": event.pk,
                                                             "reason": event.reason}
        assert retry.json() == {"status": "duplicate", "event": event.pk}
        assert (event.event_type, event.object_id) == ("request.update\ufffd", "70231\ufffd")
        assert event.payload["payload"]["impact"] == "Infinity"
        assert "'request.update\ufffd'" in event.reason
        assert "70231\ufffd" in page(admin_client, event)

    def test_a_token_with_a_non_ascii_character_is_refused_with_401(self, integration, post_xurrent):
        # PyJWT cannot encode a lone surrogate: was an unhandled 500 for an unsigned post.
        response = post_xurrent(integration, json.dumps({"jwt": "eyJ\ud800.e30.c2ln"}).encode())

        event = only_event()
        assert response.status_code == 401 and event.status == EventStatus.REJECTED
        assert event.reason == "The token is not a valid JWT (a compact JWT is ASCII)."

    def test_an_infinite_expiry_is_refused_not_taken_for_ever(self, integration, post_xurrent, rsa_key):
        body = json.dumps({"jwt": make_jwt(rsa_key[0], fixture_json("xurrent/request.update.json"),
                                           exp=float("inf"))}).encode()

        response = post_xurrent(integration, body)

        assert response.status_code == 401 and only_event().status == EventStatus.REJECTED


@pytest.mark.django_db
@pytest.mark.usefixtures("sync_handlers")  # the intake is under test; the sync has its own tests
class TestPages:
    def test_an_unsigned_post_with_a_lone_surrogate_has_a_page(self, integration, post_zenduty, admin_client):
        response = post_zenduty(integration, b'{"title": "Disk full \\ud800"}', signature=None)

        event = only_event()
        assert response.status_code == 401 and event.status == EventStatus.REJECTED
        assert "Disk full \\ud800" in page(admin_client, event)  # shown as the sender wrote it

    def test_a_rejected_token_shows_its_claims_with_the_escape(self, integration, post_xurrent, admin_client):
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        message = {**fixture_json("xurrent/request.update.json"), "person_name": "Tom \ud83d"}
        post_xurrent(integration, json.dumps({"jwt": make_jwt(other, message)}).encode())

        event = only_event()
        text = page(admin_client, event)
        assert event.signature_ok is False and "NOT verified" in text and "Tom \\ud83d" in text

    @pytest.mark.skipif(connection.vendor != "sqlite", reason="PostgreSQL's jsonb never stored such a message")
    def test_an_older_row_with_half_an_emoji_in_its_message_does_not_break_the_list(self, integration,
                                                                                     admin_client):
        # Stored before the intake replaced lone surrogates (SQLite keeps the escape in its JSON).
        message = fixture_json("zenduty/triggered.json")["payload"]
        message["incident"]["title"] = "Disk full \ud83d"
        event = InboundEvent.objects.create(source="zenduty", integration=integration, event_type="triggered",
                                            object_id="Hq7ZkD3mVbN9tRw2xYp4sC", payload=message,
                                            status=EventStatus.IGNORED, signature_ok=True)

        listing = admin_client.get(reverse("admin:syncengine_inboundevent_changelist"))

        assert listing.status_code == 200 and "Disk full \\ud83d" in listing.content.decode()
        assert "Disk full \\ud83d" in page(admin_client, event)
