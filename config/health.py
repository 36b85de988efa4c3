"""/healthz: is the portal able to do its work?

Checks that the database answers and accepts writes, the age of the newest
django-q2 cluster heartbeat and the queue length. 200 when all are fine, 503
otherwise, with details as JSON so a load balancer and a person can both read it.
"""
from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.migrations.recorder import MigrationRecorder
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

REFUSES_WRITES = "The database answers reads but refuses writes (read-only?); no delivery can be stored."


def _check_database() -> dict:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means unhealthy, with the reason
        return {"ok": False, "error": type(exc).__name__}
    try:
        _try_a_write()
    except DatabaseError as exc:
        # The error's class only: its text is the database's and /healthz is public.
        return {"ok": False, "writable": False, "error": type(exc).__name__, "detail": REFUSES_WRITES}
    return {"ok": True, "writable": True}


def _try_a_write() -> None:
    """An UPDATE that changes no row, in a transaction rolled back: it needs the
    database's write access all the same. PostgreSQL refuses it in a read-only
    transaction (default_transaction_read_only, a hot standby), SQLite on a
    file or connection opened read-only; on SQLite it also takes the write lock
    for a moment. django_migrations is the one table every migrated database has.
    """
    table = connection.ops.quote_name(MigrationRecorder.Migration._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET app = app WHERE 1 = 0")
        transaction.set_rollback(True)


def _check_cluster() -> dict:
    """Newest heartbeat of any running qcluster (stats are kept in the broker)."""
    from django_q.brokers import get_broker
    from django_q.status import Stat

    try:
        broker = get_broker()
        stats = Stat.get_all(broker=broker)
        queue_length = broker.queue_size()
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__, "heartbeat_age_seconds": None, "queue_length": None}
    now = timezone.now()
    ages = [(now - s.timestamp).total_seconds() for s in stats if getattr(s, "timestamp", None)]
    age = round(min(ages), 1) if ages else None
    ok = (age is not None and age <= settings.HEALTHZ_MAX_HEARTBEAT_AGE
          and (queue_length or 0) <= settings.HEALTHZ_MAX_QUEUE_LENGTH)
    return {"ok": ok, "clusters": len(stats), "heartbeat_age_seconds": age, "queue_length": queue_length}


@never_cache
@require_GET
def healthz(request):
    database = _check_database()
    # Reads are enough for the worker's heartbeat and the queue length.
    readable = database["ok"] or database.get("writable") is False
    cluster = _check_cluster() if readable else {"ok": False, "error": "database unavailable"}
    healthy = database["ok"] and cluster["ok"]
    body = {"status": "ok" if healthy else "unhealthy", "database": database, "worker": cluster}
    return JsonResponse(body, status=200 if healthy else 503)


class HealthProbeLogFilter(logging.Filter):
    """On ``django.request``: a 503 from /healthz is logged at INFO, not ERROR.

    Django logs every 5xx as an error, so each probe of a load balancer (and
    ``make run`` waiting for its worker's first heartbeat) would write an
    ERROR line; the answer's JSON already says what is wrong.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        if getattr(record, "status_code", None) == 503 and getattr(request, "path", "") == "/healthz":
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True
