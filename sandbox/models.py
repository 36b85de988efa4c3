"""Shared sandbox plumbing: injected faults, rate counters and the outbox of
webhook deliveries the simulated services send.

The simulated records themselves live in sandbox.xurrent and sandbox.zenduty.
"""
from __future__ import annotations

from django.db import models
from django.utils import timezone


class SimulatedService(models.TextChoices):
    XURRENT = "xurrent", "Xurrent"
    ZENDUTY = "zenduty", "Zenduty"


class FaultKind(models.TextChoices):
    ERROR_500 = "error_500", "Answer 500"
    RATE_LIMIT_429 = "rate_limit_429", "Answer 429"
    TIMEOUT = "timeout", "Hang (timeout)"
    LATENCY = "latency", "Add latency"
    # Faults on outgoing webhook deliveries rather than on API calls.
    DROP_DELIVERY = "drop_delivery", "Drop webhook deliveries"
    DUPLICATE_DELIVERY = "duplicate_delivery", "Duplicate webhook deliveries"
    REORDER_DELIVERY = "reorder_delivery", "Hold deliveries back (reorder)"


API_FAULTS = {FaultKind.ERROR_500, FaultKind.RATE_LIMIT_429, FaultKind.TIMEOUT, FaultKind.LATENCY}
DELIVERY_FAULTS = {FaultKind.DROP_DELIVERY, FaultKind.DUPLICATE_DELIVERY, FaultKind.REORDER_DELIVERY}


class Fault(models.Model):
    """A fault armed for the next ``remaining`` matching calls or deliveries.

    API faults match calls to the simulated service whose path (relative to the
    service root, e.g. ``/v1/requests`` or ``/api/incidents/``) starts with
    ``path_prefix`` and, if set, whose method equals ``method``.
    """

    service = models.CharField(max_length=16, choices=SimulatedService.choices)
    kind = models.CharField(max_length=32, choices=FaultKind.choices)
    path_prefix = models.CharField(max_length=200, blank=True, default="")
    method = models.CharField(max_length=8, blank=True, default="")
    remaining = models.PositiveIntegerField(default=1)
    latency_ms = models.PositiveIntegerField(default=0, help_text="For latency and timeout faults.")
    retry_after = models.PositiveIntegerField(default=30, help_text="Retry-After seconds for 429 faults.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.service} {self.kind} ×{self.remaining} {self.method} {self.path_prefix}".strip()


class RateCounter(models.Model):
    """Fixed-window call counter behind the simulated rate limits."""

    key = models.CharField(max_length=200, unique=True)
    window_start = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (gave up)"
    DROPPED = "dropped", "Dropped (fault)"


class OutboundDelivery(models.Model):
    """One webhook message a simulated service sends, with its retry state.

    Deliveries never leave inside the request that caused them: they are
    written here and sent by :mod:`sandbox.deliveries` from a background
    thread (or by ``flush()`` in tests), as the real services do.
    """

    service = models.CharField(max_length=16, choices=SimulatedService.choices)
    url = models.URLField(max_length=1000)
    headers = models.JSONField(default=dict)
    body = models.TextField()
    # Header whose value is a fresh UUID on every attempt (Xurrent's
    # x-xurrent-delivery); the first one is kept in "<header>-origin".
    fresh_id_header = models.CharField(max_length=64, blank=True, default="")
    timeout_seconds = models.FloatField(default=10.0)
    max_attempts = models.PositiveSmallIntegerField(default=5)
    state = models.CharField(max_length=16, choices=DeliveryState.choices, default=DeliveryState.PENDING)
    held = models.BooleanField(default=False, help_text="Held back by a reorder fault: sent after later ones.")
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_status = models.IntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    description = models.CharField(max_length=200, blank=True, default="")
    meta = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["state", "next_attempt_at"])]

    def __str__(self) -> str:
        return f"{self.service} → {self.url} ({self.description or self.state})"
