"""The alerts raised, read-only: what integration admins were mailed about, and when it cleared."""
from django.contrib import admin

from alerts.models import Alert


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("subject", "raised_at", "cleared_at")
    list_filter = (("cleared_at", admin.EmptyFieldListFilter),)
    search_fields = ("key", "subject")
    fields = readonly_fields = ("key", "subject", "detail", "raised_at", "cleared_at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
