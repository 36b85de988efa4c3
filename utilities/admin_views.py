"""Shared answers of the admin's own views (no models, no app imported)."""
from __future__ import annotations

from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse


def post_only(model_admin, request, obj, button: str) -> TemplateResponse:
    """The answer to anything but a POST at the address of a button on an object's admin page
    ("Retry provisioning", "Unlink", ...): 405 with ``Allow: POST``, as a page in the admin's look
    saying that the action is done with the button, and linking back to the object's page.

    Nothing is done: opening such an address in a browser (a bookmark, a link pasted in a chat)
    must never change anything. The views check the object (404) and the permission (403) first,
    so this page is for someone who may press the button.
    """
    opts = model_admin.model._meta
    back_url = reverse(f"{model_admin.admin_site.name}:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    try:
        list_url = reverse(f"{model_admin.admin_site.name}:{opts.app_label}_{opts.model_name}_changelist")
    except NoReverseMatch:
        list_url = ""
    context = {**model_admin.admin_site.each_context(request), "opts": opts, "object": obj, "button": button,
               "back_url": back_url, "list_url": list_url}
    response = TemplateResponse(request, "admin/post_only.html", context, status=405)
    response["Allow"] = "POST"
    return response
