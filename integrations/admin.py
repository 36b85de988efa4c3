"""Admin for outgoing integrations, in the order of Zenduty's screens:
Teams → Service → Integrations → Add Outgoing Integration → Xurrent.

Adding takes two steps: (1) the Zenduty service and the Xurrent tenant,
(2) the service instance, direction, notes and impacts, which need the
team's priorities and the tenant's instances. Saving provisions both sides
(integrations.provisioning) once the row is committed; the change page shows
what was provisioned, the manual Zenduty step and the actions.

Unlike Django's default, the add/change view is not one transaction: the
form lists and checks options over HTTP and the save is followed by
provisioning, and neither may happen inside a transaction (see
integrations.provisioning).
"""
from __future__ import annotations

import logging
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected
from django.contrib.admin.options import csrf_protect_m
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import JSONField, OuterRef, Subquery
from django.http import HttpResponseRedirect, JsonResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import ngettext

from connections.admin import (ChecksOverHttpMixin, ConfigHistoryMixin, DeletesOwnedRowsMixin, MaskedSecretsMixin,
                               XurrentTenantAdmin, object_or_404)
from connections.models import XurrentTenant
from connections.xurrent.webhooks import EVENT_TYPES as XURRENT_EVENTS
from integrations import drift, provisioning, services
from integrations.forms import (ChooseServiceForm, OutgoingIntegrationForm, ViewOnlyIntegrationForm,
                                failed_connection_warning)
from integrations.models import (REQUEST_CATEGORIES, OutgoingIntegration, ProvisioningStatus, TeamPriorities,
                                 TenantWebhooks)
from utilities.admin_views import post_only

STEP1_KEYS = ("zenduty_account", "zenduty_team_id", "zenduty_service_id", "tenant")
TEMPLATES = "admin/integrations/outgoingintegration"
logger = logging.getLogger("integrations.admin")


def status_badge(integration: OutgoingIntegration) -> str:
    fg, bg = ProvisioningStatus(integration.provisioning_status).colours
    return format_html('<span class="provisioning-badge" style="color:{};background:{};padding:2px 8px;'
                       'border-radius:10px;white-space:nowrap">{}</span>',
                       fg, bg, integration.get_provisioning_status_display())


def report(request, integration: OutgoingIntegration | None) -> None:
    """Tell the admin how provisioning ended, in one message."""
    if integration is None:
        return
    status = integration.provisioning_status
    name = str(integration)
    if status == ProvisioningStatus.PROVISIONED:
        messages.success(request, f"{name}: provisioned; Xurrent and Zenduty are set up.")
    elif status == ProvisioningStatus.VERIFYING:
        messages.info(request, f"{name}: Xurrent webhooks created; waiting for Xurrent to verify them "
                               f"(this page shows each one's state).")
    elif status == ProvisioningStatus.ACTION_REQUIRED:
        messages.warning(request, f"{name}: one step is left in Zenduty — set the webhook address shown under "
                                  f"“Zenduty outgoing webhook” and paste here the signing key Zenduty displays.")
    elif status == ProvisioningStatus.FAILED:
        messages.error(request, f"{name}: provisioning failed. {integration.provisioning_error}")
    elif status == ProvisioningStatus.DISABLED:
        # Xurrent webhooks are the tenant's (one set for all its integrations): they go with its last
        # enabled integration only. The integration's own webhook is Zenduty's, kept but switched off.
        if provisioning.other_enabled(integration):
            xurrent = (f"the Xurrent webhooks of {integration.tenant} stay, for its other enabled "
                       f"integrations")
        else:
            xurrent = (f"the Xurrent webhooks of {integration.tenant} are removed, as no enabled integration "
                       f"of the tenant needs them")
        messages.info(request, f"{name}: disabled; its Zenduty outgoing webhook is switched off and {xurrent}.")


