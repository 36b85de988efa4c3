"""The webhook endpoints: fixture deliveries replayed, signed in the test, asserted on the database."""
from __future__ import annotations

import base64
import hashlib
import json
import uuid

from django.urls import reverse
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from integrations.models import OutgoingIntegration
from syncengine.models import MAX_BODY_BYTES, EventStatus, InboundEvent, OutboundCall
from tests.syncengine.conftest import (SIGNING_SECRET, fixture_bytes, fixture_json, make_jwt, sign_zenduty,
                                       xurrent_url, zenduty_url)

REQUEST_EVENTS = ["request.create", "request.update", "request.status-changed", "request.note-added"]
ZENDUTY_EVENTS = ["triggered", "acknowledged", "resolved"]
CODE = "d41f0c6e8a2b4c7d9e1f3a5b7c9d0e2f"  # the verification code in webhook.verify.json


def only_event() -> InboundEvent:
    events = list(InboundEvent.objects.all())
    assert len(events) == 1, events
    return events[0]


@pytest.mark.django_db
@pytest.mark.usefixtures("sync_handlers")  # intake is under test here; the sync has its own tests
class TestXurrentWebhooks:
    def test_it_answers_webhook_verify_and_marks_the_webhook_verified(self, integration, post_xurrent,
                                                                       sign_xurrent, outbound):
        response = post_xurrent(integration, sign_xurrent("webhook.verify"), delivery_id="d-verify-1")

        event = only_event()
        assert response.status_code == 200
        assert response.json() == {"status": "accepted", "event": event.pk}
        assert (event.source, event.event_type, event.object_id) == ("xurrent", "webhook.verify", "4711")
        assert event.status == EventStatus.PROCESSED, event.reason
        assert event.signature_ok is True and event.attempts == 1 and event.delivery_id == "d-verify-1"
        assert "4711 verified" in event.reason
        # Exactly one GET of the callback, with its code, and no credentials.
        callback = fixture_json("xurrent/webhook.verify.json")["payload"]["callback"]
        assert [(r["method"], r["url"]) for r in outbound.requests] == [("GET", callback)]
        assert "Authorization" not in outbound.requests[0]["headers"]
        integration.refresh_from_db()
        assert integration.xurrent_webhooks["request.update"]["verified"] is True
        # ... recorded as history in the event's context, without the query string (the code).
        call = OutboundCall.objects.get()
        assert (call.integration_id, call.inbound_event_id, call.status, call.status_class) == \
               (integration.pk, event.pk, 200, "2xx")
        assert call.url == "https://wdc.xurrent.com/webhooks/4711/verify"

    def test_the_verification_code_is_not_kept_once_the_callback_was_answered(self, integration, post_xurrent,
                                                                               sign_xurrent, outbound):
        post_xurrent(integration, sign_xurrent("webhook.verify"))

        event = only_event()
        assert event.status == EventStatus.PROCESSED
        assert CODE in outbound.requests[0]["url"]  # it was called with the code ...
        # ... which is then gone from the stored message, the raw body and the token in it.
        assert event.payload["payload"]["callback"] == "https://wdc.xurrent.com/webhooks/4711/verify?expires_at=1750236069"
        assert CODE not in event.body and CODE not in json.dumps(event.payload)
        token = json.loads(event.body)["jwt"]
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["data"] == event.payload and claims["iss"] == "https://wdc.xurrent.com"
        assert CODE not in base64.urlsafe_b64decode(token.split(".")[1] + "==").decode()

    @pytest.mark.parametrize("name", REQUEST_EVENTS)
    def test_it_stores_request_events_and_hands_them_to_the_sync(self, name, integration, post_xurrent,
                                                                  sign_xurrent, outbound, sync_handlers):
        response = post_xurrent(integration, sign_xurrent(name))

        event = only_event()
        assert response.status_code == 200 and response.json()["status"] == "accepted"
        assert (event.event_type, event.object_id, event.status) == (name, "70231", EventStatus.PROCESSED)
        assert sync_handlers == [("xurrent", name, "70231")]
        assert event.attempts == 1  # it went through the job
        assert event.payload == fixture_json(f"xurrent/{name}.json")
        assert outbound.requests == []

    def test_it_accepts_and_ignores_an_event_it_does_not_handle(self, integration, post_xurrent, sign_xurrent):
        response = post_xurrent(integration, sign_xurrent("problem.create"))

        event = only_event()
        assert response.status_code == 200
        assert response.json()["status"] == "ignored"
        assert event.status == EventStatus.IGNORED and event.attempts == 0
        assert "does not handle Xurrent 'problem.create' events" in event.reason

    def test_it_rejects_a_token_signed_with_another_key(self, integration, post_xurrent):
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        body = json.dumps({"jwt": make_jwt(other, fixture_json("xurrent/webhook.verify.json"))}).encode()

        response = post_xurrent(integration, body)

        event = only_event()
        assert response.status_code == 401
        assert response.json()["status"] == "rejected"
        assert event.status == EventStatus.REJECTED and event.signature_ok is False
        assert "signature does not match" in event.reason
        assert event.dedupe_key is None and event.body == body.decode()
        integration.refresh_from_db()
        assert integration.xurrent_webhooks["request.update"]["verified"] is False

    @pytest.mark.parametrize("changes, words", [
        ({"audience": "zenduty-xurrent-portal:another-integration"}, "another audience"),
        ({"exp": 1_600_000_000, "iat": 1_599_999_000, "nbf": 1_599_999_000}, "expired"),
        ({"issuer": "https://evil.xurrent.com"}, "another account"),
        # Provisioning always sets jwt_claim_expires_in: a token without exp is refused, however old.
        ({"exp": None, "iat": 1_450_000_000, "nbf": 1_450_000_000}, "no exp claim"),
    ], ids=["wrong-audience", "expired", "wrong-issuer", "no-exp"])
    def test_it_rejects_tokens_with_wrong_claims(self, changes, words, integration, post_xurrent, sign_xurrent):
        response = post_xurrent(integration, sign_xurrent("request.update", **changes))

        event = only_event()
        assert response.status_code == 401
        assert event.status == EventStatus.REJECTED and words in event.reason

    def test_it_rejects_malformed_json_with_400(self, integration, post_xurrent):
        response = post_xurrent(integration, b'{"jwt": "abc"')

        event = only_event()
        assert response.status_code == 400
        assert event.status == EventStatus.REJECTED and event.reason == "The body is not JSON."

    @pytest.mark.parametrize("body", [
        b"[" * 250_000,
        b'{"a":' * 40_000 + b"1" + b"}" * 40_000,
    ], ids=["lists", "objects"])
    def test_it_rejects_deeply_nested_json_with_400(self, body, integration, post_xurrent):
        # json.loads raises RecursionError, not ValueError: this was an unauthenticated 500.
        response = post_xurrent(integration, body)

        event = only_event()
        assert response.status_code == 400 and response.json()["status"] == "rejected"
        assert event.status == EventStatus.REJECTED and event.reason.startswith("The body is not JSON")

    def test_it_rejects_a_token_with_a_deeply_nested_header(self, integration, post_xurrent):
        # PyJWT parses the token's header before it checks the signature.
        header = base64.urlsafe_b64encode(b"[" * 100_000).rstrip(b"=").decode()
        body = json.dumps({"jwt": f"{header}.e30.c2ln"}).encode()

        response = post_xurrent(integration, body)

        event = only_event()
        assert response.status_code == 401
        assert event.status == EventStatus.REJECTED and event.signature_ok is False
        assert "not a valid JWT" in event.reason

    def test_it_rejects_an_unsigned_message_with_401(self, integration, post_xurrent):
        response = post_xurrent(integration, fixture_bytes("xurrent/webhook.verify.json"))

        event = only_event()
        assert response.status_code == 401
        assert event.status == EventStatus.REJECTED and "no jwt property" in event.reason

    def test_it_rejects_everything_while_the_policy_key_is_missing(self, integration, post_xurrent, sign_xurrent):
        OutgoingIntegration.objects.filter(pk=integration.pk).update(xurrent_policy_public_key="")

        response = post_xurrent(integration, sign_xurrent("request.update"))

        assert response.status_code == 401
        assert "no Xurrent webhook policy key" in only_event().reason

    def test_it_answers_404_for_an_unknown_address_and_stores_nothing(self, integration, client, sign_xurrent):
        response = client.post(reverse("syncengine:xurrent-webhook", args=[uuid.uuid4()]), data=sign_xurrent("request.update"),
                               content_type="application/json")

        assert response.status_code == 404
        assert not InboundEvent.objects.exists()

    def test_it_refuses_a_body_over_the_cap_with_413_and_records_it(self, integration, post_xurrent):
        body = b'{"jwt": "' + b"a" * MAX_BODY_BYTES + b'"}'

        response = post_xurrent(integration, body)

        event = only_event()
        assert response.status_code == 413
        assert event.status == EventStatus.REJECTED and event.signature_ok is None
        assert event.body == "" and event.body_size == len(body)
        assert "at most 262144 bytes" in event.reason

    def test_it_keeps_only_the_head_of_a_large_rejected_body(self, integration, post_xurrent):
        # Unsigned junk must not fill the table: 4 KB, the size and the hash are enough to tell what came.
        body = b'{"jwt": "' + b"x" * 200_000 + b'"}'

        response = post_xurrent(integration, body)

        event = only_event()
        assert response.status_code == 401 and event.status == EventStatus.REJECTED
        assert event.body == body[:4096].decode() and event.body_size == len(body)
        assert event.reason.startswith("The token is not a valid JWT")
        digest = hashlib.sha256(body).hexdigest()
        assert f"only its first 4096 of {len(body)} bytes are stored (sha256 {digest})" in event.reason
        assert "stored" not in response.json()["reason"]  # the sender is told why, not how it was filed

    def test_it_keeps_only_the_telling_headers_of_a_rejected_delivery(self, integration, post_xurrent,
                                                                     sign_xurrent):
        # 50 headers of 1 KB each would store ~50 KB of junk per unsigned request.
        junk = {f"HTTP_X_JUNK_{n}": "j" * 1000 for n in range(60)}
        body = b'{"jwt": "not-a-token"}'

        response = post_xurrent(integration, body, delivery_id="d-junk", **junk)

        event = only_event()
        assert response.status_code == 401 and event.status == EventStatus.REJECTED
        stored = sum(len(name) + len(value) for name, value in event.headers.items())
        assert 3000 < stored <= 4096, stored
        assert event.headers["x-xurrent-delivery"] == "d-junk"
        assert event.headers["user-agent"].startswith("xurrent/1.0")
        assert event.headers["content-type"].startswith("application/json")
        left_out = 50 - len(event.headers)  # at most 50 headers are read at all
        assert left_out > 40 and f"Its headers are stored up to 4096 bytes: {left_out} more were left out." \
            in event.reason
        assert "headers" not in response.json()["reason"]

    def test_it_keeps_every_header_of_an_accepted_delivery(self, integration, post_xurrent, sign_xurrent):
        extra = {f"HTTP_X_TRACE_{n}": "t" * 1000 for n in range(20)}

        post_xurrent(integration, sign_xurrent("request.update"), **extra)

        event = only_event()
        assert event.status != EventStatus.REJECTED
        assert all(event.headers[f"x-trace-{n}"] == "t" * 1000 for n in range(20))

    def test_it_keeps_the_whole_body_of_a_large_accepted_delivery(self, integration, post_xurrent, sign_xurrent):
        message = {**fixture_json("xurrent/request.update.json"), "filler": "y" * 100_000}
        body = sign_xurrent(message)

        post_xurrent(integration, body)

        event = only_event()
        assert event.status == EventStatus.PROCESSED and event.body == body.decode() and len(body) > 100_000

    def test_it_stores_a_repeated_delivery_once_and_acts_once(self, integration, post_xurrent, sign_xurrent,
                                                              outbound):
        body = sign_xurrent("webhook.verify")
        first = post_xurrent(integration, body, delivery_id="d-1")
        second = post_xurrent(integration, body, delivery_id="d-1")

        event = only_event()
        assert first.status_code == second.status_code == 200
        assert second.json() == {"status": "duplicate", "event": event.pk}
        assert event.duplicates == 1 and event.attempts == 1
        assert len(outbound.requests) == 1

    def test_a_retry_naming_its_origin_is_the_same_delivery(self, integration, post_xurrent, sign_xurrent):
        post_xurrent(integration, sign_xurrent("request.update"), delivery_id="d-first")
        # Xurrent retries with a fresh id, a fresh token, and the first id as origin.
        response = post_xurrent(integration, sign_xurrent("request.update"), delivery_id="d-second",
                                HTTP_X_XURRENT_DELIVERY_ORIGIN="d-first")

        assert response.json()["status"] == "duplicate"
        assert only_event().delivery_id == "d-first"

    def test_a_replayed_token_with_a_fresh_delivery_id_is_a_duplicate(self, integration, post_xurrent,
                                                                      sign_xurrent, outbound):
        # The delivery headers are not signed: a captured body posted again with a
        # fresh x-xurrent-delivery is the same signed message (same jti).
        body = sign_xurrent("webhook.verify")
        first = post_xurrent(integration, body, delivery_id="d-1")
        replays = [post_xurrent(integration, body, delivery_id=f"d-replay-{i}") for i in range(2)]
        # ... also with whitespace added, and an origin naming no delivery the portal has seen.
        reformatted = json.dumps(json.loads(body), indent=2).encode()
        replays.append(post_xurrent(integration, reformatted, delivery_id="d-replay-3",
                                    HTTP_X_XURRENT_DELIVERY_ORIGIN="d-unknown"))

        event = only_event()
        assert first.json() == {"status": "accepted", "event": event.pk}
        assert [r.json() for r in replays] == [{"status": "duplicate", "event": event.pk}] * 3
        assert event.duplicates == 3 and event.attempts == 1 and event.delivery_id == "d-1"
        assert len(outbound.requests) == 1  # the callback was called once

    def test_a_replayed_token_without_jti_is_recognised_by_its_hash(self, integration, post_xurrent,
                                                                    sign_xurrent):
        body = sign_xurrent("request.update", jti=None)
        post_xurrent(integration, body, delivery_id="d-1")
        response = post_xurrent(integration, body, delivery_id="d-2")

        assert response.json()["status"] == "duplicate"
        assert only_event().duplicates == 1
        # Another token without jti is another message.
        third = post_xurrent(integration, sign_xurrent("request.update", jti=None, sub="another"), delivery_id="d-3")
        assert third.json()["status"] == "accepted" and InboundEvent.objects.count() == 2

    def test_distinct_deliveries_are_distinct_events(self, integration, post_xurrent, sign_xurrent):
        post_xurrent(integration, sign_xurrent("request.update"), delivery_id="d-a")
        post_xurrent(integration, sign_xurrent("request.update"), delivery_id="d-b")

        assert InboundEvent.objects.count() == 2

    def test_a_disabled_integration_stores_events_as_ignored(self, integration, post_xurrent, sign_xurrent):
        OutgoingIntegration.objects.filter(pk=integration.pk).update(enabled=False)

        response = post_xurrent(integration, sign_xurrent("request.update"))

        event = only_event()
        assert response.status_code == 200 and response.json()["status"] == "ignored"
        assert event.status == EventStatus.IGNORED and event.attempts == 0
        assert event.reason == "The integration is disabled; the event was stored but not processed."

    def test_a_disabled_integration_still_answers_webhook_verify(self, integration, post_xurrent, sign_xurrent,
                                                                 outbound):
        OutgoingIntegration.objects.filter(pk=integration.pk).update(enabled=False)

        post_xurrent(integration, sign_xurrent("webhook.verify"))

        assert only_event().status == EventStatus.PROCESSED
        assert len(outbound.requests) == 1

    def test_it_keeps_headers_but_never_credentials(self, integration, post_xurrent, sign_xurrent):
        post_xurrent(integration, sign_xurrent("request.update"), delivery_id="d-h",
                     HTTP_AUTHORIZATION="Basic dXNlcjpzM2NyZXQ=", HTTP_X_API_TOKEN="t0ken-value",
                     HTTP_LINK='<https://wdc.xurrent.com/requests/70231>; rel="canonical"')

        headers = only_event().headers
        assert headers["x-xurrent-delivery"] == "d-h"
        assert headers["link"].startswith("<https://wdc.xurrent.com/requests/70231>")
        assert "authorization" not in headers and "x-api-token" not in headers
        assert "dXNlcjpzM2NyZXQ=" not in json.dumps(headers) and "t0ken-value" not in json.dumps(headers)

    def test_get_is_not_allowed(self, integration, client):
        assert client.get(xurrent_url(integration)).status_code == 405
        assert not InboundEvent.objects.exists()

    def test_a_browser_opening_a_webhook_address_reads_what_it_is_for(self, integration, client):
        for url, sender in ((xurrent_url(integration), "Xurrent"), (zenduty_url(integration), "Zenduty"),
                            (reverse("syncengine:xurrent-tenant-webhook", args=[uuid.uuid4()]), "Xurrent")):
            response = client.get(url, HTTP_ACCEPT="text/html,application/xhtml+xml")
            assert response.status_code == 405 and response["Content-Type"] == "application/json"
            assert response["Allow"] == "POST, OPTIONS"
            assert response.json()["reason"].startswith(f"This address receives {sender}'s webhook deliveries: "
                                                        f"POST requests that {sender} signs.")
        assert not InboundEvent.objects.exists()

    @pytest.mark.parametrize("accept", ["text/html", "application/xml", "image/png;q=1, */*;q=0"])
    def test_a_delivery_is_stored_whatever_its_accept_header_says(self, accept, integration, post_xurrent,
                                                                  sign_xurrent, post_zenduty):
        """DRF refused these with 406 before the view ran: a signed delivery lost for a header."""
        xurrent = post_xurrent(integration, sign_xurrent("request.update"), HTTP_ACCEPT=accept)
        zenduty = post_zenduty(integration, fixture_bytes("zenduty/triggered.json"), HTTP_ACCEPT=accept)

        for response in (xurrent, zenduty):
            assert response.status_code == 200, response.content
            assert response["Content-Type"] == "application/json"
            assert response.json()["status"] == "accepted"
        assert InboundEvent.objects.filter(status__in=[EventStatus.PROCESSED, EventStatus.RECEIVED]).count() == 2

    def test_it_needs_no_csrf_token(self, integration, sign_xurrent, outbound):
        from django.test import Client

        strict = Client(enforce_csrf_checks=True)
        response = strict.post(xurrent_url(integration), data=sign_xurrent("request.update"),
                               content_type="application/json", HTTP_X_XURRENT_DELIVERY="d-csrf")
        assert response.status_code == 200


