"""The sync dashboard page, in the admin (``/admin/dashboard/``); the numbers come from ``syncengine.dashboard``.

Staff with view permission on the history (inbound events, outbound calls,
linked pairs) may open it; it changes nothing.
"""
from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse

from integrations.models import OutgoingIntegration
from syncengine import charts, dashboard
from syncengine.models import EventStatus

REQUIRED_PERMISSIONS = ("syncengine.view_inboundevent", "syncengine.view_outboundcall",
                        "syncengine.view_linkedpair")


def dashboard_view(request):
    """Overall, or one integration's (``?integration=<pk>``), over ``?window=24h|7d|30d``."""
    if not request.user.has_perms(REQUIRED_PERMISSIONS):
        raise PermissionDenied
    window = dashboard.WINDOWS.get(request.GET.get("window", ""), dashboard.WINDOWS[dashboard.DEFAULT_WINDOW])
    integrations = list(OutgoingIntegration.objects.order_by("zenduty_service_name", "pk")
                        .only("pk", "zenduty_service_name", "zenduty_service_id", "service_instance_name",
                              "service_instance_id"))
    selected = next((i for i in integrations if str(i.pk) == request.GET.get("integration")), None)
    data = dashboard.summary(window, selected)
    legend = [(s.value, s.label, s.colour) for s in EventStatus]
    context = {
        **admin.site.each_context(request),
        "title": f"Sync dashboard: {selected}" if selected else "Sync dashboard",
        "integrations": integrations, "selected": selected, "windows": dashboard.WINDOWS.values(),
        "legend": legend, **data,
        # One integration's dashboard links to its own history: the lists' integration filter.
        "history_query": f"?integration__id__exact={selected.pk}" if selected else "",
        "events_chart": charts.stacked_bars(data["buckets"], legend, window.bucket_seconds),
        "lag_chart": charts.lag_lines(data["buckets"], window.bucket_seconds),
    }
    return TemplateResponse(request, "admin/syncengine/dashboard.html", context)
