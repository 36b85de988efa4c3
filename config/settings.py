"""Settings for the Zenduty ⇄ Xurrent integration portal.

Everything that differs between a laptop, CI and production comes from the
environment (optionally a `.env` file beside manage.py), read with
django-environ. `make run` writes a `.env` with fresh keys on first start.
"""
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from config.qcluster import build_q_cluster

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

# Development-only fallbacks. They are public (they are in this file), so they
# are refused whenever DEBUG is off.
_DEV_SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production"
_DEV_FERNET_KEY = "ZGV2LW9ubHktZmVybmV0LWtleS1kby1ub3QtdXNlISE="


def _required(name: str, dev_default: str) -> str:
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(
        f"{name} is not set. It is required when DEBUG is off; "
        f"set it in the environment or in .env (see README, 'Configuration')."
    )


SECRET_KEY = _required("SECRET_KEY", _DEV_SECRET_KEY)

# Comma-separated Fernet keys: the first encrypts, all decrypt (key rotation,
# see `manage.py rotate_secrets`).
_FERNET_KEY_HELP = (
    "Each key is 32 random bytes in url-safe base64 (44 characters ending in '='); generate one with "
    "`python -c \"from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())\"`.")


def _fernet_keys(raw: str) -> list[str]:
    """The keys, each proven usable now: a bad one would otherwise surface as a 500 on the first secret.

    Messages name a key by its position only, never its value.
    """
    from cryptography.fernet import Fernet

    keys = [k.strip() for k in raw.split(",") if k.strip()]
    if not keys:
        raise ImproperlyConfigured(f"FIELD_ENCRYPTION_KEYS holds no key, only separators. {_FERNET_KEY_HELP}")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):  # binascii.Error is a ValueError
            raise ImproperlyConfigured(
                f"FIELD_ENCRYPTION_KEYS: key {position} of {len(keys)} is not a valid Fernet key. "
                f"{_FERNET_KEY_HELP}") from None
    return keys


FIELD_ENCRYPTION_KEYS = _fernet_keys(_required("FIELD_ENCRYPTION_KEYS", _DEV_FERNET_KEY))

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Public base URL of this portal: Xurrent and Zenduty send webhooks to
# PORTAL_BASE_URL/webhooks/... so it must be reachable from them.
PORTAL_BASE_URL = env.str("PORTAL_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")

# The sandbox app simulates Xurrent and Zenduty (see sandbox/). When
# SANDBOX_API_URL is set, the API clients send every call to this portal's
# sandbox at that base URL instead of the real hosts.
SANDBOX_ENABLED = env.bool("SANDBOX_ENABLED", default=False)
SANDBOX_API_URL = env.str("SANDBOX_API_URL", default="").rstrip("/")
# The web address of a Zenduty incident, after the account's base URL ({number}: the
# incident number). Zenduty's API docs do not give it; links in synced requests use it.
ZENDUTY_INCIDENT_PAGE = env.str("ZENDUTY_INCIDENT_PAGE", default="/dashboard/incidents/{number}")
# Zenduty's documented API limits per account (https://zenduty.com/docs/rate-limits): the
# portal keeps to them itself, across all processes (connections.budget), since Zenduty
# sends no rate-limit headers. Lower them if the account shares its limits with other tools.
ZENDUTY_INCIDENT_READS_PER_SECOND = env.int("ZENDUTY_INCIDENT_READS_PER_SECOND", default=3)
ZENDUTY_INCIDENT_READS_PER_MINUTE = env.int("ZENDUTY_INCIDENT_READS_PER_MINUTE", default=30)
ZENDUTY_INCIDENT_CREATES_PER_SECOND = env.int("ZENDUTY_INCIDENT_CREATES_PER_SECOND", default=1)
ZENDUTY_INCIDENT_CREATES_PER_MINUTE = env.int("ZENDUTY_INCIDENT_CREATES_PER_MINUTE", default=15)
# Reads of a team's priorities (the integration form, and the refresh that integration pages
# compare mappings with: integrations.team_priorities). Zenduty documents no limit for them;
# the portal keeps them few, in the same shared budget. The refresh runs every N minutes.
ZENDUTY_PRIORITY_READS_PER_SECOND = env.int("ZENDUTY_PRIORITY_READS_PER_SECOND", default=2)
ZENDUTY_PRIORITY_READS_PER_MINUTE = env.int("ZENDUTY_PRIORITY_READS_PER_MINUTE", default=10)
ZENDUTY_PRIORITY_REFRESH_MINUTES = env.int("ZENDUTY_PRIORITY_REFRESH_MINUTES", default=15)
if ZENDUTY_PRIORITY_REFRESH_MINUTES < 1:
    raise ImproperlyConfigured(f"ZENDUTY_PRIORITY_REFRESH_MINUTES ({ZENDUTY_PRIORITY_REFRESH_MINUTES}) must be at "
                               f"least 1.")
