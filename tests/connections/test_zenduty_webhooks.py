"""Zenduty outgoing webhooks: the X-SIGNATURE HMAC and the payload, one fixture per event type."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest

from connections.zenduty import EVENT_TYPES, compute_signature, parse_outgoing_webhook, verify_signature

# One file per event type, shared with the sync engine's tests (their README says where the shape comes from).
FIXTURES = Path(__file__).parents[1] / "syncengine" / "fixtures" / "zenduty"
SECRET = "whsec-8d1f0c5a7e2b4e69"


def raw(event_type: str) -> bytes:
    return (FIXTURES / f"{event_type}.json").read_bytes()


# -- signature ---------------------------------------------------------------------------

def test_the_signature_is_base64_of_hmac_sha256_of_the_raw_body():
    body = raw("triggered")
    expected = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    assert compute_signature(SECRET, body) == expected
    assert compute_signature(SECRET.encode(), body) == expected
    assert len(base64.b64decode(expected)) == 32


def test_a_good_signature_verifies():
    body = raw("resolved")
    assert verify_signature(SECRET, body, compute_signature(SECRET, body))


def test_a_tampered_body_fails():
    body = raw("resolved")
    signature = compute_signature(SECRET, body)
    tampered = body.replace(b'"status": 3', b'"status": 1')
    assert tampered != body
    assert not verify_signature(SECRET, tampered, signature)


def test_reserialised_json_fails_only_the_raw_bytes_count():
    body = raw("acknowledged")
    signature = compute_signature(SECRET, body)
    assert not verify_signature(SECRET, json.dumps(json.loads(body)).encode(), signature)


def test_a_wrong_secret_fails():
    body = raw("triggered")
    assert not verify_signature("another-secret", body, compute_signature(SECRET, body))


@pytest.mark.parametrize("header", [None, "", "not-base64!", "c2hvcnQ="])
def test_a_missing_or_malformed_header_fails(header):
    assert not verify_signature(SECRET, raw("triggered"), header)


def test_no_secret_never_verifies():
    body = raw("triggered")
    assert not verify_signature("", body, compute_signature("", body))


# -- payload ------------------------------------------------------------------------------

@pytest.mark.parametrize("event_type, status", [("triggered", 1), ("acknowledged", 2), ("resolved", 3)])
def test_it_parses_each_documented_event(event_type, status):
    parsed = parse_outgoing_webhook(json.loads(raw(event_type)))
    assert parsed["event_type"] == event_type and event_type in EVENT_TYPES
    incident = parsed["incident"]
    assert incident["status"] == status
    assert incident["incident_number"] == 1042 and incident["unique_id"] == "Hq7ZkD3mVbN9tRw2xYp4sC"
    # The webhook's own shape: objects where the REST API has ids.
    assert incident["service"]["unique_id"] == "9c2f4a6e-1d3b-4f7a-8e5c-2b6d0a9f3e71"
    assert incident["assigned_to"]["username"] == "3f8a1c2e-7b4d-4e9a-a6c1-5"
    assert (incident["acknowledged_date"] is None) == (status == 1)
    assert (incident["resolved_date"] is None) == (status != 3)


def test_the_unwrapped_form_is_accepted_too():
    inner = json.loads(raw("acknowledged"))["payload"]
    assert parse_outgoing_webhook(inner) == {"event_type": "acknowledged", "incident": inner["incident"]}


def test_an_unknown_event_type_is_returned_for_the_caller_to_ignore():
    body = {"payload": {"event_type": "note_added", "incident": {"unique_id": "abc", "incident_number": 1}}}
    assert parse_outgoing_webhook(body)["event_type"] == "note_added"


@pytest.mark.parametrize("body, reason", [
    ([], "not a JSON object"),
    ("triggered", "not a JSON object"),
    ({"payload": "triggered"}, "'payload' is not a JSON object"),
    ({"payload": {"incident": {"unique_id": "a"}}}, "no 'event_type'"),
    ({"payload": {"event_type": "", "incident": {"unique_id": "a"}}}, "no 'event_type'"),
    ({"payload": {"event_type": 3, "incident": {"unique_id": "a"}}}, "no 'event_type'"),
    ({"payload": {"event_type": "triggered"}}, "no 'incident'"),
    ({"event_type": "triggered", "incident": ["x"]}, "no 'incident'"),
    ({"event_type": "triggered", "incident": {"title": "no ids"}}, "neither a 'unique_id'"),
])
def test_malformed_bodies_are_refused_with_a_reason(body, reason):
    with pytest.raises(ValueError, match=reason):
        parse_outgoing_webhook(body)
