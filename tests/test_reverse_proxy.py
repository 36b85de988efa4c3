"""The production setup under a slow-sender attack: nginx (deploy/nginx/portal.conf) in front of gunicorn.

gunicorn (``--workers 2 --threads 4``, README's "Scale-out") gives a request
one of its 8 threads from the first byte, and a thread reading a body waits
as long as the sender takes. Connections that announce a 1,000-byte body to
a Zenduty webhook address and send one byte hold those threads, and genuine
deliveries miss Zenduty's 3 s deadline. Behind nginx, which reads each
request in full before gunicorn sees it, every one of them makes it.

Without nginx (measured, not asserted): 16 stalled senders straight at the
same gunicorn, then 10 deliveries at once, ten rounds each. To an unknown
address 1-10 of 10 were answered in time (median 4); to the integration's own
address 0-5 (median 1). The spread is why this is no test: gunicorn's two
workers do not share the connections evenly (one took 10-16 of the 16, 14
or more in 14 of 20 rounds), and deliveries that reach the other worker
find a free thread. Unattacked, 10 of 10. See docs/status.md.

The stack is the documented one: Debian's nginx with the repository's
``portal.conf`` (only its ports and paths replaced) in front of gunicorn
serving ``config.wsgi`` with the test settings on a throw-away SQLite file.
Everything listens on 127.0.0.1 or a Unix socket in a temporary directory,
and every process is stopped at the end.

Without nginx installed the tests are skipped, unless REQUIRE_NGINX_TESTS=1
(.ci/run's SQLite run, which installs nginx), where a missing nginx is a
failure; REQUIRE_NGINX_TESTS=0 skips them (.ci/run's PostgreSQL run: the
stack brings its own SQLite file, so a second run would test nothing new).
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import os
import pwd
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.urls import reverse

from syncengine.models import MAX_BODY_BYTES, InboundEvent
from tests.syncengine.conftest import SIGNING_SECRET, fixture_json, sign_zenduty

ROOT = Path(__file__).resolve().parent.parent
PORTAL_CONF = ROOT / "deploy" / "nginx" / "portal.conf"

# "Your outgoing webhook receiver must respond to the request within 3 seconds."
# https://www.zenduty.com/docs/outgoingwebhooks-integration/
ZENDUTY_DEADLINE = 3.0
STALLED_SENDERS = 16  # twice gunicorn's 2 workers x 4 threads
GENUINE_DELIVERIES = 10
START_TIMEOUT = 20.0

pytestmark = pytest.mark.nginx


def find_nginx() -> str | None:
    """Debian installs nginx to /usr/sbin, which is not on every user's PATH."""
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


@pytest.fixture(scope="module")
def nginx_binary() -> str:
    wanted = os.environ.get("REQUIRE_NGINX_TESTS", "")
    if wanted == "0":
        pytest.skip("REQUIRE_NGINX_TESTS=0")
    binary = find_nginx()
    if binary is None:
        message = "nginx is not installed (apt-get install nginx)"
        if wanted == "1":
            pytest.fail(message)
        pytest.skip(message)
    return binary


# -- the stack ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: nginx terminates TLS as in production."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "portal.pem", directory / "portal.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def templated_portal_conf(*, http_port: int, https_port: int, socket_path: Path, cert: Path, key: Path) -> str:
    """The repository's portal.conf with only its ports and paths replaced.

    Each replaced text must occur as written, so a changed portal.conf fails
    here instead of being tested in some other shape.
    """
    text = PORTAL_CONF.read_text()
    for old, new in [("listen 80;", f"listen 127.0.0.1:{http_port};"),
                     ("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"),
                     ("server unix:/run/portal/gunicorn.sock", f"server unix:{socket_path}"),
                     ("ssl_certificate /etc/ssl/certs/portal.example.com.pem;", f"ssl_certificate {cert};"),
                     ("ssl_certificate_key /etc/ssl/private/portal.example.com.key;", f"ssl_certificate_key {key};")]:
        assert text.count(old) == 1, f"{PORTAL_CONF.name} no longer has {old!r} once"
        text = text.replace(old, new)
    return text


