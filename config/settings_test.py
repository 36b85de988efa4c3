"""Settings for the test suite: the real settings with test-only environment."""
import os

os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
# Two keys so that decryption with a non-primary key is exercised.
os.environ.setdefault(
    "FIELD_ENCRYPTION_KEYS",
    "dGVzdC1rZXktb25lLWZvci1maWVsZC1lbmNyeXB0ISE=,dGVzdC1rZXktdHdvLWZvci1maWVsZC1lbmNyeXB0ISE=",
)
os.environ.setdefault("SANDBOX_ENABLED", "true")
os.environ.setdefault("SANDBOX_DELIVERY_THREAD", "false")
os.environ.setdefault("Q_SYNC", "true")
os.environ.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1,testserver")
# The addresses of a `make run` demo, which writes them to .env (read below, without overwriting what is
# set): the tests use their own live server, never the demo's sandbox, whatever .env holds.
os.environ.setdefault("SANDBOX_API_URL", "")
os.environ.setdefault("PORTAL_BASE_URL", "http://127.0.0.1:8000")
# The live server answers keep-alive connections in threads it never joins; with
# persistent DB connections such a thread can still hold one when PostgreSQL
# drops the test database ("being accessed by other users"). Close per request.
os.environ.setdefault("DB_CONN_MAX_AGE", "0")

from config.settings import *  # noqa: E402,F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
