"""Settings for Hobbies Community.

Every value that differs between machines is read once, here, from the environment, with an
embedded default that runs the whole app on one machine (SQLite, in-process channel layer, local
files, local accounts). `docs/configuration.md` lists every variable.
"""

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("HOBBIES_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_rate(name: str, default: str) -> tuple[int, int]:
    """A rate written `COUNT/SECONDS`, e.g. `20/10` is twenty per ten seconds."""
    count, _, seconds = os.environ.get(name, default).partition("/")
    return int(count), int(seconds or 1)


def _secret_key() -> str:
    key = os.environ.get("DJANGO_SECRET_KEY", "").strip()
    if key:
        return key
    # Embedded default: a random key made once per machine and kept out of the repository.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
# Earlier keys, still accepted when checking signatures (sessions, password-reset links) while a
# new DJANGO_SECRET_KEY rolls out; new signatures always use SECRET_KEY. Drop them once old
# sessions have expired.
SECRET_KEY_FALLBACKS = env_list("DJANGO_SECRET_KEY_FALLBACKS", "")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")
# Proxies (load balancer, CDN) in front of the app that append to X-Forwarded-For; the client's
# address is read that many entries from the right (`hobbies.http.client_ip`). 0: REMOTE_ADDR.
TRUSTED_PROXY_COUNT = env_int("DJANGO_TRUSTED_PROXIES", 0)
# Origins (`https://chat.example.org`) whose pages may open the WebSocket. Empty: the site's own
# origin as each handshake reaches it, and the CSRF trusted origins (hobbies.guards).
WEBSOCKET_ALLOWED_ORIGINS = env_list("WEBSOCKET_ALLOWED_ORIGINS", "")
PORT = env_int("PORT", 8000)
# The largest request body (the local attachment upload takes ATTACHMENT_MAX_BYTES more);
# larger ones are refused with 413 before they are read (hobbies.guards).
REQUEST_MAX_BYTES = env_int("REQUEST_MAX_BYTES", 4 * 1024 * 1024)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "accounts",
    "communities",
    "chat",
    "analytics",
]

