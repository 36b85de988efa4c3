"""Shared fixtures.

End-to-end tests run the portal's API clients against the sandbox over real
HTTP: the ``sandbox`` fixture starts Django's live server (which serves the
sandbox app) and points every Xurrent and Zenduty host at it.
"""
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
