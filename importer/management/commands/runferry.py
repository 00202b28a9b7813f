"""Run Ferry in one terminal: the web server, a Celery worker and the scheduler (beat).

Ctrl-C (or SIGTERM) stops all three; if one of them dies, the others are stopped too.
"""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

STOP_GRACE_SECONDS = 15


class Command(BaseCommand):
    help = "Start the web server, a Celery worker and Celery beat; stop them all on Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))

    def handle(self, *args, **options):
        address = f"{options['host']}:{options['port']}"
        celery = [sys.executable, "-m", "celery", "-A", "config"]
        commands = {
            "web": [sys.executable, "manage.py", "runserver", address, "--noreload"],
            "worker": [*celery, "worker", "--loglevel=INFO", "--concurrency=2",
                       "--hostname=ferry@%h"],
            "beat": [*celery, "beat", "--loglevel=WARNING",
                     f"--schedule={settings.VAR_DIR / 'celerybeat-schedule'}"],
        }
        children = {name: subprocess.Popen(command) for name, command in commands.items()}
        self.stdout.write(self.style.SUCCESS(
            f"Ferry is running on http://{address}/ (Ctrl-C stops it)"))
        stopping = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stopping.append(True))
        try:
            while not stopping and all(c.poll() is None for c in children.values()):
                time.sleep(0.5)
        finally:
            self._stop(children)
        failed = [name for name, child in children.items() if child.returncode not in
                  (0, -signal.SIGTERM, -signal.SIGINT, None) and not stopping]
        if failed:
            sys.exit(f"Stopped because {', '.join(failed)} exited.")

    def _stop(self, children):
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        self.stdout.write("Ferry stopped.")
