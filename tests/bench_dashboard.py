"""`make bench`, the dashboard and API part: server time of the imports page, a row poll and
the REST API's session list with 10,000 sessions (1,000 groups of 5 plus 5,000 volumes).
Prints a table and a JSON line.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import time
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from knox.models import AuthToken  # noqa: E402

from importer.models import ImportSession  # noqa: E402

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "100"))
TARGETS_MS = {"page": 150, "filtered": 150, "row_poll": 30, "api_list_100": 100,
              "api_filtered_100": 100, "api_group": 100}


def timings(client: Client, url: str, **headers) -> list[float]:
    client.get(url, **headers)  # warm the caches once, as a live server would be
    gc.freeze()  # as config/gunicorn.py does in each worker once the app is loaded
    samples = []
    for _ in range(REQUESTS):
        started = time.perf_counter()
        response = client.get(url, **headers)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return samples


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


def main() -> None:
    Path(settings.DATABASES["default"]["NAME"]).unlink(missing_ok=True)
    call_command("migrate", verbosity=0)
    call_command("seed_sessions", verbosity=0)
    user = User.objects.create_superuser("bench", "", "bench-password")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    group = ImportSession.objects.filter(parent_session__isnull=True,
                                         source_group__isnull=False).first()
    token = {"HTTP_AUTHORIZATION": f"Token {AuthToken.objects.create(user)[1]}"}
    api = "/api/v1/import-sessions/"
    cases = {
        "page": ("/", {}),
        "filtered": ("/?state=Copy_In_Progress&state=Paused&q=bench&sort=name", {}),
        "row_poll": (f"/imports/{group.pk}/row/", {"HTTP_HX_REQUEST": "true"}),
        "api_list_100": (f"{api}?limit=100", token),
        "api_filtered_100": (f"{api}?limit=100&state=Copy_In_Progress&state=Paused"
                             "&top_level=true&ordering=name", token),
        "api_group": (f"{api}{group.pk}/", token),
    }
    results = {}
    print(f"\nDashboard with {ImportSession.objects.count()} sessions, {REQUESTS} requests "
          "each (server time, in-process):")
    print(f"{'request':<18} {'p50 ms':>8} {'p95 ms':>8}  target p95")
    for name, (url, headers) in cases.items():
        samples = timings(client, url, **headers)
        results[name] = {"p50_ms": round(statistics.median(samples), 1),
                         "p95_ms": round(p95(samples), 1)}
        print(f"{name:<18} {results[name]['p50_ms']:>8} {results[name]['p95_ms']:>8}  "
              f"<= {TARGETS_MS[name]} ms")
    met = {name: results[name]["p95_ms"] <= TARGETS_MS[name] for name in results}
    print(json.dumps({"bench": "dashboard", "sessions": ImportSession.objects.count(),
                      **results, "targets_met": met}))


if __name__ == "__main__":
    main()
