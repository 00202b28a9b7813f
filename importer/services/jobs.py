"""The worker's operations: set up, enable, copy, cut over, cancel and clean up.

Each runs only while it holds the session's lease and only while the session still has
that job pending, and each is idempotent: a job whose worker died is run again by the
scheduler and finishes what was half done (see README, Operations).
"""

from __future__ import annotations

import functools
import logging

from importer import copying, failpoints, pool
from importer.drivers import get_driver
from importer.errors import FerryError, SourceError
from importer.frontend.server import plugin_available
from importer.models import HostVolumeMapping, ImportSession, Volume, VolumeGroup
from importer.services import dispatch, frontends, job_records, leases, source_access
from importer.services.common import NAME_MAX, jsonable
from importer.services.transitions import advance
from importer.states import Event, Job, State

log = logging.getLogger(__name__)
_IO_ERRORS = (SourceError, pool.PoolError)


# Where a job that keeps failing (an error that is not the source's or the pool's, such as
# a bug) leaves its session after JOB_ATTEMPTS tries, instead of being sent again forever.
JOB_ATTEMPTS = 5
_GIVING_UP = {
    Job.SETUP: (State.QUEUED, Event.SETUP_FAILED),
    Job.ENABLE: (State.READY_TO_START_COPY, Event.IO_FAILED),
    Job.CUTOVER: (State.CUTOVER_IN_PROGRESS, Event.CUTOVER_RETRYABLE),
    Job.CANCEL: (State.CANCEL_IN_PROGRESS, Event.CANCEL_FAILED),
    Job.CLEANUP: (State.CLEANUP_IN_PROGRESS, Event.CLEANUP_FAILED),
}
# Checksum passes at cutover while hosts rewrite chunks under it (each pass skips more).
VERIFY_PASSES = 3
# A resumed copy waits this long for the slice that was paused to let go of the lease.
RESUME_WAIT_SECONDS = 2.0


def leased(job: Job):
    """Run the operation only while this worker holds the session's lease for ``job`` (a
    heartbeat renews it), with the session loaded; do nothing if the job is not pending
    any more or a live worker holds it."""

    def decorate(operation):
        @functools.wraps(operation)
        def run(session_id: int) -> None:
            lease_id = leases.new_lease_id()
            if not leases.acquire(session_id, job, lease_id, wait=leases.wait_for_release()):
                return
            record_id = job_records.session_job_started(session_id, job)
            try:
                with leases.Heartbeat(session_id, lease_id):
                    operation(_load(session_id), lease_id)
            except Exception as error:
                job_records.job_attempt_failed(record_id, error)
                _give_up_if_it_keeps_failing(session_id, job, error)
                raise
            finally:
                leases.release(session_id, lease_id)
            job_records.job_finished(record_id)
        return run
    return decorate


def _give_up_if_it_keeps_failing(session_id: int, job: Job, error: Exception) -> None:
    attempts = ImportSession.objects.filter(pk=session_id).values_list(
        "job_attempts", flat=True).first() or 0
    if attempts < JOB_ATTEMPTS:
        return  # the scheduler sends it again once the lease is free
    expected, event = _GIVING_UP[job]
    failure = FerryError(f"The {job} job failed {attempts} times: {error}", job=str(job),
                         attempts=attempts, cause=str(error))
    failure.code = "job_failed"
    advance(session_id, event, expected=expected, error=failure)


def _load(session_id: int) -> ImportSession:
    return (ImportSession.objects.select_related(
        "remote_system", "source_volume", "destination_volume", "parent_session")
        .get(pk=session_id))


# --- Setup ---------------------------------------------------------------------------------

@leased(Job.SETUP)
def run_setup(session: ImportSession, lease_id: str) -> None:
    """Queued → Mirror_Enabled: create the destination with the source's size, map hosts."""
    try:
        size = get_driver(session.remote_system).size(session.source_volume.identifier)
        volume = _create_destination(session, size)
    except _IO_ERRORS as error:
        advance(session.pk, Event.SETUP_FAILED, expected=State.QUEUED, error=error)
        return
    failpoints.reached("setup.destination_created")
    moved = advance(session.pk, Event.SETUP_SUCCEEDED, expected=State.QUEUED,
                    changes={"destination_volume": volume, "total_bytes": size},
                    details={"destination": volume.location, "size": size})
    if moved is None and not ImportSession.objects.filter(destination_volume=volume).exists():
        _discard_destination(volume)  # cancelled while we were creating it: leave nothing


