"""Shared fixtures.

End-to-end tests run the portal's API clients against the sandbox over real
HTTP: the ``sandbox`` fixture starts Django's live server (which serves the
sandbox app) and points every Xurrent and Zenduty host at it.
"""
import os
import threading
import time
import weakref

import pytest
import requests
from hypothesis import HealthCheck, settings

# Property-based tests (hypothesis). "repeatable", the default: the same
# examples on every run and in CI (derived from each test's name), few enough
# to keep the suite fast. HYPOTHESIS_PROFILE=explore tries new, and more,
# examples and keeps failing ones in .hypothesis/ to retry first.
# function_scoped_fixture: the tests roll back each example's rows themselves.
settings.register_profile("repeatable", max_examples=25, derandomize=True, database=None, deadline=None,
                          print_blob=True,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("explore", parent=settings.get_profile("repeatable"), max_examples=500,
                          derandomize=False, database=settings.default.database)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

# Every requests session a test opens, so that the sandbox fixture can close
# their keep-alive connections to the live server (see below).
_sessions: "weakref.WeakSet[requests.Session]" = weakref.WeakSet()
_session_init = requests.Session.__init__


def _tracked_session_init(self, *args, **kwargs):
    _session_init(self, *args, **kwargs)
    _sessions.add(self)


requests.Session.__init__ = _tracked_session_init


@pytest.fixture(autouse=True)
def _empty_redis_cache():
    """With REDIS_URL, Django's cache lives in Redis, which no test transaction rolls back: start each
    test with it empty, as the database cache's table is (locks, option lists, heartbeats)."""
    from django.conf import settings as django_settings

    if django_settings.REDIS_URL:
        from django.core.cache import cache

        cache.clear()


@pytest.fixture
def sandbox(live_server, settings):
    """Point all external API hosts and PORTAL_BASE_URL at the live server."""
    settings.SANDBOX_API_URL = live_server.url
    settings.PORTAL_BASE_URL = live_server.url
    yield live_server
    _end_idle_live_server_requests()


def _end_idle_live_server_requests(timeout: float = 1.0) -> None:
    """Let the live server's request threads end while it still runs.

    A test's API clients (requests sessions) keep keep-alive connections to
    the live server, and a server thread waits on each until the client is
    closed. Ending after the live server stopped, such a thread's clean-up
    failed on in-memory SQLite ("DatabaseWrapper objects created in a thread
    can only be used in that same thread"), printed as "Exception in thread"
    after a green run. Closing the sessions now ends those threads cleanly (a
    session used again later simply opens a new connection). This relies on
    close() closing the connections: requests' own only forgets the pools
    (urllib3 2), so the API clients' sessions close them themselves
    (``connections.http``); otherwise the connection of an error a test kept
    (``pytest.raises(...) as caught``) stayed open until the garbage collector
    freed the error, at times only in pytest's last collection, after the live
    server had stopped.
    """
    for session in list(_sessions):
        session.close()
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread.daemon and thread.name.endswith("(process_request_thread)"):
            thread.join(max(0.0, deadline - time.monotonic()))


def pytest_report_header(config):
    from django.conf import settings

    db = settings.DATABASES["default"]
    return f"database: {db['ENGINE'].rsplit('.', 1)[-1]} {db.get('HOST') or ''}".rstrip()