MIDDLEWARE = [
    "hobbies.middleware.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "hobbies.middleware.SignInErrorsMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "hobbies.urls"
ASGI_APPLICATION = "hobbies.asgi.application"
WSGI_APPLICATION = None

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
                "communities.context_processors.site",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = (
    os.environ.get("DATABASE_URL", "").strip() or f"sqlite:///{VAR_DIR / 'hobbies.sqlite3'}"
)
# Keep connections open between requests and socket frames (Channels closes connections older
# than this around every database call; opening a PostgreSQL connection costs milliseconds).
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL,
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets readers work while a message is written; IMMEDIATE takes the write lock at
        # BEGIN so two writers queue instead of failing with "database is locked".
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # A file (not memory) so live-server tests can share it with a server process; one per
    # test run, so concurrent runs never share one.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
# On PostgreSQL, a pool of open connections per process (Django's, over psycopg_pool). Under
# ASGI each HTTP request's synchronous code runs in a thread of its own, so a kept connection
# (CONN_MAX_AGE) would still be a new connection, and a new server backend, per request; the
# pool lends each request and each socket's database thread one that is already open, checked
# before it is lent (CONN_HEALTH_CHECKS). 0 turns the pool off.
DATABASE_POOL_SIZE = env_int("DATABASE_POOL_SIZE", 20)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DATABASE_POOL_SIZE > 0:
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # (a connection goes back to the pool instead)
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": min(4, DATABASE_POOL_SIZE),
        "max_size": DATABASE_POOL_SIZE,
        "timeout": env_float("DATABASE_POOL_TIMEOUT", 5.0),
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channel layer and cache ----------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
CHANNEL_LAYER_PREFIX = os.environ.get("CHANNEL_LAYER_PREFIX", "hobbies")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "hobbies.layers.RedisChannelLayer",
            "CONFIG": {
                # Reads must outlive channels-redis's 5 s blocking pop, or an idle receive times
                # out (redis-py's own default socket timeout is also 5 s).
                "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
                "prefix": CHANNEL_LAYER_PREFIX,
                # One hub channel per server process receives every event; give it room.
                "capacity": 10_000,
                "expiry": 60,
                "group_expiry": 86_400,
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "hobbies.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CHANNEL_LAYER_PREFIX,
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "hobbies.layers.LocalChannelLayer",
            "CONFIG": {"capacity": 10_000, "expiry": 60},
        }
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Accounts -------------------------------------------------------------------------------
AUTH_USER_MODEL = "hobbies.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "directory"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
DEMO_PASSWORD = os.environ.get("DEMO_PASSWORD", "hobbies-demo-2026")

# Local accounts (username and password, sign-up) are the embedded default; a site that signs
# everyone in through its OpenID Connect provider can switch them off.
LOCAL_LOGIN_ENABLED = env_bool("LOCAL_LOGIN_ENABLED", True)

# --- Sign-in through OpenID Connect (Amazon Cognito, or another provider) -------------------
OIDC_ISSUER = os.environ.get("OIDC_ISSUER", "").strip()
OIDC_CLIENT_ID = os.environ.get("OIDC_CLIENT_ID", "").strip()
OIDC_CLIENT_SECRET = os.environ.get("OIDC_CLIENT_SECRET", "").strip()
OIDC_LABEL = os.environ.get("OIDC_LABEL", "").strip() or "Amazon Cognito"
OIDC_SCOPES = os.environ.get("OIDC_SCOPES", "").strip() or "openid email profile"
OIDC_GROUPS_CLAIM = os.environ.get("OIDC_GROUPS_CLAIM", "").strip() or "cognito:groups"
# Provider endpoints come from the issuer's discovery document; each one can be set instead.
OIDC_DISCOVERY_URL = os.environ.get("OIDC_DISCOVERY_URL", "").strip()
OIDC_AUTHORIZATION_ENDPOINT = os.environ.get("OIDC_AUTHORIZATION_ENDPOINT", "").strip()
OIDC_TOKEN_ENDPOINT = os.environ.get("OIDC_TOKEN_ENDPOINT", "").strip()
OIDC_JWKS_URI = os.environ.get("OIDC_JWKS_URI", "").strip()
OIDC_END_SESSION_ENDPOINT = os.environ.get("OIDC_END_SESSION_ENDPOINT", "").strip()
# Cognito's hosted-UI logout (`https://<domain>/logout`), which takes `client_id` and `logout_uri`.
OIDC_LOGOUT_URL = os.environ.get("OIDC_LOGOUT_URL", "").strip()
OIDC_LOGOUT_REDIRECT_URI = os.environ.get("OIDC_LOGOUT_REDIRECT_URI", "").strip()
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT", 10)
OIDC_CACHE_SECONDS = env_int("OIDC_CACHE_SECONDS", 3600)
OIDC_JWKS_MIN_REFRESH_SECONDS = env_int("OIDC_JWKS_MIN_REFRESH_SECONDS", 60)
OIDC_CLOCK_SKEW_SECONDS = env_int("OIDC_CLOCK_SKEW_SECONDS", 60)
OIDC_ID_TOKEN_MAX_AGE_SECONDS = env_int("OIDC_ID_TOKEN_MAX_AGE_SECONDS", 600)
OIDC_STATE_MAX_AGE_SECONDS = env_int("OIDC_STATE_MAX_AGE_SECONDS", 600)
SITE_ROLES = ("moderator", "admin")


def env_group_roles(name: str) -> dict[str, str]:
    """Provider groups that grant site roles, written `group=role,...` (`moderators=moderator`)."""
    roles: dict[str, str] = {}
    for item in env_list(name, ""):
        group, _, role = (part.strip() for part in item.partition("="))
        if not group or role not in SITE_ROLES:
            raise ImproperlyConfigured(f"{name}: {item!r} is not group=role, role in {SITE_ROLES}")
        roles[group] = role
    return roles


OIDC_GROUP_ROLES = env_group_roles("OIDC_GROUP_ROLES")
OIDC_ENABLED = bool(OIDC_ISSUER and OIDC_CLIENT_ID)
OIDC_BACKEND = "accounts.backends.OIDCBackend"
AUTHENTICATION_BACKENDS = [
    *(["django.contrib.auth.backends.ModelBackend"] if LOCAL_LOGIN_ENABLED else []),
    *([OIDC_BACKEND] if OIDC_ENABLED else []),
]
if not AUTHENTICATION_BACKENDS:
    raise ImproperlyConfigured("LOCAL_LOGIN_ENABLED is off and OIDC_ISSUER is not set: no way in.")
if OIDC_ENABLED:
    INSTALLED_APPS.append("mozilla_django_oidc")
# The names mozilla-django-oidc reads: code flow with PKCE (S256), state and nonce, RS256.
OIDC_RP_SCOPES = OIDC_SCOPES
OIDC_RP_SIGN_ALGO = "RS256"
OIDC_USE_NONCE = True
OIDC_USE_PKCE = True
OIDC_PKCE_CODE_CHALLENGE_METHOD = "S256"
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc_callback"
OIDC_STORE_ID_TOKEN = True

# --- Security -------------------------------------------------------------------------------
SECURE_COOKIES = env_bool("DJANGO_SECURE_COOKIES", False)
SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_FAILURE_VIEW = "hobbies.http.csrf_failure"
SILENCED_SYSTEM_CHECKS: list[str] = []


def _proxy_ssl_header() -> tuple[str, str] | None:
    """The request header and value by which the proxy in front says the client used HTTPS,
    written `HEADER,VALUE` (Django's META name); `off` when TLS reaches the app itself."""
    value = os.environ.get("DJANGO_SECURE_PROXY_SSL_HEADER", "").strip()
    if not value:
        return ("HTTP_X_FORWARDED_PROTO", "https")
    if value.lower() in {"0", "off", "none"}:
        return None
    header, _, expected = (part.strip() for part in value.partition(","))
    if not header.startswith("HTTP_") or not expected or "," in expected:
        raise ImproperlyConfigured(
            f"DJANGO_SECURE_PROXY_SSL_HEADER: {value!r} is not HTTP_HEADER_NAME,value "
            "(e.g. HTTP_X_FORWARDED_PROTO,https) or off"
        )
    return (header, expected)


if SECURE_COOKIES:
    # Production, over HTTPS (TLS usually ends at the load balancer, which says so here).
    SECURE_PROXY_SSL_HEADER = _proxy_ssl_header()
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 365 * 86_400)
    # Both reach beyond this site (every subdomain; browsers' built-in lists), and are hard to
    # take back: the operator opts in. Left off on purpose, Django's checks need not say so.
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", False)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
    if not SECURE_HSTS_INCLUDE_SUBDOMAINS:
        SILENCED_SYSTEM_CHECKS.append("security.W005")
    if not SECURE_HSTS_PRELOAD:
        SILENCED_SYSTEM_CHECKS.append("security.W021")
    # Plain HTTP is redirected to HTTPS, except the load balancer's health checks. Off
    # (`DJANGO_SSL_REDIRECT=0`) when the proxy in front already redirects.
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    if not SECURE_SSL_REDIRECT:
        SILENCED_SYSTEM_CHECKS.append("security.W008")

