"""URL configuration."""
from django.conf import settings
from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from config.api_docs import sign_in_first, sign_in_first_json
from config.health import healthz
from config.metrics import metrics
from syncengine.dashboard_view import dashboard_view

admin.site.site_header = "Zenduty ⇄ Xurrent integration portal"
admin.site.site_title = "Integration portal"
admin.site.index_title = "Connections, integrations and sync history"
admin.site.site_url = None  # the admin is the whole site: no "View site" link back to itself
# The left navigation repeats the index and takes 276 px: without it the lists fit a 1,280 px laptop
# (tests/test_screens_fit.py); the breadcrumbs and the index lead everywhere.
admin.site.enable_nav_sidebar = False

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    # Browsers ask for it on every page; "no content" keeps the log free of 404s.
    path("favicon.ico", lambda request: HttpResponse(status=204)),
    # Before the admin's own URLs, which would take "dashboard/" for an app label.
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="sync_dashboard"),
    path("admin/", admin.site.urls),
    path("webhooks/", include("syncengine.urls")),  # config.errors.WEBHOOKS_PREFIX
    # The webhook endpoints' OpenAPI schema and its two viewers (staff only: SPECTACULAR_SETTINGS;
    # visitors not signed in are told to sign in first: config.api_docs).
    path("api/schema/", sign_in_first_json(SpectacularAPIView.as_view()), name="schema"),
    path("api/schema/swagger-ui/", sign_in_first(SpectacularSwaggerView.as_view(url_name="schema")),
         name="swagger-ui"),
    path("api/schema/redoc/", sign_in_first(SpectacularRedocView.as_view(url_name="schema")), name="redoc"),
]

# Unknown addresses: the admin's styled page, JSON under /webhooks/.
handler404 = "config.errors.page_not_found"

if settings.SANDBOX_ENABLED:
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))
