"""Configuration changes: every change made in the admin, newest first, readable by auditors.

One page across all objects (each object's own history page shows the same
entries for that object). Nobody edits or deletes the log here.
"""
from __future__ import annotations

from django.contrib import admin
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