# --- Static and media files -----------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", "").strip() or VAR_DIR / "static")
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_URL = "/media/"
MEDIA_ROOT = VAR_DIR / "media"
# Off (the embedded default): WhiteNoise serves the files straight from the source tree, under
# their own names, with no build step. On (the container image, after `collectstatic`): only
# the collected files, under content-hashed names that browsers may cache for ever, with gzip
# copies. Pages fail to render on a file missing from the manifest, so switch it on
# only where `collectstatic` has run with the same setting.
STATIC_MANIFEST = env_bool("DJANGO_STATIC_MANIFEST", False)
WHITENOISE_USE_FINDERS = not STATIC_MANIFEST
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "hobbies.staticfiles.HashedStaticFilesStorage"
            if STATIC_MANIFEST
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Chat -----------------------------------------------------------------------------------
MESSAGING_BACKEND = os.environ.get("MESSAGING_BACKEND", "local").strip() or "local"
# MESSAGING_BACKEND=chime: Amazon Chime SDK messaging (docs/chime.md). The endpoint overrides
# point the clients elsewhere (the test suite's fake Chime on loopback).
CHIME_APP_INSTANCE_ARN = os.environ.get("CHIME_APP_INSTANCE_ARN", "").strip()
CHIME_APP_INSTANCE_NAME = os.environ.get("CHIME_APP_INSTANCE_NAME", "").strip() or "hobbies"
CHIME_BRIDGE_USER_ID = os.environ.get("CHIME_BRIDGE_USER_ID", "").strip() or "hobbies-bridge"
CHIME_BRIDGE_USER_ARN = os.environ.get("CHIME_BRIDGE_USER_ARN", "").strip()
CHIME_USER_ID_PREFIX = os.environ.get("CHIME_USER_ID_PREFIX", "").strip() or "hobbies-user-"
CHIME_RETENTION_DAYS = env_int("CHIME_RETENTION_DAYS", 0)
AWS_REGION = (
    os.environ.get("AWS_REGION", "").strip()
    or os.environ.get("AWS_DEFAULT_REGION", "").strip()
    or "us-east-1"
)
CHIME_IDENTITY_ENDPOINT_URL = os.environ.get("CHIME_IDENTITY_ENDPOINT_URL", "").strip() or None
CHIME_MESSAGING_ENDPOINT_URL = os.environ.get("CHIME_MESSAGING_ENDPOINT_URL", "").strip() or None
CHIME_SESSION_SCHEME = os.environ.get("CHIME_SESSION_SCHEME", "").strip() or "wss"
CHIME_RETRY_MODE = os.environ.get("CHIME_RETRY_MODE", "").strip() or "adaptive"
CHIME_MAX_ATTEMPTS = env_int("CHIME_MAX_ATTEMPTS", 5)
CHIME_TIMEOUT = env_float("CHIME_TIMEOUT", 5.0)
# Channel flows: the bridge asks Chime about a PENDING message first after this many seconds
# (then doubling, up to 30 s), and gives it up as FAILED this long after it was sent.
CHIME_FLOW_POLL_SECONDS = env_float("CHIME_FLOW_POLL_SECONDS", 2.0)
CHIME_FLOW_TIMEOUT_SECONDS = env_int("CHIME_FLOW_TIMEOUT_SECONDS", 300)
CHAT_MESSAGE_MAX_LENGTH = env_int("CHAT_MESSAGE_MAX_LENGTH", 4000)
CHAT_PAGE_SIZE = env_int("CHAT_PAGE_SIZE", 50)
CHAT_REPLAY_LIMIT = env_int("CHAT_REPLAY_LIMIT", 1000)
CHAT_SOCKET_MAX_PENDING = env_int("CHAT_SOCKET_MAX_PENDING", 4096)
CHAT_SOCKET_MAX_BUFFER_BYTES = env_int("CHAT_SOCKET_MAX_BUFFER_BYTES", 1024 * 1024)
CHAT_SOCKET_DRAIN_SECONDS = env_int("CHAT_SOCKET_DRAIN_SECONDS", 10)
CHAT_FRAME_MAX_BYTES = env_int("CHAT_FRAME_MAX_BYTES", 64 * 1024)
CHAT_SOCKET_MAX_INBOUND_BYTES = env_int("CHAT_SOCKET_MAX_INBOUND_BYTES", 256 * 1024)
CHAT_PRESENCE_TTL = env_int("CHAT_PRESENCE_TTL", 60)
# Threads (each with its own database connection) that run the sockets' database work.
CHAT_DB_THREADS = env_int("CHAT_DB_THREADS", 8)
# How often each process checks its channels' heads in the database for messages it never saw
# published, and checks that the channel layer still delivers to it (docs/architecture.md).
CHAT_HEAD_INTERVAL = env_float("CHAT_HEAD_INTERVAL", 2.0)
CHAT_HUB_CANARY_SECONDS = env_float("CHAT_HUB_CANARY_SECONDS", 5.0)
CHAT_AUTH_RECHECK_SECONDS = env_int("CHAT_AUTH_RECHECK_SECONDS", 60)
CHAT_MAX_SOCKETS_PER_USER = env_int("CHAT_MAX_SOCKETS_PER_USER", 20)
RATE_LIMITS_ENABLED = env_bool("RATE_LIMITS_ENABLED", True)
RATE_LIMIT_MESSAGES_USER = env_rate("RATE_LIMIT_MESSAGES_USER", "20/10")
RATE_LIMIT_MESSAGES_CHANNEL = env_rate("RATE_LIMIT_MESSAGES_CHANNEL", "60/10")
RATE_LIMIT_REACTIONS_USER = env_rate("RATE_LIMIT_REACTIONS_USER", "30/10")
RATE_LIMIT_LOGIN = env_rate("RATE_LIMIT_LOGIN", "10/300")
RATE_LIMIT_SIGNUP = env_rate("RATE_LIMIT_SIGNUP", "5/3600")
RATE_LIMIT_UPLOADS_USER = env_rate("RATE_LIMIT_UPLOADS_USER", "60/60")
# Messages replayed to one user (subscribe with `since`), over all their sockets.
CHAT_REPLAY_BUDGET = env_rate("CHAT_REPLAY_BUDGET", "3000/60")

