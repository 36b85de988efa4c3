"""Run the portal's web server and worker side by side (used by scripts/run).

    python scripts/supervise.py --web "gunicorn config.wsgi ..." --worker "python manage.py qcluster"

* A worker that stops is started again after 1 s, doubling (up to
  --max-backoff) while it keeps stopping within --quick seconds of its start;
  the web server keeps taking deliveries meanwhile (they are stored, and
  processed once the worker is back). Each stop and restart is said on stderr.
  After --give-up-after such quick stops in a row it gives up: it says so,
  stops the web server too and exits 1, so that the portal is seen to be down
  rather than taking deliveries that nothing processes.
* The web server stopping stops the worker too (exit 1), saying so.
* INT, TERM or HUP stop both: TERM to each, then KILL to whatever is left
  after --stop-timeout seconds (exit 0).

When this script itself is killed, both children get a TERM (Linux).

Each child runs in its own session, so its whole process group can be killed:
a django-q2 cluster killed with SIGKILL leaves its sentinel and workers
running, which would go on taking jobs beside the restarted cluster. It also
means that a TERM sent to the caller's process group reaches each child only
through this script (a django-q2 cluster whose children got the TERM directly
waits for them forever). Standard library only.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import shlex
import signal
import subprocess
import sys
import time

POLL = 0.1
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def how_it_ended(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


def _term_when_parent_dies(parent: int):
    """For a child, before it runs its command: a TERM when this script dies, even
    by SIGKILL, so that neither child is left running unsupervised (Linux only)."""
    def arrange() -> None:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            return  # not Linux: no such safeguard
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)
    return arrange


class Child:
    """One supervised command, started in a session (process group) of its own."""

    def __init__(self, label: str, command: str):
        self.label = label
        self.argv = shlex.split(command)
        self.proc: subprocess.Popen | None = None
        self.started = 0.0

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_term_when_parent_dies(os.getpid()))
        self.started = time.monotonic()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def terminate(self) -> None:
        if self.alive():
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def kill_group(self) -> None:
        """KILL the child's process group: the child if still there, and whatever it left behind."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass  # nothing left in the group
        self.proc.wait()


def stop(children: list[Child], timeout: float) -> None:
    for child in children:
        child.terminate()
    deadline = time.monotonic() + timeout
    while any(child.alive() for child in children) and time.monotonic() < deadline:
        time.sleep(POLL)
    for child in children:
        if child.alive():
            say(f"The {child.label} (pid {child.pid}) did not stop within {timeout:g} s; killing it.")
        child.kill_group()


def supervise(args: argparse.Namespace) -> int:
    stop_signal: list[int] = []

    def request_stop(signum, frame):
        stop_signal.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, request_stop)

    web, worker = Child("web server", args.web), Child("worker", args.worker)
    web.start()
    worker.start()
    quick_stops = 0
    restart_at: float | None = None  # while the worker waits to be started again
    while True:
        if stop_signal:
            say(f"\nStopping the web server and the worker ({signal.Signals(stop_signal[0]).name})...")
            stop([web, worker], args.stop_timeout)
            return 0
        if not web.alive():
            say(f"The web server (pid {web.pid}) stopped ({how_it_ended(web.proc.returncode)}); "
                f"stopping the worker too.")
            web.kill_group()
            stop([worker], args.stop_timeout)
            return 1
        if restart_at is None and not worker.alive():
            ran = time.monotonic() - worker.started
            worker.kill_group()  # what a killed cluster leaves running
            quick_stops = quick_stops + 1 if ran < args.quick else 0
            ended = (f"The worker (pid {worker.pid}) stopped after {ran:.0f} s "
                     f"({how_it_ended(worker.proc.returncode)})")
            if quick_stops >= args.give_up_after:
                say(f"{ended}: {quick_stops} times in a row within {args.quick:g} s of starting. Giving up; "
                    f"stopping the web server too, since without a worker deliveries would be stored but "
                    f"never processed. See the worker's messages above.")
                stop([web], args.stop_timeout)
                return 1
            delay = min(2 ** max(quick_stops - 1, 0), args.max_backoff)
            count = (f" (quick stop {quick_stops} of {args.give_up_after} before giving up)"
                     if quick_stops else "")
            say(f"{ended}; the web server keeps taking deliveries. Starting the worker again in "
                f"{delay:g} s{count}.")
            restart_at = time.monotonic() + delay
        if restart_at is not None and time.monotonic() >= restart_at:
            worker.start()
            restart_at = None
            say(f"Worker started again (pid {worker.pid}).")
        time.sleep(POLL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--web", required=True, help="command of the web server (never restarted)")
    parser.add_argument("--worker", required=True, help="command of the worker (restarted when it stops)")
    parser.add_argument("--quick", type=float, default=60,
                        help="a worker stopping within this many seconds of its start counts as a quick stop")
    parser.add_argument("--give-up-after", type=int, default=5, help="quick stops in a row before giving up")
    parser.add_argument("--max-backoff", type=float, default=30, help="longest wait before a restart, seconds")
    parser.add_argument("--stop-timeout", type=float, default=8,
                        help="seconds between TERM and KILL when stopping")
    return supervise(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
