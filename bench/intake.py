"""Webhook intake under a real server: throughput next to a trivial view, and latency under an open-loop load.

What: the intake served two ways, one after the other in the same run, on the
benchmark's throw-away database (SQLite, or PostgreSQL when ``DATABASE_URL``
names it):

* **gunicorn** as ``make run`` starts it (``config``'s app, 2 workers × 4
  threads, gthread) on 127.0.0.1, over plain http;
* **nginx + gunicorn**, the production setup README recommends: Debian's
  nginx with the repository's ``deploy/nginx/portal.conf`` (only its ports,
  socket and certificate paths replaced, as ``tests/test_reverse_proxy.py``
  does, with the same helpers) in front of the same gunicorn command on a
  Unix socket, TLS terminated by nginx with a self-signed certificate, the
  portal told so as README says (``SECURE_PROXY_SSL_HEADER``,
  ``SECURE_SSL_REDIRECT``). nginx runs with Debian's ``nginx.conf`` defaults
  that cost time: a worker per core, an access log. portal.conf opens a new
  connection to gunicorn for each request (no upstream keep-alive), and that
  is measured as shipped. Without nginx the rows of this setup are one row
  saying it was skipped and why.

Each server has one more URL, ``/bench/ping/``, a view that reads the body
and answers without touching the database (``bench/urls.py``). Signed
deliveries are made before any clock starts (``bench.webhooks``: Xurrent's
RS256 JWTs, Zenduty's HMAC), each used once.

* **Throughput, side by side:** ``SENDERS`` threads, each with a keep-alive
  connection, POST as fast as answers come for ``SECONDS``: first to the
  trivial view, then to an intake endpoint, for each source, through the same
  server. The ratio of deliveries accepted per second to the trivial view's
  answers per second, in the same run on the same server, is what is held to
  a target: absolute rates depend on the machine (and here the load
  generator, and nginx, share its 2 cores with gunicorn), the ratio says what
  the intake itself costs. Target ≥ 0.5 (issue #13): half the server's
  bare request rate for a delivery that is verified, stored and queued.
* **Latency, open loop:** ``RATE`` deliveries a second for ``OPEN_SECONDS``,
  each timed from when it was *scheduled* to be sent, not from when a busy
  sender got round to it (so a stall shows in every delivery it delays, as a
  real burst from Xurrent or Zenduty would feel it). Target p99 < 50 ms:
  Zenduty gives a webhook 3 s, Xurrent 10 s; 50 ms at 200/s leaves room for a
  slower host and catches a lock or a call before the answer. Behind nginx
  the senders' connections are TLS, kept alive, as a busy sender's would be.
* **Honesty:** every delivery answered ``accepted`` (through nginx too: a
  redirect or a 502 breaks the bench) and stored once, over both setups.
* **Memory:** the peak resident size of gunicorn's processes, and of nginx's
  (VmHWM, master and workers summed).

Reading the two setups: behind nginx the trivial view pays for TLS at both
ends and a new connection to gunicorn per request, on the same 2 cores, so
it answers a quarter to a half fewer requests than gunicorn alone, while the
intake's own rate barely moves; the same intake therefore shows a higher
ratio behind nginx. Both are held to the target: the ratio straight to
gunicorn is the intake's own cost, the one behind nginx what production
sees. Numbers measured, with the machine: docs/status.md, "Measured".

Where a delivery's time goes (2026-12-01; server CPU per request, read from
/proc for gunicorn's processes during the closed loop, so the machine's
other load counts little; in-process figures from Django's WSGI handler
under cProfile): the trivial view costs ~0.45 ms, 0.11 ms of it Django. A
Zenduty delivery checked but not stored (an experiment, not the product)
costs ~0.75 ms: a ratio near 0.6 (measured, below: 0.56). Its event's
INSERT adds ~0.8 ms, and queueing its job ~0.35 ms (django-q2 pickles and
signs the task, then its own INSERT). Not contention: with one sender
instead of eight a delivery costs the server the same CPU (1.95 ms against
2.03, 2026-12-01), and ``perf`` over gunicorn's processes under the load
puts 60% of their CPU in the Python interpreter, 13% in the kernel and 4%
in SQLite itself: it is the Python that builds and runs two ORM INSERTs
(in-process, under cProfile:
the event's ``create`` ~37% of a delivery's time, ``async_task`` ~25%). A Xurrent delivery adds
PyJWT 2.15's character-by-character check of the token's base64url (~0.2
ms for a 2 KB token). With two writes per delivery the ratio stays near
0.25-0.3 on these 2 cores, on SQLite and on PostgreSQL; what got it there
from 0.14 was a per-process copy of the webhook address's target
(``syncengine.intake._RecentTargets``), the policy key parsed once, the
INSERT outside an explicit transaction and one broker per process.

The ceiling (2026-12-01, experiments on this bench, not the product;
straight to gunicorn, Zenduty / Xurrent, behind nginx in brackets): as
shipped 0.20 / 0.21 (0.33 / 0.26); the job not queued 0.27 / 0.24 (0.42 /
0.38); the event also stored by a hand-built prepared INSERT instead of the
ORM 0.31 / 0.23 (0.45 / 0.42); verified and answered, stored and queued
nowhere, 0.56 / 0.50 (0.79 / 0.65). In-process, one event row costs SQLite
itself ~115 µs of CPU with the table's indexes (~57 µs with only its unique
ones), Python ~190 µs more through a prepared statement, ~355 µs through the
ORM. The checks before the answer, as they stand, use up what the target
leaves: no change to the store or the queue alone reaches 0.5 straight to
gunicorn while the event is stored before it is acknowledged.

Where it is not (same day, one run each unless said): the 2 cores are
80–88% busy while deliveries are sent, 93–99% for the trivial view, so lock
waits cost little; serializing each process's writes behind one lock changed
nothing (551/s), nor did a shorter GIL switch interval (0.5 and 1 ms). What
moved it is gunicorn's threads: with 2 workers × 1 thread instead of × 4 the
deliveries ran at 680–750/s (Zenduty ratio 0.36–0.39, Xurrent 0.30–0.34, two
runs), the trivial view a little slower; 3 × 2: 0.28 / 0.21; 4 × 1: 0.29 /
0.25. So under load a delivery costs about twice its in-process time
(~0.76 ms for store and queue in-process), mostly in 4 threads of Python
sharing a process, not in SQLite. ``make run`` keeps 2 × 4: admin pages that
wait on Xurrent or Zenduty would otherwise hold a whole worker.
"""
from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from bench import Row, percentile
from bench.webhooks import _integration, _xurrent_deliveries, _zenduty_deliveries
from syncengine.models import InboundEvent
# The production-setup test's stack, so that both run nginx the same way.
from tests.test_reverse_proxy import (GUNICORN_HOOKS, find_nginx, nginx_main_conf, templated_portal_conf,
                                      write_certificate)

