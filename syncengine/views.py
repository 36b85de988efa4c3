"""Webhook endpoints: ``/webhooks/xurrent/<public_id>/`` and ``/webhooks/zenduty/<public_id>/``.

Thin DRF views: no authentication classes (the signature is the
authentication), CSRF-exempt (APIView.as_view does that), and the raw body
is read before anything parses it. The rules live in ``syncengine.intake``.
"""
from __future__ import annotations

import logging

from django.core.exceptions import RequestDataTooBig
from rest_framework.response import Response
from rest_framework.views import APIView

from syncengine import intake
from syncengine.models import MAX_BODY_BYTES, Source

logger = logging.getLogger("syncengine.views")


def read_delivery(request) -> intake.RawDelivery:
    """The headers and raw body; the body stays unread (None) when larger than MAX_BODY_BYTES."""
    headers = dict(request.headers.items())
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > MAX_BODY_BYTES:
        return intake.RawDelivery(headers=headers, body=None, size=declared)
    try:
        body = request.body
    except RequestDataTooBig:
        return intake.RawDelivery(headers=headers, body=None, size=declared)
    if len(body) > MAX_BODY_BYTES:
        return intake.RawDelivery(headers=headers, body=None, size=len(body))
    return intake.RawDelivery(headers=headers, body=body, size=len(body))


class WebhookView(APIView):
    """Receive one delivery for the integration named in the URL."""

    authentication_classes = ()
    permission_classes = ()
    source: str = ""

    def post(self, request, public_id):
        integration = intake.find_integration(public_id)
        if integration is None:
            # Recorded nowhere, on purpose (see syncengine.intake): logged only.
            logger.warning("syncengine.webhook.unknown-integration %s %s", self.source, public_id)
            return Response({"status": "unknown", "reason": "No integration has this address."}, status=404)
        result = intake.receive(self.source, integration, read_delivery(request._request))
        return Response(result.body, status=result.http_status)


class XurrentWebhookView(WebhookView):
    source = Source.XURRENT


class ZendutyWebhookView(WebhookView):
    source = Source.ZENDUTY