# --- Attachments ----------------------------------------------------------------------------
# `local` keeps files under VAR_DIR/attachments and serves them through Django; `s3` keeps them
# in a private bucket that browsers upload to with presigned POSTs and read through presigned
# GETs handed out by our permission-checked views. `chat/storage.py` is the only code that knows.
STORAGE_BACKEND = os.environ.get("STORAGE_BACKEND", "local").strip().lower() or "local"
ATTACHMENTS_ROOT = Path(os.environ.get("ATTACHMENTS_ROOT", VAR_DIR / "attachments"))
AWS_STORAGE_BUCKET_NAME = os.environ.get("AWS_STORAGE_BUCKET_NAME", "").strip()
AWS_S3_REGION_NAME = os.environ.get("AWS_S3_REGION_NAME", "").strip() or None
AWS_S3_ENDPOINT_URL = os.environ.get("AWS_S3_ENDPOINT_URL", "").strip() or None
AWS_S3_ADDRESSING_STYLE = os.environ.get("AWS_S3_ADDRESSING_STYLE", "").strip() or None
AWS_S3_TIMEOUT = env_int("AWS_S3_TIMEOUT", 10)
if STORAGE_BACKEND not in {"local", "s3"}:
    raise ValueError("STORAGE_BACKEND is `local` or `s3`.")
