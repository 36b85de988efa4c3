"""Charts drawn on the server as inline SVG: no JavaScript, no chart library, nothing from a CDN.

Each function returns safe markup (every text escaped) that scales to its
container's width (``viewBox``), so a chart never makes a page scroll sideways.
Bars and points carry a ``<title>``, which browsers show on hover.
"""
from __future__ import annotations

from datetime import datetime

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 960, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 8, 10, 26  # room for the axis labels
TICKS = 6
# An axis label's widest average character at the dashboard's 11 px (.axis), in viewBox units: enough
# to keep a label's estimated extent inside the chart.
CHAR_WIDTH = 6.5


def _scale_max(value: float) -> float:
    """A round upper bound at or above ``value`` (1, 2, 5 × 10ⁿ), so the axis labels are short."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step >= value:
                return m * step
        step *= 10


def _time_label(start: datetime, bucket_seconds: int, span_seconds: int = 0) -> str:
    """A tick's label: the hour within a day's chart; the day, and the hour past midnight, over several days."""
    local = timezone.localtime(start)
    if bucket_seconds >= 86400 or not local.hour:
        return local.strftime("%d %b")
    return local.strftime("%d %b %H:%M") if span_seconds > 86400 else local.strftime("%H:%M")


def _frame(top: float, unit: str, starts: list[datetime], bucket_seconds: int, plot_width: float, body) -> SafeString:
    plot_height = HEIGHT - TOP - BOTTOM
    grid = format_html_join("", '<line x1="{}" x2="{}" y1="{}" y2="{}" class="grid"/>'
                                '<text x="{}" y="{}" text-anchor="end" class="axis">{}</text>',
                            ((LEFT, WIDTH - RIGHT, TOP + plot_height * (1 - f), TOP + plot_height * (1 - f),
                              LEFT - 4, TOP + plot_height * (1 - f) + 4, _number(top * f) + unit)
                             for f in (0, 0.5, 1)))
    every = max(1, len(starts) // TICKS)
    slot = plot_width / max(len(starts), 1)
    ticks = format_html_join("", '<text x="{}" y="{}" text-anchor="{}" class="axis">{}</text>',
                             (_tick(LEFT + slot * (i + 0.5), _time_label(s, bucket_seconds,
                                                                         len(starts) * bucket_seconds))
                              for i, s in enumerate(starts) if i % every == 0))
    return format_html('<svg class="sync-svg" viewBox="0 0 {} {}" width="100%" role="img" '
                       'preserveAspectRatio="xMinYMin meet">{}{}{}</svg>', WIDTH, HEIGHT, grid, ticks, body)


def _tick(x: float, label: str) -> tuple:
    """A time tick centred under its bar, unless its label would pass the chart's right edge (the last
    bar of a week's chart: "01 Dec 06:00"): then it ends at the edge."""
    if x + len(label) * CHAR_WIDTH / 2 > WIDTH:
        return WIDTH - 1, HEIGHT - 8, "end", label
    return round(x, 1), HEIGHT - 8, "middle", label


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def stacked_bars(buckets: list[dict], series: list[tuple[str, str, str]], bucket_seconds: int) -> SafeString:
    """One bar per bucket, stacked by ``series`` (key, label, colour) from each bucket's ``counts``."""
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = _scale_max(max((sum(b["counts"].values()) for b in buckets), default=0))
    slot = plot_width / max(len(buckets), 1)
    bar = max(slot * 0.8, 0.5)
    rects = []
    for i, bucket in enumerate(buckets):
        y = TOP + plot_height
        when = timezone.localtime(bucket["start"]).strftime("%Y-%m-%d %H:%M")
        for key, label, colour in series:
            n = bucket["counts"].get(key, 0)
            if not n:
                continue
            h = plot_height * n / top
            y -= h
            rects.append(format_html('<rect x="{}" y="{}" width="{}" height="{}" fill="{}" data-status="{}">'
                                     '<title>{}: {} {}</title></rect>',
                                     round(LEFT + slot * i + (slot - bar) / 2, 2), round(y, 2), round(bar, 2),
                                     round(h, 2), colour, key, when, n, label.lower()))
    return _frame(top, "", [b["start"] for b in buckets], bucket_seconds, plot_width,
                  mark_safe("".join(rects)))  # noqa: S308 - built with format_html above


def lag_lines(buckets: list[dict], bucket_seconds: int) -> SafeString:
    """The average and the longest lag per bucket (seconds), as two lines with a dot per bucket."""
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = _scale_max(max((b["lag_max"] or 0 for b in buckets), default=0))
    slot = plot_width / max(len(buckets), 1)
    parts = []
    for key, colour, label in (("lag_max", "#fd7e14", "longest"), ("lag_avg", "#0d6efd", "average")):
        points = [(round(LEFT + slot * (i + 0.5), 2), round(TOP + plot_height * (1 - b[key] / top), 2),
                   timezone.localtime(b["start"]).strftime("%Y-%m-%d %H:%M"), b[key])
                  for i, b in enumerate(buckets) if b[key] is not None]
        if len(points) > 1:
            parts.append(format_html('<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>', colour,
                                     " ".join(f"{x},{y}" for x, y, _, _ in points)))
        parts.extend(format_html('<circle cx="{}" cy="{}" r="2.5" fill="{}" data-series="{}"><title>{}: {} lag '
                                 '{} s</title></circle>', x, y, colour, key, when, label, f"{v:.1f}")
                     for x, y, when, v in points)
    return _frame(top, " s", [b["start"] for b in buckets], bucket_seconds, plot_width,
                  mark_safe("".join(parts)))  # noqa: S308 - built with format_html above
