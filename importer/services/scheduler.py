"""The scheduler's tick: start what is due, admit queued imports into free slots, and send
again every job that lost its worker or never reached one."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from importer import states
from importer.models import IdempotencyRecord, ImportSession
from importer.services import alerts, dispatch, job_records
from importer.services.common import SYSTEM
from importer.services.inventory import expire_lost_discoveries, request_health_checks
from importer.services.samples import prune_transfer_samples
from importer.services.transitions import lock, move, refresh_group
from importer.states import Event, Job, State

SCHEDULER_LOCK_KEY = 0x46455252  # "FERR": the scheduler's advisory lock on PostgreSQL


def scheduler_tick(now: datetime | None = None) -> dict:
    """Start what is due, then admit queued imports FIFO into the free slots."""
    now = now or timezone.now()
    due = list(ImportSession.objects.filter(
        state=State.SCHEDULED, parent_session__isnull=True, scheduled_timestamp__lte=now)
        .values_list("pk", flat=True))
    for session_id in due:
        _start_scheduled(session_id)
    admitted = _admit_queued()
    resent = dispatch.resend_lost_jobs(timezone.now())  # leases expire in real time
    expire_lost_discoveries(timezone.now())
    request_health_checks(timezone.now())
    IdempotencyRecord.objects.expired(now).delete()  # housekeeping for the API's retries
    prune_transfer_samples(now)  # and for the charts' history
    alerts.check_silent_nodes(timezone.now())
    job_records.prune(now)
    return {"started": len(due), "admitted": len(admitted), "resent": resent}


def _start_scheduled(session_id: int) -> None:
    with transaction.atomic():
        session = lock(session_id)
        if session.state != State.SCHEDULED:
            return
        if session.is_group:
            for member in session.members.select_for_update().filter(state=State.SCHEDULED):
                move(member, Event.SCHEDULE_DUE, actor=SYSTEM)
            refresh_group(session.pk, Event.SCHEDULE_DUE, SYSTEM)
        else:
            move(session, Event.SCHEDULE_DUE, actor=SYSTEM)


def _serialise_scheduler() -> None:
    """One tick admits at a time, so two ticks never hand out the same free slot.

    SQLite's IMMEDIATE transactions already serialise writers; PostgreSQL needs a lock.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SCHEDULER_LOCK_KEY])


def _admit_queued() -> list[int]:
    """Give free import slots to the oldest queued imports (a group takes one slot)."""
    with transaction.atomic():
        _serialise_scheduler()
        top_level = ImportSession.objects.filter(parent_session__isnull=True)
        holding = top_level.filter(admitted_timestamp__isnull=False).exclude(
            state__in=states.RELEASES_SLOT).count()
        free = max(0, settings.FERRY_MAX_ACTIVE_IMPORTS - holding)
        waiting = list(top_level.filter(state=State.QUEUED, admitted_timestamp__isnull=True)
                       .order_by("created", "pk")[:free])
        now = timezone.now()
        for session in waiting:
            ImportSession.objects.filter(pk=session.pk).update(admitted_timestamp=now)
            volume_sessions = (session.members.all() if session.is_group
                               else ImportSession.objects.filter(pk=session.pk))
            # The setup job goes into the outbox with the slot, in one transaction.
            volume_sessions.filter(state=State.QUEUED).update(
                admitted_timestamp=now, **dispatch.pending(Job.SETUP))
            for volume_session in volume_sessions.only("pk", "name"):
                job_records.session_job_queued(volume_session, Job.SETUP)
                dispatch.send_job_on_commit(volume_session.pk, Job.SETUP)
    return [session.pk for session in waiting]