# Sandbox webhook deliveries leave from a background thread in the web process;
# tests switch it off and flush the outbox explicitly.
SANDBOX_DELIVERY_THREAD = env.bool("SANDBOX_DELIVERY_THREAD", default=True)
# The simulated Xurrent disables a webhook after this many consecutive failed
# delivery attempts, once the first of them is older than this many seconds
# (Xurrent: 20 failures over more than a week). Tests shorten both.
SANDBOX_XURRENT_WEBHOOK_DISABLE_AFTER_FAILURES = env.int("SANDBOX_XURRENT_WEBHOOK_DISABLE_AFTER_FAILURES", default=20)
SANDBOX_XURRENT_WEBHOOK_DISABLE_AFTER_SECONDS = env.int("SANDBOX_XURRENT_WEBHOOK_DISABLE_AFTER_SECONDS",
                                                        default=7 * 24 * 3600)
# A delivery held back by a "reorder" fault waits for a later one to the same
# address, at most this many seconds.
SANDBOX_REORDER_HOLD_SECONDS = env.float("SANDBOX_REORDER_HOLD_SECONDS", default=5.0)

# Outbound HTTP: (connect, read) timeouts in seconds for every API call.
EXTERNAL_API_CONNECT_TIMEOUT = env.float("EXTERNAL_API_CONNECT_TIMEOUT", default=5.0)
EXTERNAL_API_READ_TIMEOUT = env.float("EXTERNAL_API_READ_TIMEOUT", default=15.0)
# A 429 whose Retry-After is at most this many seconds is waited out inside the
# call (bounded by EXTERNAL_API_MAX_RETRIES); longer waits are handed back to
# the job layer as RateLimited so no worker sleeps for minutes.
EXTERNAL_API_MAX_INLINE_WAIT = env.float("EXTERNAL_API_MAX_INLINE_WAIT", default=5.0)
EXTERNAL_API_MAX_RETRIES = env.int("EXTERNAL_API_MAX_RETRIES", default=2)
# Seconds that one provisioning run (all its API calls) may take while an admin
# waits for the page; past it the run stops with a recorded, retryable error.
# Below gunicorn's 30 s worker timeout, with room for the page itself.
PROVISIONING_TIME_BUDGET = env.float("PROVISIONING_TIME_BUDGET", default=20.0)

# Where the Zenduty API token may go (connections.zenduty.destinations). By
# default only https on zenduty.com and its sub-domains, at public addresses.
# Further base URLs an admin may store (an egress proxy, a test server), e.g.
# "http://zenduty-proxy.internal:8080"; http is then allowed for them.
ZENDUTY_ALLOWED_BASE_URLS = env.list("ZENDUTY_ALLOWED_BASE_URLS", default=[])
# Allow hosts that are, or resolve to, private, loopback or link-local
# addresses (such a proxy or test server usually is).
ZENDUTY_ALLOW_PRIVATE_ADDRESSES = env.bool("ZENDUTY_ALLOW_PRIVATE_ADDRESSES", default=False)

REDIS_URL = env.str("REDIS_URL", default="")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    # The webhook endpoints' OpenAPI schema, with Swagger UI and Redoc served from the sidecar package.
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "connections",
    "integrations",
    "syncengine",
    "alerts",
    "roles",
    # After syncengine, whose `manage.py qcluster` (django-q2's cluster, looking for due schedules
    # more often) must come first: Django runs the command of the first app in this list that has it.
    "django_q",
]
if SANDBOX_ENABLED:
    # The simulators: shared plumbing (faults, outbound deliveries, the
    # by-hand page) plus one app per simulated service.
    INSTALLED_APPS += ["sandbox", "sandbox.xurrent", "sandbox.zenduty"]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "config.context_processors.portal",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

if not env.str("DATABASE_URL", default=""):
    (BASE_DIR / "var").mkdir(exist_ok=True)
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'portal.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server and the qcluster read while the other writes;
    # the timeout turns short write contention into waiting instead of
    # "database is locked". IMMEDIATE transactions take the write lock at
    # BEGIN: a DEFERRED one that reads first and writes later cannot wait
    # for a lock another process took meanwhile and fails at once with
    # "database is locked" (seen with gunicorn threads + qcluster + the
    # sandbox's delivery thread). https://www.sqlite.org/lang_transaction.html
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE",
         "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"}
    )
