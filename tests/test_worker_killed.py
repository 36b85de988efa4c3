"""A real qcluster killed with SIGKILL in the middle of a sync job: after its restart the work completes once.

The portal runs as ``make run`` runs it (scripts/supervise.py with gunicorn and
``manage.py qcluster``, as bench/stack.py's ``Stack`` starts them) on a SQLite
file in a temporary directory, with the simulators in that gunicorn. An
incident is triggered in the simulated Zenduty; the portal's create of its
Xurrent request is slowed by a latency fault, and while that call is under way
the whole cluster (sentinel and workers: its process group) gets SIGKILL, as
the OOM killer or a lost host would do. The simulator still creates the
request, but its answer is lost with the worker. The supervisor starts the
cluster again; the lease of the event and of its pair run out (shortened here
through the environment: ``SYNC_EVENT_LEASE_SECONDS``, ``SYNC_PAIR_LEASE_SECONDS``,
``Q_TIMEOUT``, ``Q_RETRY``), the every-minute sweep queues the event again and
the retry finds the request by its ``sourceID`` instead of creating another.

The sweep runs every minute: the test makes it due just after the leases run
out (9 s after the claim, as if its minute had passed then), and the
restarted cluster starts it at its next look for due schedules
(``Q_SCHEDULE_LOOK_SECONDS``, 1 s). Due at once, it ran while the event's
lease still held and found nothing, and the event waited for the sweep's
next minute.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bench.stack import Stack, free_port

ROOT = Path(__file__).resolve().parent.parent
LATENCY_MS = 4000  # the critical write (POST /v1/requests) takes this long in the simulator
METRICS_TOKEN = "worker-killed-metrics-token"

# Run in a child Python with the portal's settings: one step of the scenario (argv[1]).
DRIVER = r"""
import sys, time
import django
django.setup()
from django.core.management import call_command
from sandbox import demo, deliveries, faults

step = sys.argv[1]
if step == "setup":  # as scripts/run does before the servers start
    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    demo.seed(check_connections=False, with_integration=False)
elif step == "provision":  # as scripts/run does once the web server answers
    from integrations.models import OutgoingIntegration
    demo.seed(check_connections=True, with_integration=True)
    deadline = time.monotonic() + 60
    while OutgoingIntegration.objects.get().provisioning_status != "provisioned":
        assert time.monotonic() < deadline, OutgoingIntegration.objects.get().provisioning_error
        time.sleep(0.2)
elif step == "trigger":  # someone opens an incident in Zenduty; the portal's create is slow
    from sandbox.zenduty import operations
    from sandbox.zenduty.models import Service
    faults.inject("xurrent", "latency", method="POST", path_prefix="/v1/requests", latency_ms=int(sys.argv[2]))
    website = Service.objects.get(name="Website")
    incident = operations.create_incident(service=website, title="Checkout errors", summary="5xx above 5%",
                                          team_priority=website.team.priorities.get(name="P1"))
    deliveries.deliver_due()  # what the delivery thread does once woken after the commit
    print(incident.unique_id)
