"""Text that every database column and every history page can hold.

A signed delivery is genuine whatever text it carries, and Python's JSON
parser accepts more than the databases and the UTF-8 pages do:

* a lone UTF-16 surrogate (``"\\ud83d"``, an emoji cut in half by a sender
  that truncates text): a Python ``str`` can hold it, UTF-8 cannot, so SQLite
  and PostgreSQL text columns refuse it, PostgreSQL's jsonb refuses its
  escape, and a page showing it cannot be encoded;
* ``\\u0000``: PostgreSQL's text and jsonb refuse NUL;
* ``NaN``, ``Infinity``, ``-Infinity`` (and numbers too large for a float,
  which Python reads as infinity): not JSON (RFC 8259 §6), so SQLite's
  JSON check and PostgreSQL's jsonb refuse them.

:func:`for_storage` makes a parsed message storable on both databases:
surrogates and NUL become U+FFFD, non-finite numbers become the strings
``"NaN"``, ``"Infinity"`` and ``"-Infinity"``. The raw body keeps what was
sent: in JSON text these are plain ASCII escapes (``\ud83d``, ``\u0000``)
and words (``NaN``); only bytes that are not UTF-8 (a surrogate written as
raw bytes) become U+FFFD there. :func:`for_display` shows text read back
from a stored body or from rows older than this rule, with lone surrogates
written as the JSON escapes the sender used.
"""
from __future__ import annotations

import math
import re
from typing import Any

REPLACEMENT = "\ufffd"
# Deeper messages are refused: no Xurrent or Zenduty message nests more than a
# few levels, and this keeps storing and showing one far from the recursion limit.
MAX_NESTING = 100

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class TooDeep(ValueError):
    """A message nested more than :data:`MAX_NESTING` levels deep."""


def storable_text(text: str) -> str:
    """``text`` without lone surrogates and NUL (each replaced by U+FFFD)."""
    return _UNSTORABLE.sub(REPLACEMENT, text)


def for_storage(value: Any, _depth: int = 0) -> Any:
    """A copy of a parsed JSON value that SQLite and PostgreSQL accept in text and JSON columns.

    Strings (keys too) lose lone surrogates and NUL (U+FFFD instead);
    NaN and ±infinity become ``"NaN"``, ``"Infinity"``, ``"-Infinity"``;
    everything else is kept.

    :raises TooDeep: when the value nests more than ``MAX_NESTING`` levels.
    """
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, (dict, list, tuple)):
        if _depth >= MAX_NESTING:
            raise TooDeep(f"The message is nested more than {MAX_NESTING} levels deep.")
        if isinstance(value, dict):
            return {for_storage(k, _depth + 1): for_storage(v, _depth + 1) for k, v in value.items()}
        return [for_storage(v, _depth + 1) for v in value]
    return value


def for_display(text: str) -> str:
    """``text`` with each lone surrogate written as its JSON escape (``\\ud83d``), so UTF-8 can encode it."""
    return _SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
