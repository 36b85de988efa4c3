"""Who may open the webhook schema and its viewers (config/urls.py), before drf-spectacular's own check.

drf-spectacular lets staff only in (SPECTACULAR_SETTINGS' SERVE_PERMISSIONS). A visitor who is not
signed in is first sent to the admin's sign-in page (the viewers) or told to sign in (the schema, read
by tools), instead of the portal's 403 page, which speaks to a signed-in user who lacks a permission.
"""
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.http import JsonResponse
from django.urls import reverse


def sign_in_first(view):
    """``view`` for signed-in users; anyone else goes to the admin's sign-in page, then comes back."""
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        return view(request, *args, **kwargs)
    return wrapped


def sign_in_first_json(view):
    """``view`` for signed-in users; anyone else gets a 403 in JSON saying where to sign in."""
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            login = reverse("admin:login")
            return JsonResponse({"detail": f"Not signed in. The schema is for the portal's staff: sign in at "
                                           f"{login}, then open it again (or read it in {reverse('swagger-ui')})."},
                                status=403)
        return view(request, *args, **kwargs)
    return wrapped
