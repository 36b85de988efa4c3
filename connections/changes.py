"""Who changed what: the field differences of a configuration change, for the admin's log.

The admin already writes a ``LogEntry`` (who, when, which object, which
fields) for every add, change and delete. For connections and integrations
its JSON ``change_message`` also carries ``{"differences": [...]}``: per
field, the value before and after, as text. A secret (an
``EncryptedTextField``) is recorded only as ``{"field": …, "secret": true}``
("changed"): neither its value nor its ciphertext ever reaches the log.
Fields the portal itself maintains (connection status, provisioning state)
are left out: they are not a person's change.

Django's own rendering of a ``change_message`` ignores keys it does not
know, so the standard history page still reads "Changed Name."; the
portal's pages render the differences with :func:`differences_of`.
"""
from __future__ import annotations

import json

from django.db import models
from django.utils.text import Truncator

from connections.fields import EncryptedTextField

MAX_VALUE_CHARS = 300
EMPTY = "—"


def audited_fields(model, excluded=()) -> list[models.Field]:
    """The fields of ``model`` a person configures: concrete, editable, not the key, not in ``excluded``."""
    return [f for f in model._meta.concrete_fields
            if f.editable and not f.primary_key and f.name not in excluded]


def stored(obj) -> models.Model | None:
    """The row of ``obj`` as the database holds it now (None when it is new)."""
    if obj.pk is None:
        return None
    return type(obj)._base_manager.filter(pk=obj.pk).first()


def _label(field: models.Field) -> str:
    name = str(field.verbose_name)
    return name[:1].upper() + name[1:]


def _display(obj: models.Model, field: models.Field) -> str:
    value = getattr(obj, field.attname)
    if value is None or value == "" or value == [] or value == {}:
        return EMPTY
    if field.is_relation:
        related = getattr(obj, field.name, None)
        text = str(related) if related is not None else f"#{value}"
    elif field.choices:
        text = str(dict(field.flatchoices).get(value, value))
    elif isinstance(field, models.BooleanField):
        text = "yes" if value else "no"
    elif isinstance(field, models.JSONField):
        text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    else:
        text = str(value)
    return Truncator(text).chars(MAX_VALUE_CHARS)


def differences(before: models.Model | None, after: models.Model, *, excluded=()) -> list[dict]:
    """What changed between two states of one row, field by field, secrets as "changed" only.

    ``before`` is None for a new row: every field set is listed (a secret as set).
    Each item is ``{"field": label, "old": text, "new": text}`` or ``{"field": label, "secret": True}``.
    """
    found = []
    for field in audited_fields(type(after), excluded):
        new = getattr(after, field.attname)
        old = getattr(before, field.attname) if before is not None else None
        if before is not None and old == new or before is None and new in (None, "", [], {}):
            continue
        if isinstance(field, EncryptedTextField):
            # Compared decrypted, in memory only; the log says no more than "changed".
            found.append({"field": _label(field), "secret": True})
        else:
            found.append({"field": _label(field), "old": _display(before, field) if before is not None else EMPTY,
                          "new": _display(after, field)})
    return found


def message(found: list[dict], *, note: str = "") -> list[dict]:
    """A ``LogEntry.change_message`` for a change made outside the change form (a button, an action)."""
    parts: list[dict] = []
    if found:
        parts.append({"changed": {"fields": [d["field"] for d in found]}})
        parts.append({"differences": found})
    if note:
        parts.append({"note": note})
    return parts


def differences_of(change_message: str) -> dict:
    """``{"differences": [...], "note": str}`` read back from a ``LogEntry.change_message`` (empty when none)."""
    try:
        parts = json.loads(change_message) if change_message.startswith("[") else []
    except ValueError:
        parts = []
    found, notes = [], []
    for part in parts if isinstance(parts, list) else []:
        if isinstance(part, dict):
            found += [d for d in part.get("differences", []) if isinstance(d, dict)]
            notes += [str(part["note"])] if part.get("note") else []
    return {"differences": found, "note": " ".join(notes)}
