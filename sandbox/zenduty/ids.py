"""Identifier formats of the simulated Zenduty (as Zenduty's API answers show them, https://apidocs.zenduty.com).

* incident ``unique_id`` / ``incident_key``, note and alert ``unique_id``:
  22-character base57 "shortuuid" strings (e.g. ``uJVWfdAeoPDm3pk2gG2URn``);
* teams, services, priorities, integrations, ``integration_key``: hyphenated
  UUID4s (plain ``models.UUIDField`` values);
* user ``username``: the first 25 characters of a UUID4 string.
"""
from __future__ import annotations

import hashlib
import secrets
import uuid

# The alphabet of the shortuuid library: digits and letters without the
# look-alikes 0, 1, I, O and l. 57**22 > 2**128, so 22 digits hold a UUID.
BASE57_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
SHORT_ID_LENGTH = 22
USERNAME_LENGTH = 25


def short_id() -> str:
    """A fresh 22-character base57 id, as Zenduty gives incidents, notes and alerts."""
    number = uuid.uuid4().int
    digits = []
    while number:
        number, digit = divmod(number, len(BASE57_ALPHABET))
        digits.append(BASE57_ALPHABET[digit])
    return "".join(reversed(digits)).rjust(SHORT_ID_LENGTH, BASE57_ALPHABET[0])


def is_short_id(value: str) -> bool:
    return len(value) == SHORT_ID_LENGTH and all(c in BASE57_ALPHABET for c in value)


def new_username() -> str:
    """A Zenduty username: a UUID4 string cut to 25 characters (e.g. ``216bba3d-7268-4a8e-89e9-6``)."""
    return str(uuid.uuid4())[:USERNAME_LENGTH]


def hash_token(token: str) -> str:
    """How API tokens are stored: only their SHA-256, never the token itself."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_signing_secret() -> str:
    """A signing key for an Outgoing Webhooks integration (shown once in the UI)."""
    return secrets.token_urlsafe(32)


def parse_uuid(value) -> uuid.UUID | None:
    """``value`` as a UUID, or None when it is not one (so lookups answer 404, not 500)."""
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return None