def nginx_main_conf(directory: Path, *, debian_defaults: bool = False) -> str:
    """What Debian's /etc/nginx/nginx.conf provides, kept inside ``directory``: pid, logs, temp files.

    ``debian_defaults``: also its worker count (one per core), connection limit
    and access log, for bench/intake.py, which times nginx as installed; the
    tests here need one worker and no log.
    """
    workers, connections = ("auto", 768) if debian_defaults else ("1", 256)
    access_log = directory / "access.log" if debian_defaults else "off"
    # As root, nginx's workers would run as "nobody", who cannot enter the
    # private temporary directory; unprivileged, the directive is not needed.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    temp = "\n".join(f"    {kind}_temp_path {directory / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""{user}
daemon off;
worker_processes {workers};
pid {directory / 'nginx.pid'};
error_log {directory / 'nginx-error.log'} warn;
events {{ worker_connections {connections}; }}
http {{
    access_log {access_log};
{temp}
    include {directory / 'portal.conf'};
}}
"""


GUNICORN_HOOKS = """
from pathlib import Path

def post_worker_init(worker):
    # The test starts once every worker has loaded the application.
    Path({directory!r}, f"worker-ready-{{worker.pid}}").touch()
"""

PREPARE_DATABASE = """
import django
django.setup()
from django.core.management import call_command
from connections.models import ConnectionStatus, XurrentTenant, ZendutyAccount
from integrations.models import Direction, OutgoingIntegration

call_command("migrate", verbosity=0)
call_command("createcachetable", verbosity=0)
tenant = XurrentTenant.objects.create(name="Widget Data Center", account_id="wdc", client_id="proxy-test",
                                      client_secret="proxy-test-client-secret", status=ConnectionStatus.ACTIVE)
account = ZendutyAccount.objects.create(name="Demo Zenduty", api_token="proxy-test-zenduty-token",
                                        status=ConnectionStatus.ACTIVE)
integration = OutgoingIntegration.objects.create(
    zenduty_account=account, zenduty_team_id="team-ops", zenduty_service_id="svc-web", tenant=tenant,
    service_instance_id="1", direction=Direction.BIDIRECTIONAL, zenduty_signing_secret={secret!r})