if STORAGE_BACKEND == "s3" and not AWS_STORAGE_BUCKET_NAME:
    raise ValueError("STORAGE_BACKEND=s3 needs AWS_STORAGE_BUCKET_NAME.")
ATTACHMENT_MAX_BYTES = env_int("ATTACHMENT_MAX_BYTES", 25 * 1024 * 1024)
ATTACHMENT_MAX_PER_MESSAGE = env_int("ATTACHMENT_MAX_PER_MESSAGE", 10)
ATTACHMENT_USER_QUOTA_BYTES = env_int("ATTACHMENT_USER_QUOTA_BYTES", 1024 * 1024 * 1024)
ATTACHMENT_ALLOWED_TYPES = env_list(
    "ATTACHMENT_ALLOWED_TYPES",
    "image/jpeg,image/png,image/gif,image/webp,application/pdf,application/zip,text/plain,"
    "audio/mpeg,audio/ogg,video/mp4,video/webm",
)
# Pixels of all frames together (an animation decodes every frame), and frames of one image.
ATTACHMENT_MAX_IMAGE_PIXELS = env_int("ATTACHMENT_MAX_IMAGE_PIXELS", 50_000_000)
ATTACHMENT_MAX_IMAGE_FRAMES = env_int("ATTACHMENT_MAX_IMAGE_FRAMES", 100)
ATTACHMENT_IMAGE_MAX_SIDE = env_int("ATTACHMENT_IMAGE_MAX_SIDE", 4096)
ATTACHMENT_THUMBNAIL_SIDE = env_int("ATTACHMENT_THUMBNAIL_SIDE", 480)
ATTACHMENT_UPLOAD_EXPIRY = env_int("ATTACHMENT_UPLOAD_EXPIRY", 900)
ATTACHMENT_DOWNLOAD_EXPIRY = env_int("ATTACHMENT_DOWNLOAD_EXPIRY", 60)
ATTACHMENT_STALE_AFTER = env_int("ATTACHMENT_STALE_AFTER", 86_400)
ATTACHMENT_DELETED_RETENTION = env_int("ATTACHMENT_DELETED_RETENTION", 30 * 86_400)