SENDERS = 8
SECONDS = 4.0
RATE = 200
OPEN_SECONDS = 5.0
OPEN_SENDERS = 32
TARGET_RATIO = 0.5
TARGET_P99_MS = 50.0
START_TIMEOUT = 30.0
# Deliveries made per source and setup before its clocks start: the open-loop
# run's and more than 8 senders post in SECONDS (enough for 1,750/s, above half
# the trivial view's best rate straight to gunicorn here, ~3,100/s).
DELIVERIES = 8000
ROOT = Path(__file__).resolve().parent.parent
GUNICORN_ARGS = ["--workers", "2", "--threads", "4", "--log-level", "warning"]  # as `make run` and README


@dataclass
class _Setup:
    """A running server: where senders connect (https when ``tls``), and the processes to stop."""

    label: str
    port: int
    processes: list[tuple[str, subprocess.Popen, int]]  # (name, process, stop signal)
    tls: ssl.SSLContext | None = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_env(db_name: str, **extra: str) -> dict:
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.server_settings", "BENCH_DB_NAME": db_name,
            "Q_SYNC": "false", "DB_CONN_MAX_AGE": "60", "LOG_LEVEL": "WARNING", **extra}


def _gunicorn(directory: Path, bind: str, env: dict) -> subprocess.Popen:
    """gunicorn as ``make run`` starts it, bound to ``bind``; its workers mark ``directory`` when loaded."""
    (directory / "gunicorn_hooks.py").write_text(GUNICORN_HOOKS.format(directory=str(directory)))
    with open(directory / "gunicorn.log", "wb") as log:
        return subprocess.Popen(
            [str(Path(sys.executable).with_name("gunicorn")), "config.wsgi", "--bind", bind,
             "--config", str(directory / "gunicorn_hooks.py"), *GUNICORN_ARGS],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)


