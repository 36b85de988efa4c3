"""Secret storage: encryption at rest and redaction everywhere else.

Secrets are declared once, with :class:`connections.fields.EncryptedTextField`;
this module holds the key handling (MultiFernet over FIELD_ENCRYPTION_KEYS: the
first key encrypts, every key decrypts) and the log filter that masks any
secret value that was ever decrypted in this process.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

MASK = "********"
# Ciphertexts start with this marker so a plaintext value can never be
# mistaken for an encrypted one (and a raw SQL read shows what it is).
PREFIX = "fernet:"


class SecretDecryptionError(Exception):
    """A stored secret cannot be decrypted with any configured key."""


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEYS must be comma-separated url-safe base64 Fernet keys (32 bytes each)."
        ) from exc


def get_fernet() -> MultiFernet:
    """The MultiFernet for the configured keys (first encrypts, all decrypt)."""
    keys = tuple(settings.FIELD_ENCRYPTION_KEYS)
    if not keys:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty.")
    return _fernet(keys)


def encrypt(plaintext: str) -> str:
    """Encrypt a secret for storage."""
    remember(plaintext)
    return PREFIX + get_fernet().encrypt(plaintext.encode()).decode()


def decrypt(stored: str) -> str:
    """Decrypt a stored secret; raises SecretDecryptionError if no key fits."""
    if not stored.startswith(PREFIX):
        raise SecretDecryptionError("stored value is not an encrypted secret")
    try:
        value = get_fernet().decrypt(stored[len(PREFIX):].encode()).decode()
    except InvalidToken as exc:
        raise SecretDecryptionError(
            "a stored secret cannot be decrypted with FIELD_ENCRYPTION_KEYS (was a key removed?)"
        ) from exc
    remember(value)
    return value


def rotate(stored: str) -> str:
    """Re-encrypt a stored secret with the first (current) key."""
    if not stored.startswith(PREFIX):
        raise SecretDecryptionError("stored value is not an encrypted secret")
    try:
        return PREFIX + get_fernet().rotate(stored[len(PREFIX):].encode()).decode()
    except InvalidToken as exc:
        raise SecretDecryptionError("a stored secret cannot be decrypted with FIELD_ENCRYPTION_KEYS") from exc


# --- Redaction -----------------------------------------------------------------
# Every secret this process encrypts or decrypts is remembered (in memory only)
# so that logging can mask it wherever it turns up: in a message, an argument
# or a formatted exception.
# Bounded, least recently used first: a long-running process sees a new Xurrent
# access token every hour per tenant, and an ever-growing set would make every
# log line slower (bench: 1.8 ms per line at 10,000 secrets). Secrets in use
# are remembered again on every decrypt, so only stale ones (expired tokens)
# fall out.
MAX_REMEMBERED_SECRETS = 512
_known_secrets: OrderedDict[str, None] = OrderedDict()
_by_length: tuple[str, ...] = ()  # longest first, so a secret inside another is masked whole
_known_lock = threading.Lock()
_MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words


def remember(secret: str | None) -> None:
    """Register a secret value so that logs mask it."""
    global _by_length
    if not secret or len(secret) < _MIN_SECRET_LENGTH:
        return
    with _known_lock:
        if secret in _known_secrets:
            _known_secrets.move_to_end(secret)
            return
        _known_secrets[secret] = None
        while len(_known_secrets) > MAX_REMEMBERED_SECRETS:
            _known_secrets.popitem(last=False)
        _by_length = tuple(sorted(_known_secrets, key=len, reverse=True))


def redact(text: str) -> str:
    """Replace every known secret in ``text`` with the mask."""
    if not text:
        return text
    for secret in _by_length:  # an immutable snapshot: no lock needed to read it
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactSecretsFilter(logging.Filter):
    """Logging filter that masks known secrets in the final message and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not hide the log line
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
