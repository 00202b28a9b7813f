"""Ferry settings: one file, every knob an environment variable (documented in README)."""

import os
import re
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:  # Docker and Kubernetes secrets arrive as files
        return Path(file_path).read_text().strip()
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    return env_str(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    raw = env_str(name, str(default))
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def installation_secret_key(path: Path) -> str:
    """This installation's own key: read from ``path``, or generated there once (mode 0600).

    So `manage.py <command>` works as README writes it, with no fixed, known key in any
    mode. Written beside and then linked into place: web, worker and beat may start at once,
    and each either creates the file whole or reads the one that won.
    """
    try:
        if path.exists():
            return path.read_text().strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(50) + "\n")
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process won; use its key
        finally:
            draft.unlink()
        return path.read_text().strip()
    except OSError as error:
        raise ImproperlyConfigured(
            f"Set DJANGO_SECRET_KEY, or let Ferry keep its own key in {path}: {error}"
        ) from None


DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")

VAR_DIR = Path(env_str("FERRY_VAR_DIR", str(BASE_DIR / "var")))
SECRET_KEY = env_str("DJANGO_SECRET_KEY") or installation_secret_key(VAR_DIR / "secret_key")

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
    "rest_framework",
    "knox",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "importer",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "importer.middleware.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a lockout into its own response.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    # First, so a locked-out client is refused before its password is even checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "importer:session-list"
LOGOUT_REDIRECT_URL = "login"

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "importer.context_processors.top_bar",
            ],
        },
    },
]


