"""The portal's own 404 answer (JSON under ``/webhooks/``, the admin's styled page elsewhere) and CSRF refusal."""
from django.http import JsonResponse
from django.shortcuts import render
from django.views import defaults

# Where config/urls.py includes the webhook endpoints.
WEBHOOKS_PREFIX = "/webhooks/"


def page_not_found(request, exception):
    """An address nothing answers. Xurrent and Zenduty get JSON like the endpoints' own answers
    (an unknown integration is ``{"status": "unknown", …}``); people get ``templates/404.html``."""
    if request.path_info.startswith(WEBHOOKS_PREFIX):
        return JsonResponse({"status": "unknown", "reason": "No webhook endpoint has this address."}, status=404)
    return defaults.page_not_found(request, exception)


def csrf_failure(request, reason=""):
    """A form refused by the CSRF check (settings.CSRF_FAILURE_VIEW): ``templates/403_csrf.html`` in the
    admin's look, rendered with the request (the admin's header and user links), rather than Django's
    bare page. The reason is logged by Django (django.security.csrf), not shown."""
    return render(request, "403_csrf.html", status=403)
