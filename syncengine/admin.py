"""Read-only sync history in the admin: inbound events, outbound calls, linked pairs.

Nothing here edits history. The one action, "Replay", queues an event again
through ``syncengine.jobs.replay_event``. The integration's change page gets
read-only inlines of its latest events and calls from here
(``OutgoingIntegrationAdmin.history_inlines``).
"""
from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import jwt
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator
from django_q import admin as q_admin
from django_q.models import Failure, Success

from connections.admin import object_or_404
from integrations.admin import OutgoingIntegrationAdmin
from integrations.models import OutgoingIntegration
from connections.errors import ApiError
from integrations.services import describe_api_error
from syncengine import advice, backfill, by_hand, jobs, pairs
from syncengine.history import describe_event
from syncengine.history_filters import (CallTenantFilter, DateRangeFilter, DirectionFilter, ErrorKindFilter,
                                        EventTypeFilter, HistoryListMixin, TenantFilter, titled)
from syncengine.flows import common as flow_common
from syncengine.models import (REPLAYABLE, Backfill, EventStatus, InboundEvent, LinkedPair, OutboundCall,
                               PairState, Source, StatusClass)
from syncengine.forms import LinkPairForm
from syncengine.sanitize import for_display
from utilities.admin_views import post_only
from utilities.changelists import UncountedChangeList

INLINE_ROWS = 10


def badge(label: str, colour: str):
    return format_html('<span style="background:{};color:#fff;padding:1px 7px;border-radius:9px;'
                       'white-space:nowrap;font-size:11px">{}</span>', colour, label)


def pretty_json(value) -> str:
    """Indented JSON; a lone surrogate (from a raw body or an older row) stays the escape the sender wrote."""
    return for_display(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str))


