"""Deliveries sent with ``Transfer-Encoding: chunked`` (no Content-Length), over real HTTP.

Under gunicorn (``make run``, production), which de-chunks the body and ends
the input, the body is read and the delivery accepted; the size cap holds.
Django's runserver and test live server cannot read such a body: the sender
gets 411 and the history says why, instead of an "unsigned" 401.
"""
from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.urls import reverse
import pytest
import requests

from syncengine.models import MAX_BODY_BYTES, EventStatus, InboundEvent
from tests.syncengine.conftest import SIGNING_SECRET, fixture_bytes, sign_zenduty, zenduty_url

ROOT = Path(__file__).resolve().parents[2]

# Run in the portal's own environment (manage.py shell) against the gunicorn's database.
MAKE_INTEGRATION = f"""
from connections.models import XurrentTenant, ZendutyAccount
from integrations.models import OutgoingIntegration
tenant = XurrentTenant.objects.create(name="T", account_id="wdc", client_id="c", client_secret="s")
account = ZendutyAccount.objects.create(name="Z", api_token="t")
integration = OutgoingIntegration.objects.create(
    zenduty_account=account, zenduty_team_id="team", zenduty_service_id="svc", tenant=tenant,
    service_instance_id="1", zenduty_signing_secret={SIGNING_SECRET!r})
print(integration.public_id)
"""


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over gunicorn's Unix socket: no port to pick, so none taken by another test."""

    def __init__(self, path: str):
        super().__init__("localhost", timeout=10)
        self.socket_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


class Gunicorn:
    def __init__(self, directory: str, env: dict, process: subprocess.Popen, public_id: str):
        self.socket = os.path.join(directory, "web.sock")
        self.database = os.path.join(directory, "db.sqlite3")
        self.env, self.process, self.public_id = env, process, public_id

    def post(self, body, headers: dict) -> tuple[int, dict]:
        """POST to the Zenduty webhook; an iterable body goes out chunked (http.client does that)."""
        connection = UnixHTTPConnection(self.socket)
        try:
            connection.request("POST", reverse("syncengine:zenduty-webhook", args=[self.public_id]), body=body,
                               headers={"Content-Type": "application/json", **headers})
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    def event(self, pk: int) -> dict:
        with sqlite3.connect(self.database) as db:
            db.row_factory = sqlite3.Row
            return dict(db.execute("SELECT * FROM syncengine_inboundevent WHERE id = ?", (pk,)).fetchone())


@pytest.fixture(scope="module")
def gunicorn():
    """gunicorn serving the portal (as scripts/run starts it) on a fresh SQLite database, with one integration."""
    directory = tempfile.mkdtemp(prefix="chunked-")  # short: a Unix socket path has at most ~100 characters
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings_test", DATABASE_URL=f"sqlite:///{directory}/db.sqlite3")

    def manage(*args):
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, check=True, timeout=120).stdout

    process = None
    try:
        manage("migrate", "-v0")
        public_id = manage("shell", "--no-imports", "-c", MAKE_INTEGRATION).strip()
        socket_path = os.path.join(directory, "web.sock")
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"unix:{socket_path}",
                                    "--workers", "1", "--threads", "2", "--log-level", "warning"],
                                   cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while not os.path.exists(socket_path):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start: {process.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)
        yield Gunicorn(directory, env, process, public_id)
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            process.stderr.close()
        shutil.rmtree(directory, ignore_errors=True)


def in_chunks(body: bytes, size: int = 1000):
    return (body[i:i + size] for i in range(0, len(body), size))


class TestUnderGunicorn:
    def test_a_chunked_delivery_is_read_verified_and_stored(self, gunicorn):
        body = fixture_bytes("zenduty/triggered.json")

        status, answer = gunicorn.post(in_chunks(body), {"X-SIGNATURE": sign_zenduty(body)})

        assert (status, answer["status"]) == (200, "accepted"), answer
        event = gunicorn.event(answer["event"])
        assert event["signature_ok"] == 1 and event["event_type"] == "triggered"
        assert event["body"] == body.decode() and event["body_size"] == len(body)
        assert json.loads(event["headers"])["transfer-encoding"] == "chunked"

    def test_a_chunked_body_over_the_cap_is_refused_with_413(self, gunicorn):
        body = json.dumps({"junk": "z" * MAX_BODY_BYTES}).encode()

        status, answer = gunicorn.post(in_chunks(body, 64 * 1024), {"X-SIGNATURE": sign_zenduty(body)})

        assert status == 413 and answer["status"] == "rejected"
        assert answer["reason"] == f"The body has more than {MAX_BODY_BYTES} bytes; at most {MAX_BODY_BYTES} bytes " \
                                   f"are accepted."
        event = gunicorn.event(answer["event"])
        assert event["status"] == EventStatus.REJECTED and event["body"] == ""

    def test_a_delivery_with_a_content_length_still_works(self, gunicorn):
        body = fixture_bytes("zenduty/acknowledged.json")

        status, answer = gunicorn.post(body, {"X-SIGNATURE": sign_zenduty(body)})

        assert (status, answer["status"]) == (200, "accepted"), answer
        assert gunicorn.event(answer["event"])["body"] == body.decode()


@pytest.mark.django_db(transaction=True)
def test_the_test_live_server_answers_411_and_records_why(live_server, integration):
    # Django's server reads Content-Length bytes only: the chunked body would look empty and "unsigned".
    body = fixture_bytes("zenduty/triggered.json")

    with requests.Session() as session:
        response = session.post(live_server.url + zenduty_url(integration), data=in_chunks(body),
                                headers={"Content-Type": "application/json", "X-SIGNATURE": sign_zenduty(body),
                                         "Connection": "close"})

    event = InboundEvent.objects.get()
    assert response.status_code == 411 and response.json()["event"] == event.pk
    assert event.status == EventStatus.REJECTED and event.signature_ok is None
    assert "sent in chunks" in event.reason and "Content-Length" in event.reason
