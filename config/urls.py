"""URL configuration."""
from django.conf import settings
from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from config.health import healthz
from config.metrics import metrics

admin.site.site_header = "Zenduty ⇄ Xurrent integration portal"
admin.site.site_title = "Integration portal"
admin.site.index_title = "Connections, integrations and sync history"
admin.site.site_url = None  # the admin is the whole site: no "View site" link back to itself

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    # Browsers ask for it on every page; "no content" keeps the log free of 404s.
    path("favicon.ico", lambda request: HttpResponse(status=204)),
    path("admin/", admin.site.urls),
    path("webhooks/", include("syncengine.urls")),
    # The webhook endpoints' OpenAPI schema and its two viewers (staff only: SPECTACULAR_SETTINGS).
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/schema/swagger-ui/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/schema/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
]

if settings.SANDBOX_ENABLED:
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))
