"""Secret encryption at rest: µs per encrypt and per decrypt.

What: ``connections.secrets.encrypt`` / ``decrypt`` (MultiFernet over
FIELD_ENCRYPTION_KEYS, ``fernet:`` prefix), which ``EncryptedTextField``
runs on every save and every load of a row holding a credential; decrypt is
measured with the first key and with the second one (a value not yet
re-encrypted during a key rotation, where MultiFernet tries the first key in
vain). The median of several batches of 1,000 calls, in µs per call.

Why these targets: every webhook delivery loads its integration and so
decrypts its Zenduty signing key, and every Xurrent call reads the cached
OAuth token from the database (decrypt). Fernet (AES-128-CBC + HMAC-SHA256)
of a short value costs tens of µs; 200 µs each keeps secrets well under 1 %
of the 50 ms webhook budget (bench/webhooks.py) and would still catch a
regression such as rebuilding the Fernet keys per call or a slow KDF.
"""
from __future__ import annotations

import statistics
import time

from cryptography.fernet import Fernet
from django.conf import settings

from bench import Row
from connections import secrets

BATCHES = 5
CALLS = 1000
TARGET_US = 200.0
# One fixed value: secrets.remember() keeps every plaintext it sees for log
# redaction, so thousands of distinct values would grow that set.
PLAINTEXT = "bench-client-secret-0123456789abcdefghijklmnop"


def _us_per_call(func, arg) -> float:
    func(arg)  # warm-up (key objects are cached after the first call)
    batches = []
    for _ in range(BATCHES):
        started = time.perf_counter()
        for _ in range(CALLS):
            func(arg)
        batches.append((time.perf_counter() - started) / CALLS * 1e6)
    return statistics.median(batches)


def run() -> list[Row]:
    stored = secrets.encrypt(PLAINTEXT)
    assert secrets.decrypt(stored) == PLAINTEXT
    rows = [
        Row("secrets: encrypt", _us_per_call(secrets.encrypt, PLAINTEXT), "µs", TARGET_US),
        Row("secrets: decrypt (first key)", _us_per_call(secrets.decrypt, stored), "µs", TARGET_US),
    ]
    if len(settings.FIELD_ENCRYPTION_KEYS) > 1:
        old = secrets.PREFIX + Fernet(settings.FIELD_ENCRYPTION_KEYS[1].encode()).encrypt(PLAINTEXT.encode()).decode()
        assert secrets.decrypt(old) == PLAINTEXT
        rows.append(Row("secrets: decrypt (second key)", _us_per_call(secrets.decrypt, old), "µs", TARGET_US))
    return rows