def compact_time(value):
    """``2026-11-22 19:24:05`` in the current time zone, on one line (history lists are wide)."""
    if value is None:
        return "—"
    return format_html('<span style="white-space:nowrap">{}</span>',
                       timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S"))


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def short_path(url: str) -> str:
    """The path of a call, for a list: the host is the service's (a column of
    its own), and Zenduty's UUIDs shrink to their first 8 characters."""
    return Truncator(_UUID.sub(lambda m: m.group(0)[:8] + "…", urlsplit(url).path or url)).chars(70)


@admin.display(description="URL", ordering="url")
def call_url(obj: OutboundCall):
    """The short path, with the full URL on hover."""
    return format_html('<span title="{}">{}</span>', obj.url, short_path(obj.url))


def pre(text: str):
    return format_html('<pre style="white-space:pre-wrap;max-height:32em;overflow:auto;margin:0">{}</pre>', text)


class ReadOnlyAdminMixin:
    """History is written by the engine only (our own history models are the audit trail).

    No row is deleted on its own; rows that go with what they belong to (``on_delete=CASCADE``:
    an integration's pairs and backfills) are deleted with it by whoever may delete that
    (``connections.admin.DeletesOwnedRowsMixin``), and listed on its confirmation page.
    """

    deleted_with_parent = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(InboundEvent)
class InboundEventAdmin(HistoryListMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    # What happened first (status, reason), then where it came from: the list fits a laptop screen.
    list_display = ("received", "status_badge", "short_reason", "about", "source", "attempts", "integration")
    list_display_links = ("received", "about")
    # Cheap at a million rows: no DISTINCT scans for choices, no date hierarchy (syncengine.history_filters).
    list_filter = (("source", DirectionFilter), ("status", titled("outcome")), TenantFilter, "integration",
                   EventTypeFilter, "signature_ok", ("received_at", DateRangeFilter))
    list_select_related = ("integration", "tenant")
    search_fields = ("=delivery_id", "object_id", "event_type", "reason", "last_error")
    export_name = "inbound-events"
    list_deferred = ("body", "headers")  # the list shows neither (payload stays: "about" reads it)
    show_full_result_count = False
    list_per_page = 50
    actions = ["replay_events"]
    fieldsets = (
        (None, {"fields": ("source", "tenant", "integration", "pair", "event_type", "object_id", "about", "status_badge",
                           "reason", "error", "what_to_do")}),
        ("Processing", {"fields": ("attempts", "duplicates", "received_at", "claimed_at", "processed_at",
                                   "next_attempt_at")}),
        ("Delivery", {"fields": ("delivery_id", "signature_ok", "body_size", "message", "token", "headers_pretty",
                                 "body_pretty")}),
    )

    def get_readonly_fields(self, request, obj=None):
        return [f for _, options in self.fieldsets for f in options["fields"]]

    def id_match(self, number):
        # A Xurrent event names its request; also those of a request that never got a pair.
        return Q(object_id=number)

    def get_inlines(self, request, obj):
        return [EventCallsInline] if obj else []

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: InboundEvent):
        shown = badge(obj.get_status_display(), EventStatus(obj.status).colour)
        if obj.status == EventStatus.RETRY_SCHEDULED and obj.next_attempt_at:
            # When it comes back is what a waiting event's row is read for; the reason is cut short here.
            return format_html('{}<br><small style="white-space:nowrap">next at {}</small>', shown,
                               timezone.localtime(obj.next_attempt_at).strftime("%H:%M:%S"))
        return shown

    @admin.display(description="what to do")
    def what_to_do(self, obj: InboundEvent):
        return advice.for_event(obj)

    @admin.display(description="last error")
    def error(self, obj: InboundEvent):
        """The last attempt's error; once a later attempt succeeded, said to be from before it."""
        if obj.last_error and obj.status in (EventStatus.PROCESSED, EventStatus.IGNORED) and obj.processed_at:
            return format_html('{}<br><span class="quiet">From an earlier attempt, before the success at {}: '
                               'nothing to do.</span>', obj.last_error,
                               timezone.localtime(obj.processed_at).strftime("%Y-%m-%d %H:%M:%S"))
        return obj.last_error or "-"

    @admin.display(description="received at", ordering="received_at")
    def received(self, obj: InboundEvent):
        return compact_time(obj.received_at)

    @admin.display(description="about", ordering="event_type")
    def about(self, obj: InboundEvent):
        return for_display(describe_event(obj) or f"{obj.event_type or '—'} {obj.object_id}".strip())

    @admin.display(description="reason")
    def short_reason(self, obj: InboundEvent):
        return format_html('<span title="{}" style="display:inline-block;min-width:18em">{}</span>', obj.reason,
                           Truncator(obj.reason).chars(80))

    @admin.display(description="message (trusted)")
    def message(self, obj: InboundEvent):
        if obj.payload is None:
            return "—"
        return pre(pretty_json(obj.payload))

    @admin.display(description="token")
    def token(self, obj: InboundEvent):
        """A Xurrent JWT decoded for reading. It is not a secret; its signature was checked on receipt."""
        if obj.source != Source.XURRENT or not obj.body:
            return "—"
        try:
            value = json.loads(obj.body).get("jwt")
            header, claims = jwt.get_unverified_header(value), jwt.decode(value, options={"verify_signature": False})
        except Exception:  # noqa: BLE001 - anything unreadable is shown as such
            return "— (no readable JWT in the body)"
        note = "verified on receipt" if obj.signature_ok else "NOT verified: the delivery was rejected"
        return pre(f"# {note}\n# header\n{pretty_json(header)}\n# claims\n{pretty_json(claims)}")

    @admin.display(description="headers")
    def headers_pretty(self, obj: InboundEvent):
        return pre(pretty_json(obj.headers or {}))

    @admin.display(description="body (raw)")
    def body_pretty(self, obj: InboundEvent):
        if not obj.body:
            return "— (not stored)" if obj.body_size else "—"
        try:
            return pre(pretty_json(json.loads(obj.body)))
        except (ValueError, RecursionError):  # RecursionError: a rejected body nested too deeply
            return pre(obj.body)

    # -- replay -----------------------------------------------------------------------------
    def has_replay_permission(self, request):
        # The admin shows history read-only; replaying needs the model's change permission.
        return request.user.has_perm("syncengine.change_inboundevent")

    @admin.action(description="Replay selected events", permissions=["replay"])
    def replay_events(self, request, queryset):
        events = list(queryset.values_list("pk", "status"))
        refused = [pk for pk, status in events if status not in REPLAYABLE]
        if refused:
            self.message_user(request, f"Nothing replayed: {len(refused)} of the selected events cannot be replayed "
                                       f"(only failed, ignored and processed events can; rejected ones never).",
                              messages.ERROR)
            return
        queued = sum(jobs.replay_event(pk, by=request.user.get_username()) for pk, _ in events)
        self.message_user(request, f"{queued} event{'s' if queued != 1 else ''} queued again.", messages.SUCCESS)

    def replay_view(self, request, object_id):
        event = object_or_404(self, request, object_id)
        if not self.has_replay_permission(request):
            raise PermissionDenied
        if request.method != "POST":
            return post_only(self, request, event, "Replay")
        if jobs.replay_event(event.pk, by=request.user.get_username()):
            self.message_user(request, "The event is queued again.", messages.SUCCESS)
        else:
            self.message_user(request, f"A {event.get_status_display().lower()} event cannot be replayed.",
                              messages.ERROR)
        return HttpResponseRedirect(reverse("admin:syncengine_inboundevent_change", args=[event.pk]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        # get_object() turns a malformed id into "does not exist"; a bare filter would raise (a 500).
        event = self.get_object(request, unquote(object_id))
        extra_context = {**(extra_context or {}),
                         "can_replay": bool(event and event.status in REPLAYABLE
                                            and self.has_replay_permission(request))}
        return super().change_view(request, object_id, form_url, extra_context)

    # -- the old activity chart's address -----------------------------------------------------------------------
    def get_urls(self):
        urls = super().get_urls()
        own = [
            path("activity/", self.admin_site.admin_view(self.activity_view), name="syncengine_activity"),
            path("<path:object_id>/replay/", self.admin_site.admin_view(self.replay_view),
                 name="syncengine_inboundevent_replay"),
        ]
        return own + urls

    def activity_view(self, request):
        """The per-day activity chart of before, superseded by the sync dashboard (kept as a redirect)."""
        query = f"?integration={request.GET['integration']}" if request.GET.get("integration", "").isdigit() else ""
        return HttpResponseRedirect(reverse("sync_dashboard") + query)


@admin.register(OutboundCall)
class OutboundCallAdmin(HistoryListMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created", "status_badge", "error_kind", "service", "method", call_url, "duration_ms", "attempt",
                    "integration", "event_link")
    list_display_links = ("created",)
    list_filter = ("service", ("inbound_event__source", DirectionFilter), ("status_class", titled("outcome")),
                   ErrorKindFilter, CallTenantFilter, "integration", ("created_at", DateRangeFilter))
    list_select_related = ("integration", "inbound_event")
    search_fields = ("url", "error")
    export_name = "outbound-calls"
    show_full_result_count = False
    list_per_page = 100
    fields = ("created_at", "service", "method", "url", "status", "status_class", "duration_ms", "attempt", "error",
              "error_kind", "what_to_do", "rate_limit", "integration", "pair", "inbound_event")
    readonly_fields = fields

    @admin.display(description="what to do")
    def what_to_do(self, obj: OutboundCall):
        return advice.for_call(obj)

    def id_match(self, number):
        # The calls made for an event about that request (e.g. reading a request no pair has yet).
        return Q(inbound_event_id__in=InboundEvent.objects.filter(object_id=number).values("pk"))

    @admin.display(description="at", ordering="created_at")
    def created(self, obj: OutboundCall):
        return compact_time(obj.created_at)

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: OutboundCall):
        return badge(str(obj.status or "none"), StatusClass(obj.status_class).colour)

    @admin.display(description="event")
    def event_link(self, obj: OutboundCall):
        if not obj.inbound_event_id:
            return "—"
        url = reverse("admin:syncengine_inboundevent_change", args=[obj.inbound_event_id])
        return format_html('<a href="{}">#{}</a>', url, obj.inbound_event_id)


# -- inlines ---------------------------------------------------------------------------------
class _RecentInline(admin.TabularInline):
    """The latest rows of the parent integration only (a slice cannot be filtered again, hence the ids)."""

    extra = 0
    can_delete = False
    show_change_link = True
    order_field = ""
    classes = ["collapse"]  # folded: the page's form comes first; the panel links to the full lists

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        qs = super().get_queryset(request)
        match = getattr(request, "resolver_match", None)
        object_id = match.kwargs.get("object_id") if match else None
        if not object_id or not str(object_id).isdigit():
            return qs.none()
        fk = self.fk_name or "integration"
        ids = list(qs.filter(**{f"{fk}_id": int(object_id)}).order_by(f"-{self.order_field}", "-pk")
                   .values_list("pk", flat=True)[:INLINE_ROWS])
        return qs.filter(pk__in=ids).order_by(f"-{self.order_field}", "-pk")


class RecentInboundEventsInline(_RecentInline):
    model = InboundEvent
    fk_name = "integration"
    order_field = "received_at"
    verbose_name_plural = f"latest inbound events (up to {INLINE_ROWS})"
    fields = readonly_fields = ("received_at", "source", "event_type", "object_id", "status_badge", "attempts",
                                "reason")

    @admin.display(description="status")
    def status_badge(self, obj: InboundEvent):
        return badge(obj.get_status_display(), EventStatus(obj.status).colour)


class RecentOutboundCallsInline(_RecentInline):
    model = OutboundCall
    fk_name = "integration"
    order_field = "created_at"
    verbose_name_plural = f"latest outbound calls (up to {INLINE_ROWS})"
    fields = readonly_fields = ("created_at", "service", "method", call_url, "status", "duration_ms", "error_kind")


class EventCallsInline(admin.TabularInline):
    """The calls made while processing one event."""

    model = OutboundCall
    fk_name = "inbound_event"
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = "outbound calls made for this event"
    fields = readonly_fields = ("created_at", "service", "method", call_url, "status", "duration_ms", "attempt",
                                "error_kind", "error")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# The integration's page shows its latest events and calls (integrations.admin leaves the slot empty).
OutgoingIntegrationAdmin.history_inlines = (RecentInboundEventsInline, RecentOutboundCallsInline)


# -- linked pairs ----------------------------------------------------------------------------------
ZENDUTY_STATUS_NAMES = {1: "triggered", 2: "acknowledged", 3: "resolved"}
TIMELINE_ROWS = 200


@admin.register(LinkedPair)
class LinkedPairAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """A request ⇄ incident pair: both ids, links to the records, and its timeline of events and calls."""

    list_display = ("pair_label", "state_badge", "integration", "origin", "xurrent_link", "zenduty_link",
                    "statuses", "updated")
    list_display_links = ("pair_label",)
    list_filter = ("state", "origin", "integration")
    list_select_related = ("integration__tenant", "zenduty_account")
    search_fields = ("=xurrent_request_id", "=zenduty_incident_unique_id")
    search_help_text = "A Xurrent request ID, a Zenduty incident number (with or without #) or unique ID."
    date_hierarchy = "created_at"
    show_full_result_count = False
    list_per_page = 50

    def get_changelist(self, request, **kwargs):
        return UncountedChangeList
    fieldsets = (
        (None, {"fields": ("integration", "state_badge", "origin", "xurrent_link", "zenduty_link", "last_error")}),
        ("Last seen and last written by the portal", {"fields": (
            "xurrent_status", "xurrent_updated_at", "zenduty_status_name", "zenduty_seen_at", "written")}),
        ("Timeline", {"fields": ("timeline",)}),
        ("Record", {"fields": ("created_at", "updated_at", "closed_at", "last_checked_at", "lease_until",
                               "lease_owner")}),
    )

    def get_readonly_fields(self, request, obj=None):
        return [f for _, options in self.fieldsets for f in options["fields"]]

    # -- pairs by hand (syncengine.by_hand) -----------------------------------------------------------
    change_list_template = "admin/syncengine/linkedpair/change_list.html"
    change_form_template = "admin/syncengine/linkedpair/change_form.html"

    @staticmethod
    def may_link(request) -> bool:
        """Linking and unlinking are integration changes: for those who may change integrations."""
        return request.user.has_perm("integrations.change_outgoingintegration")

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [path("link/", wrap(self.link_view), name="syncengine_linkedpair_link"),
                path("<path:object_id>/unlink/", wrap(self.unlink_view), name="syncengine_linkedpair_unlink"),
                path("backfill/<int:integration_id>/", wrap(self.backfill_view), name="syncengine_linkedpair_backfill"),
                *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}), "may_link": self.may_link(request)})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        pair = self.get_object(request, unquote(object_id))
        may_unlink = bool(pair and pair.state != PairState.UNLINKED and self.may_link(request))
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "may_unlink": may_unlink})

    def link_view(self, request):
        """Link an existing request and incident (GET: the form; POST: read both records, then link)."""
        if not (self.has_view_permission(request) and self.may_link(request)):
            raise PermissionDenied
        form = LinkPairForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                pair = by_hand.link(form.cleaned_data["integration"], request_id=form.cleaned_data["request_id"],
                                    incident_number=form.cleaned_data["incident_number"],
                                    by=request.user.get_username())
            except by_hand.Refused as refused:
                form.add_error(None, str(refused))
            else:
                messages.success(request, f"{pair} linked; changes on either side are synced from now on.")
                return HttpResponseRedirect(reverse("admin:syncengine_linkedpair_change", args=[pair.pk]))
        context = {**self.admin_site.each_context(request), "title": "Link a request and an incident",
                   "opts": self.model._meta, "form": form}
        return TemplateResponse(request, "admin/syncengine/linkedpair/link.html", context)

    def backfill_view(self, request, integration_id: int):
        """The backfill of one integration: GET previews it (reads both APIs, changes nothing), POST starts it."""
        if not (self.has_view_permission(request) and self.may_link(request)):
            raise PermissionDenied
        integration = OutgoingIntegration.objects.select_related("tenant", "zenduty_account").filter(
            pk=integration_id, enabled=True).first()
        if integration is None:
            raise Http404("No such enabled integration.")
        items, error = [], ""
        try:
            items = backfill.plan(integration)
        except ApiError as exc:
            error = describe_api_error(exc, "read the open records for the preview")
        actionable = [i for i in items if i.action != backfill.NOTHING]
        if request.method == "POST" and not error and actionable:
            try:
                started = backfill.start(integration, items, by=request.user.get_username())
            except backfill.AlreadyRunning as running:
                messages.warning(request, f"A backfill of this integration, started by "
                                          f"{running.backfill.requested_by}, is not finished yet; nothing else was "
                                          f"started. Its page shows the progress.")
                return HttpResponseRedirect(reverse("admin:syncengine_backfill_change", args=[running.backfill.pk]))
            messages.success(request, f"Backfill started: {len(actionable)} records; its page shows the progress.")
            return HttpResponseRedirect(reverse("admin:syncengine_backfill_change", args=[started.pk]))
        context = {**self.admin_site.each_context(request), "title": f"Backfill {integration}",
                   "opts": self.model._meta, "integration": integration, "items": items, "actionable": actionable,
                   "error": error, "days": backfill.BACKFILL_DAYS, "max_items": backfill.MAX_ITEMS}
        return TemplateResponse(request, "admin/syncengine/linkedpair/backfill.html", context)

    def unlink_view(self, request, object_id):
        """Unlink a pair (POST only)."""
        pair = object_or_404(self, request, object_id)
        if not self.may_link(request):
            raise PermissionDenied
        if request.method != "POST":
            return post_only(self, request, pair, "Unlink")
        try:
            by_hand.unlink(pair, by=request.user.get_username())
        except by_hand.Refused as refused:
            messages.error(request, str(refused))
        else:
            messages.success(request, f"{pair} unlinked: neither record is synced any more; either may be linked "
                                      f"again.")
        return HttpResponseRedirect(reverse("admin:syncengine_linkedpair_change", args=[pair.pk]))

    def get_search_results(self, request, queryset, search_term):
        results, duplicates = super().get_search_results(request, queryset, search_term)
        number = search_term.strip().lstrip("#")
        if number.isdigit():  # "#1042" or "1042": an incident number (or a request ID, matched above)
            results |= queryset.filter(zenduty_incident_number=int(number))
        return results, duplicates

    @admin.display(description="pair", ordering="created_at")
    def pair_label(self, obj: LinkedPair):
        return str(obj)

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj: LinkedPair):
        return badge(obj.get_state_display(), PairState(obj.state).colour)

    @admin.display(description="Xurrent request")
    def xurrent_link(self, obj: LinkedPair):
        if not obj.xurrent_request_id:
            return "— (not created yet)"
        return format_html('<a href="{}" target="_blank" rel="noopener">#{}</a>',
                           flow_common.request_url(obj.integration, obj.xurrent_request_id), obj.xurrent_request_id)

    @admin.display(description="Zenduty incident")
    def zenduty_link(self, obj: LinkedPair):
        if not obj.zenduty_incident_unique_id:
            return "— (not created yet)"
        if obj.zenduty_incident_number is None:
            return obj.zenduty_incident_unique_id
        return format_html('<a href="{}" target="_blank" rel="noopener" title="{}">#{}</a>',
                           flow_common.incident_url(obj.integration, obj.zenduty_incident_number),
                           obj.zenduty_incident_unique_id, obj.zenduty_incident_number)

    @admin.display(description="status (Xurrent / Zenduty)")
    def statuses(self, obj: LinkedPair):
        return f"{obj.xurrent_status or '—'} / {self.zenduty_status_name(obj)}"

    @admin.display(description="Zenduty status")
    def zenduty_status_name(self, obj: LinkedPair):
        return ZENDUTY_STATUS_NAMES.get(obj.zenduty_status, "—")

    @admin.display(description="updated", ordering="updated_at")
    def updated(self, obj: LinkedPair):
        return compact_time(obj.updated_at)

    @admin.display(description="written by the portal")
    def written(self, obj: LinkedPair):
        lines = pairs.describe_written(obj)
        if not lines:
            return "Nothing yet."
        return format_html_join(mark_safe("<br>"), "{}: {}", lines)

    @admin.display(description=f"events, calls and notes (latest {TIMELINE_ROWS}, newest first)")
    def timeline(self, obj: LinkedPair):
        """The pair's inbound events, outbound calls and notes (what the reconciliation sweep repaired), by time."""
        events = [(e.received_at, "event", e) for e in
                  obj.inbound_events.order_by("-received_at", "-pk")[:TIMELINE_ROWS]]
        # The poller and the sweep read open pairs every few minutes; a read that went well and
        # belongs to no event says nothing new (what it found is a note or an event of its own),
        # and would push the pair's story off the page within hours. It is counted instead.
        routine = Q(inbound_event__isnull=True, method="GET", status_class=StatusClass.SUCCESS)
        calls = [(c.created_at, "call", c) for c in
                 obj.outbound_calls.exclude(routine).order_by("-created_at", "-pk")[:TIMELINE_ROWS]]
        reads = obj.outbound_calls.filter(routine).count()
        # The portal's own lines, e.g. what the reconciliation sweep repaired.
        notes = [(n.at, "note", n) for n in obj.notes.order_by("-at", "-pk")[:TIMELINE_ROWS]]
        rows = sorted(events + calls + notes, key=lambda row: (row[0], row[2].pk), reverse=True)[:TIMELINE_ROWS]
        if not rows:
            return "—"
        cells = []
        for at, kind, item in rows:
            if kind == "note":
                cells.append(format_html('<tr class="pair-note"><td>{}</td><td>noted: {}</td><td></td></tr>',
                                         compact_time(at), item.text))
                continue
            if kind == "event":
                url = reverse("admin:syncengine_inboundevent_change", args=[item.pk])
                what = format_html('received <a href="{}">{} {}</a>', url, Source(item.source).label, item.event_type)
                outcome = badge(item.get_status_display(), EventStatus(item.status).colour)
                detail = Truncator(item.reason).chars(160)
            else:
                url = reverse("admin:syncengine_outboundcall_change", args=[item.pk])
                what = format_html('called <a href="{}">{} {} {}</a>', url, item.service, item.method,
                                   short_path(item.url))
                outcome = badge(str(item.status or "none"), StatusClass(item.status_class).colour)
                detail = Truncator(item.error).chars(160)
            # The detail goes under what happened: three columns fit a laptop's read-only field.
            cells.append(format_html('<tr><td>{}</td><td style="overflow-wrap:anywhere">{}{}</td><td>{}</td></tr>',
                                     compact_time(at), what,
                                     format_html('<div class="quiet">{}</div>', detail) if detail else "",
                                     outcome))
        return format_html('{}<table class="pair-timeline" style="width:100%;table-layout:fixed">'
                           '<colgroup><col style="width:11em"><col><col style="width:8em"></colgroup>'
                           '<thead><tr><th>at</th><th>what</th><th>outcome</th></tr></thead>'
                           '<tbody>{}</tbody></table>',
                           format_html('<p class="quiet">Not shown: {} routine reads by the poller and the sweep '
                                       '(answered 2xx, no event of their own).</p>', reads) if reads else "",
                           format_html_join("", "{}", ((cell,) for cell in cells)))


