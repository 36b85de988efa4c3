"""Sandbox URLs.

/sandbox/                 the by-hand page (links to both simulators, faults, deliveries)
/sandbox/xurrent/...      what api.xurrent.com and oauth.xurrent.com answer (sandbox.xurrent)
/sandbox/zenduty/...      what www.zenduty.com answers (sandbox.zenduty)
"""
from django.contrib.admin.views.decorators import staff_member_required
from django.urls import include, path

from sandbox import views

# The by-hand pages (and arming faults) are for the portal's staff, behind the admin login; the
# simulated APIs, the OAuth endpoint and the verification callbacks stay open, as Xurrent's and
# Zenduty's are (their own checks are tokens and codes, not a portal login).
urlpatterns = [
    path("", staff_member_required(views.index), name="sandbox-index"),
    path("faults/", staff_member_required(views.faults), name="sandbox-faults"),
    path("deliveries/", staff_member_required(views.deliveries), name="sandbox-deliveries"),
    path("xurrent/", include("sandbox.xurrent.urls")),
    path("zenduty/", include("sandbox.zenduty.urls")),
]