print(integration.public_id)
"""


@dataclass
class Stack:
    """The running setup: nginx at ``https_url`` and ``http_url``, gunicorn behind it on a Unix socket."""

    https_url: str
    http_url: str
    ca_file: Path
    database: Path
    public_id: str


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Stop a process started here (it leads its own process group): ``sig``, then SIGKILL to its group."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
    # Whatever is left of the group (workers of a killed master) goes too.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout)


def wait_until(condition, what: str, processes: list[subprocess.Popen], logs: list[Path]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not condition():
        for process in processes:
            if process.poll() is not None:
                pytest.fail(f"{process.args[0]} exited with {process.returncode} while waiting for {what}: "
                            + " ".join(log.read_text()[-2000:] for log in logs if log.exists()))
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not within {START_TIMEOUT} s")
        time.sleep(0.1)


def answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def stack(nginx_binary):
    with tempfile.TemporaryDirectory(prefix="portal-nginx-") as name:
        directory = Path(name)
        http_port, https_port = free_port(), free_port()
        socket_path = directory / "gunicorn.sock"
        cert, key = write_certificate(directory)
        database = directory / "portal.sqlite3"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "REQUIRE_"))}
        env.update({
            "DJANGO_SETTINGS_MODULE": "config.settings_test",
            "DATABASE_URL": f"sqlite:///{database}",
            "REDIS_URL": "",
            # As in production: the web process only queues the job, a worker runs it.
            "Q_SYNC": "false",
            "ALLOWED_HOSTS": "127.0.0.1",
            "PORTAL_BASE_URL": f"https://127.0.0.1:{https_port}",
            # README, "Configuration": behind a TLS-terminating proxy that always sets the header.
            "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
            "SECURE_SSL_REDIRECT": "true",
            "LOG_LEVEL": "WARNING",
        })
        prepared = subprocess.run([sys.executable, "-c", PREPARE_DATABASE.format(secret=SIGNING_SECRET)],
                                  cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert prepared.returncode == 0, prepared.stderr
        public_id = prepared.stdout.strip().splitlines()[-1]

        (directory / "gunicorn_hooks.py").write_text(GUNICORN_HOOKS.format(directory=str(directory)))
        (directory / "portal.conf").write_text(templated_portal_conf(
            http_port=http_port, https_port=https_port, socket_path=socket_path, cert=cert, key=key))
        (directory / "nginx.conf").write_text(nginx_main_conf(directory))
        gunicorn_log, nginx_log = directory / "gunicorn.log", directory / "nginx-error.log"

        processes: list[subprocess.Popen] = []
        try:
            with open(gunicorn_log, "wb") as log:
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "gunicorn", "config.wsgi", "--config", str(directory / "gunicorn_hooks.py"),
                     "--bind", f"unix:{socket_path}",
                     "--workers", "2", "--threads", "4", "--graceful-timeout", "2", "--log-level", "warning"],
                    cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            with open(directory / "nginx.out", "wb") as log:
                processes.append(subprocess.Popen(
                    [nginx_binary, "-p", str(directory), "-c", str(directory / "nginx.conf"), "-e", str(nginx_log)],
                    cwd=directory, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            logs = [gunicorn_log, nginx_log, directory / "nginx.out"]
            wait_until(lambda: len(list(directory.glob("worker-ready-*"))) >= 2, "both gunicorn workers",
                       processes, logs)
            wait_until(lambda: answers("127.0.0.1", https_port) and answers("127.0.0.1", http_port), "nginx",
                       processes, logs)
            yield Stack(https_url=f"https://127.0.0.1:{https_port}", http_url=f"http://127.0.0.1:{http_port}",
                        ca_file=cert, database=database, public_id=public_id)
        finally:
            for process in reversed(processes):
                # nginx: SIGQUIT is its graceful stop; gunicorn: SIGTERM.
                stop(process, signal.SIGQUIT if process.args[0] == nginx_binary else signal.SIGTERM)


# -- the attack and the deliveries -------------------------------------------------------------
class StalledSenders:
    """Connections that POST to a Zenduty webhook address, announce a 1,000-byte
    body, send one byte and then wait (a context manager; closes them all)."""

    def __init__(self, url: str, public_id, count: int, ca_file: Path | None = None):
        self.url, self.public_id, self.count, self.ca_file = url, public_id, count, ca_file
        self.sockets: list[socket.socket] = []

    def __enter__(self) -> StalledSenders:
        scheme, _, address = self.url.partition("://")
        host, port = address.rsplit(":", 1)
        path = reverse("syncengine:zenduty-webhook", kwargs={"public_id": self.public_id})
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: 1000\r\n\r\n{{").encode()
        context = ssl.create_default_context(cafile=str(self.ca_file)) if scheme == "https" else None
        try:
            for _ in range(self.count):
                sock = socket.create_connection((host, int(port)), timeout=2)
                self.sockets.append(sock)
                if context:
                    sock = self.sockets[-1] = context.wrap_socket(sock, server_hostname=host)
                sock.sendall(head)
        except BaseException:
            self.__exit__()
            raise
        # Let the server take them up before anything else arrives.
        time.sleep(0.5)
        return self

    def still_waiting(self) -> int:
        """How many are still open and unanswered: the attack was in force until now."""
        waiting = 0
        for sock in self.sockets:
            sock.setblocking(False)
            try:
                sock.recv(1)  # an answer, or b"" when the server closed it
            except (BlockingIOError, ssl.SSLWantReadError):
                waiting += 1
            except OSError:
                pass  # reset by the server
        return waiting

    def __exit__(self, *exc) -> None:
        for sock in self.sockets:
            sock.close()


def zenduty_delivery(number: int) -> bytes:
    """A triggered event for incident ``number``: each one a new event, not a duplicate."""
    message = fixture_json("zenduty/triggered.json")
    message["payload"]["incident"]["unique_id"] = f"proxy-test-incident-{number}"
    message["payload"]["incident"]["incident_number"] = number
    return json.dumps(message).encode()


@dataclass
class Outcome:
    """One delivery as its sender saw it: the status (None: no answer) and how long it took."""

    status: int | None
    seconds: float
    error: str = ""

    @property
    def in_time(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and self.seconds <= ZENDUTY_DEADLINE


def deliver(base_url: str, public_id: str, body: bytes, *, verify: str) -> Outcome:
    """POST one signed delivery the way Zenduty does, waiting at most its deadline."""
    url = base_url + reverse("syncengine:zenduty-webhook", kwargs={"public_id": public_id})
    started = time.monotonic()
    try:
        with requests.Session() as session:
            response = session.post(url, data=body, timeout=ZENDUTY_DEADLINE, verify=verify, allow_redirects=False,
                                    headers={"Content-Type": "application/json", "X-SIGNATURE": sign_zenduty(body)})
        return Outcome(response.status_code, time.monotonic() - started)
    except requests.RequestException as exc:
        return Outcome(None, time.monotonic() - started, type(exc).__name__)


def deliver_all(base_url: str, public_id: str, first: int, *, verify: str) -> list[Outcome]:
    """GENUINE_DELIVERIES deliveries at once (bounded: each waits at most the deadline)."""
    with ThreadPoolExecutor(max_workers=GENUINE_DELIVERIES) as pool:
        futures = [pool.submit(deliver, base_url, public_id, zenduty_delivery(first + i), verify=verify)
                   for i in range(GENUINE_DELIVERIES)]
        return [future.result(timeout=ZENDUTY_DEADLINE + 10) for future in futures]


def stored_incidents(database: Path) -> set[str]:
    """The incidents of the signed Zenduty events in the stack's database."""
    with sqlite3.connect(database) as db:
        rows = db.execute(f"SELECT object_id FROM {InboundEvent._meta.db_table} "
                          "WHERE source = 'zenduty' AND signature_ok").fetchall()
    return {row[0] for row in rows}