@admin.register(Backfill)
class BackfillAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Backfills started by integration admins (from an integration's page): the plan and how far it got."""

    list_display = ("created_at", "integration", "requested_by", "status", "progress")
    list_filter = ("status", "integration")
    list_select_related = ("integration",)
    fields = ("integration", "requested_by", "created_at", "status", "progress", "finished_at", "last_error",
              "item_table")
    readonly_fields = fields

    @admin.display(description="progress")
    def progress(self, obj: Backfill):
        return f"{obj.position} of {len(obj.items)}"

    @admin.display(description="records")
    def item_table(self, obj: Backfill):
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                                ((item.get("label", ""), item.get("action", ""), item.get("result", "waiting"))
                                 for item in obj.items))
        return format_html('<table><thead><tr><th>record</th><th>action</th><th>result</th></tr></thead>'
                           '<tbody>{}</tbody></table>', rows)


# -- django-q2's task lists --------------------------------------------------------------------
# django-q2 offers "Resubmit selected tasks" to anyone who may view its task lists, with no
# permission declared: a view-only user could queue jobs again. Re-registered here with the
# action limited to those who may change the task rows (django-q2's admin is loaded first,
# INSTALLED_APPS lists django_q before syncengine).
@admin.action(description=q_admin.resubmit_task.short_description, permissions=["change"])
def resubmit_tasks(model_admin, request, queryset):
    return q_admin.resubmit_task(model_admin, request, queryset)


for _model, _base in ((Success, q_admin.TaskAdmin), (Failure, q_admin.FailAdmin)):
    admin.site.unregister(_model)
    admin.site.register(_model, type(_base.__name__, (_base,), {"actions": [resubmit_tasks]}))
