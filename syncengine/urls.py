"""Webhook URLs, included at ``webhooks/`` (config/urls.py).

The addresses are what provisioning gives Xurrent and Zenduty
(``integrations.provisioning.xurrent_webhook_url`` / ``zenduty_webhook_url``).
"""
from functools import wraps

from django.http import JsonResponse
from django.urls import path

from syncengine import views
from syncengine.models import Source

app_name = "syncengine"


def deliveries_only(view):
    """Answer anything but a delivery (a POST; OPTIONS stays DRF's) with a 405 in JSON that says what
    the address is for: someone who opens a webhook address in a browser reads why it shows nothing,
    not DRF's bare "Method not allowed". The view's attributes (DRF's ``cls``, ``csrf_exempt``) are
    kept, so CSRF and the OpenAPI schema see the view itself."""
    sender = Source(view.cls.source).label

    @wraps(view)
    def endpoint(request, *args, **kwargs):
        if request.method in ("POST", "OPTIONS"):
            return view(request, *args, **kwargs)
        return JsonResponse({"status": "method_not_allowed",
                             "reason": f"This address receives {sender}'s webhook deliveries: POST requests that "
                                       f"{sender} signs. Opened in a browser ({request.method}) it has nothing "
                                       f"to show; the portal's pages are under /admin/."},
                            status=405, headers={"Allow": "POST, OPTIONS"})
    return endpoint


urlpatterns = [
    # One address per tenant (integrations.TenantWebhooks); the per-integration one below is kept
    # so that webhooks provisioned before still deliver until they are moved.
    path("xurrent/tenant/<uuid:public_id>/", deliveries_only(views.XurrentTenantWebhookView.as_view()),
         name="xurrent-tenant-webhook"),
    path("xurrent/<uuid:public_id>/", deliveries_only(views.XurrentWebhookView.as_view()), name="xurrent-webhook"),
    path("zenduty/<uuid:public_id>/", deliveries_only(views.ZendutyWebhookView.as_view()), name="zenduty-webhook"),
]
