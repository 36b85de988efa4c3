"""The portal's web server and worker as scripts/run starts them, on the bench's database (bench.sync, bench.backlog).

:class:`Stack` runs scripts/supervise.py with gunicorn ``config.wsgi`` (2
workers x 4 threads) and ``manage.py qcluster``; :func:`demo_stack` empties
the bench's throw-away database, seeds the demo and provisions its
bidirectional integration over HTTP, as ``make run`` does, with
``SANDBOX_API_URL`` and ``PORTAL_BASE_URL`` pointing at that gunicorn and the
sandbox's delivery thread on; :func:`settle` waits until no delivery, job or
event is waiting; :func:`peak_rss_rows` reports the peak memory of both.
"""
from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from bench import Row

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0  # s for gunicorn and the cluster to answer /healthz with 200
STOP_TIMEOUT = 15.0  # s for the supervisor to stop both (it KILLs them after 8 s)


def _supervise_module():
    """scripts/supervise.py (not a package): for its parent-death safeguard."""
    spec = importlib.util.spec_from_file_location("portal_supervise", ROOT / "scripts" / "supervise.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url(settings_dict: dict) -> str:
    """The bench's throw-away database as a DATABASE_URL for the server processes."""
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings_dict['NAME']}"
    user = quote(settings_dict.get("USER") or "", safe="")
    password = quote(settings_dict.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if user or password else ""
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"postgres://{credentials}{settings_dict.get('HOST') or 'localhost'}{port}/{settings_dict['NAME']}"


def descendants(pid: int) -> list[int]:
    """``pid`` and every process under it, from /proc (Linux)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    todo += [int(child) for child in children.read().split()]
        except OSError:
            continue  # gone meanwhile
    return found


def peak_rss_mb(pid: int) -> tuple[float, int]:
    """The largest VmHWM (MB) among ``pid`` and its descendants, and how many processes there are."""
    peaks = []
    for process in descendants(pid):
        try:
            with open(f"/proc/{process}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peaks.append(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return (max(peaks) if peaks else 0.0), len(peaks)


class Stack:
    """scripts/supervise.py running gunicorn and the qcluster, as scripts/run starts them."""

    def __init__(self, url: str, port: int, env: dict, log_path: str):
        self.url = url
        python = sys.executable
        web = (f"{python} -m gunicorn config.wsgi --bind 127.0.0.1:{port} --workers 2 --threads 4 "
               f"--graceful-timeout 5 --log-level warning")
        self.log = open(log_path, "w+b")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [python, str(ROOT / "scripts" / "supervise.py"), "--web", web, "--worker", f"{python} manage.py qcluster"],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_supervise_module()._term_when_parent_dies(os.getpid()))
        self.groups: list[int] = []  # the web server's and the worker's, each in a session of its own

    def log_tail(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def wait_ready(self) -> None:
        """Until /healthz answers 200 (web up, a worker heartbeat seen)."""
        deadline = time.monotonic() + START_TIMEOUT
        answer = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the web server or worker stopped during start-up:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=2):
                    break
            except urllib.error.HTTPError as exc:
                answer = f"HTTP {exc.code}"
            except OSError as exc:
                answer = str(exc)
            time.sleep(0.2)
        else:
            raise RuntimeError(f"{self.url}/healthz not 200 within {START_TIMEOUT:g} s ({answer}):\n{self.log_tail()}")
        self.groups = list(self.roles().values())

    def roles(self) -> dict[str, int]:
        """The supervisor's two children by role (their command lines)."""
        found = {}
        for pid in descendants(self.process.pid)[1:]:
            try:
                with open(f"/proc/{pid}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    command = cmdline.read().decode(errors="replace")
            except (OSError, ValueError, IndexError):
                continue
            if parent == self.process.pid:
                found["web" if "gunicorn" in command else "worker"] = pid
        return found

    def stop(self) -> None:
        """TERM the supervisor (it stops both); KILL whatever is left after a bounded wait."""
        groups = set(self.groups) | set(self.roles().values())
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        for group in groups:  # whatever a stopped cluster or web server left behind
            try:
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.log.close()


def settle(timeout: float = 60.0) -> None:
    """Until no delivery, job or event is waiting (three looks in a row), so that echoes are counted too."""
    from django_q.models import OrmQ

    from sandbox.models import DeliveryState, OutboundDelivery
    from syncengine.models import EventStatus, InboundEvent

    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 3:
        if time.monotonic() > deadline:
            raise AssertionError(f"the sync did not settle within {timeout:g} s")
        busy = (OutboundDelivery.objects.filter(state__in=[DeliveryState.PENDING, DeliveryState.SENDING]).exists()
                or OrmQ.objects.exists()
                or InboundEvent.objects.filter(status__in=[EventStatus.RECEIVED, EventStatus.PROCESSING,
                                                           EventStatus.RETRY_SCHEDULED]).exists())
        quiet = 0 if busy else quiet + 1
        time.sleep(0.2)


@contextmanager
def demo_stack(name: str, *, env: dict | None = None):
    """The demo seeded, the stack started and the integration provisioned over HTTP; yields the :class:`Stack`.

    ``env``: more environment for the server processes (e.g. another
    ``DJANGO_SETTINGS_MODULE``). The bench's database is emptied first (the
    other benchmarks leave rows behind). On a failure the servers' log tail is
    printed; the stack is stopped in any case.
    """
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import override_settings

    from integrations.models import OutgoingIntegration
    from sandbox import demo

    call_command("flush", interactive=False, verbosity=0)
    cache.clear()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}  # the ORM broker, as the other benches
    server_env.update(DATABASE_URL=database_url(connection.settings_dict), SANDBOX_API_URL=url, PORTAL_BASE_URL=url,
                      SANDBOX_ENABLED="true", SANDBOX_DELIVERY_THREAD="true", Q_SYNC="false", LOG_LEVEL="WARNING",
                      **(env or {}))
    with override_settings(SANDBOX_API_URL=url, PORTAL_BASE_URL=url), \
            tempfile.TemporaryDirectory(prefix=f"portal-bench-{name}-") as tmp:
        demo.seed(check_connections=False, with_integration=False)  # as scripts/run, before the server starts
        connection.close()  # the servers' own connections only from here on the SQLite file
        stack = Stack(url, port, server_env, os.path.join(tmp, "servers.log"))
        try:
            stack.wait_ready()
            result = demo.seed(check_connections=True, with_integration=True)  # over HTTP, as scripts/run
            settle()
            integration = OutgoingIntegration.objects.get()
            if integration.provisioning_status != "provisioned":
                raise AssertionError(f"the demo integration is {integration.provisioning_status}: "
                                     f"{integration.provisioning_error or result.notes}")
            yield stack
        except Exception:
            print(f"servers' log (tail):\n{stack.log_tail()}", file=sys.stderr)
            raise
        finally:
            stack.stop()
            connection.close()


def peak_rss_rows(stack: Stack, prefix: str) -> list[Row]:
    """Peak RSS (VmHWM) of the largest process of the web server and of the worker: information only."""
    rows = []
    roles = stack.roles()
    for role, name in (("web", "web server"), ("worker", "worker")):
        if role in roles:
            peak, processes = peak_rss_mb(roles[role])
            rows.append(Row(f"{prefix}: {name} peak RSS (largest of {processes} processes)", peak, "MB"))
    return rows
