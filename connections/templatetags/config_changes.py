"""``{% config_change entry %}``: a LogEntry's message with the field differences it recorded (connections.changes)."""
from __future__ import annotations

from django import template
from django.utils.html import format_html, format_html_join

from connections.changes import differences_of

register = template.Library()

SECRET_CHANGED = "changed (the value is never recorded)"
SECRET_SET = "set (the value is never recorded)"


@register.simple_tag
def config_change(entry):
    """What the entry says, then a table of field, before and after; a secret only as "changed"."""
    recorded = differences_of(entry.change_message or "")
    summary = "" if entry.is_change() and recorded["differences"] else entry.get_change_message()
    secret_words = SECRET_SET if entry.is_addition() else SECRET_CHANGED
    rows = format_html_join("", "{}", ((
        format_html('<tr><td>{}</td><td colspan="2"><em>{}</em></td></tr>', d.get("field", "?"), secret_words)
        if d.get("secret") else
        format_html('<tr><td>{}</td><td>{}</td><td>{}</td></tr>', d.get("field", "?"), d.get("old", ""),
                    d.get("new", "")),) for d in recorded["differences"]))
    table = format_html('<table class="config-differences" style="margin:2px 0">'
                        '<thead><tr><th>field</th><th>before</th><th>after</th></tr></thead>'
                        '<tbody>{}</tbody></table>', rows) if recorded["differences"] else ""
    note = format_html('<div class="quiet">{}</div>', recorded["note"]) if recorded["note"] else ""
    if summary and recorded["note"] and not recorded["differences"] and entry.is_change():
        summary = ""  # "No fields changed." says nothing next to the note of a button
    return format_html("{}{}{}", summary, table, note)
