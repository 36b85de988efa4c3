"""Start-up configuration checks and /healthz."""
import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django_q.brokers import get_broker
from django_q.signing import SignedPackage
from django_q.status import Status

ROOT = Path(__file__).resolve().parent.parent


def run_check(env_overrides):
    env = {k: v for k, v in os.environ.items()
           if k not in ("SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "DEBUG", "DJANGO_SETTINGS_MODULE")}
    env.update(env_overrides)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    # An empty .env path keeps a developer's own .env out of the test.
    return subprocess.run([sys.executable, "-c", "import environ; environ.Env.read_env=lambda *a, **k: None;"
                           "import django; django.setup()"], cwd=ROOT, env=env, capture_output=True, text=True)


@pytest.mark.parametrize("missing", ["SECRET_KEY", "FIELD_ENCRYPTION_KEYS"])
def test_start_up_stops_when_a_required_secret_is_missing(missing):
    env = {"DEBUG": "false", "SECRET_KEY": "x" * 50,
           "FIELD_ENCRYPTION_KEYS": "dGVzdC1rZXktb25lLWZvci1maWVsZC1lbmNyeXB0ISE="}
    env.pop(missing)
    result = run_check(env)
    assert result.returncode != 0
    assert f"{missing} is not set" in result.stderr


GOOD_KEY = "dGVzdC1rZXktb25lLWZvci1maWVsZC1lbmNyeXB0ISE="


@pytest.mark.parametrize("keys, position", [
    (",", None),                                            # nothing but separators
    ("not-a-fernet-key-but-somebodys-password", "1 of 1"),  # not base64 of 32 bytes
    (f"{GOOD_KEY},{GOOD_KEY[:-4]}", "2 of 2"),              # a truncated second key
])
def test_start_up_stops_when_an_encryption_key_is_malformed(keys, position):
    result = run_check({"DEBUG": "false", "SECRET_KEY": "x" * 50, "FIELD_ENCRYPTION_KEYS": keys})
    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEYS" in result.stderr
    if position:
        assert f"key {position} is not a valid Fernet key" in result.stderr
    for key in keys.split(","):
        if key:
            assert key not in result.stderr  # the message names the key's position, never the key


def test_start_up_works_when_configured():
    result = run_check({"DEBUG": "false", "SECRET_KEY": "x" * 50,
                        "FIELD_ENCRYPTION_KEYS": "dGVzdC1rZXktb25lLWZvci1maWVsZC1lbmNyeXB0ISE="})
    assert result.returncode == 0, result.stderr


def _setting(name, env_overrides):
    result = subprocess.run(
        [sys.executable, "-c", "import environ; environ.Env.read_env=lambda *a, **k: None;"
         f"from django.conf import settings; print(repr(getattr(settings, {name!r}, None)))"],
        cwd=ROOT, env={**{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
                       "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "false", "SECRET_KEY": "x" * 50,
                       "FIELD_ENCRYPTION_KEYS": GOOD_KEY, **env_overrides},
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.mark.parametrize("base_url, secure", [("https://portal.example.com", "True"),
                                              ("http://127.0.0.1:8000", "False")])
def test_cookies_are_https_only_when_the_portal_is_served_over_https(base_url, secure):
    for name in ("SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"):
        assert _setting(name, {"PORTAL_BASE_URL": base_url}) == secure


def test_the_proxys_https_header_is_trusted_only_when_named():
    assert _setting("SECURE_PROXY_SSL_HEADER", {}) == "None"
    assert _setting("SECURE_PROXY_SSL_HEADER", {"SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"}) == \
        repr(("HTTP_X_FORWARDED_PROTO", "https"))


def test_the_event_lease_outlasts_the_job_timeout_by_default():
    timeout = ast.literal_eval(_setting("Q_CLUSTER", {}))["timeout"]
    assert int(_setting("SYNC_EVENT_LEASE_SECONDS", {})) == timeout + 30
    assert _setting("SYNC_EVENT_LEASE_SECONDS", {"SYNC_EVENT_LEASE_SECONDS": str(timeout + 1)}) == str(timeout + 1)


@pytest.mark.parametrize("shorter", [0, 1])
def test_start_up_stops_when_the_event_lease_is_not_longer_than_the_job_timeout(shorter):
    # A job still running when its lease ends could be run a second time alongside it.
    timeout = ast.literal_eval(_setting("Q_CLUSTER", {}))["timeout"]
    result = run_check({"DEBUG": "false", "SECRET_KEY": "x" * 50, "FIELD_ENCRYPTION_KEYS": GOOD_KEY,
                        "SYNC_EVENT_LEASE_SECONDS": str(timeout - shorter)})
    assert result.returncode != 0
    assert f"SYNC_EVENT_LEASE_SECONDS ({timeout - shorter}) must be longer than the job timeout" in result.stderr


def test_the_job_timeout_and_re_delivery_come_from_the_environment():
    conf = ast.literal_eval(_setting("Q_CLUSTER", {"Q_TIMEOUT": "6", "Q_RETRY": "10",
                                                   "SYNC_EVENT_LEASE_SECONDS": "8"}))
    assert (conf["timeout"], conf["retry"]) == (6, 10)
    assert _setting("SYNC_PAIR_LEASE_SECONDS", {"SYNC_PAIR_LEASE_SECONDS": "8"}) == "8"


def test_start_up_stops_when_the_re_delivery_comes_before_the_job_timeout():
    # The broker would hand a job that is still running to a second worker.
    result = run_check({"DEBUG": "false", "SECRET_KEY": "x" * 50, "FIELD_ENCRYPTION_KEYS": GOOD_KEY,
                        "Q_TIMEOUT": "60", "Q_RETRY": "60"})
    assert result.returncode != 0
    assert "Q_RETRY (60) must be longer than Q_TIMEOUT (60)" in result.stderr


def _heartbeat(age_seconds=0):
    from datetime import timedelta

    from django.utils import timezone

    status = Status(pid=1234, cluster_id="test-cluster")
    status.timestamp = timezone.now() - timedelta(seconds=age_seconds)
    get_broker().set_stat("django_q:test:cluster", SignedPackage.dumps(status, True), 30)


@pytest.mark.django_db
def test_healthz_is_503_without_a_worker(client):
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["database"]["ok"] is True
    assert body["worker"]["heartbeat_age_seconds"] is None


@pytest.mark.django_db
def test_healthz_is_200_with_a_fresh_heartbeat(client):
    _heartbeat(age_seconds=2)
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert body["worker"]["queue_length"] == 0
    assert 0 <= body["worker"]["heartbeat_age_seconds"] < 60


@pytest.mark.django_db
def test_an_unhealthy_probe_is_not_logged_as_an_error(client, caplog):
    with caplog.at_level("INFO", logger="django.request"):
        assert client.get("/healthz").status_code == 503  # no worker in tests
    probes = [r for r in caplog.records if r.name == "django.request" and "/healthz" in r.getMessage()]
    assert probes and all(r.levelname == "INFO" for r in probes)


@pytest.mark.django_db
def test_healthz_is_503_with_a_stale_heartbeat(client, settings):
    _heartbeat(age_seconds=settings.HEALTHZ_MAX_HEARTBEAT_AGE + 30)
    assert client.get("/healthz").status_code == 503


@pytest.mark.django_db
def test_healthz_reports_a_long_queue(client, settings):
    from django_q.tasks import async_task

    settings.HEALTHZ_MAX_QUEUE_LENGTH = 1
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}
    from django_q.conf import Conf

    Conf.SYNC = False
    try:
        for _ in range(3):
            async_task("math.floor", 1.5)
    finally:
        Conf.SYNC = True
    _heartbeat()
    body = client.get("/healthz").json()
    assert body["worker"]["queue_length"] == 3
    assert body["status"] == "unhealthy"


@pytest.mark.django_db(transaction=True)  # PostgreSQL: the session setting applies to the next transaction
def test_healthz_is_503_when_the_database_refuses_writes(client):
    from django.db import connection

    _heartbeat()
    read_only, writable = {"sqlite": ("PRAGMA query_only = ON", "PRAGMA query_only = OFF"),
                           "postgresql": ("SET default_transaction_read_only = on",
                                          "SET default_transaction_read_only = off")}[connection.vendor]
    assert client.get("/healthz").status_code == 200
    with connection.cursor() as cursor:
        cursor.execute(read_only)
    try:
        response = client.get("/healthz")
    finally:
        with connection.cursor() as cursor:
            cursor.execute(writable)

    assert response.status_code == 503
    body = response.json()
    assert body["database"]["ok"] is False and body["database"]["writable"] is False
    assert "refuses writes" in body["database"]["detail"]
    assert body["worker"]["ok"] is True  # reads still work: the heartbeat is seen, the database is the reason


READ_ONLY_FILE = """
import json, sys
import django
django.setup()
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.test import Client

MigrationRecorder(connection).ensure_schema()
answers = [Client().get("/healthz").json()["database"]]
connection.close()
connection.settings_dict["NAME"] = f"file:{sys.argv[1]}?mode=ro"
answers.append(Client().get("/healthz").json()["database"])
print(json.dumps(answers))
"""


def test_healthz_says_a_read_only_sqlite_file_refuses_writes(tmp_path):
    path = tmp_path / "portal.sqlite3"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "true", "DATABASE_URL": f"sqlite:///{path}"})
    result = subprocess.run([sys.executable, "-c", "import environ; environ.Env.read_env=lambda *a, **k: None\n"
                             + READ_ONLY_FILE, str(path)], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr

    writable, read_only = json.loads(result.stdout)
    assert writable == {"ok": True, "writable": True}
    assert read_only["ok"] is False and read_only["writable"] is False
    assert read_only["error"] == "OperationalError" and "refuses writes" in read_only["detail"]


CONCURRENT_WRITERS = """
import threading, time
import django
django.setup()
from django.db import connection, connections, transaction

with connection.cursor() as cursor:
    cursor.execute("CREATE TABLE counter (n INTEGER)")
errors = []

def writer():
    try:
        # Read first, write later: the pattern of get_or_create, select_for_update, etc.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM counter")
            time.sleep(0.05)
            cursor.execute("INSERT INTO counter VALUES (1)")
    except Exception as exc:
        errors.append(str(exc))
    finally:
        connections.close_all()

threads = [threading.Thread(target=writer) for _ in range(6)]
[t.start() for t in threads]
[t.join() for t in threads]
with connection.cursor() as cursor:
    cursor.execute("SELECT count(*) FROM counter")
    print(cursor.fetchone()[0], errors)
"""


def test_the_default_sqlite_database_lets_concurrent_writers_wait_instead_of_failing(tmp_path):
    # Web threads, the worker and the sandbox's delivery thread write to one
    # SQLite file; a transaction that reads before it writes must wait for the
    # lock, not fail with "database is locked".
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "true",
                "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}"})
    result = subprocess.run([sys.executable, "-c", "import environ; environ.Env.read_env=lambda *a, **k: None\n"
                             + CONCURRENT_WRITERS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "6 []"


def test_the_demos_env_file_does_not_reach_the_test_settings():
    """`make run` writes .env with the demo's addresses; `make test` in the same checkout must not send the
    tests' API calls to the demo's sandbox (SANDBOX_API_URL) or sign for its address (PORTAL_BASE_URL)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO_", "SANDBOX_", "PORTAL_", "DEBUG", "SECRET_KEY", "FIELD_ENCRYPTION"))}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings_test"
    # The .env `make run` writes, read as django-environ reads it: without overwriting what is set.
    dot_env = {"PORTAL_BASE_URL": "http://127.0.0.1:8791", "SANDBOX_API_URL": "http://127.0.0.1:8791"}
    code = ("import os, environ; environ.Env.read_env = lambda *a, **k: [os.environ.setdefault(k, v) for k, v in "
            f"{dot_env!r}.items()]; import django; django.setup(); from django.conf import settings; "
            "print(repr(settings.SANDBOX_API_URL), settings.PORTAL_BASE_URL)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["''", "http://127.0.0.1:8000"]
