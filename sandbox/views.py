"""Sandbox pages for people: the index, faults on demand, and the delivery outbox."""
from __future__ import annotations

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from sandbox import deliveries as outbox
from sandbox import faults as fault_api
from sandbox.models import DELIVERY_FAULTS, Fault, FaultKind, OutboundDelivery, SimulatedService


class FaultForm(forms.Form):
    service = forms.ChoiceField(choices=SimulatedService.choices)
    kind = forms.ChoiceField(choices=FaultKind.choices)
    count = forms.IntegerField(min_value=1, max_value=1000, initial=1, help_text="How many calls or deliveries.")
    path_prefix = forms.CharField(required=False, help_text="API faults only: calls whose path starts with this, "
                                  "e.g. /v1/requests, /oauth/token (Xurrent's token request) or /api/incidents/. "
                                  "Empty: every call.")
    method = forms.ChoiceField(required=False, help_text="API faults only.",
                               choices=[("", "any")] + [(m, m) for m in ("GET", "POST", "PATCH", "PUT", "DELETE")])
    latency_ms = forms.IntegerField(required=False, min_value=0, max_value=120000, initial=0,
                                    label="Latency (ms)", help_text="For latency and timeout faults.")
    retry_after = forms.IntegerField(required=False, min_value=0, max_value=3600, initial=30,
                                     label="Retry-After (s)",
                                     help_text="For Xurrent 429 faults. Zenduty's 429 carries no Retry-After, "
                                               "as its real throttle sends none.")

    def clean(self):
        data = super().clean()
        # A delivery has no API path or method: such a fault would never fire.
        if data.get("kind") in DELIVERY_FAULTS and (data.get("path_prefix") or data.get("method")):
            self.add_error("path_prefix" if data.get("path_prefix") else "method", fault_api.DELIVERY_FILTER_REFUSED)
        return data


def index(request):
    """Landing page of the sandbox with links to both simulated services."""
    return render(request, "sandbox/index.html", {
        "pending": outbox.pending().count(),
        "faults": Fault.objects.filter(remaining__gt=0).count(),
    })


@require_http_methods(["GET", "POST"])
def faults(request):
    """Arm and clear faults."""
    form = FaultForm(request.POST or None)
    if request.method == "POST":
        if "clear" in request.POST:
            removed = fault_api.clear()
            messages.success(request, f"Cleared {removed} fault(s).")
            return redirect("sandbox-faults")
        if form.is_valid():
            data = form.cleaned_data
            fault_api.inject(data["service"], data["kind"], count=data["count"], path_prefix=data["path_prefix"],
                             method=data["method"], latency_ms=data["latency_ms"] or 0,
                             retry_after=data["retry_after"] if data["retry_after"] is not None else 30)
            messages.success(request, "Fault armed.")
            return redirect("sandbox-faults")
    return render(request, "sandbox/faults.html", {
        "form": form, "faults": Fault.objects.order_by("-id")[:50],
    })


@require_http_methods(["GET", "POST"])
def deliveries(request):
    """The outbox of webhook deliveries, with a button to send pending ones now."""
    if request.method == "POST":
        sent = outbox.flush()
        messages.success(request, f"Sent {len(sent)} pending deliveries.")
        return redirect("sandbox-deliveries")
    return render(request, "sandbox/deliveries.html", {
        "deliveries": OutboundDelivery.objects.order_by("-id")[:100],
    })
