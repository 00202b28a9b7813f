"""The Jobs page's records: one Job row per background job, written when the job is
enqueued (in the transaction that enqueues it) and kept up to date by the services the
worker runs (started, a step, ended). A session's copy is one job however many slices it
takes; each slice is a step. The records are history only: the outbox on ImportSession
(services.dispatch) still decides what runs."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from importer import states
from importer.errors import FerryError
from importer.models import AlertResource, ImportSession, Job, JobState, RemoteSystem
from importer.services.common import jsonable

OPEN = (JobState.QUEUED, JobState.RUNNING)
DISCOVER = "discover"
_EVENTS = frozenset(event.value for event in states.Event)


def _error_body(error: Exception) -> dict:
    if isinstance(error, FerryError):
        return {"error": {"code": error.code, "message": error.message,
                          "arguments": jsonable(error.arguments)}}
    return {"error": {"code": "job_error", "message": str(error) or type(error).__name__,
                      "arguments": {}}}


def _end(records, *, error: Exception | None = None, step: str = "",
         progress: int | None = None) -> int:
    """Close open records: Failed with the error, or Completed; at ``progress`` when it is
    known (a copy stopped part way), else a completed job is at 100%."""
    fields = {"end_time": timezone.now()}
    if error is not None:
        fields.update(state=JobState.FAILED, response_body=_error_body(error))
    else:
        fields.update(state=JobState.COMPLETED, progress_percentage=100)
    if progress is not None:
        fields["progress_percentage"] = progress
    if step:
        fields["step"] = step[:255]
    return records.filter(state__in=OPEN).update(**fields)


# --- Session jobs ------------------------------------------------------------------------------

def session_job_queued(session: ImportSession, job: str) -> Job:
    return Job.objects.create(
        resource_type=AlertResource.IMPORT_SESSION, resource_action=str(job),
        resource_id=str(session.pk), resource_name=session.name[:255], session_id=session.pk,
        description_l10n=f"{states.JOB_DESCRIPTIONS[states.Job(job)]} {session.name}"[:500],
        step="Waiting for a worker")


def _open_session_jobs(session_id, job: str):
    return Job.objects.filter(session_id=session_id, resource_action=str(job), state__in=OPEN)


def session_job_left(session: ImportSession, job: str, trigger: str,
                     error: FerryError | None = None) -> None:
    """The session moved on from the state that ran ``job``: the job ended with the move
    (its outcome, or an operator's action that stopped it)."""
    records = _open_session_jobs(session.pk, job)
    progress = session.progress_percentage if job == states.Job.COPY else None
    if str(trigger) in _EVENTS:
        _end(records, error=error, step=f"Ended: {str(trigger).replace('_', ' ')}",
             progress=progress)
        return
    step = f"Stopped by {states.ACTION_LABELS.get(trigger, trigger)}"
    _end(records.filter(start_time__isnull=False), error=error, step=step, progress=progress)
    _end(records.filter(start_time__isnull=True), error=error, progress=progress,
         step=f"{step} before a worker took it")


def session_job_started(session_id, job: str) -> str:
    """A worker took the session's lease for ``job``. Returns the record's id; a job with
    no open record (enqueued before records existed) gets one now."""
    record = _open_session_jobs(session_id, job).order_by("-queued_time").first()
    if record is None:
        session = ImportSession.objects.get(pk=session_id)
        record = session_job_queued(session, job)
    attempts = (ImportSession.objects.filter(pk=session_id)
                .values_list("job_attempts", flat=True).first() or 1)
    now = timezone.now()
    Job.objects.filter(pk=record.pk).update(
        state=JobState.RUNNING, start_time=record.start_time or now, attempts=attempts,
        step="Running" if attempts <= 1 else f"Running (attempt {attempts})")
    return str(record.pk)


def job_step(record_id: str, step: str, progress: int | None = None) -> None:
    fields = {"step": step[:255]}
    if progress is not None:
        fields["progress_percentage"] = max(0, min(100, progress))
    Job.objects.filter(pk=record_id, state=JobState.RUNNING).update(**fields)


def job_finished(record_id: str, *, step: str = "") -> None:
    """The worker's part ended without an error; a record the session's move already
    closed (with its outcome) is left as it is."""
    _end(Job.objects.filter(pk=record_id), step=step or "Done")


def job_attempt_failed(record_id: str, error: Exception) -> None:
    """An attempt raised: the job waits to be sent again (services.dispatch), error kept."""
    Job.objects.filter(pk=record_id, state=JobState.RUNNING).update(
        state=JobState.QUEUED, response_body=_error_body(error),
        step=f"Attempt failed, to be sent again: {error}"[:255])


# --- Discovery --------------------------------------------------------------------------------

def _open_discoveries(system_id):
    return Job.objects.filter(resource_type=AlertResource.REMOTE_SYSTEM,
                              resource_id=str(system_id), resource_action=DISCOVER,
                              state__in=OPEN)


def discovery_queued(system: RemoteSystem) -> Job:
    return Job.objects.create(
        resource_type=AlertResource.REMOTE_SYSTEM, resource_action=DISCOVER,
        resource_id=str(system.pk), resource_name=system.name[:255],
        description_l10n=f"Discover remote system {system.name}"[:500],
        step="Waiting for a worker")


def discovery_started(system_id) -> None:
    _open_discoveries(system_id).update(state=JobState.RUNNING, start_time=timezone.now(),
                                        step="Listing volumes and groups")


def discovery_ended(system_id, *, error: Exception | None = None, step: str = "") -> None:
    _end(_open_discoveries(system_id), error=error, step=step)


# --- Housekeeping -------------------------------------------------------------------------

def prune(now: datetime) -> int:
    """Forget finished jobs older than FERRY_JOB_RETENTION_DAYS."""
    cutoff = now - timedelta(days=settings.FERRY_JOB_RETENTION_DAYS)
    deleted, _ = Job.objects.filter(end_time__lt=cutoff).exclude(state__in=OPEN).delete()
    return deleted
