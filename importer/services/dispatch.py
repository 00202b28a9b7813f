"""The job outbox. A session's pending job is written in the same UPDATE as its state, sent
to the broker once that transaction commits, and sent again by the scheduler when it never
reached a worker (a broker outage, a crash between commit and publish) or its worker died
(its lease expired). Tasks are published by name, so services never import importer.tasks.

A session's jobs go to the queue of the storage node that holds its destination (only that
node's worker has its pool); discovery and the scheduler's tick go to the shared queue.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from importer.models import ImportSession, NodeStatus
from importer.states import Job

log = logging.getLogger(__name__)

JOB_TASKS = {
    Job.SETUP: "setup_session_task",
    Job.ENABLE: "enable_destination_session_task",
    Job.COPY: "copy_session_task",
    Job.CUTOVER: "cutover_session_task",
    Job.CANCEL: "cancel_session_task",
    Job.CLEANUP: "cleanup_session_task",
}
SCHEDULER_TICK = "scheduler_tick_task"


def send(task_name: str, *args, **options) -> bool:
    """Publish one task. A broker that is down is logged, not raised: the outbox keeps the
    job, and the scheduler sends it again. ``options`` go to Celery (time limits)."""
    try:
        current_app.send_task(f"importer.tasks.{task_name}", args=args, **options)
        return True
    except Exception:
        log.exception("Could not send %s%s; the scheduler will send it again", task_name, args)
        return False


def pending(job: Job | None) -> dict:
    """The outbox fields of a state change: the job it hands to the workers, not yet sent."""
    return {"pending_job": job or "", "job_sent_at": None, "job_attempts": 0}


def send_job_on_commit(session_id: int, job: Job) -> None:
    transaction.on_commit(partial(send_job, session_id, job))


def tick_on_commit() -> None:
    transaction.on_commit(partial(send, SCHEDULER_TICK))


def send_job(session_id: int, job: Job, *args, queue: str | None = None) -> None:
    """Send a session's job (with ``args``: a copy slice's hand-off) to its node's queue,
    and note when."""
    queue = queue or queue_of(session_id)
    if send(JOB_TASKS[Job(job)], session_id, *args, queue=queue):
        ImportSession.objects.filter(pk=session_id, pending_job=job).update(
            job_sent_at=timezone.now())


def queue_of(session_id: int) -> str:
    """The queue of the session's storage node; the shared queue for a session from before
    storage nodes (which has none)."""
    queue = (ImportSession.objects.filter(pk=session_id)
             .values_list("storage_node__queue", flat=True).first())
    return queue or settings.CELERY_TASK_DEFAULT_QUEUE


def resend_lost_jobs(now: datetime) -> int:
    """Send again every pending job that no live worker holds and that was not sent within
    a lease period: never sent, lost in the broker, or orphaned by a dead worker.

    Not while its storage node is offline: the job waits in the node's queue, and sending
    it again every lease period would only pile copies up there until the node is back.
    """
    lease = timedelta(seconds=settings.FERRY_LEASE_SECONDS)
    heard_from = now - timedelta(seconds=settings.FERRY_NODE_OFFLINE_SECONDS)
    lost = list(ImportSession.objects.exclude(pending_job="").filter(
        Q(lease_owner="") | Q(lease_expires_at__lt=now),
        Q(job_sent_at__isnull=True) | Q(job_sent_at__lt=now - lease),
        Q(storage_node__isnull=True) | (Q(storage_node__last_heartbeat__gte=heard_from)
                                        & ~Q(storage_node__status=NodeStatus.OFFLINE)),
    ).values_list("pk", "pending_job", "storage_node__queue"))
    for session_id, job, queue in lost:
        log.warning("Import session %s: sending its %s job again (no worker holds it)",
                    session_id, job)
        send_job(session_id, job, queue=queue)
    return len(lost)
