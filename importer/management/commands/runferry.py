"""Run Ferry in one terminal: the web server, a Celery worker, the scheduler (beat) and,
when nbdkit is installed, the demo NBD array.

runferry supervises them: a child that dies is restarted, with a line in the log. Ctrl-C
(or SIGTERM) reaches runferry alone, which stops the three and waits for them.
"""

import os
import shutil
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from importer import nbdlib

# Seconds before restarting a child that keeps dying; one that ran STABLE_SECONDS starts over.
RESTART_DELAYS = (1, 2, 5, 10, 30)
STABLE_SECONDS = 60
# Ctrl-C gives each child this long, then kills it and its processes. Celery's warm
# shutdown of even an idle prefork worker takes 3.5 to 7 s (its loop, pool and timer each
# wait out a 1-2 s poll), and killing it loses nothing: every job runs under a lease and is
# sent again by the scheduler once the lease expires (a copy resumes from its checkpoint).
STOP_GRACE_SECONDS = 2.0
# Celery features Ferry does not use (workers watching each other through the broker); with
# Redis, restarting them after a lost connection logs errors. docker-compose matches this.
WORKER_OPTIONS = ("--without-heartbeat", "--without-gossip", "--without-mingle")
# `make run` is a single-user development setup, often run as root in a container: Celery's
# advice against running as root is not for it. Only these children are told to skip it.
QUIET_WARNINGS = "ignore:You're running the worker with superuser privileges"


def describe(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


class Child:
    """One supervised process, in its own session: a terminal's Ctrl-C does not reach it,
    and its group (the worker's pool processes too) can be signalled as a whole."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]):
        self.name, self.command, self.env = name, command, env
        self.process: subprocess.Popen | None = None
        self.started = 0.0
        self.failures = 0
        self.restart_at: float | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, env=self.env, start_new_session=True)
        self.started = time.monotonic()
        self.restart_at = None

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


class Command(BaseCommand):
    help = "Start the web server, a Celery worker and Celery beat; restart one that dies; " \
           "stop them all on Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))

    def handle(self, *args, **options):
        address = f"{options['host']}:{options['port']}"
        celery = [sys.executable, "-m", "celery", "-A", "config"]
        warnings = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), QUIET_WARNINGS]))
        env = {**os.environ, "PYTHONWARNINGS": warnings}
        children = [Child(name, command, env) for name, command in {
            **self._nbd_demo(),
            "web": [sys.executable, "manage.py", "runserver", address, "--noreload"],
            "worker": [*celery, "worker", "--loglevel=INFO",
                       *WORKER_OPTIONS, "--hostname=ferry@%h"],
            "beat": [*celery, "beat", "--loglevel=WARNING",
                     f"--schedule={settings.VAR_DIR / 'celerybeat-schedule'}"],
        }.items()]
        stopping: list[int] = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda signum, _frame: stopping.append(signum))
        for child in children:
            child.start()
        self.stdout.write(self.style.SUCCESS(
            f"Ferry is running on http://{address}/ (Ctrl-C stops it)"), ending="\n")
        self.stdout.flush()
        try:
            while not stopping:
                self._supervise(children)
                time.sleep(0.2)
        finally:
            self._stop(children)

    def _nbd_demo(self) -> dict[str, list[str]]:
        """nbdkit serving the demo NBD array (seed_demo made its images), if installed."""
        folder, sock = settings.FERRY_DEMO_NBD_DIR, settings.FERRY_DEMO_NBD_SOCKET
        if not folder.is_dir():
            return {}
        if not shutil.which("nbdkit"):
            self._log(f"no demo NBD array: nbdkit is not installed ({nbdlib.INSTALL_HINT})")
            return {}
        sock.parent.mkdir(parents=True, exist_ok=True)
        # nbdkit leaves its socket behind when stopped; a stale one stops the next start.
        return {"nbd-demo": ["sh", "-c", f'rm -f "{sock}"; exec nbdkit --foreground '
                             f'--exit-with-parent --unix "{sock}" file dir="{folder}"']}

    def _supervise(self, children: list[Child]) -> None:
        now = time.monotonic()
        for child in children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.start()
                    self._log(f"{child.name} restarted (pid {child.process.pid})")
                continue
            returncode = child.exited()
            if returncode is None:
                continue
            # The leader is gone; anything left in its group (a pool process) goes too.
            child.signal_group(signal.SIGKILL)
            child.failures = 0 if now - child.started >= STABLE_SECONDS else child.failures + 1
            delay = RESTART_DELAYS[min(child.failures, len(RESTART_DELAYS) - 1)]
            child.restart_at = now + delay
            self._log(f"{child.name} (pid {child.process.pid}) exited, {describe(returncode)}; "
                      f"restarting it in {delay} s")

    def _stop(self, children: list[Child]) -> None:
        running = [child for child in children if child.exited() is None
                   and child.restart_at is None]
        for child in running:
            # SIGTERM to the leader alone: the worker then stops its own pool processes
            # (warm shutdown), instead of each seeing a signal and reporting it.
            child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while any(child.exited() is None for child in running) and time.monotonic() < deadline:
            time.sleep(0.05)
        for child in running:
            if child.exited() is None:
                if child.name != "worker":  # the worker's is expected (see above)
                    self._log(f"{child.name} did not stop in {STOP_GRACE_SECONDS} s; killed")
                child.signal_group(signal.SIGKILL)
                child.process.wait()
        for child in children:
            if child.process is not None:
                child.signal_group(signal.SIGKILL)  # nothing of Ferry's outlives runferry
        self.stdout.write("Ferry stopped.")

    def _log(self, message: str) -> None:
        self.stderr.write(f"runferry: {message}")
        self.stderr.flush()