def _wait_ready(setup: _Setup, directory: Path) -> None:
    """Until both gunicorn workers have loaded the app and the trivial view answers through ``setup``."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        for name, process, _ in setup.processes:
            if process.poll() is not None:
                logs = " ".join(path.read_text(errors="replace")[-2000:] for path in directory.glob("*.log"))
                raise RuntimeError(f"{name} exited with {process.returncode}: {logs}")
        if len(list(directory.glob("worker-ready-*"))) >= 2:
            sender = _Sender(setup)
            try:
                sender.post("/bench/ping/", b"{}", {})
                return
            except (OSError, AssertionError, http.client.HTTPException):
                pass  # nginx not listening yet
            finally:
                sender.connection.close()
        time.sleep(0.2)
    raise RuntimeError(f"{setup.label} did not answer within {START_TIMEOUT:.0f} s")


def _start_gunicorn(directory: Path, db_name: str) -> _Setup:
    """gunicorn alone on 127.0.0.1, over http (``make run``)."""
    port = _free_port()
    gunicorn = _gunicorn(directory, f"127.0.0.1:{port}", _server_env(db_name))
    setup = _Setup("gunicorn", port, [("gunicorn", gunicorn, signal.SIGTERM)])
    try:
        _wait_ready(setup, directory)
    except BaseException:
        _stop(setup.processes)
        raise
    return setup


def _start_nginx(directory: Path, db_name: str, nginx: str) -> _Setup:
    """gunicorn on a Unix socket behind nginx with portal.conf, over https (README, "Production setup")."""
    http_port, https_port = _free_port(), _free_port()
    socket_path = directory / "gunicorn.sock"
    cert, key = write_certificate(directory)
    env = _server_env(db_name, PORTAL_BASE_URL=f"https://127.0.0.1:{https_port}",
                      SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto", SECURE_SSL_REDIRECT="true")
    (directory / "portal.conf").write_text(templated_portal_conf(
        http_port=http_port, https_port=https_port, socket_path=socket_path, cert=cert, key=key))
    (directory / "nginx.conf").write_text(nginx_main_conf(directory, debian_defaults=True))
    processes = [("gunicorn", _gunicorn(directory, f"unix:{socket_path}", env), signal.SIGTERM)]
    try:
        with open(directory / "nginx.log", "wb") as log:
            processes.append(("nginx", subprocess.Popen(
                [nginx, "-p", str(directory), "-c", str(directory / "nginx.conf"),
                 "-e", str(directory / "nginx-error.log")],
                cwd=directory, stdout=log, stderr=subprocess.STDOUT, start_new_session=True), signal.SIGQUIT))
        setup = _Setup("nginx + gunicorn", https_port, processes, ssl.create_default_context(cafile=str(cert)))
        _wait_ready(setup, directory)
    except BaseException:
        _stop(processes)
        raise
    return setup


def _stop(processes: list[tuple[str, subprocess.Popen, int]]) -> dict[str, float]:
    """Stop the processes in order; return each one's peak resident size in MB (VmHWM, with its children)."""
    peaks = {}
    for name, process, stop_signal in processes:
        peak = 0
        for pid in [process.pid, *_children(process.pid)]:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak += int(line.split()[1])
            except OSError:
                pass
        peaks[name] = peak / 1024
        if process.poll() is None:
            process.send_signal(stop_signal)  # nginx: SIGQUIT is its graceful stop
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)  # whatever is left of its group
        except ProcessLookupError:
            pass
        process.wait(timeout=10)
    return peaks


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class _Sender:
    """One keep-alive connection to a setup (https behind nginx); POSTs and checks the answer."""

    def __init__(self, setup: _Setup):
        if setup.tls:
            self.connection = http.client.HTTPSConnection("127.0.0.1", setup.port, timeout=10, context=setup.tls)
        else:
            self.connection = http.client.HTTPConnection("127.0.0.1", setup.port, timeout=10)

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


