"""Routes of the simulated Xurrent, under /sandbox/xurrent/ (see sandbox/urls.py).

Each Xurrent instance (region and environment) is a host of its own, named by
its domain: under ``<domain>/`` (e.g. ``au.xurrent.qa/``), ``oauth/token``
stands for https://oauth.<domain>/token, ``v1/...`` for
https://api.<domain>/v1/..., and ``<domain>/`` itself for the account host
https://<account>.<domain> (verification callbacks, canonical links). An
instance knows only the accounts that live in it (``Account.instance``).
Trailing slashes are tolerated on API paths. The by-hand UI (``ui/``) is the
simulator's own page, not a Xurrent host, and shows every instance.
"""
from django.urls import include, path, re_path, register_converter
from django.views.generic import RedirectView

from connections.xurrent.hosts import DOMAINS
from sandbox.access import by_hand_page
from sandbox.xurrent import api, ui

ID = r"(?P<record_id>[A-Za-z0-9_=+\-]+)"


class InstanceConverter:
    """A path segment naming a Xurrent instance by its domain; any other segment is no route (404)."""

    regex = "|".join(domain.replace(".", r"\.") for domain in DOMAINS)

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(InstanceConverter, "xurrent_instance")

# The hosts of one instance; every view gets its domain as ``instance``.
instance_patterns = [
    # OAuth host
    path("oauth/token", api.oauth_token, name="sandbox-xurrent-oauth-token"),
    # Account host
    path("webhooks/<int:webhook_id>/verify", api.verify_webhook, name="sandbox-xurrent-verify"),
    path("requests/<int:request_id>", api.canonical_request, name="sandbox-xurrent-canonical-request"),
    path("webhooks/<int:webhook_id>", api.canonical_webhook, name="sandbox-xurrent-canonical-webhook"),
    # REST API
    re_path(r"^v1/?$", api.Root.as_view()),
    re_path(r"^v1/rate_limit/?$", api.RateLimit.as_view()),
    re_path(r"^v1/account/?$", api.AccountView.as_view()),
    re_path(r"^v1/me/?$", api.Me.as_view()),
    re_path(r"^v1/service_instances(?:/(?P<predefined>active|inactive))?/?$", api.ServiceInstances.as_view()),
    re_path(rf"^v1/service_instances/{ID}/?$", api.ServiceInstanceDetail.as_view()),
    re_path(r"^v1/requests(?:/(?P<predefined>open|completed|requested_by_or_for_me|assigned_to_my_team|"
            r"assigned_to_me|waiting_for_me|problem_management_review|sla_accountability))?/?$",
            api.Requests.as_view()),
    re_path(rf"^v1/requests/{ID}/?$", api.RequestDetail.as_view()),
    re_path(rf"^v1/requests/{ID}/notes(?:/(?P<predefined>public|internal))?/?$", api.RequestNotes.as_view()),
    re_path(rf"^v1/requests/{ID}/notes/(?P<note_id>[A-Za-z0-9_=+\-]+)/?$", api.NoteDetail.as_view()),
    re_path(r"^v1/notes/(?P<note_id>[A-Za-z0-9_=+\-]+)/?$", api.NoteDetail.as_view()),
    re_path(r"^v1/webhooks(?:/(?P<predefined>enabled|disabled))?/?$", api.Webhooks.as_view()),
    re_path(rf"^v1/webhooks/{ID}/test/?$", api.WebhookTest.as_view()),
    re_path(rf"^v1/webhooks/{ID}/?$", api.WebhookDetail.as_view()),
    re_path(r"^v1/webhook_policies(?:/(?P<predefined>enabled|disabled))?/?$", api.WebhookPolicies.as_view()),
    re_path(rf"^v1/webhook_policies/{ID}/?$", api.WebhookPolicyDetail.as_view()),
    re_path(r"^v1/.*$", api.NotFound.as_view()),
    # The account host's root leads a person to the by-hand UI.
    path("", api.account_home),
]

urlpatterns = [
    path("<xurrent_instance:instance>/", include(instance_patterns)),
    path("", RedirectView.as_view(pattern_name="sandbox-xurrent-ui", permanent=False)),
    # By-hand UI
    # For the portal's staff only (sandbox/urls.py says why).
    path("ui/", by_hand_page(ui.index), name="sandbox-xurrent-ui"),
    path("ui/requests/<int:request_id>/", by_hand_page(ui.request_detail),
         name="sandbox-xurrent-ui-request"),
    path("ui/webhooks/<int:webhook_id>/", by_hand_page(ui.webhook_action),
         name="sandbox-xurrent-ui-webhook"),
]
