"""Admin for connections: forms that mirror Zenduty's configuration screens,
a coloured status column, and a "Test connection" action."""
from __future__ import annotations

import copy

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db import IntegrityError
from django.http import Http404
from django.contrib.admin.options import csrf_protect_m
from django.utils.html import format_html
from django.utils.translation import ngettext

from connections import changes, services
from connections.fields import EncryptedTextField
from connections.forms import XurrentTenantForm, ZendutyAccountForm
from connections.models import ConnectionStatus, XurrentTenant, ZendutyAccount


SECRET_SET = "Set (stored encrypted, never shown)"
SECRET_NOT_SET = "Not set"


def secret_field_names(model) -> tuple[str, ...]:
    """The model's secrets: its fields declared as ``EncryptedTextField``."""
    return tuple(f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField))


class MaskedSecretsMixin:
    """No page of this admin shows a stored secret, to any user.

    Editors get the form's write-only input (connections.forms.SecretField).
    Everywhere a field is only displayed — every field of a view-only user's
    change page, a read-only field, a list column — Django would print the
    decrypted value, so each secret field (found from the model's
    ``EncryptedTextField`` declarations) is replaced there by
    ``<name>_state``, which says only "Set" or "Not set".
    """

    def __init__(self, model, admin_site):
        super().__init__(model, admin_site)
        self.secret_fields = secret_field_names(model)
        for name in self.secret_fields:
            setattr(self, f"{name}_state", self._state_display(model._meta.get_field(name)))

    @staticmethod
    def _state_display(field):
        @admin.display(description=field.verbose_name[:1].upper() + field.verbose_name[1:])
        def state(obj):
            return SECRET_SET if getattr(obj, field.attname, "") else SECRET_NOT_SET
        return state

    def _masked(self, names):
        # Fieldsets may put several fields on one line: ("a", ("b", "c")).
        return type(names)(self._masked(name) if isinstance(name, (list, tuple)) else
                           f"{name}_state" if name in self.secret_fields else name for name in names)

    def _shows_forms(self, request, obj) -> bool:
        return obj is None and self.has_add_permission(request) or \
            obj is not None and self.has_change_permission(request, obj)

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if self._shows_forms(request, obj):
            return fieldsets
        return [(title, {**options, "fields": self._masked(options["fields"])}) for title, options in fieldsets]

    def get_readonly_fields(self, request, obj=None):
        return self._masked(super().get_readonly_fields(request, obj))

    def get_list_display(self, request):
        return self._masked(super().get_list_display(request))


class ConfigHistoryMixin:
    """Who changed what: the admin's log of a change also records each field's old and new value.

    ``history_excluded_fields``: what the portal maintains itself (status,
    provisioning state), not a person's configuration. Secrets are recorded
    as "changed" only (connections.changes). The history page renders the
    differences; Django's view checks the view permission, so auditors read it.
    """

    history_excluded_fields: tuple[str, ...] = ()
    object_history_template = "admin/config_history.html"

    def save_model(self, request, obj, form, change):
        before = changes.stored(obj) if change else None
        super().save_model(request, obj, form, change)
        obj._config_differences = changes.differences(before, obj, excluded=self.history_excluded_fields)

    def construct_change_message(self, request, form, formsets, add=False):
        message = super().construct_change_message(request, form, formsets, add)
        found = getattr(form.instance, "_config_differences", None)
        return [*message, {"differences": found}] if found else message

    def log_done(self, request, before, note: str):
        """Log a change made by a button or an action: ``note`` says which, the differences what it changed."""
        after = changes.stored(before)
        if after is not None:
            self.log_change(request, after, changes.message(
                changes.differences(before, after, excluded=self.history_excluded_fields), note=note))


def object_or_404(model_admin: admin.ModelAdmin, request, object_id: str):
    """The object an admin address names, for the admin's own extra views.

    ``ModelAdmin.get_object()`` treats a malformed id ("abc") as "does not
    exist", where a bare primary-key lookup raises and answers 500.
    """
    obj = model_admin.get_object(request, unquote(object_id))
    if obj is None:
        raise Http404(f"No such {model_admin.model._meta.verbose_name}.")
    return obj


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


