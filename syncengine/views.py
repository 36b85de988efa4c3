"""Webhook endpoints: ``/webhooks/xurrent/tenant/<public_id>/`` (a tenant's Xurrent webhooks),
``/webhooks/xurrent/<public_id>/`` (an integration's own, of before) and ``/webhooks/zenduty/<public_id>/``.

Thin DRF views: no authentication classes (the signature is the
authentication), CSRF-exempt (APIView.as_view does that), and the raw body
is read before anything parses it. The rules live in ``syncengine.intake``.
"""
from __future__ import annotations

import logging

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from syncengine import intake, schema
from syncengine.models import MAX_BODY_BYTES, Source

logger = logging.getLogger("syncengine.views")

UNAVAILABLE = "The portal cannot store deliveries right now (its database is unavailable); nothing was stored."
RETRY_AFTER_SECONDS = 60


def read_delivery(request) -> intake.RawDelivery:
    """The headers and raw body; the body stays unread (None) when larger than MAX_BODY_BYTES.

    A body sent with ``Transfer-Encoding: chunked`` has no Content-Length,
    and Django reads exactly Content-Length bytes: such a body would look
    empty, hence unsigned. A WSGI server that de-chunks the input and ends it
    (``wsgi.input_terminated``, as gunicorn does) is read here directly, up to
    the cap. Where the input is not ended (Django's runserver and test live
    server) it cannot be read safely, and the delivery is refused with 411
    (Length Required), so the sender knows to send a length.
    """
    headers = dict(request.headers.items())
    meta = request.META
    if not meta.get("CONTENT_LENGTH"):
        if meta.get("wsgi.input_terminated"):
            return _read_to_end(meta["wsgi.input"], headers)
        if meta.get("HTTP_TRANSFER_ENCODING"):
            return intake.RawDelivery(headers=headers, body=None, size=0, chunked=True, unreadable=(
                "The body was sent in chunks (Transfer-Encoding) without a Content-Length, and this web server "
                "cannot read such a body. Send a Content-Length, or serve the portal with gunicorn."))
    try:
        declared = int(meta.get("CONTENT_LENGTH") or 0)
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


def _read_to_end(stream, headers: dict) -> intake.RawDelivery:
    """A body of unknown length from an input the server ends; no more than one byte past the cap is read."""
    parts, size = [], 0
    while size <= MAX_BODY_BYTES:
        part = stream.read(MAX_BODY_BYTES + 1 - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    if size > MAX_BODY_BYTES:
        return intake.RawDelivery(headers=headers, body=None, size=size, chunked=True)
    return intake.RawDelivery(headers=headers, body=b"".join(parts), size=size, chunked=True)


class AnswerInJson(BaseContentNegotiation):
    """The answer is JSON whatever the request's Accept header says. DRF's default refused a
    delivery whose Accept did not name JSON (406, before the view ran), so a signed delivery
    was lost for a header that says nothing about it."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class WebhookView(APIView):
    """Receive one delivery for the integration named in the URL."""

    authentication_classes = ()
    permission_classes = ()
    content_negotiation_class = AnswerInJson
    source: str = ""

    def http_method_not_allowed(self, request, *args, **kwargs):
        """Someone who opens a webhook address in a browser reads what it is for, not DRF's
        bare "Method not allowed" (OPTIONS stays DRF's own answer)."""
        sender = Source(self.source).label
        return Response({"status": "method_not_allowed",
                         "reason": f"This address receives {sender}'s webhook deliveries: POST requests that "
                                   f"{sender} signs. Opened in a browser ({request.method}) it has nothing to "
                                   f"show; the portal's pages are under /admin/."},
                        status=405, headers={"Allow": "POST, OPTIONS"})

    @schema.zenduty_delivery
    def post(self, request, public_id):
        integration = intake.find_integration(public_id)
        if integration is None:
            # Recorded nowhere, on purpose (see syncengine.intake): logged only.
            logger.warning("syncengine.webhook.unknown-integration %s %s", self.source, public_id)
            return Response({"status": "unknown", "reason": "No integration has this address."}, status=404)
        result = intake.receive(self.source, integration, read_delivery(request._request))
        return Response(result.body, status=result.http_status)

    def handle_exception(self, exc):
        """A database that cannot be read or written (down, read-only, locked too long) is a 503, not a
        500: the delivery was not stored, so it is not acknowledged, and the sender is told to come
        back (Xurrent retries; Zenduty documents no retry, and the reconciliation sweep catches up)."""
        if isinstance(exc, DatabaseError):
            logger.warning("syncengine.webhook.unavailable %s %s: %s", self.source, self.kwargs.get("public_id"),
                           type(exc).__name__)
            return Response({"status": "unavailable", "reason": UNAVAILABLE}, status=503,
                            headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        return super().handle_exception(exc)


class XurrentWebhookView(WebhookView):
    source = Source.XURRENT

    @schema.xurrent_delivery("xurrent_integration_delivery",
                             "An integration's own address, of before the tenant's set of webhooks; it delivers "
                             "until `manage.py move_xurrent_webhooks` has moved them.")
    def post(self, request, public_id):
        return super().post(request, public_id)


class XurrentTenantWebhookView(WebhookView):
    """Xurrent deliveries for a tenant's set of webhooks; the job routes them to an integration."""

    source = Source.XURRENT

    @schema.xurrent_delivery("xurrent_tenant_delivery",
                             "The address of a tenant's set of Xurrent webhooks (one per account); the job "
                             "routes each event to its integration.")
    def post(self, request, public_id):
        hooks = intake.find_tenant_webhooks(public_id)
        if hooks is None:
            logger.warning("syncengine.webhook.unknown-tenant-webhooks %s", public_id)
            return Response({"status": "unknown", "reason": "No tenant has this address."}, status=404)
        result = intake.receive(self.source, hooks, read_delivery(request._request))
        return Response(result.body, status=result.http_status)


class ZendutyWebhookView(WebhookView):
    source = Source.ZENDUTY
