"""Jobs rescheduled to wait start when they are due, not when django-q2 next looks (30 s).

``manage.py qcluster`` is syncengine's (``syncengine/management/commands/qcluster.py``):
django-q2's cluster, plus django-q2's own look for due schedules every
``Q_SCHEDULE_LOOK_SECONDS``. The sync engine reschedules a job with a one-off
schedule for every wait (a rate limit's turn, a busy pair, a backoff).
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command, get_commands
from django.utils import timezone
from django_q.models import Schedule

from syncengine import jobs

ROOT = Path(__file__).resolve().parents[2]


def test_the_qcluster_that_runs_is_the_portals():
    assert get_commands()["qcluster"] == "syncengine"


@pytest.mark.django_db
def test_due_schedules_are_started_and_others_left(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}
    due = Schedule.objects.create(func="math.floor", args="2.5", schedule_type=Schedule.ONCE, repeats=-1,
                                  next_run=timezone.now() - timedelta(seconds=1), name="due")
    later = Schedule.objects.create(func="math.floor", args="2.5", schedule_type=Schedule.ONCE, repeats=-1,
                                    next_run=timezone.now() + timedelta(minutes=5), name="later")
    assert jobs.start_due_schedules() is True
    assert not Schedule.objects.filter(pk=due.pk).exists()  # started: a one-off schedule is then deleted
    assert Schedule.objects.filter(pk=later.pk).exists()
    assert jobs.start_due_schedules() is False  # nothing due: no write transaction either


@pytest.mark.django_db
def test_a_schedule_due_for_another_cluster_is_no_reason_to_look(settings):
    """django-q2's look leaves it to its cluster; looking for it would take the write lock every second."""
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}
    Schedule.objects.all().delete()  # the migrations' schedules (sweeps, poller) are due in a fresh database
    elsewhere = Schedule.objects.create(func="math.floor", args="2.5", schedule_type=Schedule.ONCE, repeats=-1,
                                        next_run=timezone.now() - timedelta(seconds=1), name="elsewhere",
                                        cluster="another-cluster")
    assert jobs.start_due_schedules() is False
    assert Schedule.objects.filter(pk=elsewhere.pk).exists()  # left for its own cluster


@pytest.mark.django_db
def test_a_schedule_django_q2_cannot_start_is_said_and_looked_at_again_at_its_pace(settings, caplog, monkeypatch):
    """django-q2's look is one transaction: a schedule it refuses (arguments typed in the admin that do not
    parse) leaves every due schedule due. Looked at every second, that was its traceback every second."""
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": True}
    Schedule.objects.all().delete()
    Schedule.objects.create(func="math.floor", args="2.5 +", schedule_type=Schedule.ONCE, repeats=-1,
                            next_run=timezone.now() - timedelta(seconds=1), name="typed by hand")
    with pytest.raises(jobs.SchedulesStuck) as stuck:
        jobs.start_due_schedules()
    assert stuck.value.names == ["typed by hand"]

    looks, slept = [], []
    # It would end the test's transaction on PostgreSQL (autocommit off there); the cluster runs in autocommit.
    monkeypatch.setattr(jobs, "close_old_connections", lambda: None)
    jobs.keep_starting_due_schedules(lambda: len(looks) < 3 and not looks.append(1), every=1.0,
                                     sleep=slept.append, clock=lambda: 0.0)
    assert slept == [jobs.STUCK_LOOK_SECONDS] * 3  # django-q2's own pace while it is stuck
    said = [r for r in caplog.records if r.getMessage().startswith("syncengine.schedule-look-stuck")]
    assert len(said) == 1 and "typed by hand" in said[0].getMessage()  # once a minute at most


def test_the_look_interval_must_be_a_pause_django_q2_would_not_exceed():
    for value, ok in (("0", False), ("-1", False), ("0.5", True), ("30", True), ("31", False)):
        env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
        env.update(DJANGO_SETTINGS_MODULE="config.settings_test", Q_SCHEDULE_LOOK_SECONDS=value)
        result = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=60)
        assert (result.returncode == 0) is ok, (value, result.stderr[-500:])
        if not ok:
            assert "Q_SCHEDULE_LOOK_SECONDS" in result.stderr


