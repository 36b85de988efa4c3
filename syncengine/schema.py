"""The OpenAPI description of the webhook endpoints (drf-spectacular), for the people who point
Xurrent and Zenduty at the portal, or a proxy in front of it.

Documentation only: these serializers validate nothing (the intake reads
the raw body, ``syncengine.intake``). Served at ``/api/schema/`` with Swagger
UI and Redoc (``config.urls``), to staff.
"""
from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers

from syncengine.models import MAX_BODY_BYTES


def only_webhooks(endpoints, **kwargs):
    """drf-spectacular pre-processing hook: the schema describes the webhook endpoints only
    (the simulators' APIs are described by the vendors' own documentation)."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/webhooks/")]


class XurrentDelivery(serializers.Serializer):
    """A Xurrent webhook delivery: the message as a JWT signed with the webhook policy's key
    (https://developer.xurrent.com/v1/webhooks/)."""

    jwt = serializers.CharField(help_text="RS256/ES256 JWT; its `data` claim is the message "
                                          "(`event`, `object_id`, `payload`, …). Checked against the policy's "
                                          "public key, audience and the account's issuer.")


class ZendutyIncident(serializers.Serializer):
    unique_id = serializers.CharField()
    incident_number = serializers.IntegerField()
    title = serializers.CharField()
    status = serializers.IntegerField(help_text="1 triggered, 2 acknowledged, 3 resolved.")


class ZendutyMessage(serializers.Serializer):
    event_type = serializers.CharField(help_text="`triggered`, `acknowledged`, `resolved`, …")
    incident = ZendutyIncident()


class ZendutyDelivery(serializers.Serializer):
    """A Zenduty outgoing-webhook delivery (https://docs.zenduty.com/docs/outgoing-webhooks)."""

    payload = ZendutyMessage()


class Answer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["accepted", "duplicate", "ignored", "rejected", "unknown",
                                              "unavailable"])
    event = serializers.IntegerField(required=False, help_text="The stored event's id (Sync → Inbound events).")
    reason = serializers.CharField(required=False)


_ANSWERS = {
    200: OpenApiResponse(Answer, description="Stored: `accepted` (queued), `duplicate` (stored before) or "
                                             "`ignored` (an event the portal does not handle, or a disabled "
                                             "integration). Only a stored delivery is answered 2xx."),
    400: OpenApiResponse(Answer, description="Signed, but not JSON or not a delivery; stored as rejected."),
    401: OpenApiResponse(Answer, description="The signature does not hold; stored as rejected."),
    404: OpenApiResponse(Answer, description="No integration or tenant has this address; not stored."),
    411: OpenApiResponse(Answer, description="Sent in chunks to a server that cannot read them (runserver)."),
    413: OpenApiResponse(Answer, description=f"Body over {MAX_BODY_BYTES} bytes; stored as rejected, "
                                             f"without the body."),
    503: OpenApiResponse(Answer, description="The database cannot store the delivery now (unavailable or "
                                             "read-only); nothing was stored: send it again later."),
}

_XURRENT_HEADERS = [
    OpenApiParameter("x-xurrent-delivery", str, OpenApiParameter.HEADER, required=False,
                     description="The delivery's id: a repeated delivery is acknowledged once."),
    OpenApiParameter("x-xurrent-delivery-origin", str, OpenApiParameter.HEADER, required=False,
                     description="On a retry, the id of the first delivery."),
]


def xurrent_delivery(operation_id: str, description: str):
    """The schema of a Xurrent webhook endpoint's POST."""
    return extend_schema(
        operation_id=operation_id, summary="Receive a Xurrent webhook delivery", description=description,
        tags=["webhooks"], request={"application/json": XurrentDelivery}, responses=_ANSWERS,
        parameters=_XURRENT_HEADERS,
        examples=[OpenApiExample("a signed delivery", value={"jwt": "eyJhbGciOiJSUzI1NiJ9.eyJkYXRhIjp7fX0.c2ln"},
                                 request_only=True)])


zenduty_delivery = extend_schema(
    operation_id="zenduty_delivery", summary="Receive a Zenduty outgoing-webhook delivery",
    description="The address provisioning gives the integration's Zenduty outgoing webhook.",
    tags=["webhooks"], request={"application/json": ZendutyDelivery}, responses=_ANSWERS,
    parameters=[OpenApiParameter("X-SIGNATURE", str, OpenApiParameter.HEADER, required=True,
                                 description="Base64 HMAC-SHA256 of the body with the integration's signing key.")])
