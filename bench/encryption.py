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

Also: redacting one log line with the most secrets a process keeps in mind
(``MAX_REMEMBERED_SECRETS``), the cost every log line pays.
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
    rows.append(Row(f"secrets: redact a log line ({secrets.MAX_REMEMBERED_SECRETS} secrets known)",
                    _redact_us(), "µs", REDACT_TARGET_US))
    return rows


# Every log line passes the redaction filter. A process remembers at most
# MAX_REMEMBERED_SECRETS (expired Xurrent tokens fall out first); measured
# with that many, a log line must stay cheap.
REDACT_TARGET_US = 150.0
LOG_LINE = ("xurrent.call GET /v1/requests/123/notes -> 200 in 41ms "
            "account=wdc delivery=2d5c8a1e-0b7f-4c7e-9d55-3c9a0f1e7b21")


def _redact_us() -> float:
    for n in range(secrets.MAX_REMEMBERED_SECRETS):
        secrets.remember(f"bench-access-token-{n:05d}-{'x' * 30}")
    assert secrets.redact(LOG_LINE) == LOG_LINE
    return _us_per_call(secrets.redact, LOG_LINE)
