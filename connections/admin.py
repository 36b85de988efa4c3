"""Admin for connections: forms that mirror Zenduty's configuration screens,
a coloured status column, and a "Test connection" action."""
from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.options import csrf_protect_m
from django.utils.html import format_html
from django.utils.translation import ngettext

from connections import services
from connections.forms import XurrentTenantForm, ZendutyAccountForm
from connections.models import ConnectionStatus, XurrentTenant, ZendutyAccount

STATUS_COLOURS = {
    ConnectionStatus.ACTIVE: ("#17693a", "#e3f6ea"),
    ConnectionStatus.FAILED: ("#9b1c1c", "#fde8e8"),
    ConnectionStatus.UNTESTED: ("#5b6475", "#eef1f7"),
}


class ChecksOverHttpMixin:
    """For admins whose forms call external APIs while validating or saving.

    Django runs the add/change view inside ``transaction.atomic()``. Here that
    transaction would stay open for as long as the remote service takes to
    answer: on SQLite (``IMMEDIATE`` mode) it holds the database's write lock,
    so webhook intake, the worker and the simulated Xurrent storing its OAuth
    token all wait on it ("database is locked"); on PostgreSQL it holds row
    locks. Each save below commits on its own instead.
    """

    @csrf_protect_m
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return self._changeform_view(request, object_id, form_url, extra_context)


class ConnectionAdmin(ChecksOverHttpMixin, admin.ModelAdmin):
    """Shared admin behaviour of both connection kinds."""

    list_filter = ("status",)
    readonly_fields = ("status", "last_checked_at", "last_error")
    actions = ["test_connections"]
    save_on_top = False

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        fg, bg = STATUS_COLOURS.get(obj.status, STATUS_COLOURS[ConnectionStatus.UNTESTED])
        return format_html('<span style="color:{};background:{};padding:2px 8px;border-radius:10px">{}</span>',
                           fg, bg, obj.get_status_display())

    @admin.display(description="Last error")
    def short_error(self, obj):
        return (obj.last_error[:120] + "…") if len(obj.last_error) > 120 else obj.last_error

    @admin.action(description="Test connection")
    def test_connections(self, request, queryset):
        failed = 0
        for connection in queryset:
            error = services.test_connection(connection)
            if error:
                failed += 1
                self.message_user(request, f"{connection}: {error}", messages.ERROR)
        ok = queryset.count() - failed
        if ok:
            self.message_user(request, ngettext("%d connection works.", "%d connections work.", ok) % ok,
                              messages.SUCCESS)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        messages.success(request, f"Connection to {obj} checked: it works.")


@admin.register(XurrentTenant)
class XurrentTenantAdmin(ConnectionAdmin):
    form = XurrentTenantForm
    list_display = ("name", "account_id", "region", "environment", "status_badge", "last_checked_at", "short_error")
    search_fields = ("name", "account_id")
    fieldsets = (
        ("Configure the connection", {
            "fields": ("name", "account_id", "client_id", "client_secret", "region", "environment"),
            "description": "In Xurrent: Settings → OAuth Applications → create an application with the "
                           "Client Credentials Grant and these scopes: Account – Read; Organization – Read; "
                           "Person – Read; Request – Create, Read, Update; Service Instance – Read; Team – Read; "
                           "Webhook and Webhook Policy – Create, Read, Update, Delete. The account ID is under "
                           "Settings → Account Overview. Saving checks the connection live.",
        }),
        ("Connection status", {"fields": ("status", "last_checked_at", "last_error")}),
    )


@admin.register(ZendutyAccount)
class ZendutyAccountAdmin(ConnectionAdmin):
    form = ZendutyAccountForm
    list_display = ("name", "base_url", "status_badge", "last_checked_at", "short_error")
    search_fields = ("name",)
    fieldsets = (
        ("Zenduty account", {
            "fields": ("name", "api_token", "base_url"),
            "description": "Saving checks the token live by listing the account's teams.",
        }),
        ("Connection status", {"fields": ("status", "last_checked_at", "last_error")}),
    )
