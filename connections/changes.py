"""Who changed what: the field differences of a configuration change, for the admin's log.

The admin already writes a ``LogEntry`` (who, when, which object, which
fields) for every add, change and delete. For connections and integrations
its JSON ``change_message`` also carries ``{"differences": [...]}``: per
field, the value before and after, as text a person reads: a dict value (a
priority mapping) lists only the entries that changed, labelled as the model
says (``history_entries``: priority names, not their UUIDs), and a long value
is shortened around where before and after differ, never at a common length
that would cut the change away. A secret (an
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


def _text(obj: models.Model, field: models.Field) -> str:
    """The whole value of ``field`` on ``obj`` as text (not shortened)."""
    value = getattr(obj, field.attname)
    if value is None or value == "" or value == [] or value == {}:
        return EMPTY
    if field.is_relation:
        related = getattr(obj, field.name, None)
        return str(related) if related is not None else f"#{value}"
    if field.choices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(field, models.BooleanField):
        return "yes" if value else "no"
    if isinstance(field, models.JSONField):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def _entries(model, field: models.Field, value) -> dict[str, tuple[str, str]]:
    """A dict value as ``{key: (label, text)}``: the model's ``history_entries[field]`` when it has one
    (e.g. a priority mapping keyed by UUID, labelled by the priorities' names), else key and JSON."""
    describe = getattr(model, "history_entries", {}).get(field.name)
    if describe is not None:
        return describe(value)
    return {str(k): (str(k), json.dumps(v, sort_keys=True, ensure_ascii=False)) for k, v in sorted(value.items())}


def _entries_text(entries: dict[str, tuple[str, str]], keys) -> str:
    return "; ".join(f"{entries[k][0]} → {entries[k][1]}" for k in keys) or EMPTY


def _dict_pair(model, field: models.Field, old, new) -> tuple[str, str] | None:
    """Before and after of a dict value, entry by entry: only the entries that differ when both are set."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return None
    before, after = _entries(model, field, old), _entries(model, field, new)
    if not before or not after:
        return _entries_text(before, before), _entries_text(after, after)
    keys = [k for k in after if before.get(k) != after[k]] + [k for k in before if k not in after]
    if not keys:
        return None  # the entries read the same (a difference they do not show): the whole values say it
    label = {k: (after.get(k) or before[k])[0] for k in keys}
    return ("; ".join(f"{label[k]} → {before[k][1] if k in before else EMPTY}" for k in keys),
            "; ".join(f"{label[k]} → {after[k][1] if k in after else EMPTY}" for k in keys))


def shorten_pair(old: str, new: str, limit: int = MAX_VALUE_CHARS, context: int = 40) -> tuple[str, str]:
    """Before and after, each at most about ``limit`` characters, keeping the part where they differ.

    Cutting both at the same length showed two identical texts when the change was further on.
    Here what both share before and after the difference is cut instead, down to ``context``
    characters around it, each cut marked "…".
    """
    if len(old) <= limit and len(new) <= limit:
        return old, new
    prefix = 0
    while prefix < min(len(old), len(new)) and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while (suffix < min(len(old), len(new)) - prefix
           and old[len(old) - 1 - suffix] == new[len(new) - 1 - suffix]):
        suffix += 1
    start = max(0, prefix - context)

    def cut(text: str) -> str:
        end = min(len(text), len(text) - suffix + context)
        part = ("…" if start else "") + text[start:end]
        part = Truncator(part).chars(limit) if len(part) > limit else part
        return part + ("…" if end < len(text) and not part.endswith("…") else "")
    return cut(old), cut(new)


def _new_text(after: models.Model, field: models.Field) -> str:
    """What a field of a new row is set to, as text a person reads (shortened at its end)."""
    value = getattr(after, field.attname)
    if isinstance(field, models.JSONField) and isinstance(value, dict) and value:
        entries = _entries(type(after), field, value)
        text = _entries_text(entries, entries)
    else:
        text = _text(after, field)
    return Truncator(text).chars(MAX_VALUE_CHARS)


def _pair(before: models.Model, after: models.Model, field: models.Field) -> tuple[str, str]:
    """What a field was and is, as text a person reads, with what changed kept when shortened."""
    pair = None
    if isinstance(field, models.JSONField):
        pair = _dict_pair(type(after), field, getattr(before, field.attname), getattr(after, field.attname))
    if pair is None:
        pair = _text(before, field), _text(after, field)
    return shorten_pair(*pair)


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
        elif before is None:
            found.append({"field": _label(field), "old": EMPTY, "new": _new_text(after, field)})
        else:
            old_text, new_text = _pair(before, after, field)
            found.append({"field": _label(field), "old": old_text, "new": new_text})
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
