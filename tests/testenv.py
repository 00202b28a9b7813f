"""Loaded by pytest before Django (``-p tests.testenv``): test-only environment defaults."""

import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("DJANGO_DEBUG", "true")
os.environ.setdefault("FERRY_VAR_DIR", str(_ROOT / "var" / "test"))
os.environ.setdefault("FERRY_TICK_SECONDS", "1")
# pytest-django's live_server and Playwright's page run the ORM from an event loop's thread.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
