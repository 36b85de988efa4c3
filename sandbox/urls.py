"""Sandbox URLs.

/sandbox/                 the by-hand page (links to both simulators, faults, deliveries)
/sandbox/xurrent/...      what api.xurrent.com and oauth.xurrent.com answer (sandbox.xurrent)
/sandbox/zenduty/...      what www.zenduty.com answers (sandbox.zenduty)
"""
from django.urls import include, path

from sandbox import views

urlpatterns = [
    path("", views.index, name="sandbox-index"),
    path("faults/", views.faults, name="sandbox-faults"),
    path("deliveries/", views.deliveries, name="sandbox-deliveries"),
    path("xurrent/", include("sandbox.xurrent.urls")),
    path("zenduty/", include("sandbox.zenduty.urls")),
]
