"""Sun Commune settings.

Everything that differs between a laptop and production comes from the
environment; each variable is listed in the README with its default. The
defaults are safe: without DEBUG=1 the site refuses to start without a real
SECRET_KEY, and every security setting is on.
"""

import os
import re
from decimal import Decimal
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


SECRET_KEY = os.environ.get("SECRET_KEY", "")

# A checkout with nothing configured is a developer's: DEBUG is on and a
# fixed development key is used. Configuring a real SECRET_KEY turns DEBUG
# off unless DEBUG=1 says otherwise, and DEBUG=0 without a SECRET_KEY refuses
# to start.
DEBUG = env_bool("DEBUG", not SECRET_KEY)
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY to a long random string, or DEBUG=1 for development."
        )
    SECRET_KEY = "dev-only-insecure-key-never-use-in-production-0123456789abcdef"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "sun_commune",
    "households",
    "donations",
    "cooperatives",
    "portal",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "crispy_forms",
    "crispy_bootstrap5",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "sun_commune.audit.AuditContextMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "sun_commune.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.roles",
            ],
        },
    }
]

# --- Data -------------------------------------------------------------------

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", "postgres:///sun_commune"),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
# The hottest queries are prepared once per connection
# (sun_commune/prepared.py); 0 behind a pooler in transaction mode.
DB_PREPARE = env_bool("DB_PREPARE", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "sun_commune.User"
# The user of each request comes with their roles, donor profile and
# cooperatives in one query (portal/backends.py).
AUTHENTICATION_BACKENDS = ["portal.backends.RoleAwareBackend"]
# Sessions are read from Redis and written through to PostgreSQL: a page
# costs no session query, and a lost cache loses no session. With Redis out
# of reach its reads are misses (sun_commune/cache.py), so sessions are read
# from PostgreSQL.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# Redis may go away (README, "Running it in production"): a call waits at
# most this long for it, and after a failure each process leaves it alone
# for REDIS_RETRY_SECONDS (cache misses, tasks left in the outbox).
REDIS_TIMEOUT_SECONDS = float(os.environ.get("REDIS_TIMEOUT_SECONDS", "0.5"))
REDIS_RETRY_SECONDS = float(os.environ.get("REDIS_RETRY_SECONDS", "5"))
CACHES = {
    "default": {
        "BACKEND": "sun_commune.cache.RedisCache",
        "LOCATION": os.environ.get("CACHE_URL", REDIS_URL),
        "KEY_PREFIX": os.environ.get("CACHE_PREFIX", "sun"),
        "TIMEOUT": 300,
        "OPTIONS": {"socket_connect_timeout": REDIS_TIMEOUT_SECONDS, "socket_timeout": REDIS_TIMEOUT_SECONDS},
    }
}

# Uploaded photos live outside the code tree and are served only through
# views that check who is asking (they may show a household's home).
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", Path.home() / ".local" / "share" / "sun-commune" / "media"))
MEDIA_URL = "/media/"
MAX_UPLOAD_BYTES = int(os.environ.get("MAX_UPLOAD_BYTES", str(8 * 1024 * 1024)))
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- Static files: Bootstrap comes from npm (node_modules), never a CDN ---------

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/bootstrap", BASE_DIR / "node_modules" / "bootstrap" / "dist"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Auth ---------------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

# --- Language and time ----------------------------------------------------------

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
TIME_ZONE = "Asia/Shanghai"
USE_TZ = True

# --- Mail: always sent from Celery ----------------------------------------------

# Until EMAIL_URL is set, mail is printed to the worker's log (console://).
EMAIL_URL = os.environ.get("EMAIL_URL", "console://")


def _email_settings(url: str) -> dict:
    """EMAIL_URL: console://, file:///path, locmem://, smtp://user:pass@host:port,
    smtps://... (implicit TLS) or smtp+tls://... (STARTTLS)."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(url)
    scheme = parsed.scheme
    if scheme == "console":
        return {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"}
    if scheme == "locmem":
        return {"EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"}
    if scheme == "file":
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": parsed.path,
        }
    if scheme in {"smtp", "smtps", "smtp+tls"}:
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": parsed.hostname or "localhost",
            "EMAIL_PORT": parsed.port or (465 if scheme == "smtps" else 587 if scheme == "smtp+tls" else 25),
            "EMAIL_HOST_USER": unquote(parsed.username or ""),
            "EMAIL_HOST_PASSWORD": unquote(parsed.password or ""),
            "EMAIL_USE_SSL": scheme == "smtps",
            "EMAIL_USE_TLS": scheme == "smtp+tls",
        }
    raise ImproperlyConfigured(f"EMAIL_URL has an unknown scheme: {scheme!r}")


globals().update(_email_settings(EMAIL_URL))
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Sun Commune <noreply@sun-commune.example>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Celery -------------------------------------------------------------------

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_QUEUE", "sun_commune")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
# Sending a task waits at most this long for the broker; a task that must
# not be lost is in the outbox anyway (sun_commune/outbox.py).
CELERY_BROKER_CONNECTION_TIMEOUT = REDIS_TIMEOUT_SECONDS * 2
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": REDIS_TIMEOUT_SECONDS * 2}
# How long a task in the outbox may wait for its worker before the drain
# (beat, and each worker as it starts) sends it again.
OUTBOX_RESEND_SECONDS = int(os.environ.get("OUTBOX_RESEND_SECONDS", "60"))
NEED_EXPIRY_INTERVAL_SECONDS = int(os.environ.get("NEED_EXPIRY_INTERVAL_SECONDS", "3600"))
# How often the beat makes pairings' installments (each period's need and pledge) that are due.
PAIRING_INTERVAL_SECONDS = int(os.environ.get("PAIRING_INTERVAL_SECONDS", "3600"))


def _beat_schedule():
    from celery.schedules import crontab

    return {
        "expire-needs": {"task": "donations.tasks.expire_overdue_needs", "schedule": NEED_EXPIRY_INTERVAL_SECONDS},
        "publish-ledger": {"task": "donations.tasks.publish_ledger", "schedule": LEDGER_PUBLISH_INTERVAL_SECONDS},
        "check-ledger": {
            "task": "donations.tasks.check_ledger",
            "schedule": crontab(hour=LEDGER_CHECK_HOUR, minute=17),
        },
        "drain-outbox": {"task": "sun_commune.outbox.drain_outbox", "schedule": OUTBOX_RESEND_SECONDS},
        "pairing-pledges": {"task": "donations.tasks.create_pairing_pledges", "schedule": PAIRING_INTERVAL_SECONDS},
        "release-unpaid-pledges": {
            "task": "donations.tasks.release_unpaid_money_pledges",
            "schedule": crontab(hour=MONEY_PLEDGE_RELEASE_HOUR, minute=27),
        },
        "check-loan-repayments": {
            "task": "cooperatives.tasks.check_loan_repayments",
            "schedule": crontab(hour=COOP_LOAN_CHECK_HOUR, minute=7),
        },
        # The village figures behind the register's reports, counted again nightly.
        "register-figures": {
            "task": "households.tasks.refresh_register_figures",
            "schedule": crontab(hour=3, minute=37),
        },
    }


# --- The public ledger ------------------------------------------------------------

# Ed25519 private key (32-byte seed as 64 hex characters) that signs the
# ledger's checkpoints; `manage.py make_secrets` makes one. Development derives
# a fixed key from SECRET_KEY; production refuses to start without one.
LEDGER_SIGNING_KEY = os.environ.get("LEDGER_SIGNING_KEY", "")
if not LEDGER_SIGNING_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "LEDGER_SIGNING_KEY is not set. Make one with `python manage.py make_secrets` (DEBUG=1) and keep it secret."
        )
    import hashlib

    LEDGER_SIGNING_KEY = hashlib.sha256(f"ledger:{SECRET_KEY}".encode()).hexdigest()
# The transparency log's name: the first line of each signed checkpoint and
# the name of its key. By default the site's host and /ledger.
LEDGER_ORIGIN = os.environ.get("LEDGER_ORIGIN", "")
LEDGER_PUBLISH_INTERVAL_SECONDS = int(os.environ.get("LEDGER_PUBLISH_INTERVAL_SECONDS", "60"))
# How long anything kept in the cache may live (the one rule:
# sun_commune/pagecache.py); inside the publication interval. 0 keeps nothing.
PAGE_CACHE_SECONDS = min(int(os.environ.get("PAGE_CACHE_SECONDS", "20")), LEDGER_PUBLISH_INTERVAL_SECONDS)
# Kept parts of pages are also held in each process's memory, up to this many
# characters of HTML; 0 turns that off.
FRAGMENT_LOCAL_BYTES = int(os.environ.get("FRAGMENT_LOCAL_BYTES", str(4 * 1024 * 1024)))
LEDGER_BATCH_MAX = int(os.environ.get("LEDGER_BATCH_MAX", "50000"))
LEDGER_CHECK_HOUR = int(os.environ.get("LEDGER_CHECK_HOUR", "2"))

# --- Pledges that must be honoured ---------------------------------------------------

# How long the link that verifies a donor's e-mail stays good.
DONOR_VERIFY_MAX_AGE_SECONDS = int(os.environ.get("DONOR_VERIFY_MAX_AGE_SECONDS", str(3 * 24 * 3600)))
# A donor is new until their account is PLEDGE_NEW_DONOR_DAYS old and
# PLEDGE_NEW_DONOR_HONOURED of their pledges arrived; until then they hold
# at most the _NEW limits open at once (count, and declared yuan), after
# that the looser ones.
PLEDGE_NEW_DONOR_DAYS = int(os.environ.get("PLEDGE_NEW_DONOR_DAYS", "30"))
PLEDGE_NEW_DONOR_HONOURED = int(os.environ.get("PLEDGE_NEW_DONOR_HONOURED", "2"))
PLEDGE_OPEN_LIMIT_NEW = int(os.environ.get("PLEDGE_OPEN_LIMIT_NEW", "3"))
PLEDGE_OPEN_YUAN_LIMIT_NEW = Decimal(os.environ.get("PLEDGE_OPEN_YUAN_LIMIT_NEW", "2000"))
PLEDGE_OPEN_LIMIT = int(os.environ.get("PLEDGE_OPEN_LIMIT", "20"))
PLEDGE_OPEN_YUAN_LIMIT = Decimal(os.environ.get("PLEDGE_OPEN_YUAN_LIMIT", "100000"))
# Money pledges with no transfer recorded this many days after they were
# made are released (daily, at MONEY_PLEDGE_RELEASE_HOUR).
MONEY_PLEDGE_RELEASE_DAYS = int(os.environ.get("MONEY_PLEDGE_RELEASE_DAYS", "14"))
MONEY_PLEDGE_RELEASE_HOUR = int(os.environ.get("MONEY_PLEDGE_RELEASE_HOUR", "4"))

# --- Ledger downloads as files (issue 14) -------------------------------------------

# ledger.jsonl, ledger.csv and the checkpoints, written when a batch is
# published (donations/downloads.py) and served from here by the proxy
# (ops/nginx.conf) or by the web process; rebuilt by `manage.py
# write_ledger_files`. Shared storage when there are several web machines.
LEDGER_FILES_ROOT = Path(os.environ.get("LEDGER_FILES_ROOT", MEDIA_ROOT.parent / "ledger-files"))
# The 360Giving identifier namespace of the site's open data
# (/ledger/360giving.csv): a prefix registered with 360Giving, "360G-" and a
# name; every grant, donor, household and village identifier starts with it.
GIVING_PREFIX = os.environ.get("GIVING_PREFIX", "360G-suncommune")
if not re.fullmatch(r"360G-[A-Za-z0-9]+(-[A-Za-z0-9]+)*", GIVING_PREFIX):
    raise ImproperlyConfigured(f"GIVING_PREFIX must be 360G- and letters or digits, not {GIVING_PREFIX!r}")

# --- Cooperatives ------------------------------------------------------------------

# Days before a loan repayment falls due that its cooperative's managers are reminded.
COOP_LOAN_REMINDER_DAYS = int(os.environ.get("COOP_LOAN_REMINDER_DAYS", "7"))
COOP_LOAN_CHECK_HOUR = int(os.environ.get("COOP_LOAN_CHECK_HOUR", "8"))

CELERY_BEAT_SCHEDULE = _beat_schedule()

# --- Personal data at rest ------------------------------------------------------------

# Fernet keys (urlsafe base64 of 32 bytes), comma-separated: the first
# encrypts ID and phone numbers, all decrypt (put a new key first to
# rotate). ID_HASH_KEY keys the hash that finds an ID number. `manage.py
# make_secrets` prints fresh values for both. Development derives them from
# SECRET_KEY; production refuses to start without them.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS")
ID_HASH_KEY = os.environ.get("ID_HASH_KEY", "")
if not FIELD_ENCRYPTION_KEYS or not ID_HASH_KEY:
    if not DEBUG:
        missing = "FIELD_ENCRYPTION_KEYS" if not FIELD_ENCRYPTION_KEYS else "ID_HASH_KEY"
        raise ImproperlyConfigured(
            f"{missing} is not set. Make one with `python manage.py make_secrets` (DEBUG=1) and keep it secret."
        )
    import base64
    import hashlib

    FIELD_ENCRYPTION_KEYS = FIELD_ENCRYPTION_KEYS or [
        base64.urlsafe_b64encode(hashlib.sha256(f"fields:{SECRET_KEY}".encode()).digest()).decode()
    ]
    ID_HASH_KEY = ID_HASH_KEY or hashlib.sha256(f"id-hash:{SECRET_KEY}".encode()).hexdigest()

# --- Security -------------------------------------------------------------------

# Behind a reverse proxy that terminates TLS, set SECURE_PROXY_SSL_HEADER=1 so
# Django trusts X-Forwarded-Proto, and TRUSTED_PROXY_COUNT for client addresses.
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
TRUSTED_PROXY_COUNT = int(os.environ.get("TRUSTED_PROXY_COUNT", "0"))
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0" if DEBUG else "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SECURE = SESSION_COOKIE_SECURE
LANGUAGE_COOKIE_SAMESITE = "Lax"

# --- Headers: Content-Security-Policy and private pages (issue 14) -------------

# No inline script and no inline style anywhere: every script and style sheet
# is a file under static/. Pages are kept whole in the cache, so a nonce in
# one would be served again to everyone: there are none. Bootstrap's CSS draws
# some icons from data: URIs, which img-src allows.
INSTALLED_APPS += ["csp"]
# A NUL byte in the path, query string or a form is refused with a 400 before
# any view reads it (PostgreSQL cannot take one in a string); after the
# messages middleware, so that the page it answers has the layout.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.messages.middleware.MessageMiddleware") + 1,
    "sun_commune.middleware.RejectNulMiddleware",
)
# Every response for a logged-in person, or one with a session, is marked
# "Cache-Control: private, no-store" unless the view chose its caching.
MIDDLEWARE += ["csp.middleware.CSPMiddleware", "sun_commune.middleware.PrivatePagesMiddleware"]
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# --- Forms --------------------------------------------------------------------

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# --- Logging: one line per event to stderr; never a household's private field ---

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# Request lines are logged without their query string: the register's name
# and ID-number searches are GET forms (sun_commune/accesslog.py; gunicorn's
# access log is ops/gunicorn.conf.py's logger_class).
LOGGING["filters"] = {"no_query": {"()": "sun_commune.accesslog.DropQueryString"}}
LOGGING["loggers"]["django.server"] = {"handlers": ["stderr"], "filters": ["no_query"], "propagate": False}

ADMIN_URL = os.environ.get("ADMIN_URL", "admin/")

# --- Abuse limits: logins, password resets, request bodies, photos (issue 14) -----
#
# Kept together so that each limit is found in one place; README lists each
# variable. Failed logins are counted by django-axes in PostgreSQL (never
# only in Redis: a restarted cache must not forgive a guesser).

from datetime import timedelta  # noqa: E402

INSTALLED_APPS += ["axes"]
# The body cap runs before anything reads the body (CSRF reads the POST);
# axes turns a lockout into the login page with its message.
MIDDLEWARE = ["sun_commune.limits.RequestBodyLimitMiddleware", *MIDDLEWARE, "axes.middleware.AxesMiddleware"]
# The axes backend refuses a locked-out login before any password is checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", *AUTHENTICATION_BACKENDS]

# Wrong passwords for one account (from anywhere), and from one client
# address (for any accounts), within LOGIN_LOCKOUT_MINUTES, before logging in
# is refused for that account or address until the window has passed. An
# address gets more: a village office or a mobile carrier puts many people
# behind one.
LOGIN_FAILURES_PER_ACCOUNT = int(os.environ.get("LOGIN_FAILURES_PER_ACCOUNT", "10"))
LOGIN_FAILURES_PER_ADDRESS = max(int(os.environ.get("LOGIN_FAILURES_PER_ADDRESS", "40")), LOGIN_FAILURES_PER_ACCOUNT)
LOGIN_LOCKOUT_MINUTES = int(os.environ.get("LOGIN_LOCKOUT_MINUTES", "60"))
AXES_HANDLER = "sun_commune.throttle.LoginThrottle"
AXES_FAILURE_LIMIT = LOGIN_FAILURES_PER_ACCOUNT  # the address's count is set against it (throttle.py)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
# A guess during a lockout does not make it longer: the account's owner gets
# back in LOGIN_LOCKOUT_MINUTES after it began, however long the guessing goes on.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# A successful login does not wipe the address's count (it would let a
# guesser with one account of their own start again).
AXES_RESET_ON_SUCCESS = False
AXES_CLIENT_IP_CALLABLE = "sun_commune.audit.client_ip"  # the audit log's address, TRUSTED_PROXY_COUNT included
AXES_LOCKOUT_CALLABLE = "sun_commune.throttle.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429

# Mails sent to an address someone typed (password reset, registration):
# at most this many an hour to one address, and from one client address.
TYPED_ADDRESS_MAILS_PER_ADDRESS = int(os.environ.get("TYPED_ADDRESS_MAILS_PER_ADDRESS", "3"))
TYPED_ADDRESS_MAILS_PER_CLIENT = int(os.environ.get("TYPED_ADDRESS_MAILS_PER_CLIENT", "20"))

# Request bodies: a view that takes files says so (sun_commune.limits.accepts_files);
# every other view accepts REQUEST_BODY_MAX_BYTES, and a larger body is refused
# with 413 from its Content-Length, before a byte of it is read.
REQUEST_BODY_MAX_BYTES = int(os.environ.get("REQUEST_BODY_MAX_BYTES", str(64 * 1024)))
# The admin's change lists post many fields at once.
ADMIN_BODY_MAX_BYTES = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = ADMIN_BODY_MAX_BYTES

# Photos: more decoded pixels than this are refused before decoding (a phone
# photo has 12–24 million).
PHOTO_MAX_PIXELS = int(os.environ.get("PHOTO_MAX_PIXELS", str(24_000_000)))
# Axes says INFO for every failed login; its warnings (lockouts) are enough.
LOGGING["loggers"]["axes"] = {"level": "WARNING"}
