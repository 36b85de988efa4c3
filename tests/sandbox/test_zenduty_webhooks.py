"""Outgoing webhooks of the simulated Zenduty (https://www.zenduty.com/docs/outgoingwebhooks-integration/).

A tiny http.server on 127.0.0.1 stands in for the portal and records what
arrives; deliveries leave through the sandbox outbox (flushed here).
"""
import base64
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from sandbox import deliveries
from sandbox.zenduty import demo

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "test-zenduty-token-0003"
SECRET = "s3cret-signing-key"


@pytest.fixture
def hook():
    """An HTTP server that records every POST (path, headers, raw body)."""
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                             "body": body})
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.received = received
    server.url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/zenduty/abc/"
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def world():
    return demo.make_account(TOKEN)


@pytest.fixture
def api(sandbox, world, zenduty_per_minute_limits_only):
    session = requests.Session()
    session.headers.update({"Authorization": f"Token {TOKEN}", "Content-Type": "application/json"})
    session.base = sandbox.url + "/sandbox/zenduty/api"
    yield session
    session.close()  # no keep-alive connection outlives the test's live server


def expected_signature(raw: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), raw, hashlib.sha256).digest()).decode()


def test_trigger_ack_resolve_send_three_signed_deliveries(api, world, hook):
    demo.configure_outgoing_webhook(world.website, hook.url, SECRET)
    created = api.post(f"{api.base}/incidents/", json={
        "title": "Café down — ünïcode", "service": str(world.website.unique_id)}, timeout=10).json()
    assert hook.received == []  # never inside the API call
    api.patch(f"{api.base}/incidents/{created['unique_id']}/", json={"status": 2}, timeout=10)
    api.patch(f"{api.base}/incidents/{created['unique_id']}/", json={"status": 3}, timeout=10)
    sent = deliveries.flush()
    assert [d.description for d in sent] == [f"{e} #{created['incident_number']}"
                                             for e in ("triggered", "acknowledged", "resolved")]

    assert [r["path"] for r in hook.received] == ["/webhooks/zenduty/abc/"] * 3
    bodies = [json.loads(r["body"]) for r in hook.received]
    assert [b["payload"]["event_type"] for b in bodies] == ["triggered", "acknowledged", "resolved"]
    for received in hook.received:
        assert hmac.compare_digest(received["headers"]["x-signature"], expected_signature(received["body"]))
        assert received["headers"]["content-type"] == "application/json"

    incident = bodies[2]["payload"]["incident"]
    assert incident["incident_number"] == created["incident_number"] and incident["unique_id"] == created["unique_id"]
    assert incident["title"] == "Café down — ünïcode" and incident["status"] == 3
    assert incident["resolved_date"] and incident["acknowledged_date"]
    assert incident["service"]["unique_id"] == str(world.website.unique_id)  # a full object, not a UUID
    assert incident["service"]["name"] == "Website"
    assert incident["service"]["team"] == world.operations.unique_id.hex  # 32-hex references, as documented
    assert incident["assigned_to"] == {"username": world.ui_user.username, "first_name": "Dwight",
                                       "last_name": "Schrute", "email": world.ui_user.email}
    assert "team_priority" not in incident and "team_priority_object" not in incident
    assert bodies[0]["payload"]["incident"]["status"] == 1
    assert bodies[0]["payload"]["incident"]["acknowledged_date"] is None


def test_notes_and_priority_changes_send_nothing(api, world, hook):
    demo.configure_outgoing_webhook(world.website, hook.url, SECRET)
    created = api.post(f"{api.base}/incidents/", json={"title": "x", "service": str(world.website.unique_id)},
                       timeout=10).json()
    deliveries.flush()
    assert len(hook.received) == 1
    note = api.post(f"{api.base}/incidents/{created['incident_number']}/note/", json={"note": "hello"}, timeout=10)
    assert note.status_code == 201
    priority = api.patch(f"{api.base}/incidents/{created['unique_id']}/",
                         json={"team_priority": str(world.priorities[0].unique_id)}, timeout=10)
    assert priority.status_code == 200
    same_status = api.patch(f"{api.base}/incidents/{created['unique_id']}/", json={"status": 1}, timeout=10)
    assert same_status.status_code == 200
    assert deliveries.flush() == [] and len(hook.received) == 1


def test_other_services_and_disabled_or_unconfigured_integrations_send_nothing(api, world, hook):
    integration = demo.configure_outgoing_webhook(world.website, hook.url, SECRET)
    integration.is_enabled = False
    integration.save()
    demo.add_integration(world.website, "outgoing_webhooks", name="no URL yet")
    made = [api.post(f"{api.base}/incidents/", json={"title": "x", "service": str(world.website.unique_id)},
                     timeout=10),
            api.post(f"{api.base}/incidents/", json={"title": "y", "service": str(world.services["Email"].unique_id)},
                     timeout=10)]
    assert [r.status_code for r in made] == [201, 201]  # both incidents exist, and still nothing is sent
    assert deliveries.flush() == [] and hook.received == []


def test_basic_auth_and_unsigned_variants(api, world, hook):
    demo.configure_outgoing_webhook(world.website, hook.url, auth_type="basic", username="zd", password="pw")
    demo.configure_outgoing_webhook(world.services["Email"], hook.url)  # no authentication
    api.post(f"{api.base}/incidents/", json={"title": "x", "service": str(world.website.unique_id)}, timeout=10)
    api.post(f"{api.base}/incidents/", json={"title": "y", "service": str(world.services["Email"].unique_id)},
             timeout=10)
    deliveries.flush()
    basic, plain = hook.received
    assert basic["headers"]["authorization"] == "Basic " + base64.b64encode(b"zd:pw").decode()
    assert "x-signature" not in basic["headers"]
    assert "authorization" not in plain["headers"] and "x-signature" not in plain["headers"]


def test_events_api_transitions_send_webhooks_too(sandbox, world, hook):
    demo.configure_outgoing_webhook(world.website, hook.url, SECRET)
    integration = demo.add_integration(world.website, "api")
    url = f"{sandbox.url}/sandbox/zenduty/api/events/{integration.integration_key}/"
    for alert_type in ("critical", "critical", "acknowledged", "resolved"):
        requests.post(url, json={"message": "m", "alert_type": alert_type, "entity_id": "e"}, timeout=10)
    deliveries.flush()
    assert [json.loads(r["body"])["payload"]["event_type"] for r in hook.received] == [
        "triggered", "acknowledged", "resolved"]


def test_failed_deliveries_are_retried(api, world, hook):
    demo.configure_outgoing_webhook(world.website, hook.url + "?", SECRET)
    dead = demo.configure_outgoing_webhook(world.services["Email"], "http://127.0.0.1:9/nothing/", SECRET)
    api.post(f"{api.base}/incidents/", json={"title": "y", "service": str(dead.service.unique_id)}, timeout=10)
    (row,) = deliveries.flush()
    row.refresh_from_db()
    assert row.state == "pending" and row.attempts == 1 and row.max_attempts == 5 and row.timeout_seconds == 3