class DeletesOwnedRowsMixin:
    """Deleting an object also deletes the rows the portal keeps about it, as the models say.

    Django refuses a delete when a row that goes with it (``on_delete=CASCADE``)
    has an admin that does not let this user delete it, and says the user lacks
    the permission. The sync engine's history admins (linked pairs, backfills)
    never let anyone delete a row on its own, so an integration, tenant or
    Zenduty account that ever had a pair could not be deleted by anyone. Rows
    whose admin declares ``deleted_with_parent`` go with their parent instead:
    whoever may delete the parent may delete them with it, and the confirmation
    page lists them. The parent's own delete permission is checked as before,
    and a protected row (``on_delete=PROTECT``) still stops the delete.
    """

    def get_deleted_objects(self, objs, request):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        owned = {str(model._meta.verbose_name) for model, model_admin in self.admin_site._registry.items()
                 if getattr(model_admin, "deleted_with_parent", False)}
        return deleted, counts, {name for name in perms_needed if str(name) not in owned}, protected


class KeepsStoredObjectMixin:
    """The page's title, heading and breadcrumb keep naming the stored object when a save is refused.

    A ModelForm's validation writes the submitted values onto its instance (``_post_clean``), and the
    admin names the page after that same object: a tenant refused in the wrong region was headed with
    the region it was refused in. The form gets its own copy of the object instead; a valid save
    returns (and stores) that copy, so nothing else changes.
    """

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)

        def __init__(self, *args, instance=None, **kw):
            form.__init__(self, *args, instance=copy.copy(instance) if instance is not None else None, **kw)
        return type(form.__name__, (form,), {"__init__": __init__, "__module__": form.__module__})


class ConnectionAdmin(KeepsStoredObjectMixin, MaskedSecretsMixin, ConfigHistoryMixin, ChecksOverHttpMixin,
                      DeletesOwnedRowsMixin, admin.ModelAdmin):
    """Shared admin behaviour of both connection kinds."""

    # The live check's result, not a person's configuration.
    history_excluded_fields = ("status", "last_error", "last_checked_at", "portal_person_id", "portal_person_name")

    list_filter = ("status",)
    readonly_fields = ("status", "last_checked_at", "last_error")
    actions = ["test_connections"]
    save_on_top = False

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj):
        fg, bg = ConnectionStatus(obj.status).colours
        return format_html('<span style="color:{};background:{};padding:2px 8px;border-radius:10px">{}</span>',
                           fg, bg, obj.get_status_display())

    @admin.display(description="Last error")
    def short_error(self, obj):
        return (obj.last_error[:120] + "…") if len(obj.last_error) > 120 else obj.last_error

    # A live call that also writes the connection's status: for those who may change it.
    @admin.action(description="Test connection", permissions=["change"])
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
        ("Connection status", {"fields": ("status", "last_checked_at", "last_error", "portal_acts_as")}),
    )

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), "portal_acts_as")

    @admin.display(description="The portal acts as")
    def portal_acts_as(self, obj):
        """The Xurrent person behind the OAuth application (GET /me): its changes are the portal's own."""
        if not obj.portal_person_id:
            return "Not known yet (read when the connection is checked)."
        return format_html("{} <span class='quiet'>(person {}) — changes by this person are recognised as the "
                           "portal's own; use a dedicated person for the OAuth application.</span>",
                           obj.portal_person_name or "?", obj.portal_person_id)


@admin.register(ZendutyAccount)
class ZendutyAccountAdmin(ConnectionAdmin):
    form = ZendutyAccountForm
    list_display = ("name", "base_url", "status_badge", "last_checked_at", "short_error")
    search_fields = ("name",)
    fieldsets = (
        ("Zenduty account", {
            "fields": ("name", "api_token", "base_url"),
            "description": "Saving checks the token live by listing the account's teams. A Zenduty account "
                           "already connected is refused.",
        }),
        ("Connection status", {"fields": ("status", "last_checked_at", "last_error", "account_unique_id")}),
    )

    def get_readonly_fields(self, request, obj=None):
        return (*super().get_readonly_fields(request, obj), "account_unique_id")

    @csrf_protect_m
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except IntegrityError:
            # Two submits of one Zenduty account at once: both passed the form's check before either
            # was stored, and the constraint refused the second. Its form, checked again, now finds
            # the connection the first stored and says so. (No transaction is open: the view saves
            # in autocommit, ChecksOverHttpMixin.)
            if request.method != "POST":
                raise
            return super().changeform_view(request, object_id, form_url, extra_context)
