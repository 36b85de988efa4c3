"""Search and filters of the sync history lists (inbound events, outbound calls).

Every filter's choices come from small tables or from constants, never from a
``SELECT DISTINCT`` over the history (a million rows), and every filter is a
condition on indexed columns, a sub-select of a small table or a join to one.
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.utils.functional import cached_property
from django.db.models import Q
from django.utils import timezone

from connections.errors import ERROR_KINDS
from connections.models import XurrentTenant
from syncengine.models import LinkedPair, Source
from utilities.changelists import UncountedChangeList

NO_TENANT = "none"
# At most this many rows a search by a record's number lists (a record's whole history, many times over).
SEARCH_CAP = 5000


def search_term_ids(term: str) -> str | None:
    """The id a search term names: "#1042" or "1042" → "1042" (a Zenduty incident number or a Xurrent
    request ID, both whole numbers); None for any other text."""
    number = term.strip().lstrip("#").strip()
    return number if number.isdigit() and len(number) <= 18 else None


def pairs_named(number: str):
    """The ids of the linked pairs whose Zenduty incident number or Xurrent request ID is ``number``."""
    match = Q(xurrent_request_id=number)
    if int(number) < 2 ** 31:  # an incident number is an integer column (PostgreSQL: 32 bits)
        match |= Q(zenduty_incident_number=int(number))
    return LinkedPair.objects.filter(match).values("pk")


class TenantFilter(admin.SimpleListFilter):
    """By Xurrent tenant: the tenant an event was delivered to or the tenant of its integration.
    "No tenant" lists what has neither (an event delivered to a tenant that matched no integration has
    its tenant: the integration filter's "-" lists every event that matched no integration)."""

    title = "Xurrent tenant"
    parameter_name = "tenant"
    # The row's own tenant field (calls have none) and the event whose tenant counts too (for calls).
    tenant_field: str | None = "tenant"
    event_path: str | None = None

    def lookups(self, request, model_admin):
        return [*XurrentTenant.objects.order_by("name").values_list("pk", "name"),
                (NO_TENANT, "No tenant")]

    def queryset(self, request, queryset):
        # A string from the query string, but the lookup's own pk (an int) when the admin counts each
        # choice for "Show counts" (SimpleListFilter.get_facet_counts sets the value to choice[0]).
        value = self.value()
        value = "" if value is None else str(value)
        if value == NO_TENANT:
            empty = Q(integration__isnull=True)
            if self.tenant_field:
                empty &= Q(**{f"{self.tenant_field}__isnull": True})
            if self.event_path:
                empty &= Q(**{f"{self.event_path}__tenant__isnull": True})
            return queryset.filter(empty)
        if not value.isdigit():
            return queryset
        # Through a join rather than "integration_id IN (…)": with two indexed columns in an OR, SQLite
        # merges both indexes and sorts every match before the page's LIMIT (0.2 s at 200,000 rows); a
        # condition on the joined table keeps it walking the time index and stopping at the page's end.
        match = Q(integration__tenant_id=int(value))
        if self.tenant_field:
            match |= Q(**{f"{self.tenant_field}_id": int(value)})
        if self.event_path:
            match |= Q(**{f"{self.event_path}__tenant_id": int(value)})
        return queryset.filter(match)


class CallTenantFilter(TenantFilter):
    """Calls have no tenant of their own: their integration's, or that of the event they were made for."""

    tenant_field = None
    event_path = "inbound_event"


def titled(title: str, base=admin.ChoicesFieldListFilter):
    """``base`` with another title (a field's verbose name is not always the word people look for)."""
    class Titled(base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.title = title
    return Titled


class DirectionFilter(admin.ChoicesFieldListFilter):
    """The direction of the sync by where its event came from: Xurrent → Zenduty or Zenduty → Xurrent.
    For calls, the direction of the event they were made for (calls outside an event have none)."""

    LABELS = {Source.XURRENT: "Xurrent → Zenduty", Source.ZENDUTY: "Zenduty → Xurrent"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = "direction"

    def choices(self, changelist):
        for choice in super().choices(changelist):
            yield {**choice, "display": _direction_label(choice["display"])}


def _direction_label(display) -> str:
    for source, label in DirectionFilter.LABELS.items():
        if str(display) == source.label:
            return label
    return display


class EventTypeFilter(admin.SimpleListFilter):
    """By event type: those the portal handles (a constant list, not a scan of the history), or any other."""

    title = "event type"
    parameter_name = "event_type"
    OTHER = "_other"

    @staticmethod
    def handled() -> list[str]:
        from syncengine.dispatch import HANDLERS

        return sorted({event_type for _, event_type in HANDLERS})

    def lookups(self, request, model_admin):
        return [*((event, event) for event in self.handled()), (self.OTHER, "any other (stored only)")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == self.OTHER:
            return queryset.exclude(event_type__in=self.handled())
        if value:
            return queryset.filter(event_type=value)
        return queryset


class ErrorKindFilter(admin.SimpleListFilter):
    """By the kind of error of a call (connections.errors), from the constant list of kinds."""

    title = "error kind"
    parameter_name = "error_kind"
    NONE = "_none"

    def lookups(self, request, model_admin):
        return [(self.NONE, "no error"), *((kind, kind.replace("_", " ")) for kind in ERROR_KINDS)]

    def queryset(self, request, queryset):
        value = self.value()
        if value == self.NONE:
            return queryset.filter(error_kind="")
        return queryset.filter(error_kind=value) if value else queryset


class DateRangeFilter(admin.FieldListFilter):
    """From one day to another (both included, in the portal's time zone), typed or picked from presets.

    Replaces the admin's date hierarchy, whose year and month links cost a scan of the whole history.
    A date that is not one is said so, in words, and ignored.
    """

    template = "admin/syncengine/date_range_filter.html"

    def __init__(self, field, request, params, model, model_admin, field_path):
        self.param_from, self.param_to = f"{field_path}__from", f"{field_path}__to"
        super().__init__(field, request, params, model, model_admin, field_path)
        self.title = "date"
        self.request = request
        self.hidden_params = [(name, value) for name, values in request.GET.lists() for value in values
                              if name not in (self.param_from, self.param_to, "p")]

    def expected_parameters(self):
        return [self.param_from, self.param_to]

    def _text(self, name) -> str:
        value = self.used_parameters.get(name) or ""
        return (value[-1] if isinstance(value, list) else value).strip()

    @property
    def value_from(self) -> str:
        return self._text(self.param_from)

    @property
    def value_to(self) -> str:
        return self._text(self.param_to)

    def _day(self, text: str, which: str) -> date | None:
        if not text:
            return None
        try:
            return date.fromisoformat(text)
        except ValueError:
            messages.warning(self.request, f"The “{which}” date “{text[:40]}” is not a date (use YYYY-MM-DD, e.g. "
                                           f"{timezone.localdate():%Y-%m-%d}); it was ignored.")
            return None

    def has_output(self):
        return True

    def queryset(self, request, queryset):
        start, end = self._day(self.value_from, "from"), self._day(self.value_to, "to")
        if start:
            queryset = queryset.filter(**{f"{self.field_path}__gte": _midnight(start)})
        if end:
            queryset = queryset.filter(**{f"{self.field_path}__lt": _midnight(end + timedelta(days=1))})
        return queryset

    def choices(self, changelist):
        today = timezone.localdate()
        presets = [("Any date", None), ("Today", today), ("Past 7 days", today - timedelta(days=6)),
                   ("Past 30 days", today - timedelta(days=29))]
        for label, since in presets:
            if since is None:
                query = changelist.get_query_string(remove=[self.param_from, self.param_to])
                selected = not (self.value_from or self.value_to)
            else:
                query = changelist.get_query_string({self.param_from: since.isoformat()}, remove=[self.param_to])
                selected = self.value_from == since.isoformat() and not self.value_to
            yield {"selected": selected, "query_string": query, "display": label}


def _midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


class AtLeast(int):
    """A count that was stopped at a cap: prints as "more than 5,000"."""

    def __str__(self) -> str:
        return f"more than {int(self) - 1:,}"


class CappedPaginator(Paginator):
    """Counts a filtered history list only up to ``CAP`` rows.

    A list page must not count a million matching rows to say how many there
    are: past the cap it says "more than 5,000" and offers the pages up to
    there (narrow the filters, or export, to see beyond).
    """

    CAP = 5_000

    @cached_property
    def count(self) -> int:
        counted = self.object_list[: self.CAP + 1].count()
        return AtLeast(counted) if counted > self.CAP else counted


class HistoryChangeList(UncountedChangeList):
    """The list's rows without the columns it never shows (``list_deferred``): raw bodies are KBs each."""

    def get_queryset(self, request, exclude_parameters=None):
        queryset = super().get_queryset(request, exclude_parameters)
        deferred = getattr(self.model_admin, "list_deferred", ())
        return queryset.defer(*deferred) if deferred else queryset


class HistoryListMixin:
    """For the history lists: search by Zenduty incident number or Xurrent request ID, and a CSV
    export of the list as filtered, searched and ordered (view permission is enough)."""

    export_name = "history"
    paginator = CappedPaginator
    list_deferred: tuple[str, ...] = ()

    def get_changelist(self, request, **kwargs):
        return HistoryChangeList
    search_help_text = ("A Zenduty incident number (#1042) or Xurrent request ID: what happened to it; "
                        "any other text searches ids, types, reasons and errors.")

    def id_match(self, number: str) -> Q:
        """The rows about the record ``number`` names (besides those of its linked pair)."""
        return Q()

    def get_search_results(self, request, queryset, search_term):
        number = search_term_ids(search_term)
        if number is None:
            return super().get_search_results(request, queryset, search_term)
        # Each way of naming the record is looked up on its own index, unordered, and the rows are then
        # fetched by primary key: as one OR, PostgreSQL walked the whole list in time order looking for a
        # few rows (3.5 s at a million rows, bench/dashboard.py).
        pair_ids = list(pairs_named(number).values_list("pk", flat=True)[:SEARCH_CAP])
        found = set(queryset.filter(pair_id__in=pair_ids).order_by().values_list("pk", flat=True)[:SEARCH_CAP])
        also = self.id_match(number)
        if also:
            found |= set(queryset.filter(also).order_by().values_list("pk", flat=True)[:SEARCH_CAP])
        return queryset.filter(pk__in=found), False

    def _export_url_name(self) -> str:
        return "%s_%s_export" % (self.model._meta.app_label, self.model._meta.model_name)

    def get_urls(self):
        from django.urls import path

        own = [path("export.csv", self.admin_site.admin_view(self.export_view), name=self._export_url_name())]
        return own + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        from django.urls import reverse

        query = request.GET.copy()
        query.pop("p", None)  # the whole filtered list, not the page
        url = reverse(f"admin:{self._export_url_name()}") + (f"?{query.urlencode()}" if query else "")
        return super().changelist_view(request, {**(extra_context or {}), "export_url": url})

    def export_view(self, request):
        """The filtered list as CSV, streamed (syncengine.export)."""
        from django.contrib.admin.options import IncorrectLookupParameters
        from django.core.exceptions import PermissionDenied
        from django.http import HttpResponseRedirect, StreamingHttpResponse
        from django.urls import reverse

        from syncengine import export

        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            changelist = self.get_changelist_instance(request)
        except IncorrectLookupParameters:
            messages.error(request, "The export's filters were not understood, so nothing was exported. "
                                    "Choose the filters again in the list, then export.")
            info = self.model._meta.app_label, self.model._meta.model_name
            return HttpResponseRedirect(reverse("admin:%s_%s_changelist" % info))
        stamp = timezone.localtime().strftime("%Y%m%d-%H%M%S")
        response = StreamingHttpResponse(export.LINES[self.model](changelist.queryset),
                                         content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{self.export_name}-{stamp}.csv"'
        return response