# -- the tests ---------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["unknown", "known"])
def test_stalled_senders_cannot_keep_genuine_deliveries_out_behind_nginx(stack, target):
    """16 stalled senders, then 10 signed deliveries: all 10 are answered 2xx within 3 s.

    ``unknown``: the attack as reported, to any address (gunicorn answers 404
    without reading the body, but then drains it, up to 5 s per connection,
    to keep the connection alive). ``known``: to the integration's own
    address, where the view reads the body and gunicorn's thread would wait
    for as long as the sender stalls; this one fails when nginx passes
    bodies on unbuffered (``proxy_request_buffering off``).
    """
    public_id = uuid.uuid4() if target == "unknown" else stack.public_id
    first = 1000 if target == "unknown" else 2000
    with StalledSenders(stack.https_url, public_id, STALLED_SENDERS, stack.ca_file) as attack:
        outcomes = deliver_all(stack.https_url, stack.public_id, first, verify=str(stack.ca_file))
        waiting = attack.still_waiting()
    assert [o.in_time for o in outcomes].count(True) == GENUINE_DELIVERIES, outcomes
    assert waiting == STALLED_SENDERS  # the attack lasted: nginx was holding every stalled sender throughout
    # Acknowledged means stored (and over https as the portal sees it: no redirect to https).
    expected = {f"proxy-test-incident-{first + i}" for i in range(GENUINE_DELIVERIES)}
    assert expected <= stored_incidents(stack.database)


def test_nginx_limits_webhook_bodies_to_the_intakes_own_limit(stack):
    verify = str(stack.ca_file)
    url = stack.https_url + reverse("syncengine:zenduty-webhook", kwargs={"public_id": stack.public_id})
    at_limit = requests.post(url, data=b"x" * MAX_BODY_BYTES, timeout=10, verify=verify)
    over = requests.post(url, data=b"x" * (MAX_BODY_BYTES + 1), timeout=10, verify=verify)
    # At the limit the portal itself answers (an unsigned body: 401, recorded); one byte more, nginx does.
    assert at_limit.status_code == 401 and at_limit.headers["Content-Type"] == "application/json"
    assert over.status_code == 413 and "nginx" in over.text


def test_plain_http_is_redirected_except_the_health_probe(stack):
    redirect = requests.get(stack.http_url + "/admin/", timeout=5, allow_redirects=False)
    assert redirect.status_code == 301
    assert redirect.headers["Location"] == "https://127.0.0.1/admin/"
    probe = requests.get(stack.http_url + "/healthz", timeout=5)
    assert probe.status_code == 503 and probe.json()["worker"]["heartbeat_age_seconds"] is None  # no worker here
