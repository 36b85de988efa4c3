"""Webhook URLs, included at ``webhooks/`` (config/urls.py).

The addresses are what provisioning gives Xurrent and Zenduty
(``integrations.provisioning.xurrent_webhook_url`` / ``zenduty_webhook_url``).
"""
from django.urls import path

from syncengine import views

app_name = "syncengine"

urlpatterns = [
    path("xurrent/<uuid:public_id>/", views.XurrentWebhookView.as_view(), name="xurrent-webhook"),
    path("zenduty/<uuid:public_id>/", views.ZendutyWebhookView.as_view(), name="zenduty-webhook"),
]
