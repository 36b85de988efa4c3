"""Template context shared by the portal's own admin templates."""
from django.conf import settings


def portal(request) -> dict:
    """Whether the portal talks to the sandbox instead of the real services (for the admin banner)."""
    return {"portal_sandbox_url": settings.SANDBOX_API_URL and f"{settings.SANDBOX_API_URL.rstrip('/')}/sandbox/"}
