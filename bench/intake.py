"""Webhook intake under a real server: throughput next to a trivial view, and latency under an open-loop load.

What: gunicorn started as ``make run`` starts it (``config``'s app, 2 workers × 4
threads, gthread), on the benchmark's throw-away database, with one more URL,
``/bench/ping/``, a view that reads the body and answers without touching the
database (``bench/urls.py``). Signed deliveries are made before any clock
starts (``bench.webhooks``: Xurrent's RS256 JWTs, Zenduty's HMAC).

* **Throughput, side by side:** ``SENDERS`` threads, each with a keep-alive
  connection, POST as fast as answers come for ``SECONDS``: first to the
  trivial view, then to an intake endpoint, for each source. The ratio of
  deliveries accepted per second to the trivial view's answers per second, in
  the same run on the same server, is what is held to a target: absolute rates
  depend on the machine (and here the load generator shares its 2 cores with
  the server), the ratio says what the intake itself costs. Target ≥ 0.5: the
  intake does two small writes per delivery (the event and its job), which on
  SQLite serialise; half the server's bare request rate leaves it I/O-, not
  CPU-bound.
* **Latency, open loop:** ``RATE`` deliveries a second for ``OPEN_SECONDS``,
  each timed from when it was *scheduled* to be sent, not from when a busy
  sender got round to it (so a stall shows in every delivery it delays, as a
  real burst from Xurrent or Zenduty would feel it). Target p99 < 50 ms:
  Zenduty gives a webhook 3 s, Xurrent 10 s; 50 ms at 200/s leaves room for a
  slower host and catches a lock or a call before the answer.
* **Honesty:** every delivery answered ``accepted`` and stored once.
* **Memory:** the peak resident size of the server's processes (VmHWM).

Behind nginx (the production setup) see ``tests/test_reverse_proxy.py``;
this bench measures gunicorn directly, as ``make run`` serves.
"""
from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bench import Row, percentile
from bench.webhooks import _integration, _xurrent_deliveries, _zenduty_deliveries
from syncengine.models import InboundEvent

SENDERS = 8
SECONDS = 4.0
RATE = 200
OPEN_SECONDS = 5.0
OPEN_SENDERS = 32
TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0
ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_server(db_name: str) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.server_settings", "BENCH_DB_NAME": db_name,
           "Q_SYNC": "false", "DB_CONN_MAX_AGE": "60", "LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {server.stderr.read().decode()[-2000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("POST", "/bench/ping/", body=b"{}")
            if connection.getresponse().status == 200:
                return server, port
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer within 30 s")


def _stop_server(server: subprocess.Popen) -> float:
    """Stop the server; return the peak resident size of its processes in MB (VmHWM, summed)."""
    peak = 0
    for pid in [server.pid, *_children(server.pid)]:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak += int(line.split()[1])
        except OSError:
            pass
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
    return peak / 1024


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class _Sender:
    """One keep-alive connection; POSTs and checks the answer."""

    def __init__(self, port: int):
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def post(self, path: str, body: bytes, headers: dict) -> None:
        self.connection.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
        response = self.connection.getresponse()
        answer = response.read()
        if response.status != 200 or (b'"accepted"' not in answer and b'"ok"' not in answer):
            raise AssertionError(f"{path} answered {response.status}: {answer[:200]!r}")


def _http_headers(deliveries) -> list[tuple[bytes, dict]]:
    """The test client's ``HTTP_X_FOO`` keyword headers as real header names."""
    return [(body, {key[5:].replace("_", "-").title(): value for key, value in headers.items()})
            for body, headers in deliveries]


