"""The portal's own 404 answer: JSON under ``/webhooks/``, the admin's styled page elsewhere."""
from django.http import JsonResponse
from django.views import defaults

# Where config/urls.py includes the webhook endpoints.
WEBHOOKS_PREFIX = "/webhooks/"


def page_not_found(request, exception):
    """An address nothing answers. Xurrent and Zenduty get JSON like the endpoints' own answers
    (an unknown integration is ``{"status": "unknown", …}``); people get ``templates/404.html``."""
    if request.path_info.startswith(WEBHOOKS_PREFIX):
        return JsonResponse({"status": "unknown", "reason": "No webhook endpoint has this address."}, status=404)
    return defaults.page_not_found(request, exception)
