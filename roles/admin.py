"""Configuration changes: every change made in the admin, newest first, readable by auditors.

One page across all objects (each object's own history page shows the same
entries for that object). Nobody edits or deletes the log here.

Also the users' admin, as Django's, but offering no password reset to whoever may only view users.
"""
from __future__ import annotations

import copy

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import ReadOnlyPasswordHashWidget
from django.contrib.admin.models import ADDITION, CHANGE, DELETION
from django.urls import NoReverseMatch
from django.utils.html import format_html

from connections.templatetags.config_changes import config_change
from roles.models import ConfigChange
from utilities.changelists import UncountedChangeList

ACTION_NAMES = {ADDITION: "added", CHANGE: "changed", DELETION: "deleted"}


@admin.register(ConfigChange)
class ConfigChangeAdmin(admin.ModelAdmin):
    list_display = ("action_time", "user", "action", "object_link", "what_changed")
    list_filter = ("action_flag", ("content_type", admin.RelatedOnlyFieldListFilter),
                   ("user", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("user", "content_type")
    search_fields = ("object_repr", "user__username")
    search_help_text = "The name of an object (e.g. a tenant or an integration) or a username."
    show_full_result_count = False
    list_per_page = 50
    fields = ("action_time", "user", "action", "object_link", "what_changed")
    readonly_fields = fields

    def get_changelist(self, request, **kwargs):
        return UncountedChangeList

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="action", ordering="action_flag")
    def action(self, obj: ConfigChange):
        return ACTION_NAMES.get(obj.action_flag, "?")

    @admin.display(description="object")
    def object_link(self, obj: ConfigChange):
        label = obj.content_type.name if obj.content_type_id else ""
        try:
            url = obj.get_admin_url() if obj.action_flag != DELETION else ""
        except NoReverseMatch:
            url = ""
        if url:
            return format_html('{}: <a href="{}">{}</a>', label, url, obj.object_repr)
        return format_html("{}: {}", label, obj.object_repr)

    @admin.display(description="what changed")
    def what_changed(self, obj: ConfigChange):
        return config_change(obj)


class PasswordSummaryWidget(ReadOnlyPasswordHashWidget):
    """How a password is stored (algorithm, iterations…), without the "Reset password" button."""

    template_name = "roles/password_summary.html"


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class PortalUserAdmin(UserAdmin):
    """Django's users admin. A viewer without the change permission (an auditor) sees the password's
    summary but no "Reset password" button: the password page would refuse them (403)."""

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if obj is None or self.has_change_permission(request, obj) or "password" not in form.base_fields:
            return form
        password = copy.deepcopy(form.base_fields["password"])
        password.widget = PasswordSummaryWidget()
        view_only = type(f"ViewOnly{form.__name__}", (form,), {"__module__": __name__})
        # After the class is made: the form's metaclass sets base_fields from the declared fields.
        view_only.base_fields = {**form.base_fields, "password": password}
        return view_only
