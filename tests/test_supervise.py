"""scripts/supervise.py, which `make run` (scripts/run) starts the web server and the worker under.

Real processes: a small HTTP server stands in for gunicorn, and short Python
programs for the django-q2 cluster; they write their pids to files so that the
test can kill them and see who was started again.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUPERVISE = ROOT / "scripts" / "supervise.py"
PY = sys.executable

# Like a django-q2 cluster: a process with a child (its "sentinel") that it stops on TERM, and that
# outlives it when it is killed.
WORKER = """
import os, signal, subprocess, sys, time
sentinel = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
signal.signal(signal.SIGTERM, lambda *_: (sentinel.kill(), sys.exit(0)))
with open(sys.argv[1], "a") as pids:
    pids.write(f"{os.getpid()} {sentinel.pid}\\n")
time.sleep(600)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {condition.__doc__ or condition}")


def running(pid: int) -> bool:
    """Alive and not a zombie (a killed orphan waits for init to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


class Supervised:
    """scripts/supervise.py running a fake web server and worker, with short timings."""

    def __init__(self, tmp_path: Path, worker: str, *options: str):
        self.port = free_port()
        self.pid_file = tmp_path / "worker-pids"
        self.web_pids: list[int] = []
        self.web = f"{PY} -m http.server {self.port} --bind 127.0.0.1 --directory {tmp_path}"
        self.proc = subprocess.Popen(
            [PY, str(SUPERVISE), "--web", self.web, "--worker", worker.replace("{pids}", str(self.pid_file)),
             "--quick", "5", "--stop-timeout", "2", *options],
            stderr=subprocess.PIPE, text=True)

    def workers(self) -> list[tuple[int, int]]:
        """(worker pid, its child's pid) of each worker started so far."""
        if not self.pid_file.exists():
            return []
        return [tuple(map(int, line.split())) for line in self.pid_file.read_text().splitlines()]

    def web_pid(self) -> int:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid), "-f", "http.server"], capture_output=True, text=True)
        self.web_pids.append(int(out.stdout.split()[0]))
        return self.web_pids[-1]

    def stop(self, timeout: float = 10) -> tuple[int, str]:
        """TERM it, as scripts/run does on Ctrl-C; its exit status and messages."""
        self.proc.send_signal(signal.SIGTERM)
        return self.finish(timeout)

    def finish(self, timeout: float = 10) -> tuple[int, str]:
        """Wait until it ends by itself."""
        _, stderr = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, stderr


@pytest.fixture
def supervised(tmp_path):
    started = []

    def start(worker: str = f"{PY} -c '{WORKER}' {{pids}}", *options: str) -> Supervised:
        started.append(Supervised(tmp_path, worker, *options))
        return started[-1]

    yield start
    for sup in started:  # after a failure: nothing the test started may outlive it
        if sup.proc.poll() is None:
            sup.proc.kill()
        sup.proc.wait()
        sup.proc.stderr.close()
        for pid in [*sup.web_pids, *(pid for pids in sup.workers() for pid in pids)]:
            if running(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_killed_worker_is_started_again_while_the_web_server_keeps_answering(supervised):
    sup = supervised()
    wait_for(lambda: answers(sup.port) and sup.workers())
    [(worker, sentinel)] = sup.workers()

    os.kill(worker, signal.SIGKILL)

    wait_for(lambda: len(sup.workers()) == 2)
    assert answers(sup.port)
    assert not running(sentinel)  # what the killed worker left behind is gone with it
    new_worker, new_sentinel = sup.workers()[1]
    assert running(new_worker) and running(new_sentinel)
    web = sup.web_pid()

    status, stderr = sup.stop()

    assert status == 0 and "Stopping the web server and the worker (SIGTERM)..." in stderr
    assert f"The worker (pid {worker}) stopped after" in stderr and "killed by SIGKILL" in stderr
    assert "the web server keeps taking deliveries. Starting the worker again in 1 s" in stderr
    assert f"Worker started again (pid {new_worker})" in stderr
    assert not any(running(pid) for pid in (web, new_worker, new_sentinel))


def test_it_gives_up_on_a_worker_that_keeps_stopping_and_stops_the_web_server(supervised):
    sup = supervised(f"{PY} -c 'raise SystemExit(3)'", "--give-up-after", "3")
    wait_for(lambda: answers(sup.port))
    web = sup.web_pid()

    status, stderr = sup.finish(timeout=15)  # pauses of 1 s and 2 s between the three starts

    assert status == 1
    assert "Starting the worker again in 1 s (quick stop 1 of 3 before giving up)" in stderr
    assert "Starting the worker again in 2 s (quick stop 2 of 3 before giving up)" in stderr
    assert "(exit code 3): 3 times in a row within 5 s of starting. Giving up; stopping the web server too" in stderr
    assert not running(web) and not answers(sup.port)


def test_the_web_server_stopping_stops_the_worker(supervised):
    sup = supervised()
    wait_for(lambda: answers(sup.port) and sup.workers())
    web = sup.web_pid()

    os.kill(web, signal.SIGKILL)

    status, stderr = sup.finish()
    assert status == 1
    assert f"The web server (pid {web}) stopped (killed by SIGKILL); stopping the worker too." in stderr
    [(worker, sentinel)] = sup.workers()
    assert not running(worker) and not running(sentinel)


def test_stopping_kills_a_worker_that_ignores_term_after_the_stop_timeout(supervised):
    stubborn = ("import signal, sys, time, os; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
                "open(sys.argv[1], 'a').write(f'{os.getpid()} {os.getpid()}\\n'); time.sleep(600)")
    sup = supervised(f'{PY} -c "{stubborn}" {{pids}}')
    wait_for(lambda: answers(sup.port) and sup.workers())
    [(worker, _)] = sup.workers()
    started = time.monotonic()

    sup.proc.send_signal(signal.SIGINT)  # Ctrl-C
    status, stderr = sup.finish()

    assert status == 0 and 2 <= time.monotonic() - started < 5
    assert "Stopping the web server and the worker (SIGINT)..." in stderr
    assert f"The worker (pid {worker}) did not stop within 2 s; killing it." in stderr
    assert not running(worker)


def test_killing_the_supervisor_stops_the_web_server_and_the_worker(supervised):
    # Each child runs in a session of its own, out of reach of the caller's signals: they must not outlive it.
    sup = supervised()
    wait_for(lambda: answers(sup.port) and sup.workers())
    web = sup.web_pid()

    sup.proc.kill()

    [(worker, sentinel)] = sup.workers()
    wait_for(lambda: not any(running(pid) for pid in (web, worker, sentinel)), timeout=5)
