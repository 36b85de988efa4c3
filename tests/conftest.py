"""Shared fixtures.

End-to-end tests run the portal's API clients against the sandbox over real
HTTP: the ``sandbox`` fixture starts Django's live server (which serves the
sandbox app) and points every Xurrent and Zenduty host at it.
"""
import gc
import threading
import time

import pytest


@pytest.fixture
def sandbox(live_server, settings):
    """Point all external API hosts and PORTAL_BASE_URL at the live server."""
    settings.SANDBOX_API_URL = live_server.url
    settings.PORTAL_BASE_URL = live_server.url
    return live_server


def pytest_report_header(config):
    from django.conf import settings

    db = settings.DATABASES["default"]
    return f"database: {db['ENGINE'].rsplit('.', 1)[-1]} {db.get('HOST') or ''}".rstrip()


def pytest_sessionfinish(session, exitstatus):
    """Let the live server's request threads end before the interpreter does.

    Test clients (requests sessions) left to the garbage collector keep their
    keep-alive connections to the live server open, and a server thread waits
    on each. Woken while the interpreter shuts down, such a thread printed a
    bare "Exception in thread" after an all-green run. Collecting now closes
    those connections, and the threads end normally.
    """
    gc.collect()
    deadline = time.monotonic() + 5
    for thread in threading.enumerate():
        if thread.daemon and thread.name.endswith("(process_request_thread)"):
            thread.join(max(0.0, deadline - time.monotonic()))
