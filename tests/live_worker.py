"""A real Celery worker (and beat) in separate processes, for the integration suite.

The worker shares the test database (a file under var/test on SQLite, test_<name> on
PostgreSQL) and the broker of the configuration under test: kombu's filesystem transport
by default, Redis when CELERY_BROKER_URL says so. Settings reach it through its environment.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return (f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}")


def purge_broker() -> None:
    """Leftover messages from an earlier test must not reach this test's worker."""
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        shutil.rmtree(settings.BROKER_DIR / "queue", ignore_errors=True)
        (settings.BROKER_DIR / "queue").mkdir(parents=True, exist_ok=True)
    else:
        from config.celery import app
        app.control.purge()


class LiveWorker:
    def __init__(self, log_dir: Path, environment: dict[str, str], name: str = "test"):
        self.log_dir, self.name = log_dir, name  # name: unique among the test's workers
        self.env = {**os.environ, **environment, "DATABASE_URL": database_url(),
                    "PYTHONUNBUFFERED": "1"}
        self.processes: list[subprocess.Popen] = []
        self.worker: subprocess.Popen | None = None
        self.generation = 0

    def start(self, with_beat: bool = True) -> LiveWorker:
        self.start_worker()
        if with_beat:
            self.processes.append(self._spawn("beat", [
                "beat", "--loglevel=INFO", f"--schedule={self.log_dir / 'beat-schedule'}"]))
        return self

    def start_worker(self) -> None:
        self.generation += 1
        log = self.log_dir / f"worker-{self.generation}.log"
        self.worker = self._spawn(f"worker-{self.generation}", [
            "worker", "--loglevel=INFO", "--without-heartbeat",
            "--without-gossip", "--without-mingle",
            f"--hostname={self.name}{self.generation}-{os.getpid()}@%h"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if "ready." in log.read_text(errors="replace"):
                return
            if self.worker.poll() is not None:
                raise RuntimeError(f"the worker died at start:\n{log.read_text()}")
            time.sleep(0.1)
        raise RuntimeError(f"the worker did not start:\n{log.read_text()}")

    def _spawn(self, name: str, arguments: list[str]) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "w")
        process = subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", *arguments],
                                   cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.processes.append(process)
        return process

    def kill_worker(self) -> None:
        """kill -9 of the worker and every pool process: nothing gets to clean up."""
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait()

    def child_pids(self) -> list[int]:
        children = Path(f"/proc/{self.worker.pid}/task/{self.worker.pid}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []

    def stop(self) -> None:
        """Tear down at once: the test is over and its database is about to be flushed."""
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def logs(self) -> str:
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
                         for path in sorted(self.log_dir.glob("*.log")))
