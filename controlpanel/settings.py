"""Settings for the agent panel: one module, every value from the environment.

Each setting is read through a small typed helper that raises ImproperlyConfigured on a bad
value, and each appears in `.env.example` with a one-line comment. A `.env` file beside
`manage.py` (written by `make run` on first start) is read too; real environment variables win.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from controlpanel.envfile import EnvFileError, load_env_file

BASE_DIR = Path(__file__).resolve().parent.parent

# Lets `admin.ModelAdmin[Model]` and friends be subscripted at run time, as the stubs allow.
django_stubs_ext.monkeypatch()


try:
    load_env_file(Path(os.environ.get("ENV_FILE", BASE_DIR / ".env")))
except EnvFileError as error:
    raise ImproperlyConfigured(str(error)) from None


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise ImproperlyConfigured(f"{name} must be set (see .env.example)")
    return value


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
if DEBUG:
    SECRET_KEY = env_str("SECRET_KEY", "insecure-development-key-never-used-in-production")
else:
    SECRET_KEY = env_str("SECRET_KEY")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# Fernet keys for MaxContact credentials at rest, newest first, comma separated. Deliberately
# not derived from SECRET_KEY: rotating one must not touch the other. Checked at start-up by
# telephony.apps (a missing or malformed key stops the process).
MAXCONTACT_ENCRYPTION_KEYS = os.environ.get("MAXCONTACT_ENCRYPTION_KEYS", "")

# Defaults for a new tenant's MaxContact timeouts (seconds); each tenant can override them.
MAXCONTACT_CONNECT_TIMEOUT = env_float("MAXCONTACT_CONNECT_TIMEOUT", 3.05)
MAXCONTACT_READ_TIMEOUT = env_float("MAXCONTACT_READ_TIMEOUT", 8.0)

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "csp",
    "axes",
    "telephony",
    "controlpanel",
]

MIDDLEWARE = [
    # Outermost, so that it sees the cookies every other middleware sets.
    "controlpanel.embed.PartitionedCookieMiddleware",
    "controlpanel.requestlog.RequestLogMiddleware",  # the id first, so every line carries it
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "controlpanel.embed.HeaderTokenMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into our own page.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses a locked-out user or address first
    # Django's ModelBackend, reading her agent account with her. Sessions name the backend
    # that logged them in: sessions made under the plain ModelBackend end at this change.
    "controlpanel.backends.AgentBackend",
]

ROOT_URLCONF = "controlpanel.urls"
ASGI_APPLICATION = "controlpanel.asgi.application"
WSGI_APPLICATION = "controlpanel.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        # Kept for a minute by the threads that use them (request threads, poll threads), and
        # checked before a request or poll uses them again (a restarted database).
        conn_max_age=60,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several processes write (web, workers): take the write lock when a transaction begins,
    # so a read-then-write transaction waits for it instead of failing with "database is
    # locked"; WAL lets readers go on meanwhile. synchronous=NORMAL is SQLite's advice for
    # WAL: no fsync per commit (a click commits three times), still never corrupt; a power
    # cut may lose the last commits. Production runs PostgreSQL (docs/operations.md).
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
# Under uvicorn: threads kept for requests, each with its database connection (controlpanel.
# asgi.RequestThreads). More concurrent requests than this still run, on new threads.
REQUEST_THREADS = int(env_float("REQUEST_THREADS", 32))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# WhiteNoise serves files with a synchronous iterator; under ASGI Django says so on every file.
# Static files are small and cached, so the thread hop it warns about is harmless here.
warnings.filterwarnings(
    "ignore", message="StreamingHttpResponse must consume synchronous iterators"
)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "panel"
LOGOUT_REDIRECT_URL = "login"
CSRF_FAILURE_VIEW = "controlpanel.views.csrf_failure"

# Strict CSP on the panel: scripts and styles from our own origin only, no inline code, no
# eval (htmx 4 runs without it; `hx-on` would need it, so the panel does not use hx-on).
# The Django admin is left out: its widgets use inline style attributes.
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/admin/"],
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# Celery: Redis is the broker; polls go to their own queue so a slow tenant cannot delay the
# dispatcher. Results are not kept.
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ROUTES = {"controlpanel.tasks.poll_batch": {"queue": "poll"}}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = False  # a poll is cheap to lose, dangerous to repeat late
CELERY_BEAT_SCHEDULE = {
    "dispatch": {
        "task": "controlpanel.tasks.dispatch",
        "schedule": env_float("POLL_TICK", 1.0),
        "options": {"expires": env_float("POLL_TICK", 1.0)},
    }
}
POLL_BATCH_SIZE = int(env_float("POLL_BATCH_SIZE", 25))
POLL_THREADS = int(env_float("POLL_THREADS", 16))
POLL_EXPIRES = env_float("POLL_TICK", 1.0)
POLL_LOCK_SECONDS = 2 * env_float("POLL_TICK", 1.0)

# Shared cache (directory lists from MaxContact). Callers fall back to MaxContact itself when
# Redis does not answer, so a Redis restart costs speed, never a broken panel.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "panel"),
        "TIMEOUT": 300,
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
}

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# Sessions end after a working day without use; an admin disabling a user ends hers at once
# (Django refuses inactive users' sessions; the panel refuses inactive agent accounts).
SESSION_COOKIE_AGE = int(env_float("SESSION_HOURS", 12) * 3600)

# Login throttling (django-axes): after LOGIN_FAILURE_LIMIT failures for one username, or from
# one address, logins from it are refused for LOGIN_COOLOFF_MINUTES; a success resets the count.
AXES_FAILURE_LIMIT = int(env_float("LOGIN_FAILURE_LIMIT", 5))
AXES_COOLOFF_TIME = env_float("LOGIN_COOLOFF_MINUTES", 15) / 60  # hours
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "controlpanel.views.locked_out"
AXES_VERBOSE = False
# Behind a proxy, the client's address is the last one the proxy added (TRUSTED_PROXIES hops).
AXES_IPWARE_PROXY_COUNT = int(env_float("TRUSTED_PROXIES", 0)) or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if AXES_IPWARE_PROXY_COUNT else ["REMOTE_ADDR"]
)

# Embedding in a CRM (docs/embedding.md). A cross-site iframe keeps its cookies only when they
# are SameSite=None; Secure; Partitioned (browsers accept Secure cookies on http://localhost and
# http://127.0.0.1, so development needs no TLS). controlpanel.embed adds `Partitioned`.
EMBEDDING = env_bool("EMBEDDING", True)
if EMBEDDING:
    SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "None"
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
EMBED_LAUNCH_MAX_SECONDS = int(env_float("EMBED_LAUNCH_MAX_SECONDS", 300))
EMBED_TOKEN_MAX_AGE = int(env_float("EMBED_TOKEN_HOURS", 8) * 3600)
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# HTTPS in production: redirect plain HTTP and send HSTS, unless the deployment says it serves
# plain HTTP (SECURE_COOKIES=false: `make run` and the tests, on loopback).
_HTTPS = env_bool("SECURE_COOKIES", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SSL_REDIRECT", _HTTPS)
SECURE_HSTS_SECONDS = int(env_float("HSTS_SECONDS", 31_536_000 if _HTTPS else 0))
# The panel usually has a host of its own: cover subdomains and allow preloading unless told
# otherwise (HSTS_INCLUDE_SUBDOMAINS / HSTS_PRELOAD=false where the domain has HTTP-only hosts).
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HSTS_INCLUDE_SUBDOMAINS", _HTTPS)
SECURE_HSTS_PRELOAD = env_bool("HSTS_PRELOAD", _HTTPS)
# Behind nginx terminating TLS: trust its X-Forwarded-Proto (set PROXY_SSL_HEADER=true only
# when the proxy always sets or strips that header).
if env_bool("PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The load balancer's probes are plain HTTP to the process itself.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s %(message)s"}
    },
    # The request id (or poll id) on every line, whichever library wrote it.
    "filters": {"request_id": {"()": "controlpanel.requestlog.RequestIdFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # urllib3 logs full request URLs at DEBUG; ours never carry a secret, but its header dumps
    # would. Keep it at WARNING whatever LOG_LEVEL says.
    # django-axes writes a line per login at INFO; its warnings (failures, lockouts) remain.
    "loggers": {"urllib3": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
