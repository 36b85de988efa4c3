"""Sandbox URLs.

/sandbox/                 the by-hand page (links to both simulators, faults, deliveries)
/sandbox/xurrent/...      what api.xurrent.com and oauth.xurrent.com answer (sandbox.xurrent)
/sandbox/zenduty/...      what www.zenduty.com answers (sandbox.zenduty)
"""
from django.urls import include, path

from sandbox import views
from sandbox.access import by_hand_page

# The by-hand pages (and arming faults) are for the portal's staff, behind the admin login, and
# only integration admins may act on them (sandbox.access); the simulated APIs, the OAuth endpoint
# and the verification callbacks stay open, as Xurrent's and Zenduty's are.
urlpatterns = [
    path("", by_hand_page(views.index), name="sandbox-index"),
    path("faults/", by_hand_page(views.faults), name="sandbox-faults"),
    path("deliveries/", by_hand_page(views.deliveries), name="sandbox-deliveries"),
    path("xurrent/", include("sandbox.xurrent.urls")),
    path("zenduty/", include("sandbox.zenduty.urls")),
]