def destination_name(session: ImportSession) -> str:
    return f"import-{session.pk}-{session.source_volume.name}"[:NAME_MAX]


def _create_destination(session: ImportSession, size: int) -> Volume:
    """Idempotent: a setup run again finds the file, the volume and the mappings it made."""
    name = destination_name(session)
    location = pool.create_volume_file(name, size)
    volume, _ = Volume.objects.update_or_create(
        name=name, defaults={"size": size, "location": str(location), "is_read_only": True,
                             "volume_group": _destination_group(session),
                             "storage_node_id": session.storage_node_id})
    for host in session.hosts.all():  # a member has its own (services.imports)
        lun = HostVolumeMapping.objects.filter(host=host).count()
        HostVolumeMapping.objects.get_or_create(host=host, volume=volume,
                                                defaults={"logical_unit_number": lun})
    return volume


def _destination_group(session: ImportSession) -> VolumeGroup | None:
    group_session = session.parent_session
    if group_session is None:
        return None
    name = (group_session.volume_group_name  # chosen at create; sessions from before, too
            or f"import-{group_session.pk}-{group_session.source_group.name}"[:NAME_MAX])
    volume_group, _ = VolumeGroup.objects.get_or_create(name=name)
    ImportSession.objects.filter(pk=group_session.pk).update(
        destination_volume_group=volume_group)
    return volume_group


# --- Enable and copy -----------------------------------------------------------------------

@leased(Job.ENABLE)
def run_enable_destination(session: ImportSession, lease_id: str) -> None:
    """Make the destination writable and revoke the source's host access."""
    try:
        ensure_destination_enabled(session)
    except _IO_ERRORS as error:
        advance(session.pk, Event.IO_FAILED, expected=session.state, error=error)
        return
    leases.finish(session.pk, Job.ENABLE, lease_id)


def ensure_destination_enabled(session: ImportSession) -> None:
    """Idempotent: the enable job and the first copy slice both call it.

    The source's access is saved before it is revoked, so a crash between the two never
    leaves a backup that holds the revoked access.
    """
    volume = session.destination_volume
    if volume is None:
        raise pool.PoolError(f"{session.name} has no destination volume.", session=session.name)
    pool.set_read_only(volume.location, False)
    Volume.objects.filter(pk=volume.pk).update(is_read_only=False)
    failpoints.reached("enable.destination_writable")
    driver = get_driver(session.remote_system)
    identifier = session.source_volume.identifier
    if session.source_access_backup is None:
        backup = driver.host_access(identifier)
        ImportSession.objects.filter(pk=session.pk, source_access_backup__isnull=True).update(
            source_access_backup=backup)
        session.refresh_from_db(fields=["source_access_backup"])
    driver.revoke_host_access(identifier)
    if plugin_available():
        frontends.prepare(session)  # the node's supervisor serves it to the hosts from now


