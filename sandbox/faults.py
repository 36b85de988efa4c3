"""Faults on demand and simulated rate limits for the sandbox APIs."""
from __future__ import annotations

import time
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.http import JsonResponse
from django.utils import timezone

from sandbox.models import API_FAULTS, DELIVERY_FAULTS, Fault, FaultKind, RateCounter


# Also shown by the faults page: deliveries have no API path or method to match.
DELIVERY_FILTER_REFUSED = ("Delivery faults apply to the service's next webhook deliveries, whatever their event "
                           "or address: leave the path and the method empty.")


# How latency and timeout faults wait; tests replace it so they never do.
_sleep = time.sleep


def inject(service: str, kind: str, *, count: int = 1, path_prefix: str = "", method: str = "",
           latency_ms: int = 0, retry_after: int = 30) -> Fault:
    """Arm a fault for the next ``count`` matching calls (or deliveries).

    ``path_prefix`` and ``method`` narrow API faults only; a delivery fault
    with either is refused (ValueError), as it could never fire.
    """
    if kind not in FaultKind.values:
        raise ValueError(f"unknown fault kind {kind!r}; choose one of {', '.join(FaultKind.values)}")
    if kind in DELIVERY_FAULTS and (path_prefix or method):
        raise ValueError(DELIVERY_FILTER_REFUSED)
    return Fault.objects.create(service=service, kind=kind, remaining=count, path_prefix=path_prefix,
                                method=method.upper(), latency_ms=latency_ms, retry_after=retry_after)


def clear(service: str | None = None) -> int:
    """Disarm all faults (of one service)."""
    qs = Fault.objects.all() if service is None else Fault.objects.filter(service=service)
    return qs.delete()[0]


def _take(service: str, kinds, method: str = "", path: str = "") -> Fault | None:
    """Consume one use of the oldest matching armed fault, atomically."""
    candidates = Fault.objects.filter(service=service, kind__in=kinds, remaining__gt=0).order_by("id")
    for fault in candidates:
        if fault.method and fault.method != method.upper():
            continue
        if fault.path_prefix and not path.startswith(fault.path_prefix):
            continue
        # Conditional decrement: two concurrent calls cannot both take the last use.
        if Fault.objects.filter(pk=fault.pk, remaining__gt=0).update(remaining=F("remaining") - 1):
            return fault
    return None


def api_fault_response(service: str, method: str, path: str, *, error_body: dict, rate_limited_body: dict,
                       retry_after_header: bool = True) -> JsonResponse | None:
    """Apply an armed API fault to a call; return the response to send instead, if any.

    Latency faults sleep and let the call go on; timeout faults sleep for
    ``latency_ms`` (default 30 s, longer than any client timeout) and then
    answer 504, as a gateway would. A 429 carries ``Retry-After`` only with
    ``retry_after_header``: an injected 429 looks like the service's own
    throttle (Xurrent's sends the header, Zenduty's does not).
    """
    fault = _take(service, API_FAULTS, method, path)
    if fault is None:
        return None
    if fault.kind == FaultKind.LATENCY:
        _sleep(fault.latency_ms / 1000)
        return None
    if fault.kind == FaultKind.TIMEOUT:
        _sleep((fault.latency_ms or 30000) / 1000)
        return JsonResponse({"message": "Gateway timeout"}, status=504)
    if fault.kind == FaultKind.RATE_LIMIT_429:
        response = JsonResponse(rate_limited_body, status=429)
        if retry_after_header:
            response["Retry-After"] = str(fault.retry_after)
        return response
    return JsonResponse(error_body, status=500)


def take_delivery_fault(service: str) -> str | None:
    """The kind of the delivery fault to apply to the next delivery, if any."""
    fault = _take(service, DELIVERY_FAULTS)
    return fault.kind if fault else None


def hit_rate_limit(key: str, limit: int, window_seconds: int) -> tuple[bool, int, int]:
    """Count one call against a fixed window.

    Returns ``(allowed, remaining, reset_epoch)``. Fixed windows are simple and
    match how both services describe their limits ("30/min", "3600/hour").
    """
    now = timezone.now()
    with transaction.atomic():
        counter, _ = RateCounter.objects.select_for_update().get_or_create(
            key=key, defaults={"window_start": now, "count": 0})
        if now - counter.window_start >= timedelta(seconds=window_seconds):
            counter.window_start = now
            counter.count = 0
        counter.count += 1
        counter.save(update_fields=["window_start", "count"])
    reset = int((counter.window_start + timedelta(seconds=window_seconds)).timestamp())
    return counter.count <= limit, max(0, limit - counter.count), reset