# --- Content Security Policy ----------------------------------------------------------------
# Sent on every response by `hobbies.middleware.ContentSecurityPolicyMiddleware`: scripts,
# styles and connections only from this site, nothing inline, no framing. With attachments in
# S3 the browser also uploads to the bucket (presigned POST) and loads images from it (presigned
# GET); the sign-in and log-out forms may end at the OpenID provider. `DJANGO_CSP` replaces it.


def _origin(url: str | None) -> str:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def _bucket_origins() -> list[str]:
    """Where boto3's presigned URLs for the bucket point (path-style or virtual-hosted)."""
    if STORAGE_BACKEND != "s3":
        return []
    bucket, style = AWS_STORAGE_BUCKET_NAME, AWS_S3_ADDRESSING_STYLE
    if AWS_S3_ENDPOINT_URL:
        endpoint = urlsplit(AWS_S3_ENDPOINT_URL)
        virtual = [] if style == "path" else [f"{endpoint.scheme}://{bucket}.{endpoint.netloc}"]
        return [_origin(AWS_S3_ENDPOINT_URL), *virtual]
    region = (
        AWS_S3_REGION_NAME or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    )
    hosts = ["s3.amazonaws.com", *([f"s3.{region}.amazonaws.com"] if region else [])]
    if style == "path" or "." in bucket:  # boto3 addresses dotted names by path
        return [f"https://{host}" for host in hosts]
    return [f"https://{bucket}.{host}" for host in hosts]


_CSP_BUCKET = " ".join(_bucket_origins())
_CSP_PROVIDER = " ".join(
    dict.fromkeys(
        origin
        for url in (
            OIDC_ISSUER,
            OIDC_AUTHORIZATION_ENDPOINT,
            OIDC_END_SESSION_ENDPOINT,
            OIDC_LOGOUT_URL,
        )
        if OIDC_ENABLED and (origin := _origin(url))
    )
)
CONTENT_SECURITY_POLICY = os.environ.get("DJANGO_CSP", "").strip() or "; ".join(
    " ".join(part.split())
    for part in (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        f"img-src 'self' data: blob: {_CSP_BUCKET}",
        f"connect-src 'self' {_CSP_BUCKET}",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        f"form-action 'self' {_CSP_PROVIDER}",
        "frame-ancestors 'none'",
    )
)
CONTENT_SECURITY_POLICY_REPORT_ONLY = env_bool("DJANGO_CSP_REPORT_ONLY", False)
# Outermost, so responses that other middleware return early (static files) carry it too.
MIDDLEWARE.insert(0, "hobbies.middleware.ContentSecurityPolicyMiddleware")

# Monitoring (docs/monitoring.md). /metrics answers only clients in METRICS_ALLOWED_NETWORKS
# (loopback by default) and, when METRICS_TOKEN is set, only with `Authorization: Bearer <token>`.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_ALLOWED_NETWORKS = os.environ.get("METRICS_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
METRICS_EMF = env_bool("METRICS_EMF", False)
METRICS_EMF_INTERVAL = env_float("METRICS_EMF_INTERVAL", 60.0)
METRICS_NAMESPACE = os.environ.get("METRICS_NAMESPACE", "HobbiesCommunity")
HOBBIES_ENVIRONMENT = os.environ.get("HOBBIES_ENVIRONMENT", "local")
LOG_FORMAT = os.environ.get("LOG_FORMAT", "plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured("LOG_FORMAT must be `plain` or `json`.")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "hobbies.logs.JsonFormatter"},
    },
    "filters": {"context": {"()": "hobbies.logs.ContextFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"daphne": {"level": "WARNING"}, "django.channels.server": {"level": "WARNING"}},
}
