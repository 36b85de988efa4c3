"""Run the benchmarks: ``python -m bench`` (all) or ``python -m bench <name>...``.

Settings are ``config.settings_test`` (test encryption keys, the sandbox
installed, its delivery thread off) with ``Q_SYNC`` off, so that a webhook
only enqueues its job, as in production. The database is a throw-away one
made like the test runner makes it: a SQLite file in a temporary directory,
or, when ``DATABASE_URL`` names another server, ``test_<name>`` on it;
migrated quietly and dropped at the end. Logging still runs (filters and
formatting cost time in production too) but goes to /dev/null.

Prints one row per measurement (value, target, PASS/FAIL, or "info" for
rows without a target); the exit code is 1 when any target fails or a
benchmark breaks.
"""
from __future__ import annotations

import importlib
import logging
import os
import sys
import tempfile
import time
import traceback
import warnings

BENCHMARKS = {
    "encryption": "bench.encryption",
    "webhooks": "bench.webhooks",
    "xurrent-pages": "bench.pagination:run_xurrent",
    "zenduty-pages": "bench.pagination:run_zenduty",
    "sync": "bench.sync",
    "backlog": "bench.backlog",
    "intake": "bench.intake",
    "polling": "bench.polling",
    "dashboard": "bench.dashboard",
}


def _setup_django(tmp: str):
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings_test"
    os.environ["Q_SYNC"] = "false"
    os.environ["DB_CONN_MAX_AGE"] = "60"  # as in production (the test settings close per request)
    warnings.filterwarnings("ignore", "No directory at", UserWarning)  # no collectstatic needed (as pytest.ini)
    import django

    django.setup()
    devnull = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(devnull)

    from django.db import connection

    if connection.vendor == "sqlite":
        connection.settings_dict["TEST"]["NAME"] = os.path.join(tmp, "bench.sqlite3")
    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    return connection, old_name


def _load(spec: str):
    module, _, func = spec.partition(":")
    return getattr(importlib.import_module(module), func or "run")


def _format(value: float, unit: str) -> str:
    if value == int(value) or abs(value) >= 100:
        text = f"{value:,.0f}"
    else:
        text = f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
    return f"{text} {unit}".strip()


def _print_table(rows) -> None:
    lines = [("benchmark", "measured", "target", "result")]
    for row in rows:
        target = "" if row.target is None else f"{row.check} {_format(row.target, row.unit)}"
        result = {None: "info", True: "PASS", False: "FAIL"}[row.passed]
        lines.append((row.name, _format(row.value, row.unit), target, result))
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    for n, line in enumerate(lines):
        print("  ".join(cell.ljust(width) if i == 0 else cell.rjust(width)
                        for i, (cell, width) in enumerate(zip(line, widths))).rstrip())
        if n == 0:
            print("  ".join("-" * width for width in widths))


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark {', '.join(unknown)}; choose from: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    from bench import Row

    started = time.monotonic()
    rows: list[Row] = []
    broken = False
    with tempfile.TemporaryDirectory(prefix="portal-bench-") as tmp:
        connection, old_name = _setup_django(tmp)
        print(f"database: {connection.vendor} (throw-away), set up in {time.monotonic() - started:.1f} s",
              flush=True)
        try:
            for name in names:
                began = time.monotonic()
                try:
                    rows += _load(BENCHMARKS[name])()
                except Exception:  # noqa: BLE001 - report it, run the others
                    broken = True
                    print(f"\n{name}: broken\n{traceback.format_exc()}", file=sys.stderr)
                print(f"{name}: {time.monotonic() - began:.1f} s", flush=True)
        finally:
            connection.creation.destroy_test_db(old_name, verbosity=0)
    print()
    _print_table(rows)
    failed = [row.name for row in rows if row.passed is False]
    print(f"\n{len(rows)} measurements, {len(failed)} failed{', benchmark broken' if broken else ''}, "
          f"{time.monotonic() - started:.0f} s in all")
    return 1 if failed or broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