@admin.register(OutgoingIntegration)
class OutgoingIntegrationAdmin(MaskedSecretsMixin, ConfigHistoryMixin, ChecksOverHttpMixin, DeletesOwnedRowsMixin,
                               admin.ModelAdmin):
    form = OutgoingIntegrationForm
    # What provisioning and the sync maintain (connections.changes): not a person's configuration.
    history_excluded_fields = ("provisioning_status", "provisioning_error", "provisioned_at", "xurrent_policy_id",
                               "xurrent_policy_alg", "xurrent_policy_audience", "xurrent_policy_public_key",
                               "xurrent_webhooks", "zenduty_integration_id", "zenduty_step_confirmed_at",
                               "xurrent_early_verifications", "sync_error", "sync_error_at")
    change_form_template = f"{TEMPLATES}/change_form.html"
    delete_confirmation_template = f"{TEMPLATES}/delete_confirmation.html"
    list_display = ("__str__", "provisioning", "direction", "enabled", "zenduty_team_name", "tenant")
    list_filter = ("provisioning_status", "direction", "enabled", "sync_notes", "tenant", "zenduty_account")
    search_fields = ("zenduty_service_name", "zenduty_team_name", "service_instance_name", "service_instance_id",
                     "zenduty_service_id")
    list_select_related = ("tenant", "zenduty_account")
    radio_fields = {"direction": admin.VERTICAL}
    save_on_top = True  # the provisioning panel and the history push the bottom buttons far down
    actions = ["retry_provisioning", "enable_integrations", "disable_integrations"]
    ordering = ("zenduty_team_name", "zenduty_service_name")

    # -- list -------------------------------------------------------------------------------
    @admin.display(description="Status", ordering="provisioning_status")
    def provisioning(self, obj):
        """The provisioning badge, and under it a custom mapping that no longer fits the team's
        priorities (in this column, so that the list gets no wider)."""
        check = self._mapping_check(obj)
        if not check.drifted:
            return status_badge(obj)
        return format_html('{}<br><span class="mapping-out-of-date" style="color:#8a5300;white-space:nowrap" '
                           'title="{}">⚠ Mapping out of date ({})</span>', status_badge(obj), " ".join(check.flags()),
                           check.drift_summary())

    # -- form layout ----------------------------------------------------------------------------
    def get_fieldsets(self, request, obj=None):
        # Changers edit the mapping in its widget, with whether it still fits the team's priorities
        # under it; view-only users get it as a table of priority names and impacts (integrations.drift).
        can_change = obj is None or self.has_change_permission(request, obj)
        if obj is None:
            mapping_fields = ("priority_mapping",)
        elif can_change:
            mapping_fields = ("priority_mapping", "mapping_check")
        else:
            mapping_fields = ("mapping_table",)
        mapping = ("Priorities and impact", {
            "fields": ("default_impact", "use_custom_mapping", *mapping_fields),
            "description": "Xurrent's impact of requests created from incidents (and the Zenduty priority of "
                           "incidents created from requests, when the custom mapping names one).",
        })
        if obj is None:
            return (
                (None, {"fields": (*STEP1_KEYS, "confirm_failed_connections")}),
                ("Service Instance", {"fields": ("service_instance_id",)}),
                ("What to sync", {"fields": ("direction", "sync_notes", "sync_internal_xurrent_notes",
                                             "public_zenduty_notes", "categories")}),
                mapping,
            )
        # View only: the stored names rather than the raw id and JSON list.
        instance, categories = ("service_instance_id", "categories") if can_change else \
            ("service_instance_display", "categories_display")
        fieldsets = [
            ("Zenduty ⇄ Xurrent", {"fields": ("zenduty_service_display", "tenant", instance)}),
            ("What to sync", {"fields": ("enabled", "direction", "sync_notes", "sync_internal_xurrent_notes",
                                         "public_zenduty_notes", categories, "sync_status")}),
            mapping,
        ]
        if obj.needs_zenduty_webhook and can_change:
            # Open while the Zenduty step is pending: the panel's steps point here.
            fieldsets.append(("Zenduty outgoing webhook", {
                "fields": ("new_zenduty_signing_secret",),
                "classes": () if provisioning.zenduty_step_pending(obj) else ("collapse",)}))
        return fieldsets

    # The latest events received and calls made for this integration, read-only: the sync
    # engine's admin fills these in (syncengine.admin), this app does not import it.
    history_inlines: tuple = ()

    def get_inlines(self, request, obj):
        return list(self.history_inlines) if obj is not None else []

    def get_readonly_fields(self, request, obj=None):
        return ("zenduty_service_display", "tenant", "sync_status", "mapping_check", "mapping_table",
                "service_instance_display", "categories_display") if obj is not None else ()

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None and not self.has_change_permission(request, obj):
            # View only: every field is shown read-only, so nothing is listed live (no call to
            # Zenduty or Xurrent per page view).
            kwargs["form"] = ViewOnlyIntegrationForm
        return super().get_form(request, obj, change, **kwargs)

    def get_queryset(self, request):
        # The team's priorities as last read, for the list's mapping column (one query for the page).
        snapshot = TeamPriorities.objects.filter(zenduty_account=OuterRef("zenduty_account"),
                                                 team_id=OuterRef("zenduty_team_id"))
        return super().get_queryset(request).annotate(
            team_priorities=Subquery(snapshot.values("priorities")[:1], output_field=JSONField()),
            team_priorities_read_at=Subquery(snapshot.values("read_at")[:1]))

    def _mapping_check(self, obj) -> drift.MappingCheck:
        if hasattr(obj, "team_priorities_read_at"):
            snapshot = TeamPriorities(priorities=obj.team_priorities or [], read_at=obj.team_priorities_read_at) \
                if obj.team_priorities_read_at else None
            return drift.check(obj, snapshot)
        return drift.check_integration(obj)

    def _render_mapping(self, obj, *, show_table: bool, can_change: bool):
        return render_to_string(f"{TEMPLATES}/mapping_check.html", {
            "check": drift.check_integration(obj), "show_table": show_table, "can_change": can_change,
            "refresh_minutes": settings.ZENDUTY_PRIORITY_REFRESH_MINUTES})

    @admin.display(description="Service Instance")
    def service_instance_display(self, obj):
        return format_html("{} <span class='quiet'>(ID {})</span>", obj.service_instance_name or "—",
                           obj.service_instance_id)

    @admin.display(description="Request categories")
    def categories_display(self, obj):
        labels = dict(REQUEST_CATEGORIES)
        return ", ".join(labels.get(c, c) for c in obj.categories or []) or "None"

    @admin.display(description="Mapping check")
    def mapping_check(self, obj):
        """Under the mapping's form: whether it still fits the team's priorities as last read."""
        return self._render_mapping(obj, show_table=False, can_change=True)

    @admin.display(description="Priority → impact")
    def mapping_table(self, obj):
        """For view-only users: the mapping as a table of priority names and impacts, with its flags."""
        return self._render_mapping(obj, show_table=True, can_change=False)

    @admin.display(description="Sync")
    def sync_status(self, obj):
        """The last permanent sync failure (cleared by the next success); replay its event once fixed."""
        if not obj.sync_error:
            return "No sync error."
        return format_html('<strong style="color:#9b1c1c">{}</strong><br><span class="quiet">at {} UTC — fix the '
                           'cause, then replay the failed event under Sync → Inbound events.</span>',
                           obj.sync_error, f"{obj.sync_error_at:%Y-%m-%d %H:%M:%S}" if obj.sync_error_at else "?")

    @admin.display(description="Zenduty service")
    def zenduty_service_display(self, obj):
        return format_html("{} › {} <span class='quiet'>(Zenduty account {})</span>",
                           obj.zenduty_team_name or obj.zenduty_team_id,
                           obj.zenduty_service_name or obj.zenduty_service_id, obj.zenduty_account)

    # -- views ------------------------------------------------------------------------------
    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("service-instances/", wrap(self.service_instances_view),
                 name="integrations_outgoingintegration_service_instances"),
            path("<path:object_id>/provision/", wrap(self.provision_view),
                 name="integrations_outgoingintegration_provision"),
            path("<path:object_id>/enable/", wrap(self.enable_view),
                 name="integrations_outgoingintegration_enable"),
            path("<path:object_id>/disable/", wrap(self.disable_view),
                 name="integrations_outgoingintegration_disable"),
            path("<path:object_id>/zenduty-step-done/", wrap(self.zenduty_step_done_view),
                 name="integrations_outgoingintegration_zenduty_step_done"),
            path("<path:object_id>/panel/", wrap(self.panel_view), name="integrations_outgoingintegration_panel"),
            *super().get_urls(),
        ]

    def service_instances_view(self, request):
        """JSON for the search box: ``?tenant=<pk>&q=<text>`` → ``{"results": [{"id", "name"}], ...}``."""
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied
        tenant = XurrentTenant.objects.filter(pk=request.GET.get("tenant") or 0).first() \
            if (request.GET.get("tenant") or "").isdigit() else None
        if tenant is None:
            return JsonResponse({"results": [], "error": "Unknown Xurrent tenant."}, status=404)
        query = (request.GET.get("q") or "").strip()[:80]
        try:
            listing = services.xurrent_service_instances(tenant, query)
        except services.IntegrationError as exc:
            return JsonResponse({"results": [], "error": exc.message}, status=502)
        return JsonResponse({"results": [{"id": o.id, "name": o.name} for o in listing.options],
                             "complete": listing.complete, "error": ""})

    @csrf_protect_m
    def add_view(self, request, form_url="", extra_context=None):
        source = request.POST if request.method == "POST" else request.GET
        if "_choose_service" in request.POST or not all(source.get(k) for k in STEP1_KEYS):
            return self.choose_service_view(request)
        return super().add_view(request, form_url, extra_context)

    def choose_service_view(self, request):
        """Step 1: the Zenduty service (listed live, grouped by team) and the Xurrent tenant."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ChooseServiceForm(request.POST if "_choose_service" in request.POST else None)
        if form.is_bound and form.is_valid():
            url = reverse("admin:integrations_outgoingintegration_add")
            return HttpResponseRedirect(f"{url}?{urlencode(form.step2_query())}")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta, "form": form, "title": "Add Outgoing Integration: Zenduty service",
            "has_view_permission": self.has_view_permission(request),
            "failed_warnings": [failed_connection_warning(c) for c in form.known_failed],
            "subtitle": "Step 1 of 2",
        }
        return TemplateResponse(request, f"{TEMPLATES}/choose_service.html", context)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        form = context["adminform"].form
        context.update({
            "summary": form.summary(),
            "live_errors": form.live_errors,
            "failed_warnings": [failed_connection_warning(c) for c in (form.account, form.tenant)
                                if c is not None and c.status == "failed"] if add else [],
            "confirmed_failed": add and bool(form["confirm_failed_connections"].value()),
            "step1_url": reverse("admin:integrations_outgoingintegration_add"),
            "subtitle": "Step 2 of 2" if add else context.get("subtitle"),
        })
        if add:
            context["title"] = "Add Outgoing Integration"  # the words of Zenduty's screen
        if add:
            # "Save and add another" would start again at step 2 of the same service; step 1 is the way.
            context["show_save_and_add_another"] = False
        if obj is not None:
            context["panel"] = self.panel_context(request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def panel_context(self, request, obj: OutgoingIntegration) -> dict:
        """What the provisioning panel of the change page shows."""
        zenduty_pending = provisioning.zenduty_step_pending(obj)
        can_change = self.has_change_permission(request, obj)
        return {
            # Buttons that call out or write are for those who may change the integration.
            "can_change": can_change,
            "badge": status_badge(obj),
            "tenant_webhooks": tenant_webhooks_context(obj.tenant, can_change=False, on_integration=True),
            "zenduty_url": provisioning.zenduty_webhook_url(obj),
            "zenduty_pending": zenduty_pending,
            # The portal's own signing key is a secret: only for those who may change the
            # integration, and only while the Zenduty step it serves is still to be done. A key
            # pasted from Zenduty is never shown back: it is not the portal's, and Zenduty has it.
            "show_portal_key": zenduty_pending and can_change and not obj.zenduty_signing_key_pasted,
            "key_pasted": obj.zenduty_signing_key_pasted,
            "address_warning": provisioning.unreachable_address_warning(),
            "urls": {**{name: reverse(f"admin:integrations_outgoingintegration_{name}", args=[obj.pk])
                        for name in ("provision", "enable", "disable", "zenduty_step_done", "panel")},
                     "calls": f"{reverse('admin:syncengine_outboundcall_changelist')}?integration__id__exact={obj.pk}",
                     "events": f"{reverse('admin:syncengine_inboundevent_changelist')}?integration__id__exact={obj.pk}",
                     "pairs": f"{reverse('admin:syncengine_linkedpair_changelist')}?integration__id__exact={obj.pk}"},
            "refreshing": obj.provisioning_status == ProvisioningStatus.VERIFYING or
            (obj.enabled and obj.provisioning_status == ProvisioningStatus.ACTION_REQUIRED
             and not provisioning.all_webhooks_verified(provisioning.tenant_webhooks_of(obj))),
        }

    def response_add(self, request, obj, post_url_continue=None):
        # After adding, the change page: it shows what was provisioned and what is left.
        if "_addanother" not in request.POST and "_popup" not in request.POST:
            return HttpResponseRedirect(reverse("admin:integrations_outgoingintegration_change", args=[obj.pk]))
        return super().response_add(request, obj, post_url_continue)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and not provisioning.pending_changes(obj):
            return
        # After the commit: the other side must see the row (and may call back at once).
        transaction.on_commit(lambda: report(request, provisioning.provision(obj.pk)))

    # -- per-object buttons (POST) ---------------------------------------------------------
    def _object_for_change(self, request, object_id) -> OutgoingIntegration:
        obj = object_or_404(self, request, object_id)
        if not self.has_change_permission(request, obj):
            raise PermissionDenied
        return obj

    def _back(self, obj) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:integrations_outgoingintegration_change", args=[obj.pk]))

    def provision_view(self, request, object_id):
        """Retry provisioning; also asks Xurrent to resend webhook.verify for unverified webhooks."""
        return self._post(request, object_id, "Retry provisioning", lambda obj: report(
            request, provisioning.provision(obj.pk, resend_verification=True)), "Retried provisioning.")

    def enable_view(self, request, object_id):
        return self._post(request, object_id, "Enable",
                          lambda obj: report(request, provisioning.set_enabled(obj.pk, True)), "Enabled with the button.")

    def disable_view(self, request, object_id):
        return self._post(request, object_id, "Disable",
                          lambda obj: report(request, provisioning.set_enabled(obj.pk, False)),
                          "Disabled with the button.")

    def panel_view(self, request, object_id):
        """The provisioning panel alone (HTML), for the change page to refresh while Xurrent verifies."""
        obj = object_or_404(self, request, object_id)
        if not self.has_view_permission(request, obj):
            raise PermissionDenied
        return TemplateResponse(request, f"{TEMPLATES}/provisioning_panel.html",
                                {"original": obj, "panel": self.panel_context(request, obj)})

    def zenduty_step_done_view(self, request, object_id):
        def done(obj):
            messages.success(request, "Noted: Zenduty's outgoing webhook is configured.")
            report(request, provisioning.confirm_zenduty_step(obj.pk))
        return self._post(request, object_id, "I have done this in Zenduty", done,
                          "Confirmed that Zenduty's outgoing webhook is configured.")

    def _post(self, request, object_id, button: str, action, note: str):
        """A button of the change page: ``action(obj)`` on POST; any other method gets a page saying
        to use ``button`` (after the 404 and 403 checks, so it is for someone who may press it)."""
        obj = self._object_for_change(request, object_id)
        if request.method != "POST":
            return post_only(self, request, obj, button)
        action(obj)
        self.log_done(request, obj, note)  # who did it, and what it changed (connections.changes)
        return self._back(obj)

    # -- actions ---------------------------------------------------------------------------
    def _each(self, request, queryset, run, note: str) -> None:
        for obj in list(queryset):
            report(request, run(obj.pk))
            self.log_done(request, obj, note)

    @admin.action(description="Retry provisioning", permissions=["change"])
    def retry_provisioning(self, request, queryset):
        self._each(request, queryset, lambda pk: provisioning.provision(pk, resend_verification=True),
                   "Retried provisioning (action).")

    @admin.action(description="Enable", permissions=["change"])
    def enable_integrations(self, request, queryset):
        self._each(request, queryset, lambda pk: provisioning.set_enabled(pk, True), "Enabled (action).")

    @admin.action(description="Disable", permissions=["change"])
    def disable_integrations(self, request, queryset):
        self._each(request, queryset, lambda pk: provisioning.set_enabled(pk, False), "Disabled (action).")

    # -- deleting removes what was provisioned ------------------------------------------------
    @csrf_protect_m
    def delete_view(self, request, object_id, extra_context=None):
        if request.method == "POST" and request.POST.get("post"):
            obj = self.get_object(request, unquote(object_id))
            if obj is not None and self.has_delete_permission(request, obj) and self._deletable(request, [obj]):
                # Before Django's (atomic) delete: HTTP must stay outside transactions.
                try:
                    provisioning.deprovision(obj)
                except services.IntegrationError as exc:
                    # exc.message ends with what is still there (removed parts are gone for good).
                    if not request.POST.get("delete_anyway"):
                        messages.error(request, f"The integration was kept. {exc.message} Fix the cause and "
                                                f"delete again, or tick “Delete anyway” to remove it from the "
                                                f"portal only.")
                        return HttpResponseRedirect(request.get_full_path())
                    # The row goes, so the log keeps the trace of what was left (IDs only).
                    logger.warning("integration.deleted-anyway %s: %s", obj.public_id, exc.message)
                    messages.warning(request, f"Deleted from the portal only. {exc.message} Remove these by hand "
                                              f"in Xurrent and Zenduty.")
        obj = self.get_object(request, unquote(object_id))
        if obj is not None:
            extra_context = {**(extra_context or {}), "last_of_tenant": obj.enabled and provisioning.tenant_webhooks_of(
                obj) is not None and not provisioning.other_enabled(obj)}
        return super().delete_view(request, object_id, extra_context)

    def _deletable(self, request, objs) -> bool:
        """Whether Django's delete view (or action) will go on to delete ``objs``: nothing protected, no
        permission lacking. Otherwise nothing is removed in Xurrent or Zenduty, and Django says why."""
        _, _, perms_needed, protected = self.get_deleted_objects(objs, request)
        return not perms_needed and not protected

    def get_actions(self, request):
        actions = super().get_actions(request)
        if "delete_selected" in actions:
            _, name, description = actions["delete_selected"]
            actions["delete_selected"] = (OutgoingIntegrationAdmin.delete_selected_integrations, name, description)
        return actions

    def delete_selected_integrations(self, request, queryset):
        """Django's "Delete selected", with each integration's webhooks removed first once confirmed.

        Those whose removal fails are kept and left out before Django's action logs, deletes and
        counts: it logged and reported every selected row as deleted, even the ones kept."""
        if request.POST.get("post") and self.has_delete_permission(request) and self._deletable(request, queryset):
            failed = []
            for obj in queryset:
                try:
                    provisioning.deprovision(obj)
                except services.IntegrationError as exc:
                    failed.append(obj.pk)
                    messages.error(request, f"{obj} was not deleted: {exc.message}")
            if failed:
                messages.warning(request, ngettext(
                    "%d integration was kept; see above.", "%d integrations were kept; see above.",
                    len(failed)) % len(failed))
                queryset = queryset.exclude(pk__in=failed)
                if not queryset.exists():
                    return None  # back to the list, with the messages
        return delete_selected(self, request, queryset)


def tenant_webhooks_context(tenant, *, can_change: bool, on_integration: bool = False) -> dict:
    """What the section on the tenant's Xurrent webhooks shows (tenant page, and each integration's panel)."""
    hooks = TenantWebhooks.objects.filter(tenant=tenant).first()
    badge = ""
    if hooks is not None:
        fg, bg = ProvisioningStatus(hooks.provisioning_status).colours
        badge = format_html('<span style="color:{};background:{};padding:2px 8px;border-radius:10px">{}</span>',
                            fg, bg, hooks.get_provisioning_status_display())
    return {
        "hooks": hooks,
        "badge": badge,
        "webhooks": [{"event": event, **((hooks.xurrent_webhooks or {}).get(event) or {})}
                     for event in XURRENT_EVENTS] if hooks is not None else [],
        "xurrent_url": provisioning.xurrent_webhook_url(hooks) if hooks is not None else "",
        "tenant_url": reverse("admin:connections_xurrenttenant_change", args=[tenant.pk]),
        "retry_url": reverse("admin:connections_xurrenttenant_webhooks_provision", args=[tenant.pk]),
        "can_change": can_change,
        "on_integration": on_integration,
    }


class TenantWithWebhooksAdmin(XurrentTenantAdmin):
    """The tenant's page with the tenant's Xurrent webhooks (``TenantWebhooks``) below the form,
    and their “Retry provisioning”.

    The webhooks belong to this app: extending the connections app's admin here, rather than
    having it reach into ``integrations``, keeps the apps layered (connections knows nothing of
    integrations)."""

    # The tenant's Xurrent webhooks (integrations.TenantWebhooks), shown below the form.
    change_form_template = "admin/connections/xurrenttenant/change_form.html"

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [path("<path:object_id>/webhooks/provision/", wrap(self.webhooks_provision_view),
                     name="connections_xurrenttenant_webhooks_provision"), *super().get_urls()]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
                context["tenant_webhooks"] = tenant_webhooks_context(
                obj, can_change=self.has_change_permission(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def webhooks_provision_view(self, request, object_id):
        """“Retry provisioning” of the tenant's Xurrent webhooks (POST, for those who may change the tenant)."""
        tenant = object_or_404(self, request, object_id)
        if not self.has_change_permission(request, tenant):
            raise PermissionDenied
        if request.method != "POST":
            return post_only(self, request, tenant, "Retry provisioning")
        hooks = provisioning.retry_tenant_webhooks(tenant.pk)
        self.log_done(request, tenant, "Retried provisioning of the tenant's Xurrent webhooks.")
        if hooks is None:
            messages.warning(request, "The tenant has no Xurrent webhooks: they are created with its first enabled "
                                      "integration.")
        elif hooks.provisioning_error:
            messages.error(request, hooks.provisioning_error)
        else:
            messages.success(request, f"The tenant's Xurrent webhooks: {hooks.get_provisioning_status_display()}.")
        return HttpResponseRedirect(reverse("admin:connections_xurrenttenant_change", args=[tenant.pk]))


admin.site.unregister(XurrentTenant)
admin.site.register(XurrentTenant, TenantWithWebhooksAdmin)
