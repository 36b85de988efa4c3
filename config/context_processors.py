"""Template context shared by the portal's own admin templates."""
from django.conf import settings
from django.contrib import admin


def portal(request) -> dict:
    """Whether the portal talks to the sandbox instead of the real services (for the admin banner),
    and the admin's names and user links for pages Django renders outside the admin's views (the
    403 and 404 pages); the admin's own views set these themselves, and theirs win."""
    user = getattr(request, "user", None)
    return {
        "portal_sandbox_url": settings.SANDBOX_API_URL and f"{settings.SANDBOX_API_URL.rstrip('/')}/sandbox/",
        "site_header": admin.site.site_header,
        "site_title": admin.site.site_title,
        "has_permission": bool(user is not None and user.is_active and user.is_staff),
    }
