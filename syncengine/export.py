"""CSV export of a (filtered) sync history list, streamed row by row.

Titles, reasons and URLs come from outside (a Xurrent subject, a Zenduty
title), and a spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or
``@`` as a formula: such cells get a leading ``'`` (:func:`neutralise`; also
tab and carriage return, which some spreadsheets strip before reading a
formula). Rows are read in chunks with ``values_list`` (no model per row, no
query per row), so a million rows stream in constant memory.
"""
from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator

from django.utils import timezone

from syncengine.models import EventStatus, InboundEvent, OutboundCall, Source

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CHUNK_ROWS = 2000

# (header, values_list path) per list; integration names are read as two columns and joined.
EVENT_COLUMNS = (
    ("id", "pk"), ("received at", "received_at"), ("direction", "source"), ("Xurrent tenant", "tenant__name"),
    ("Zenduty service", "integration__zenduty_service_name"),
    ("Xurrent service instance", "integration__service_instance_name"), ("event type", "event_type"),
    ("object", "object_id"), ("Xurrent request", "pair__xurrent_request_id"),
    ("Zenduty incident number", "pair__zenduty_incident_number"), ("outcome", "status"), ("reason", "reason"),
    ("last error", "last_error"), ("attempts", "attempts"), ("duplicates", "duplicates"),
    ("signature ok", "signature_ok"), ("processed at", "processed_at"),
)
CALL_COLUMNS = (
    ("id", "pk"), ("at", "created_at"), ("service", "service"), ("method", "method"), ("URL", "url"),
    ("HTTP status", "status"), ("outcome", "status_class"), ("error kind", "error_kind"), ("error", "error"),
    ("duration ms", "duration_ms"), ("attempt", "attempt"),
    ("Zenduty service", "integration__zenduty_service_name"),
    ("Xurrent service instance", "integration__service_instance_name"), ("event", "inbound_event_id"),
    ("Xurrent request", "pair__xurrent_request_id"), ("Zenduty incident number", "pair__zenduty_incident_number"),
)
DIRECTIONS = {Source.XURRENT: "Xurrent → Zenduty", Source.ZENDUTY: "Zenduty → Xurrent"}
OUTCOMES = dict(EventStatus.choices)


def neutralise(value) -> str:
    """The cell's text; one a spreadsheet would read as a formula gets a leading ``'``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if hasattr(value, "tzinfo") and hasattr(value, "isoformat"):
        value = timezone.localtime(value).isoformat(timespec="seconds")
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class _Lines:
    """A file-like object whose ``write`` hands the line back (csv.writer writes one row per call)."""

    def write(self, line: str) -> str:
        return line


def stream(header: Iterable[str], rows: Iterable[Iterable]) -> Iterator[str]:
    """CSV lines: the header, then each row with every cell neutralised."""
    writer = csv.writer(_Lines())
    yield writer.writerow(list(header))
    for row in rows:
        yield writer.writerow([neutralise(cell) for cell in row])


def _rows(queryset, columns, shape) -> Iterator[tuple]:
    paths = [path for _, path in columns]
    for values in queryset.values_list(*paths).iterator(chunk_size=CHUNK_ROWS):
        yield shape(dict(zip(paths, values)))


def event_lines(queryset) -> Iterator[str]:
    """The CSV of inbound events (``queryset``: the list's, filtered and ordered)."""
    def shape(row):
        row["source"] = DIRECTIONS.get(row["source"], row["source"])
        row["status"] = OUTCOMES.get(row["status"], row["status"])
        return tuple(row.values())
    return stream((header for header, _ in EVENT_COLUMNS), _rows(queryset, EVENT_COLUMNS, shape))


def call_lines(queryset) -> Iterator[str]:
    """The CSV of outbound calls (``queryset``: the list's, filtered and ordered)."""
    return stream((header for header, _ in CALL_COLUMNS), _rows(queryset, CALL_COLUMNS, lambda row: tuple(
        row.values())))


LINES = {InboundEvent: event_lines, OutboundCall: call_lines}
