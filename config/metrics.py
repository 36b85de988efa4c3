"""/metrics: the Prometheus metrics (``syncengine.metrics``), for a scraper holding ``METRICS_TOKEN``.

Not public: without ``METRICS_TOKEN`` the address does not exist (404); with
it, a scrape must send ``Authorization: Bearer <token>`` (401 otherwise). The
numbers are counts of the portal's history, not secrets, but they say how
busy each service is and how often it fails.
"""
from __future__ import annotations

import hmac

from django.conf import settings
from django.http import Http404, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from syncengine.metrics import PortalCollector


def _authorised(request) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(),
                                                              settings.METRICS_TOKEN.encode())


@never_cache
@require_GET
def metrics(request):
    if not settings.METRICS_TOKEN:
        raise Http404("Metrics are off: set METRICS_TOKEN.")
    if not _authorised(request):
        response = HttpResponse("A bearer token (METRICS_TOKEN) is required.\n", status=401,
                                content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    # A registry per scrape: only the portal's collector, none of this process's own metrics
    # (they would describe one of many processes).
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PortalCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