def _closed_loop(setup: _Setup, path: str, deliveries) -> tuple[int, float]:
    """(answers, per second) from ``SENDERS`` threads posting back to back for ``SECONDS``."""
    lock, position, done = threading.Lock(), [0], [0]
    errors: list[Exception] = []
    senders = [_Sender(setup) for _ in range(SENDERS)]
    deadline = time.monotonic() + SECONDS

    def send(sender):
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
    threads = [threading.Thread(target=send, args=(sender,)) for sender in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise AssertionError(f"{path}: {errors[0]}")
    return done[0], done[0] / (time.monotonic() - started)


def _open_loop(setup: _Setup, path: str, deliveries) -> list[float]:
    """Latencies in ms of ``RATE`` deliveries a second, each timed from its scheduled send."""
    count = int(RATE * OPEN_SECONDS)
    deliveries = deliveries[:count]
    senders = [_Sender(setup) for _ in range(OPEN_SENDERS)]
    start = time.monotonic() + 0.2
    lock, position = threading.Lock(), [0]
    latencies: list[float] = []
    errors: list[Exception] = []

    def send(sender):
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

    threads = [threading.Thread(target=send, args=(sender,)) for sender in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise AssertionError(f"{path}: {errors[0]}")
    return latencies


def _measure(setup: _Setup, integration, deliveries_of: dict[str, list]) -> tuple[list[Row], int]:
    """The rows of one setup, and how many deliveries it had accepted."""
    ping = [(b'{"payload": "ping"}', {})] * 100000
    rows: list[Row] = []
    accepted = 0
    prefix = f"intake ({setup.label})"
    for label, path in (("Zenduty", f"/webhooks/zenduty/{integration.public_id}/"),
                        ("Xurrent", f"/webhooks/xurrent/{integration.public_id}/")):
        deliveries = deliveries_of[label]
        _, bare = _closed_loop(setup, "/bench/ping/", ping)
        used, rate = _closed_loop(setup, path, deliveries)
        if used >= len(deliveries) - RATE * OPEN_SECONDS:
            raise AssertionError(f"{label}: too few deliveries made beforehand for this machine's rate")
        latencies = _open_loop(setup, path, deliveries[used:])
        accepted += used + len(latencies)
        rows += [Row(f"{prefix}: trivial view, {SENDERS} senders", bare, "answers/s"),
                 Row(f"{prefix}: {label} deliveries, {SENDERS} senders", rate, "/s"),
                 Row(f"{prefix}: {label} / trivial view", rate / bare, "ratio", TARGET_RATIO, ">="),
                 Row(f"{prefix}: {label} p50 at {RATE}/s (open loop)", percentile(latencies, 50), "ms"),
                 Row(f"{prefix}: {label} p99 at {RATE}/s (open loop)", percentile(latencies, 99), "ms",
                     TARGET_P99_MS)]
    return rows, accepted


def run() -> list[Row]:
    from django.db import connection

    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    integration = _integration(public_pem, name="Bench intake", account_id="benchintake")
    db_name = connection.settings_dict["NAME"]
    setups = [lambda directory: _start_gunicorn(directory, db_name)]
    rows: list[Row] = []
    if nginx := find_nginx():
        setups.append(lambda directory: _start_nginx(directory, db_name, nginx))
    # Zenduty's are told apart by their incident: made at once, for all setups.
    zenduty = _http_headers(_zenduty_deliveries(integration, DELIVERIES * len(setups)))
    accepted = 0
    for start in setups:
        # Each setup's own deliveries, signed before its server starts (each used once).
        deliveries_of = {"Xurrent": _http_headers(_xurrent_deliveries(integration, private_key, DELIVERIES)),
                         "Zenduty": zenduty[:DELIVERIES]}
        zenduty = zenduty[DELIVERIES:]
        connection.close()  # the servers write the database now
        with tempfile.TemporaryDirectory(prefix="portal-bench-intake-") as directory:
            setup = start(Path(directory))
            try:
                measured, setup_accepted = _measure(setup, integration, deliveries_of)
                rows += measured
                accepted += setup_accepted
            finally:
                peaks = _stop(setup.processes)
            rows += [Row(f"intake ({setup.label}): {name} peak memory (master + workers)", peak, "MB")
                     for name, peak in peaks.items()]
    if not nginx:
        rows.append(Row("intake (nginx + gunicorn): skipped, no nginx (apt-get install nginx)", 0,
                        "measurements"))
    # Every answer was checked to be "accepted": each must be one stored event.
    rows.append(Row("intake: deliveries stored, of those accepted",
                    InboundEvent.objects.filter(integration=integration).count(), "", accepted, "=="))
    return rows