def _database(url: str) -> dict:
    config = dj_database_url.parse(url, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0))
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # The web server, the worker and the scheduler share one file: WAL lets readers
        # run beside the writer, and IMMEDIATE takes the write lock up front so two
        # writers queue on the busy timeout instead of failing to upgrade a read lock.
        config["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
        # A file, not memory, so a real worker process can share the test database.
        config["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
    return config


DATABASES = {
    "default": _database(env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'ferry.sqlite3'}"))
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TZ", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise looks here even in development
STATICFILES_DIRS = [BASE_DIR / "static"]
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

# --- Security ----------------------------------------------------------------------------
# Production (DJANGO_DEBUG off) is HTTPS-only by default, which `check --deploy` wants.
# FERRY_HTTPS=false is for a trial behind plain HTTP, never for production.
FERRY_HTTPS = env_bool("FERRY_HTTPS", not DEBUG)
SECURE_SSL_REDIRECT = FERRY_HTTPS
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # container healthchecks probe over plain HTTP
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = FERRY_HTTPS
SECURE_HSTS_SECONDS = env_int("FERRY_HSTS_SECONDS", 31_536_000) if FERRY_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("FERRY_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("FERRY_HSTS_PRELOAD", True)
if env_bool("FERRY_BEHIND_TLS_PROXY", False):
    # Only behind a proxy that sets this header itself: a client could forge it otherwise.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
SESSION_COOKIE_AGE = env_int("FERRY_SESSION_COOKIE_SECONDS", 8 * 3600)
# htmx and Bootstrap run from our own static files, with no inline script. Style
# attributes stay allowed: progress bars set their width in markup.
FERRY_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "style-src-attr 'unsafe-inline'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)

# Brute-force lockout (django-axes): a username and address pair is locked after
# FERRY_LOGIN_FAILURE_LIMIT failures, for FERRY_LOGIN_LOCKOUT_MINUTES.
AXES_FAILURE_LIMIT = env_int("FERRY_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = env_int("FERRY_LOGIN_LOCKOUT_MINUTES", 15) / 60
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

# --- REST API ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header makes a missing login a 401, not a 403,
    # without the browser's Basic dialog. The session cookie (with CSRF) serves the browser.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "knox.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "importer.api.authentication.LockoutAwareBasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "importer.api.pagination.FerryPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "importer.api.schema.FerryAutoSchema",
    "EXCEPTION_HANDLER": "importer.api.problems.problem_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
REST_KNOX = {
    # Tokens are stored hashed; each expires and can be revoked (POST auth/logout/).
    "TOKEN_TTL": timedelta(days=env_int("FERRY_API_TOKEN_DAYS", 30)),
    "AUTH_HEADER_PREFIX": "Token",
    "AUTO_REFRESH": False,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Ferry API",
    "DESCRIPTION": "Agentless block-storage imports: remote systems, sources, hosts, "
                   "import sessions and their audit trail. Errors are RFC 9457 problem "
                   "details.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "TAGS": [  # the order Swagger UI shows them in: the workflow first
        {"name": "import-sessions", "description": "Imports and their actions"},
        {"name": "remote-systems", "description": "Source arrays, and discovery"},
        {"name": "source-volumes"}, {"name": "source-groups"}, {"name": "hosts"},
        {"name": "volumes", "description": "Destination volumes"}, {"name": "volume-groups"},
        {"name": "storage-nodes", "description": "Worker hosts and their pools"},
        {"name": "events", "description": "The audit log"},
        {"name": "auth", "description": "API tokens"},
    ],
    "ENUM_NAME_OVERRIDES": {
        "SessionStateEnum": "importer.models.STATE_CHOICES",
        "ResourceTypeEnum": "importer.models.DestinationType",
        "NodeStatusEnum": "importer.models.NodeStatus",
    },
}
# How long an Idempotency-Key's first response is kept for replay.
FERRY_IDEMPOTENCY_HOURS = env_int("FERRY_IDEMPOTENCY_HOURS", 24)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Control characters in a logged name are escaped: one record, one line.
    "formatters": {"escaped": {"()": "importer.validation.EscapingFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "escaped"}},
    "root": {"handlers": ["console"], "level": env_str("FERRY_LOG_LEVEL", "INFO")},
    # Ferry's audit log records logins; axes would repeat each one at INFO.
    "loggers": {"axes": {"level": "WARNING"}},
}

# --- Ferry -------------------------------------------------------------------------------
# Folders a `directory` remote system may point into; nothing outside them is ever read.
FERRY_SOURCE_ROOTS = [
    Path(p) for p in env_list("FERRY_SOURCE_ROOTS", str(VAR_DIR / "sources"))
]
# Where destination volumes (sparse files) are created: this storage node's pool.
FERRY_POOL_DIR = Path(env_str("FERRY_POOL_DIR", str(VAR_DIR / "pool")))
# This process's storage node (only a worker acts as one): its name, and the Celery queue
# that its worker consumes besides the shared one. One name, one pool: two workers that
# share a name must share the pool too.
FERRY_NODE_NAME = env_str("FERRY_NODE_NAME", "node-1").strip()
if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", FERRY_NODE_NAME):
    raise ImproperlyConfigured(
        f"FERRY_NODE_NAME must be 1 to 64 letters, digits, '.', '_' or '-' (starting with a "
        f"letter or digit), not {FERRY_NODE_NAME!r}")
FERRY_NODE_QUEUE = f"ferry.node.{FERRY_NODE_NAME}"
# Front ends: from Enable Destination Volume on, each destination is served to its hosts
# over NBD by an nbdkit on its node (importer.frontends). Its runtime files (copied map,
# write intents, locks) live in FERRY_RUNTIME_DIR, on the node's local disk.
FERRY_RUNTIME_DIR = Path(env_str("FERRY_RUNTIME_DIR", str(VAR_DIR / "run")))
FERRY_FRONTEND_ADDRESS = env_str("FERRY_FRONTEND_ADDRESS", "127.0.0.1")  # where it listens
FERRY_FRONTEND_HOST = env_str("FERRY_FRONTEND_HOST", FERRY_FRONTEND_ADDRESS)  # hosts dial it
FERRY_FRONTEND_PORTS = tuple(int(port) for port in
                             env_str("FERRY_FRONTEND_PORTS", "10809-10999").split("-", 1))
# Hosts first: while they do I/O on a volume, its copy waits this long before each chunk.
FERRY_HOST_YIELD_SECONDS = float(env_str("FERRY_HOST_YIELD_SECONDS", "0.02"))
# Test builds only: serve without the range locks, to prove the chaos test can fail.
FERRY_FRONTEND_NOLOCK = env_bool("FERRY_FRONTEND_NOLOCK", False)
# A worker reports its node's health and free space this often; a node not heard from
# for FERRY_NODE_OFFLINE_SECONDS is Offline: no new import goes to it.
FERRY_NODE_HEARTBEAT_SECONDS = env_int("FERRY_NODE_HEARTBEAT_SECONDS", 10)
FERRY_NODE_OFFLINE_SECONDS = env_int("FERRY_NODE_OFFLINE_SECONDS",
                                     3 * FERRY_NODE_HEARTBEAT_SECONDS)
# A pool with less free space than this is full: its node is Unhealthy.
FERRY_POOL_MIN_FREE_BYTES = env_int("FERRY_POOL_MIN_FREE_BYTES", 1024 * 1024 * 1024)
# How long a discovery job may run before the system is marked unreachable.
FERRY_DISCOVERY_SECONDS = env_int("FERRY_DISCOVERY_SECONDS", 120)
# How many imports may hold a slot (set up and not yet finished) at once.
FERRY_MAX_ACTIVE_IMPORTS = env_int("FERRY_MAX_ACTIVE_IMPORTS", 8)
# How long Ferry waits for an NBD server's handshake (libnbd alone waits as long as TCP).
FERRY_NBD_CONNECT_TIMEOUT = env_int("FERRY_NBD_CONNECT_TIMEOUT", 10)
# `make run`'s demo NBD array: nbdkit serves the images in this folder on this socket.
FERRY_DEMO_NBD_DIR = VAR_DIR / "nbd-demo"
FERRY_DEMO_NBD_SOCKET = VAR_DIR / "run" / "nbd-demo.sock"
# How often the scheduler checks that each remote system answers (connect, latency).
FERRY_HEALTH_CHECK_SECONDS = env_int("FERRY_HEALTH_CHECK_SECONDS", 60)
# How long finished jobs stay on the Jobs page before the scheduler forgets them.
FERRY_JOB_RETENTION_DAYS = env_int("FERRY_JOB_RETENTION_DAYS", 30)
# Who gets an e-mail for each new alert (comma-separated; empty: no mail), and how it goes.
FERRY_ALERT_EMAILS = env_list("FERRY_ALERT_EMAILS")
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "ferry@localhost")

# --- Celery ------------------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = (env_str("CELERY_BROKER_URL") or env_str("REDIS_URL")
                     or "filesystem://localhost/")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's filesystem transport needs no server: the embedded default.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        # kombu polls the folder, by default once a second: every hand-off between jobs
        # (a copy to its cutover, one slice to the next) would wait for it.
        "polling_interval": float(env_str("FERRY_BROKER_POLL_SECONDS", "0.05")),
    }
    CELERY_BROKER_TRANSPORT = "config.celery:FilesystemTransport"
    for _folder in ("queue", "control"):  # the transport needs them before any message
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
else:
    # Every copy slice is far shorter than this, so Redis never redelivers a live task.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # kombu's Redis transport, but a broker outage with a task in flight does not make
    # the worker exit (see config/celery.py); Celery keeps reconnecting.
    CELERY_BROKER_TRANSPORT = "config.celery:RedisTransport"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Processes per worker: each running copy holds one for a slice, and the jobs of other
# sessions (setup, cutover, cancel) wait for a free one. A copy mostly waits on the network
# and the disk, so a node runs more copies than it has cores. Read here, so that runferry,
# docker-compose and a bare `celery worker` agree without a --concurrency of their own.
CELERY_WORKER_CONCURRENCY = env_int("FERRY_WORKER_CONCURRENCY", 4)
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A broker outage never stops the worker: it retries forever (Celery's default gives up
# after 100 attempts, about 45 minutes), and a running copy goes on, since it needs only
# the database; its next slice is sent once the broker is back, or the reaper re-sends it.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_TIMEZONE = TIME_ZONE
# A worker consumes every queue listed here unless -Q says otherwise: the shared queue
# (discovery, the scheduler's tick) and its own node's (the jobs of the sessions whose
# destinations are in its pool). Derived from FERRY_NODE_NAME here, so `celery worker`,
# runferry and docker-compose need no -Q that could disagree with the node's name. Each
# queue has its own exchange and routing key: Celery would bind a bare Queue to the
# default ones, and every shared message would reach every node's queue too.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name, type="direct"), routing_key=name)
    for name in (CELERY_TASK_DEFAULT_QUEUE, FERRY_NODE_QUEUE)
]
CELERY_BEAT_SCHEDULE = {
    "scheduler-tick": {
        "task": "importer.tasks.scheduler_tick_task",
        "schedule": float(env_int("FERRY_TICK_SECONDS", 5)),
    },
}

# --- The data mover ----------------------------------------------------------------------
MiB = 1024 * 1024
FERRY_CHUNK_BYTES = env_int("FERRY_CHUNK_BYTES", 8 * MiB)
FERRY_CHECKPOINT_BYTES = env_int("FERRY_CHECKPOINT_BYTES", 128 * MiB)
FERRY_CHECKPOINT_SECONDS = float(env_str("FERRY_CHECKPOINT_SECONDS", "1.0"))
FERRY_COPY_SLICE_SECONDS = float(env_str("FERRY_COPY_SLICE_SECONDS", "20"))
FERRY_LEASE_SECONDS = env_int("FERRY_LEASE_SECONDS", 15)
FERRY_VERIFY_CHECKSUMS = env_bool("FERRY_VERIFY_CHECKSUMS", True)
# How long an NBD read keeps reconnecting to a server that dropped or failed it.
FERRY_NBD_RETRY_SECONDS = float(env_str("FERRY_NBD_RETRY_SECONDS", "30"))
# Connections to a server that allows multi-conn (else one), shared by a node's running
# copies: each copy slice takes its share, at least one.
FERRY_NBD_CONNECTIONS = env_int("FERRY_NBD_CONNECTIONS", 4)
# Bytes per second shared by all copies; 0 means no global limit.
FERRY_GLOBAL_BANDWIDTH = env_int("FERRY_GLOBAL_BANDWIDTH", 0)
# The charts' history: one transfer-rate sample per session at most this often, kept
# this many days (services.samples).
FERRY_SAMPLE_SECONDS = float(env_str("FERRY_SAMPLE_SECONDS", "5"))
FERRY_SAMPLE_RETENTION_DAYS = env_int("FERRY_SAMPLE_RETENTION_DAYS", 7)
