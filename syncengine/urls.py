"""Webhook URLs, included at ``webhooks/`` (config/urls.py).

The addresses are what provisioning gives Xurrent and Zenduty
(``integrations.provisioning.xurrent_webhook_url`` / ``zenduty_webhook_url``).
"""
from django.urls import path

from syncengine import views

app_name = "syncengine"


urlpatterns = [
    # One address per tenant (integrations.TenantWebhooks); the per-integration one below is kept
    # so that webhooks provisioned before still deliver until they are moved.
    path("xurrent/tenant/<uuid:public_id>/", views.XurrentTenantWebhookView.as_view(),
         name="xurrent-tenant-webhook"),
    path("xurrent/<uuid:public_id>/", views.XurrentWebhookView.as_view(), name="xurrent-webhook"),
    path("zenduty/<uuid:public_id>/", views.ZendutyWebhookView.as_view(), name="zenduty-webhook"),
]
