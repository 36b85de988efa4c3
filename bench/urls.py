"""The portal's URLs plus ``/bench/ping/``: a view that touches no database (``bench.intake``'s reference)."""
from django.http import HttpResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def ping(request):
    """Answer at once, reading the body as the intake does: the cost of the server and the framework alone."""
    request.body  # noqa: B018 - read like a webhook's body
    return HttpResponse(b'{"status": "ok"}', content_type="application/json")


urlpatterns = [path("bench/ping/", ping), path("", include("config.urls"))]
