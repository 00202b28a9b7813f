"""A session's lease: a worker runs one of its jobs only while it holds the lease, so two
workers never work on one session at once, and a job whose worker died is found (and sent
again by the scheduler) once its lease has expired."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import F, Q
from django.utils import timezone

from importer.models import ImportSession
from importer.states import Job

POLL_SECONDS = 0.2
log = logging.getLogger(__name__)


def new_lease_id() -> str:
    return f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def period() -> timedelta:
    return timedelta(seconds=settings.FERRY_LEASE_SECONDS)


def acquire(session_id: int, job: Job, lease_id: str, *, handoff: str | None = None,
            wait: float = 0.0) -> bool:
    """Take the lease for ``job``: free, expired, or handed over by the previous slice.

    Waits up to ``wait`` seconds for another job (a copy asked to stop) to let go. Only on
    the session's own storage node: elsewhere its destination is not in the pool, so a job
    that reached another node's worker is left for the scheduler to send to the right one.
    """
    deadline = time.monotonic() + wait
    mine = Q(storage_node__isnull=True) | Q(storage_node__name=settings.FERRY_NODE_NAME)
    while True:
        now = timezone.now()
        claimable = Q(lease_owner="") | Q(lease_expires_at__lt=now)
        if handoff:
            claimable |= Q(lease_owner=handoff)
        taken = ImportSession.objects.filter(
            claimable, mine, pk=session_id, pending_job=job).update(
            lease_owner=lease_id, lease_expires_at=now + period(),
            job_attempts=F("job_attempts") + 1)
        if taken:
            return True
        still_pending = ImportSession.objects.filter(
            mine, pk=session_id, pending_job=job).exists()
        if not still_pending or time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)


def wait_for_release() -> float:
    """How long a job waits for the lease: a copy stops within a second; a dead one's
    lease expires within a lease period."""
    return settings.FERRY_LEASE_SECONDS + 5.0


def renew(session_id: int, lease_id: str) -> bool:
    return ImportSession.objects.filter(pk=session_id, lease_owner=lease_id).update(
        lease_expires_at=timezone.now() + period()) == 1


def release(session_id: int, lease_id: str, *, keep_for_handoff: bool = False) -> None:
    """Let go of the lease, or keep it through the hand-off to the next copy slice."""
    fields = ({"lease_expires_at": timezone.now() + period()} if keep_for_handoff
              else {"lease_owner": "", "lease_expires_at": None})
    ImportSession.objects.filter(pk=session_id, lease_owner=lease_id).update(**fields)


def finish(session_id: int, job: Job, lease_id: str) -> None:
    """A job that ends without a state change (enable) clears itself from the outbox."""
    ImportSession.objects.filter(pk=session_id, pending_job=job, lease_owner=lease_id).update(
        pending_job="", job_sent_at=None)


class Heartbeat:
    """Renews a lease from a thread while a job runs, so a slow job (a slow source, a long
    verify) is never taken for a dead one. A killed worker's heartbeat dies with it."""

    def __init__(self, session_id: int, lease_id: str):
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, args=(session_id, lease_id),
                                        name=f"lease-{session_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exception) -> None:
        self._stopped.set()
        self._thread.join()

    def _beat(self, session_id: int, lease_id: str) -> None:
        try:
            while not self._stopped.wait(settings.FERRY_LEASE_SECONDS / 3):
                try:
                    renew(session_id, lease_id)
                except Exception:  # the database is away: the lease may lapse, nothing worse
                    log.warning("Could not renew the lease of session %s", session_id)
        finally:
            connection.close()  # this thread's own connection
