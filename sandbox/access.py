"""Who may use the simulators' by-hand pages.

The pages play "the other side" (raise requests, trigger incidents, arm
faults): any staff user may look at them, and only those who may change the
portal's integrations may act on them, the same people who set the sync up.
The simulated APIs, the OAuth endpoint and the verification callbacks are not
wrapped: they answer with their own authentication, as the real services do.
"""
from __future__ import annotations

from functools import wraps

from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# The pages' templates test the same permission (``perms.integrations.change_outgoingintegration``)
# to leave out the forms a look-only user would be refused.
ACT_PERMISSION = "integrations.change_outgoingintegration"


def may_act(user) -> bool:
    """Whether ``user`` may change things through the by-hand pages."""
    return user.has_perm(ACT_PERMISSION)


def by_hand_page(view):
    """Staff login to look; the integrations' change permission to act (anything but GET/HEAD)."""
    @wraps(view)
    def guarded(request, *args, **kwargs):
        if request.method not in SAFE_METHODS and not may_act(request.user):
            raise PermissionDenied("Only integration admins may act on the simulators.")
        return view(request, *args, **kwargs)
    return staff_member_required(guarded)