"""


def _environment(tmp_path: Path, url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings", DEBUG="false", SECRET_KEY="worker-killed-test-secret-key",
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(), DATABASE_URL=f"sqlite:///{tmp_path / 'portal.sqlite3'}",
        ALLOWED_HOSTS="127.0.0.1,localhost", PORTAL_BASE_URL=url, SANDBOX_ENABLED="true", SANDBOX_API_URL=url,
        SANDBOX_DELIVERY_THREAD="true", Q_SYNC="false", Q_WORKERS="1", DB_CONN_MAX_AGE="60", LOG_LEVEL="INFO",
        METRICS_TOKEN=METRICS_TOKEN,
        # Shortened for the test (README: defaults 120 / 180 / 150 / 120 s).
        Q_TIMEOUT="6", Q_RETRY="10", SYNC_EVENT_LEASE_SECONDS="8", SYNC_PAIR_LEASE_SECONDS="8")
    return env


def _drive(env: dict, *args: str) -> str:
    # No delivery thread of its own: it would die, mid-send, with this short-lived process.
    result = subprocess.run([sys.executable, "-c", DRIVER, *args], cwd=ROOT,
                            env={**env, "SANDBOX_DELIVERY_THREAD": "false"}, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def _wait_for(what: str, check, timeout: float, stack: Stack):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.1)
    pytest.fail(f"{what}: not within {timeout:g} s\n{stack.log_tail()}")


def test_a_worker_killed_mid_job_completes_the_work_exactly_once_after_its_restart(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = _environment(tmp_path, url)
    _drive(env, "setup")
    stack = Stack(url, port, env, str(tmp_path / "servers.log"))
    database = sqlite3.connect(tmp_path / "portal.sqlite3", timeout=20)

    def one(sql: str, *params):
        return database.execute(sql, params).fetchone()

    try:
        stack.wait_ready()
        _drive(env, "provision")
        incident = _drive(env, "trigger", str(LATENCY_MS)).replace("-", "")
        # The job has claimed the pair and its POST /v1/requests is in the simulator (the fault was taken).
        _wait_for("the create under way", lambda: one(
            "SELECT 1 FROM syncengine_linkedpair p JOIN sandbox_fault f ON f.remaining = 0 "
            "WHERE p.zenduty_incident_unique_id = ? AND p.state = 'creating'", incident), 30, stack)
        worker = stack.roles()["worker"]
        os.killpg(worker, signal.SIGKILL)  # the cluster's whole process group: sentinel, workers, monitor
        # The simulator finishes the create whose answer nobody reads any more.
        _wait_for("the request created in the simulator", lambda: one(
            "SELECT 1 FROM sandbox_xurrent_request WHERE sourceID = ?", incident), LATENCY_MS / 1000 + 10, stack)
        event = one("SELECT id, status FROM syncengine_inboundevent WHERE event_type = 'triggered'")
        assert event[1] == "processing", event  # left behind by the dead worker
        _wait_for("the worker started again", lambda: stack.roles().get("worker") not in (None, worker), 15, stack)
        with database:  # the sweep's minute has passed once the leases have (see the module docstring)
            database.execute("UPDATE django_q_schedule SET next_run = (SELECT strftime('%Y-%m-%d %H:%M:%f', "
                             "claimed_at, '+9 seconds') FROM syncengine_inboundevent WHERE id = ?) "
                             "WHERE func = 'syncengine.tasks.recover_stalled_events'", (event[0],))

        status = _wait_for("the event processed after the restart", lambda: one(
            "SELECT status, attempts, reason FROM syncengine_inboundevent WHERE id = ? "
            "AND status NOT IN ('processing', 'retry_scheduled', 'received')", event[0]), 75, stack)

        assert status[0] == "processed" and status[1] == 2, status
        assert "earlier attempt whose answer was lost" in status[2]
        requests = database.execute("SELECT id FROM sandbox_xurrent_request WHERE sourceID = ?",
                                    (incident,)).fetchall()
        assert len(requests) == 1, requests  # exactly one counterpart
        pair = one("SELECT state, xurrent_request_id FROM syncengine_linkedpair WHERE zenduty_incident_unique_id = ?",
                   incident)
        assert pair == ("linked", str(requests[0][0]))
        assert one("SELECT count(*) FROM syncengine_outboundcall WHERE method = 'POST' AND url LIKE '%/v1/requests'"
                   " AND status BETWEEN 200 AND 299") == (0,)  # the one create's answer was lost
        log = (tmp_path / "servers.log").read_text(errors="replace")
        assert "(killed by SIGKILL)" in log and "Worker started again" in log  # the supervisor said so
        # /metrics on gunicorn counts the job the restarted worker finished (another process).
        scrape = urllib.request.Request(f"{url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        with urllib.request.urlopen(scrape, timeout=10) as response:
            metrics = response.read().decode()
        assert 'portal_sync_jobs_total{outcome="processed",source="zenduty"}' in metrics
    finally:
        database.close()
        stack.stop()
