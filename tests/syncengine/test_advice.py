"""What the history tells staff to do about a refused delivery: by why it was refused, not only by who sent it.

Each delivery goes through the real webhook endpoint, so the reasons are the intake's own words.
"""
from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from syncengine import advice
from syncengine.models import EventStatus, InboundEvent
from tests.syncengine.conftest import fixture_bytes, make_jwt

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("sync_handlers")]


def refused() -> InboundEvent:
    [event] = InboundEvent.objects.all()
    assert event.status == EventStatus.REJECTED, event.reason
    return event


def test_an_unsigned_zenduty_delivery_is_told_to_choose_hmac_in_zenduty(integration, post_zenduty):
    post_zenduty(integration, fixture_bytes("zenduty/triggered.json"), signature=None)

    assert "authenticate with HMAC signature" in advice.for_event(refused())


def test_a_zenduty_delivery_signed_with_another_key_is_told_to_paste_the_key(integration, post_zenduty):
    post_zenduty(integration, fixture_bytes("zenduty/triggered.json"), signature="bm90IHRoZSBrZXk=")

    assert "the signing keys differ" in advice.for_event(refused())


def test_a_signed_zenduty_delivery_the_portal_cannot_read_says_zenduty_sent_it(integration, post_zenduty):
    post_zenduty(integration, b'{"data": {}}')

    event = refused()
    assert event.signature_ok is True
    assert advice.for_event(event).startswith("Signed with the right key, so Zenduty sent it")


@pytest.mark.parametrize(("body", "words"), [
    (b"not json", "Not a genuine delivery: Xurrent always sends a signed token"),
    (b'{"token": "x"}', "Not a genuine delivery: Xurrent always sends a signed token"),
    (b'{"jwt": "a.b.c"}', "Not a genuine delivery: Xurrent always sends a signed token"),
])
def test_a_body_xurrent_would_never_send_is_not_blamed_on_the_policy_key(integration, post_xurrent, body, words):
    post_xurrent(integration, body)

    assert advice.for_event(refused()).startswith(words)


@pytest.mark.parametrize(("claims", "words"), [
    ({"exp": int(time.time()) - 60}, "Check this server's clock"),
    ({"nbf": int(time.time()) + 3600, "iat": int(time.time()) + 3600}, "Check this server's clock"),
    ({"issuer": "https://other-account.xurrent.com"}, "check the tenant's account ID, region and environment"),
    ({"audience": "another-policy"}, "the webhook policy's key does not match"),
])
def test_a_token_refused_for_its_claims_says_what_to_check(integration, post_xurrent, rsa_key, claims, words):
    post_xurrent(integration, json.dumps({"jwt": make_jwt(rsa_key[0], {"event": "request.update"},
                                                          **claims)}).encode())

    assert words in advice.for_event(refused())


def test_a_token_signed_with_another_key_points_at_the_policy_key(integration, post_xurrent):
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    post_xurrent(integration, json.dumps({"jwt": make_jwt(other_key, {"event": "request.update"})}).encode())

    assert "the webhook policy's key does not match" in advice.for_event(refused())
