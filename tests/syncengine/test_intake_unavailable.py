"""Intake while the database refuses writes or cannot be reached: 503, and no 2xx for anything not stored.

/healthz's own answer in the same situations is in tests/test_settings_and_health.py.
"""
from __future__ import annotations

from contextlib import contextmanager

import pytest
from django.db import OperationalError, connection

from syncengine.models import EventStatus, InboundEvent
from tests.syncengine.conftest import fixture_bytes

READ_ONLY = {"sqlite": ("PRAGMA query_only = ON", "PRAGMA query_only = OFF"),
             "postgresql": ("SET default_transaction_read_only = on", "SET default_transaction_read_only = off")}


@contextmanager
def read_only_database():
    """This connection (the test client's too: same thread) refuses writes, as a read-only file or a
    PostgreSQL standby does."""
    on, off = READ_ONLY[connection.vendor]
    with connection.cursor() as cursor:
        cursor.execute(on)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(off)


@contextmanager
def unreachable_database(monkeypatch):
    """No connection can be opened. PostgreSQL: the connection is closed and pointed at a port nobody
    listens on. SQLite: the test database lives in memory and would be lost if closed, so opening a
    connection fails as it does for a file that cannot be opened."""
    if connection.vendor == "sqlite":
        def cannot_open(*args, **kwargs):
            raise OperationalError("unable to open database file")
        with monkeypatch.context() as patch:
            patch.setattr(connection, "ensure_connection", cannot_open)
            yield
        return
    connection.close()
    saved = dict(connection.settings_dict)
    connection.settings_dict.update(HOST="127.0.0.1", PORT="9")  # discard: connection refused
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


def answers_503_without_storing(response, before: int) -> None:
    assert response.status_code == 503, response.content
    assert response.json()["status"] == "unavailable"
    assert response["Retry-After"] == "60"
    assert InboundEvent.objects.count() == before


@pytest.mark.django_db(transaction=True)  # PostgreSQL: the session setting applies to the next transaction
@pytest.mark.usefixtures("sync_handlers")
def test_a_read_only_database_gets_503_for_every_kind_of_delivery(integration, post_zenduty, post_xurrent,
                                                                  sign_xurrent):
    triggered = fixture_bytes("zenduty/triggered.json")
    assert post_zenduty(integration, triggered).status_code == 200  # stored once, before
    stored = InboundEvent.objects.get()
    xurrent = sign_xurrent("request.update")

    with read_only_database():
        answers = {
            "new zenduty": post_zenduty(integration, fixture_bytes("zenduty/acknowledged.json")),
            "repeated zenduty": post_zenduty(integration, triggered),
            "forged zenduty": post_zenduty(integration, triggered, signature="forged"),
            "new xurrent": post_xurrent(integration, xurrent, delivery_id="d-ro-1"),
        }

    for what, response in answers.items():
        assert response.status_code == 503, (what, response.content)
        answers_503_without_storing(response, 1)
    stored.refresh_from_db()
    assert stored.duplicates == 0  # the repeat was not counted either

    # Writable again, the senders' retries are stored and processed once.
    assert post_zenduty(integration, fixture_bytes("zenduty/acknowledged.json")).json()["status"] == "accepted"
    assert post_xurrent(integration, xurrent, delivery_id="d-ro-1").json()["status"] == "accepted"
    assert post_xurrent(integration, xurrent, delivery_id="d-ro-1").json()["status"] == "duplicate"
    assert InboundEvent.objects.filter(status=EventStatus.PROCESSED).count() == 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("sync_handlers")
def test_an_unreachable_database_gets_503(integration, post_zenduty, monkeypatch):
    body = fixture_bytes("zenduty/triggered.json")

    with unreachable_database(monkeypatch):
        response = post_zenduty(integration, body)

    answers_503_without_storing(response, 0)
    assert post_zenduty(integration, body).json()["status"] == "accepted"