# Persistent connections, on SQLite too: django-q2's ORM broker calls
# close_old_connections() when a webhook enqueues its job, and with
# CONN_MAX_AGE=0 that reopens the connection (and re-runs the pragmas) twice
# per delivery (bench/webhooks.py: p50 ~15 ms → ~5 ms).
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    # A cache every process shares: django-q2 keeps cluster heartbeats in it
    # (read by /healthz), so a per-process memory cache would not do.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "portal_cache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve admin assets straight from the apps when collectstatic has not run.
WHITENOISE_USE_FINDERS = True

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

# /api/schema/ (the webhook endpoints, syncengine.schema): for staff, signed in to the admin;
# Swagger UI and Redoc from the drf-spectacular-sidecar package, no CDN.
SPECTACULAR_SETTINGS = {
    "TITLE": "Zenduty ⇄ Xurrent integration portal: webhooks",
    "DESCRIPTION": "Where Xurrent and Zenduty deliver their webhooks. A delivery is answered 2xx only once "
                   "it is stored; the signature is the authentication.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": ["rest_framework.authentication.SessionAuthentication"],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAdminUser"],
    "PREPROCESSING_HOOKS": ["syncengine.schema.only_webhooks"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

Q_CLUSTER = build_q_cluster(
    redis_url=REDIS_URL or None,
    sync=env.bool("Q_SYNC", default=False),
    workers=env.int("Q_WORKERS", default=2),
    # Job timeout and broker re-delivery (seconds); only tests shorten them.
    timeout=env.int("Q_TIMEOUT", default=120),
    retry=env.int("Q_RETRY", default=180),
)
# How often `manage.py qcluster` (syncengine's) starts the jobs of due schedules: a job rescheduled
# to wait for a rate limit's turn, a busy pair or a backoff. django-q2's own cluster looks every 30 s.
Q_SCHEDULE_LOOK_SECONDS = env.float("Q_SCHEDULE_LOOK_SECONDS", default=1.0)
if not 0 < Q_SCHEDULE_LOOK_SECONDS <= 30:
    raise ImproperlyConfigured(f"Q_SCHEDULE_LOOK_SECONDS ({Q_SCHEDULE_LOOK_SECONDS}) must be more than 0 (0 would "
                               f"look without pause) and at most 30 (django-q2's own look, every 30 s).")
if Q_CLUSTER["retry"] <= Q_CLUSTER["timeout"]:
    raise ImproperlyConfigured(f"Q_RETRY ({Q_CLUSTER['retry']}) must be longer than Q_TIMEOUT "
                               f"({Q_CLUSTER['timeout']}): a job still running would be handed out again.")

# Lease of a job on an inbound event: an event still "processing" this many
# seconds after a worker claimed it was left by a worker that died (killed, out
# of memory, restarted), and the sweep (syncengine.housekeeping.recover_stalled_events,
# every minute) queues it again. It must outlast the job timeout: django-q2
# kills a job after Q_CLUSTER["timeout"] seconds, so a job past its lease is
# never still running, and no event is processed twice at the same time. The
# margin covers the cluster's guard cycle and clock differences between hosts.
SYNC_EVENT_LEASE_SECONDS = env.int("SYNC_EVENT_LEASE_SECONDS", default=Q_CLUSTER["timeout"] + 30)
if SYNC_EVENT_LEASE_SECONDS <= Q_CLUSTER["timeout"]:
    raise ImproperlyConfigured(
        f"SYNC_EVENT_LEASE_SECONDS ({SYNC_EVENT_LEASE_SECONDS}) must be longer than the job timeout "
        f"(Q_CLUSTER timeout, {Q_CLUSTER['timeout']} s): an event whose lease ends while its job still runs "
        f"could be processed twice at the same time.")

# How long one event holds its linked pair (syncengine.pairs): longer than the calls of one handler can
# take (timeouts, retries); a worker that dies holding it delays the pair by this much. Tests shorten it.
SYNC_PAIR_LEASE_SECONDS = env.int("SYNC_PAIR_LEASE_SECONDS", default=120)

# A cluster whose newest heartbeat is older than this is reported unhealthy.
HEALTHZ_MAX_HEARTBEAT_AGE = env.int("HEALTHZ_MAX_HEARTBEAT_AGE", default=120)
HEALTHZ_MAX_QUEUE_LENGTH = env.int("HEALTHZ_MAX_QUEUE_LENGTH", default=1000)

# Bearer token a Prometheus scraper sends to /metrics (config.metrics); unset: /metrics is a 404.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# Finished inbound events and outbound calls older than this are pruned daily
# (syncengine.housekeeping.prune_history); events still waiting are kept.
SYNC_HISTORY_RETENTION_DAYS = env.int("SYNC_HISTORY_RETENTION_DAYS", default=90)

# How often the reconciliation sweep (syncengine.reconcile) compares open linked
# pairs with both APIs and repairs what missed webhooks left behind. Each sweep
# costs one Zenduty incident filter per integration (Zenduty allows 30 incident
# reads a minute), so not much more often than every few minutes.
SYNC_RECONCILE_MINUTES = env.int("SYNC_RECONCILE_MINUTES", default=5)
# The Zenduty poller (syncengine.polling, every minute): at most this many incident reads a run, of the
# account's 30 a minute (the rest is left to webhook jobs, the sweep and admin pages); pairs with activity
# within SYNC_POLL_ACTIVE_MINUTES have their notes read every run, the others in turn.
SYNC_POLL_READS_PER_MINUTE = env.int("SYNC_POLL_READS_PER_MINUTE", default=24)
SYNC_POLL_ACTIVE_MINUTES = env.int("SYNC_POLL_ACTIVE_MINUTES", default=30)
if SYNC_RECONCILE_MINUTES < 1:
    raise ImproperlyConfigured(f"SYNC_RECONCILE_MINUTES ({SYNC_RECONCILE_MINUTES}) must be at least 1.")
# The Xurrent note sweep (syncengine.note_sweep): every SYNC_NOTE_SWEEP_MINUTES, the notes of at most
# SYNC_NOTE_SWEEP_READS_PER_RUN open pairs per tenant (of its ~3,600 calls an hour); lost note-added webhooks.
SYNC_NOTE_SWEEP_MINUTES = env.int("SYNC_NOTE_SWEEP_MINUTES", default=5)
SYNC_NOTE_SWEEP_READS_PER_RUN = env.int("SYNC_NOTE_SWEEP_READS_PER_RUN", default=60)
if SYNC_NOTE_SWEEP_MINUTES < 1:
    raise ImproperlyConfigured(f"SYNC_NOTE_SWEEP_MINUTES ({SYNC_NOTE_SWEEP_MINUTES}) must be at least 1.")

# Alerts (alerts.services): how often every condition is evaluated (connections re-checked live,
# each tenant's Xurrent webhooks listed: one call per tenant, a few per connection check).
ALERTS_CHECK_MINUTES = env.int("ALERTS_CHECK_MINUTES", default=5)
if ALERTS_CHECK_MINUTES < 1:
    raise ImproperlyConfigured(f"ALERTS_CHECK_MINUTES ({ALERTS_CHECK_MINUTES}) must be at least 1.")

# Django's mail settings; alerts go to the "Integration admins" group. `make run` uses the console backend.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="integration-portal@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact_secrets": {"()": "connections.secrets.RedactSecretsFilter"},
                "quiet_health_probes": {"()": "config.health.HealthProbeLogFilter"},
                "refusals_without_traceback": {"()": "config.log_filters.RefusalWithoutTracebackFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_secrets"]},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # urllib3 logs full URLs at DEBUG; keep it quiet.
        "urllib3": {"level": "WARNING"},
        "django.db.backends": {"level": "INFO"},
        "django.request": {"filters": ["quiet_health_probes", "refusals_without_traceback"]},
    },
}

if not DEBUG:
    SESSION_COOKIE_HTTPONLY = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"

# HTTPS. A portal whose public address is https (it has to be, for real
# webhooks) never sends its session or CSRF cookie over plain http.
_SERVED_OVER_HTTPS = PORTAL_BASE_URL.startswith("https://")
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=_SERVED_OVER_HTTPS)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=_SERVED_OVER_HTTPS)
CSRF_FAILURE_VIEW = "config.errors.csrf_failure"  # the admin's look and what to do, not Django's bare page
# Behind a TLS-terminating proxy: the header it sets (e.g. X-Forwarded-Proto).
# Only when the proxy always sets it and drops a client's own copy, hence opt-in.
if _proxy_header := env.str("SECURE_PROXY_SSL_HEADER", default=""):
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_header.upper().replace("-", "_"), "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain http
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