def test_the_looks_go_on_after_a_failed_one_and_end_with_the_cluster(monkeypatch, caplog):
    looks = []

    def look():
        looks.append(1)
        if len(looks) == 2:
            raise RuntimeError("database is locked")
        return False

    monkeypatch.setattr(jobs, "start_due_schedules", look)
    monkeypatch.setattr(jobs, "close_old_connections", lambda: None)
    slept = []
    jobs.keep_starting_due_schedules(lambda: len(looks) < 4, every=0.25, sleep=slept.append)
    assert len(looks) == 4 and slept == [0.25] * 4
    assert "syncengine.schedule-look-failed" in caplog.text


def test_a_database_away_for_minutes_is_not_a_traceback_every_second(monkeypatch, caplog):
    """The looks go on every second; the failure is logged when it starts, once a minute while it lasts,
    and the recovery once."""
    outage = [True]

    def look():
        if outage[0]:
            raise RuntimeError("could not connect to server")
        return False

    clock = [0.0]

    def sleep(seconds):
        clock[0] += seconds

    monkeypatch.setattr(jobs, "start_due_schedules", look)
    monkeypatch.setattr(jobs, "close_old_connections", lambda: None)
    looks = []

    def running():
        looks.append(clock[0])
        outage[0] = clock[0] < 150  # two and a half minutes away
        return clock[0] < 160

    jobs.keep_starting_due_schedules(running, every=1.0, sleep=sleep, clock=lambda: clock[0])
    assert len(looks) == 161  # still every second
    failed = [r for r in caplog.records if r.getMessage().startswith("syncengine.schedule-look-failed")]
    assert len(failed) == 3  # at 0, 60 and 120 s
    assert failed[0].exc_info is not None
    assert sum("syncengine.schedule-look-recovered" in r.getMessage() for r in caplog.records) == 1


def test_a_stop_signal_during_a_look_stops_the_cluster_after_it(monkeypatch):
    """A look holds a write transaction (SQLite's write lock): stopping the cluster inside it would wait
    for workers that wait for that lock."""
    import signal

    from syncengine.management.commands import qcluster

    calls = []

    class Sentinel:
        def is_alive(self):
            return "stop" not in calls

    class Cluster(qcluster.Cluster):  # django-q2's, whose constructor sets its signal handlers
        def start(self):
            self.sentinel = Sentinel()

        def stop(self):
            calls.append("stop")

    def look():
        calls.append("look")
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # Python runs the handler between these steps
            pass
        calls.append("looked")
        return True

    monkeypatch.setattr(qcluster, "Cluster", Cluster)
    monkeypatch.setattr(jobs, "start_due_schedules", look)
    monkeypatch.setattr(jobs, "close_old_connections", lambda: None)
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        started = time.monotonic()
        call_command("qcluster")
        assert calls == ["look", "looked", "stop"]
        assert time.monotonic() - started < 0.5  # no waiting out the look's interval either
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def test_a_real_cluster_starts_a_due_job_within_seconds(tmp_path):
    """django-q2's own cluster would start it 30 s after it started, at its first look."""
    database = tmp_path / "portal.sqlite3"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DJANGO_SETTINGS_MODULE", "DATABASE_URL")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings", DEBUG="false", SECRET_KEY="schedule-look-test-key",
               FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(), DATABASE_URL=f"sqlite:///{database}",
               SANDBOX_ENABLED="false", Q_SYNC="false", Q_WORKERS="1", Q_SCHEDULE_LOOK_SECONDS="0.5")
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--verbosity", "0"], cwd=ROOT, env=env, check=True, timeout=180)
    cluster = subprocess.Popen([*manage, "qcluster"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, start_new_session=True)
    db = sqlite3.connect(database, timeout=20)
    try:
        time.sleep(1)  # the cluster up; then a job is rescheduled to run in 1 s
        with db:
            db.execute("INSERT INTO django_q_schedule (func, args, schedule_type, repeats, next_run, name, "
                       "minutes, hook, kwargs, cron, cluster, intended_date_kwarg) VALUES "
                       "('math.floor', '2.5', 'O', -1, datetime('now', '+1 second'), 'due soon', "
                       "NULL, NULL, NULL, NULL, NULL, NULL)")
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            if db.execute("SELECT 1 FROM django_q_task WHERE func = 'math.floor' AND success").fetchone():
                break
            time.sleep(0.2)
        else:
            pytest.fail("the due job did not run within 8 s")
    finally:
        db.close()
        cluster.terminate()
        try:
            cluster.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, 9)
            cluster.wait()