def run_copy(session_id: int, *, handoff: str | None = None) -> str:
    """Copy one slice under the session's lease, then hand over, finish or fail.

    Returns what happened: "finished", "slice_done", "busy" (another worker holds the
    lease), "not_copying", or why the copy stopped ("Paused", "Cancel_In_Progress"...).
    """
    lease_id = leases.new_lease_id()
    # A duplicate (a redelivery, a send again) finds a live lease and exits at once; only a
    # resume waits briefly for the paused slice to let go.
    wait = 0.0 if handoff else RESUME_WAIT_SECONDS
    if not leases.acquire(session_id, Job.COPY, lease_id, handoff=handoff, wait=wait):
        if handoff:  # stopped during the hand-off: let go of what we were given
            leases.release(session_id, handoff)
        copying_now = ImportSession.objects.filter(pk=session_id, pending_job=Job.COPY)
        return "busy" if copying_now.exists() else "not_copying"
    session = _load(session_id)
    record_id = job_records.session_job_started(session_id, Job.COPY)
    job_records.job_step(record_id, f"Copying from {session.progress_percentage}%",
                         session.progress_percentage)
    outcome = "failed"
    try:
        ensure_destination_enabled(session)
        outcome = copying.copy_slice(session, lease_id)
    except _IO_ERRORS as error:
        advance(session_id, Event.IO_FAILED, expected=State.COPY_IN_PROGRESS, error=error)
        return outcome
    finally:
        leases.release(session_id, lease_id, keep_for_handoff=outcome == "slice_done")
        log.info("%s: copy slice %s ended: %s", session.name, lease_id, outcome)
    if outcome == "finished":
        advance(session_id, Event.COPY_COMPLETED, expected=State.COPY_IN_PROGRESS,
                changes={"progress_percentage": 100, "current_transfer_rate": 0,
                         "estimated_completion_timestamp": None})
    elif outcome == "slice_done":
        progress = (ImportSession.objects.filter(pk=session_id)
                    .values_list("progress_percentage", flat=True).first() or 0)
        job_records.job_step(record_id, f"Slice done at {progress}%; next slice queued",
                             progress)
        dispatch.send_job(session_id, Job.COPY, lease_id)
    elif outcome != "lease_lost":  # another worker goes on with the same record
        # Stopped (a pause, a cancel): the session's move closed the record already.
        job_records.job_finished(record_id, step=f"Stopped: {outcome}")
    return outcome


# --- Cutover, cancel, cleanup --------------------------------------------------------------

@leased(Job.CUTOVER)
def run_cutover(session: ImportSession, lease_id: str) -> None:
    """Commit: the destination becomes the volume of record, and the source is released."""
    try:
        _verify_and_switch(session)
    except (copying.VerificationFailed, frontends.FrontEndError) as error:
        advance(session.pk, Event.IO_FAILED, expected=State.CUTOVER_IN_PROGRESS, error=error)
        return
    except (*_IO_ERRORS, OSError) as error:
        advance(session.pk, Event.CUTOVER_RETRYABLE, expected=State.CUTOVER_IN_PROGRESS,
                error=_as_ferry_error(error, "cutover_failed", session))
        return
    failpoints.reached("cutover.verified")
    advance(session.pk, Event.CUTOVER_SUCCEEDED, expected=State.CUTOVER_IN_PROGRESS,
            details={"volume_of_record": session.destination_volume.location})


def _verify_and_switch(session: ImportSession) -> None:
    """Verify, then (with a front end) stop forwarding host writes to the source.

    The checksums cannot judge chunks hosts rewrote after the copy; those are compared
    with the source (which got every host write first). A chunk a host rewrites while the
    checksums are read is found by a second pass that skips it."""
    volume = session.destination_volume
    extents = list(session.copied_extents.all())
    for attempt in range(VERIFY_PASSES):
        rewritten = copying.chunks_touching(extents, frontends.written_by_hosts(volume))
        try:
            copying.verify_destination(session, rewritten)
            break
        except copying.VerificationFailed as failure:
            now = copying.chunks_touching(extents, frontends.written_by_hosts(volume))
            offset = failure.arguments.get("offset", -1)
            if attempt == VERIFY_PASSES - 1 or not any(s <= offset < e for s, e in now):
                raise

    def compare(check, written, locked):
        offset = check.compare(copying.chunks_touching(extents, written), locked)
        if offset is not None:
            raise copying.VerificationFailed(
                f"{session.name}: at offset {offset}, a range a host wrote differs from the "
                "source.", offset=offset, path=volume.location)
    frontends.cut_over(session, compare)


