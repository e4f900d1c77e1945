"""Settings for the explanation-study platform.

Every value that differs between a laptop and a deployment is read from the
environment (see ``config.env``). Development needs none of them: SQLite in the
project folder, DEBUG on and a development secret. With ``DJANGO_DEBUG=false``
a secret key and the allowed hosts are required.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from config.env import (
    env_bool,
    env_choice,
    env_database,
    env_int,
    env_list,
    env_rate,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DJANGO_DEBUG", True)

_DEV_SECRET = "dev-only-secret-not-for-production-0f3c9a7e1b2d4c5e8f6a7b9c0d1e2f3a"
_secret = env_str("DJANGO_SECRET_KEY", None)
if _secret is None:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is required when DJANGO_DEBUG=false; set it to a long random "
            "string, e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`."
        )
    _secret = _DEV_SECRET
elif not DEBUG and (len(_secret) < 50 or len(set(_secret)) < 5):
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is too weak for production; use at least 50 random characters."
    )
SECRET_KEY = _secret

ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"] if DEBUG else []
)
if not DEBUG and not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "DJANGO_ALLOWED_HOSTS is required when DJANGO_DEBUG=false; give the host names the "
        "site is served under, comma-separated (e.g. 'study.example.org')."
    )
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_htmx",
    "csp",
    "axes",
    "studyapp",
    "distillation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before the CSRF check, which parses every POST body: participant pages refuse
    # uploads and large bodies from the headers alone.
    "studyapp.middleware.ParticipantBodyLimitMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its 429 answer.
    "axes.middleware.AxesMiddleware",
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
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

DATABASES = {"default": env_database("DATABASE_URL", str(BASE_DIR / "db.sqlite3"))}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Counters that every worker must see alike (failed API tokens, new participants per
# address, admin login failures) live in this cache: the database's own table by default
# (created by migration 0006), or Redis when REDIS_URL is set (needs the redis package).
_redis = env_str("REDIS_URL", None)
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _redis}
        if _redis
        else {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "django_cache",
            # Culling would drop live counters; expired rows are deleted as they are met.
            "OPTIONS": {"MAX_ENTRIES": 1_000_000},
        }
    )
}

# Admin login brute force (django-axes): after ADMIN_LOGIN_FAILURE_LIMIT wrong passwords for
# one user name from one client address, that pair is locked out (429) for
# ADMIN_LOGIN_COOLOFF_MINUTES, even with the right password. Pairs, so a guesser elsewhere
# cannot lock a researcher out. Counted in the shared cache; nothing is written to a table.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.cache.AxesCacheHandler"
AXES_FAILURE_LIMIT = env_int("ADMIN_LOGIN_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("ADMIN_LOGIN_COOLOFF_MINUTES", 30, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "studyapp.ratelimit.client_address"
# Lockouts are still logged as warnings; the start-up banner and per-attempt lines are not.
AXES_VERBOSE = False

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
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
MEDIA_ROOT = BASE_DIR / "media"
MEDIA_URL = "media/"

LOGIN_URL = "admin:login"

# Content-Security-Policy on every response (participant pages, the admin, the API docs):
# only this site's own files run or style a page; no inline script, no eval. htmx is
# configured (a meta tag in base.html) to need neither; the API docs are a page rendered on
# the server from the schema, with no script of their own. Images may be data: URIs (the
# admin's icons use them); nothing else may come from elsewhere.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# Participants keep their place for a working day even if they close the tab.
SESSION_COOKIE_AGE = 60 * 60 * 12
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
DATA_UPLOAD_MAX_MEMORY_SIZE = 20 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 20 * 1024 * 1024

if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 60 * 60 * 24 * 365, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# How many proxies in front of the app append to X-Forwarded-For (nginx alone: 1). The
# client address that rate limits count is read from that header only when this is set.
TRUSTED_PROXY_COUNT = env_int("DJANGO_TRUSTED_PROXIES", 0, minimum=0)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_PARSER_CLASSES": [
        "studyapp.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_THROTTLE_CLASSES": ["rest_framework.throttling.UserRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "user": env_rate("API_THROTTLE_RATE", "600/minute"),
        "anon": "30/minute",
        # Refused calls per client address and per token prefix (valid tokens never count).
        "failed_auth": env_rate("API_FAILED_AUTH_RATE", "30/minute"),
    },
    # The client address REST framework's throttles count, from the trusted proxies only.
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Explanation study API",
    "DESCRIPTION": "Run explanation-rating studies and export their ratings.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["studyapp.api.permissions.MayViewStudies"],
    # Token first, so an anonymous caller gets 401 with a WWW-Authenticate header, as on the API.
    "SERVE_AUTHENTICATION": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
}

# New participants admitted per client address; made-up Prolific IDs from one script
# cannot fill a study faster than this. Counted in the shared cache; addresses are hashed.
PARTICIPANT_START_RATE = env_rate("PARTICIPANT_START_RATE", "20/hour")

# Participants appear in exports only under a salted hash of their Prolific ID.
PSEUDONYM_SALT = env_str("STUDY_PSEUDONYM_SALT", None) or SECRET_KEY
PROLIFIC_COMPLETION_URL = "https://app.prolific.com/submissions/complete?cc={code}"
# Prolific's API: the researcher's token (never stored in the database), the API's address
# (a staging or a local fake server may stand in), and the secret Prolific signs hooks with.
PROLIFIC_API_TOKEN = env_str("PROLIFIC_API_TOKEN", "") or ""
PROLIFIC_API_URL = env_str("PROLIFIC_API_URL", "https://api.prolific.com") or ""
PROLIFIC_HOOK_SECRET = env_str("PROLIFIC_HOOK_SECRET", "") or ""
# A signed hook older (or newer) than this many seconds is refused as a possible replay.
PROLIFIC_HOOK_TOLERANCE_SECONDS = env_int("PROLIFIC_HOOK_TOLERANCE_SECONDS", 300, minimum=1)
RUNS_DIR = Path(env_str("RUNS_DIR", None) or BASE_DIR / "runs")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "{asctime} {levelname} {name}: {message}", "style": "{"},
    },
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {
        "handlers": ["stdout"],
        "level": env_choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")),
    },
    "loggers": {
        # Django's own default gives the `django` logger a console handler and lets it
        # propagate, so every warning (runserver's included) would print twice: once there
        # and once at the root. Its records go to the root handler only.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.db.backends": {"level": "WARNING"},
    },
}