@pytest.mark.django_db
@pytest.mark.usefixtures("sync_handlers")
class TestZendutyWebhooks:
    @pytest.mark.parametrize("name", ZENDUTY_EVENTS)
    def test_it_stores_incident_events_and_hands_them_to_the_sync(self, name, integration, post_zenduty,
                                                                   outbound, sync_handlers):
        body = fixture_bytes(f"zenduty/{name}.json")

        response = post_zenduty(integration, body)

        event = only_event()
        assert response.status_code == 200 and response.json() == {"status": "accepted", "event": event.pk}
        assert (event.source, event.event_type, event.object_id) == ("zenduty", name, "Hq7ZkD3mVbN9tRw2xYp4sC")
        assert event.status == EventStatus.PROCESSED and event.reason.startswith("synced by the stand-in")
        assert sync_handlers == [("zenduty", name, "Hq7ZkD3mVbN9tRw2xYp4sC")]
        assert event.signature_ok is True and len(event.delivery_id) == 64  # a hash: Zenduty sends no id
        assert event.body == body.decode()
        assert outbound.requests == []

    def test_the_first_signed_delivery_confirms_the_manual_zenduty_step(self, integration, post_zenduty,
                                                                         sync_handlers):
        assert integration.zenduty_step_confirmed_at is None

        post_zenduty(integration, fixture_bytes("zenduty/triggered.json"))

        integration.refresh_from_db()
        assert integration.zenduty_step_confirmed_at is not None
        assert "confirmed the Zenduty webhook setup" in only_event().reason

    def test_it_rejects_a_wrong_signature(self, integration, post_zenduty):
        body = fixture_bytes("zenduty/triggered.json")

        response = post_zenduty(integration, body, signature=sign_zenduty(body, "not-the-signing-secret"))

        event = only_event()
        assert response.status_code == 401
        assert event.status == EventStatus.REJECTED and event.signature_ok is False
        assert "does not match" in event.reason
        assert SIGNING_SECRET not in response.content.decode() and SIGNING_SECRET not in event.reason

    def test_it_rejects_an_unsigned_delivery(self, integration, post_zenduty):
        response = post_zenduty(integration, fixture_bytes("zenduty/triggered.json"), signature=None)

        assert response.status_code == 401
        assert "no X-SIGNATURE header" in only_event().reason

    def test_it_rejects_a_signature_over_other_bytes(self, integration, post_zenduty):
        # Re-serialised JSON (other spacing) is not what was signed.
        original = fixture_bytes("zenduty/triggered.json")
        compact = json.dumps(json.loads(original), separators=(",", ":")).encode()

        response = post_zenduty(integration, compact, signature=sign_zenduty(original))

        assert response.status_code == 401

    @pytest.mark.parametrize("body, words", [
        (b'{"payload": {"event_type": "triggered",', "not JSON"),
        (b'{"payload": {"event_type": "triggered"}}', "no 'incident' object"),
        (b'["triggered"]', "not a JSON object"),
    ], ids=["truncated", "no-incident", "list"])
    def test_it_rejects_signed_bodies_that_are_not_deliveries_with_400(self, body, words, integration,
                                                                       post_zenduty):
        response = post_zenduty(integration, body)

        event = only_event()
        assert response.status_code == 400
        assert event.status == EventStatus.REJECTED and event.signature_ok is True and words in event.reason

    def test_it_rejects_a_signed_deeply_nested_body_with_400(self, integration, post_zenduty):
        response = post_zenduty(integration, b'{"payload":' + b"[" * 200_000)

        event = only_event()
        assert response.status_code == 400
        assert event.status == EventStatus.REJECTED and event.signature_ok is True
        assert event.reason.startswith("The body is not JSON")

    @pytest.mark.parametrize("signature, status", [("sign", 400), ("bm90LXRoZS1zaWduYXR1cmU=", 401), (None, 401)],
                             ids=["signed-not-a-delivery", "bad-signature", "unsigned"])
    def test_it_keeps_only_the_head_of_a_large_rejected_body(self, signature, status, integration, post_zenduty):
        body = json.dumps({"junk": "z" * 100_000}).encode()

        response = post_zenduty(integration, body, signature=signature)

        event = only_event()
        assert response.status_code == status and event.status == EventStatus.REJECTED
        assert event.body == body[:4096].decode() and event.body_size == len(body)
        assert hashlib.sha256(body).hexdigest() in event.reason

    def test_it_stores_a_repeated_delivery_once(self, integration, post_zenduty):
        body = fixture_bytes("zenduty/acknowledged.json")

        post_zenduty(integration, body)
        second = post_zenduty(integration, body)

        event = only_event()
        assert second.status_code == 200 and second.json() == {"status": "duplicate", "event": event.pk}
        assert event.duplicates == 1

    def test_the_same_incident_in_another_state_is_another_event(self, integration, post_zenduty):
        for name in ZENDUTY_EVENTS:
            post_zenduty(integration, fixture_bytes(f"zenduty/{name}.json"))

        assert InboundEvent.objects.count() == 3

    def test_it_accepts_and_ignores_an_unknown_event_type(self, integration, post_zenduty):
        message = fixture_json("zenduty/triggered.json")
        message["payload"]["event_type"] = "incident_note_added"

        response = post_zenduty(integration, json.dumps(message).encode())

        event = only_event()
        assert response.status_code == 200 and response.json()["status"] == "ignored"
        assert event.status == EventStatus.IGNORED and event.attempts == 0
        assert "does not handle Zenduty 'incident_note_added' events" in event.reason

    def test_a_disabled_integration_stores_events_as_ignored(self, integration, post_zenduty):
        OutgoingIntegration.objects.filter(pk=integration.pk).update(enabled=False)

        response = post_zenduty(integration, fixture_bytes("zenduty/resolved.json"))

        assert response.status_code == 200
        assert only_event().reason == "The integration is disabled; the event was stored but not processed."

    def test_it_never_stores_basic_auth(self, integration, post_zenduty):
        post_zenduty(integration, fixture_bytes("zenduty/triggered.json"),
                     HTTP_AUTHORIZATION="Basic emVuZHV0eTpodW50ZXIy")

        event = only_event()
        assert "authorization" not in event.headers
        assert "x-signature" in event.headers
        assert "emVuZHV0eTpodW50ZXIy" not in json.dumps(event.headers)

    def test_unknown_address(self, integration, client):
        response = client.post(reverse("syncengine:zenduty-webhook", args=[uuid.uuid4()]), data=b"{}", content_type="application/json")

        assert response.status_code == 404
        assert not InboundEvent.objects.exists()

    def test_the_urls_are_the_ones_provisioning_hands_out(self, integration):
        from integrations.provisioning import xurrent_webhook_url, zenduty_webhook_url

        assert xurrent_webhook_url(integration).endswith(xurrent_url(integration))
        assert zenduty_webhook_url(integration).endswith(zenduty_url(integration))