@leased(Job.CANCEL)
def run_cancel(session: ImportSession, lease_id: str) -> None:
    """Roll back: remove the destination, then give the source its host access back.

    The lease is taken only once a running copy has let go of it, so nothing is removed
    under a copier. A forced cancel goes on past what fails, and records what it skipped.
    """
    skipped = []
    try:
        frontends.fence(session)  # hosts stop here; the source has every write they made
    except SourceError as error:
        # Fenced all the same; the source got every acknowledged write, only its final
        # flush could not be sent. The source's own restore below says if it is away.
        skipped.append(f"flush the source ({error.message})")
    # A setup that died before it recorded its destination left it under its known name.
    volume = (session.destination_volume
              or Volume.objects.filter(name=destination_name(session)).first())
    if volume is not None:
        try:
            _discard_destination(volume)
        except pool.PoolError as error:
            if not session.force_cancel:
                advance(session.pk, Event.CANCEL_FAILED, expected=State.CANCEL_IN_PROGRESS,
                        error=error)
                return
            skipped.append(f"remove the destination ({error.message})")
    failpoints.reached("cancel.destination_removed")
    if session.source_access_backup is not None:
        if session.force_cancel:
            skipped.append("restore the source's host access")
        else:
            try:
                _restore_source(session)
            except SourceError as error:
                advance(session.pk, Event.SOURCE_RESTORE_FAILED,
                        expected=State.CANCEL_IN_PROGRESS, error=error)
                return
    advance(session.pk, Event.CANCEL_SUCCEEDED, expected=State.CANCEL_IN_PROGRESS,
            details={"forced": session.force_cancel, "skipped": skipped,
                     **_source_outcome(session)})


def _source_outcome(session: ImportSession) -> dict:
    """What a rollback did for the source's hosts, as it was: never a claimed restore
    that was a manual step left to the operator."""
    hosts = sorted(host.name for host in (session.parent_session or session).hosts.all())
    if hosts and session.source_access_backup is not None:
        return {"source_restored": False, "hosts": hosts,
                "host_step": f"Re-point {', '.join(hosts)} at the source "
                             f"{session.source_volume.name}: it holds every write they made "
                             "through Ferry."}
    touched = session.source_access_backup is not None
    if touched and source_access.is_manual(session):
        return {"source_restored": False, "manual_step": source_access.remap_step(session)}
    return {"source_restored": touched and not session.force_cancel}


@leased(Job.CLEANUP)
def run_cleanup(session: ImportSession, lease_id: str) -> None:
    """Retry giving the source its host access back after a rollback could not; a forced
    cleanup gives up on it, records that, and ends the session."""
    failpoints.reached("cleanup.started")
    if session.force_cancel:
        _give_up_on_source(session)
        return
    try:
        if session.source_access_backup is not None:
            _restore_source(session)
    except SourceError as error:
        advance(session.pk, Event.CLEANUP_FAILED, expected=State.CLEANUP_IN_PROGRESS,
                error=error)
        return
    advance(session.pk, Event.CLEANUP_SUCCEEDED, expected=State.CLEANUP_IN_PROGRESS)


def _give_up_on_source(session: ImportSession) -> None:
    """A forced cleanup ends the session without the source; it says what was left."""
    skipped = ["restore the source's host access"] if session.source_access_backup else []
    message = (f"Cleanup of {session.name} was forced: the source's host access was not "
               f"restored ({session.error_message or 'no reason recorded'}). Restore it on "
               "the source by hand if the source comes back.")
    arguments = {"session": session.name, "source": session.source_volume.identifier,
                 "backup": session.source_access_backup, "skipped": skipped}
    advance(session.pk, Event.CLEANUP_SUCCEEDED, expected=State.CLEANUP_IN_PROGRESS,
            changes={"error_code": "forced_cleanup", "error_message": message,
                     "error_arguments": jsonable(arguments)},
            details={"forced": True, "skipped": skipped})


def _discard_destination(volume: Volume) -> None:
    pool.remove_volume_file(volume.location)
    volume.delete()


def _restore_source(session: ImportSession) -> None:
    get_driver(session.remote_system).restore_host_access(
        session.source_volume.identifier, session.source_access_backup)
    ImportSession.objects.filter(pk=session.pk).update(source_access_backup=None)


def _as_ferry_error(error: Exception, code: str, session: ImportSession) -> FerryError:
    if isinstance(error, FerryError):
        return error
    detail = getattr(error, "strerror", None) or str(error)
    failure = FerryError(f"{session.name}: {detail}", session=session.name)
    failure.code = code
    return failure