def _closed_loop(port: int, path: str, deliveries) -> tuple[int, float]:
    """(answers, per second) from ``SENDERS`` threads posting back to back for ``SECONDS``."""
    lock, position, done = threading.Lock(), [0], [0]
    deadline = time.monotonic() + SECONDS
    errors: list[Exception] = []

    def send():
        sender = _Sender(port)
        while time.monotonic() < deadline:
            with lock:
                if position[0] >= len(deliveries):
                    return
                body, headers = deliveries[position[0]]
                position[0] += 1
            try:
                sender.post(path, body, headers)
            except Exception as exc:  # noqa: BLE001 - reported after the run
                errors.append(exc)
                return
            with lock:
                done[0] += 1

    started = time.monotonic()
    threads = [threading.Thread(target=send) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise AssertionError(f"{path}: {errors[0]}")
    return done[0], done[0] / (time.monotonic() - started)


def _open_loop(port: int, path: str, deliveries) -> list[float]:
    """Latencies in ms of ``RATE`` deliveries a second, each timed from its scheduled send."""
    count = int(RATE * OPEN_SECONDS)
    deliveries = deliveries[:count]
    start = time.monotonic() + 0.2
    lock, position = threading.Lock(), [0]
    latencies: list[float] = []
    errors: list[Exception] = []

    def send():
        sender = _Sender(port)
        while True:
            with lock:
                n = position[0]
                if n >= len(deliveries):
                    return
                position[0] += 1
            scheduled = start + n / RATE
            time.sleep(max(0.0, scheduled - time.monotonic()))
            body, headers = deliveries[n]
            try:
                sender.post(path, body, headers)
            except Exception as exc:  # noqa: BLE001 - reported after the run
                errors.append(exc)
                return
            with lock:
                latencies.append((time.monotonic() - scheduled) * 1000)

    threads = [threading.Thread(target=send) for _ in range(OPEN_SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise AssertionError(f"{path}: {errors[0]}")
    return latencies


def run() -> list[Row]:
    from django.db import connection

    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    integration = _integration(public_pem, name="Bench intake", account_id="benchintake")
    wanted = 6000  # more than 8 senders can post in SECONDS here, plus the open-loop run
    xurrent = _http_headers(_xurrent_deliveries(integration, private_key, wanted))
    zenduty = _http_headers(_zenduty_deliveries(integration, wanted))
    connection.close()  # the server writes the database now
    server, port = _start_server(connection.settings_dict["NAME"])
    rows: list[Row] = []
    try:
        ping = [(b'{"payload": "ping"}', {})] * 100000
        accepted = 0
        for label, path, deliveries in (
                ("Zenduty", f"/webhooks/zenduty/{integration.public_id}/", zenduty),
                ("Xurrent", f"/webhooks/xurrent/{integration.public_id}/", xurrent)):
            _, bare = _closed_loop(port, "/bench/ping/", ping)
            used, rate = _closed_loop(port, path, deliveries)
            if used >= len(deliveries) - RATE * OPEN_SECONDS:
                raise AssertionError(f"{label}: too few deliveries made beforehand for this machine's rate")
            accepted += used
            rows += [Row(f"intake: trivial view, {SENDERS} senders", bare, "answers/s"),
                     Row(f"intake: {label} deliveries, {SENDERS} senders", rate, "/s"),
                     Row(f"intake: {label} / trivial view", rate / bare, "ratio", TARGET_RATIO, ">=")]
            latencies = _open_loop(port, path, deliveries[used:])
            accepted += len(latencies)
            rows += [Row(f"intake: {label} p50 at {RATE}/s (open loop)", percentile(latencies, 50), "ms"),
                     Row(f"intake: {label} p99 at {RATE}/s (open loop)", percentile(latencies, 99), "ms",
                         TARGET_P99_MS)]
        # Every answer was checked to be "accepted": each must be one stored event.
        rows.append(Row("intake: deliveries stored, of those accepted",
                        InboundEvent.objects.filter(integration=integration).count(), "",
                        accepted, "=="))
    finally:
        rows.append(Row("intake: gunicorn peak memory (master + 2 workers)", _stop_server(server), "MB"))
    return rows

