"""The worker's operations: set up, enable, copy, cut over, cancel and clean up.

Each runs only while it holds the session's lease and only while the session still has
that job pending, and each is idempotent: a job whose worker died is run again by the
scheduler and finishes what was half done (see README, Operations).
"""

from __future__ import annotations

import logging
from contextlib import contextmanager

from importer import copying, failpoints, pool
from importer.drivers import get_driver
from importer.errors import FerryError, SourceError
from importer.models import HostVolumeMapping, ImportSession, Volume, VolumeGroup
from importer.services import dispatch, leases
from importer.services.common import NAME_MAX, jsonable
from importer.services.transitions import advance
from importer.states import Event, Job, State

log = logging.getLogger(__name__)
_IO_ERRORS = (SourceError, pool.PoolError)


@contextmanager
def _lease(session_id: int, job: Job):
    """Hold the session's lease for ``job``, or yield None: the job is not pending any
    more (done, or the session moved on), or another live worker holds it."""
    lease_id = leases.new_lease_id()
    if not leases.acquire(session_id, job, lease_id, wait=leases.wait_for_release()):
        yield None
        return
    try:
        yield lease_id
    finally:
        leases.release(session_id, lease_id)


def _load(session_id: int) -> ImportSession:
    return (ImportSession.objects.select_related(
        "remote_system", "source_volume", "destination_volume", "parent_session")
        .get(pk=session_id))


# --- Setup ---------------------------------------------------------------------------------

def run_setup(session_id: int) -> None:
    """Queued → Mirror_Enabled: create the destination with the source's size, map hosts."""
    with _lease(session_id, Job.SETUP) as lease_id:
        if lease_id is None:
            return
        session = _load(session_id)
        try:
            size = get_driver(session.remote_system).size(session.source_volume.identifier)
            volume = _create_destination(session, size)
        except _IO_ERRORS as error:
            advance(session_id, Event.SETUP_FAILED, expected=State.QUEUED, error=error)
            return
        failpoints.reached("setup.destination_created")
        moved = advance(session_id, Event.SETUP_SUCCEEDED, expected=State.QUEUED,
                        changes={"destination_volume": volume, "total_bytes": size},
                        details={"destination": volume.location, "size": size})
        if moved is None:  # cancelled while we were creating it: leave nothing behind
            _discard_destination(volume)


def _create_destination(session: ImportSession, size: int) -> Volume:
    """Idempotent: a setup run again finds the file, the volume and the mappings it made."""
    name = f"import-{session.pk}-{session.source_volume.name}"[:NAME_MAX]
    location = pool.create_volume_file(name, size)
    volume, _ = Volume.objects.update_or_create(
        name=name, defaults={"size": size, "location": str(location), "is_read_only": True,
                             "volume_group": _destination_group(session)})
    hosts = (session.parent_session or session).hosts.all()
    for host in hosts:
        lun = HostVolumeMapping.objects.filter(host=host).count()
        HostVolumeMapping.objects.get_or_create(host=host, volume=volume,
                                                defaults={"logical_unit_number": lun})
    return volume


def _destination_group(session: ImportSession) -> VolumeGroup | None:
    group_session = session.parent_session
    if group_session is None:
        return None
    name = f"import-{group_session.pk}-{group_session.source_group.name}"[:NAME_MAX]
    volume_group, _ = VolumeGroup.objects.get_or_create(name=name)
    ImportSession.objects.filter(pk=group_session.pk).update(
        destination_volume_group=volume_group)
    return volume_group


# --- Enable and copy -----------------------------------------------------------------------

def run_enable_destination(session_id: int) -> None:
    """Make the destination writable and revoke the source's host access."""
    with _lease(session_id, Job.ENABLE) as lease_id:
        if lease_id is None:
            return
        session = _load(session_id)
        try:
            ensure_destination_enabled(session)
        except _IO_ERRORS as error:
            advance(session_id, Event.IO_FAILED, expected=session.state, error=error)
            return
        leases.finish(session_id, Job.ENABLE, lease_id)


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


def run_copy(session_id: int, *, handoff: str | None = None) -> str:
    """Copy one slice under the session's lease, then hand over, finish or fail.

    Returns what happened: "finished", "slice_done", "busy" (another worker holds the
    lease), "not_copying", or why the copy stopped ("Paused", "Cancel_In_Progress"...).
    """
    lease_id = leases.new_lease_id()
    if not leases.acquire(session_id, Job.COPY, lease_id, handoff=handoff):
        if handoff:  # stopped during the hand-off: let go of what we were given
            leases.release(session_id, handoff)
        copying_now = ImportSession.objects.filter(pk=session_id, pending_job=Job.COPY)
        return "busy" if copying_now.exists() else "not_copying"
    session = _load(session_id)
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
        dispatch.send(dispatch.JOB_TASKS[Job.COPY], session_id, lease_id)
    return outcome


# --- Cutover, cancel, cleanup --------------------------------------------------------------

def run_cutover(session_id: int) -> None:
    """Commit: the destination becomes the volume of record, and the source is released."""
    with _lease(session_id, Job.CUTOVER) as lease_id:
        if lease_id is None:
            return
        session = _load(session_id)
        try:
            copying.verify_destination(session, keep_alive=leases.KeepAlive(session_id,
                                                                             lease_id))
        except copying.VerificationFailed as error:
            advance(session_id, Event.IO_FAILED, expected=State.CUTOVER_IN_PROGRESS,
                    error=error)
            return
        except (*_IO_ERRORS, OSError) as error:
            advance(session_id, Event.CUTOVER_RETRYABLE, expected=State.CUTOVER_IN_PROGRESS,
                    error=_as_ferry_error(error, "cutover_failed", session))
            return
        failpoints.reached("cutover.verified")
        advance(session_id, Event.CUTOVER_SUCCEEDED, expected=State.CUTOVER_IN_PROGRESS,
                details={"volume_of_record": session.destination_volume.location})


def run_cancel(session_id: int) -> None:
    """Roll back: remove the destination, then give the source its host access back.

    The lease is taken only once a running copy has let go of it, so nothing is removed
    under a copier. A forced cancel goes on past what fails, and records what it skipped.
    """
    with _lease(session_id, Job.CANCEL) as lease_id:
        if lease_id is None:
            return
        session = _load(session_id)
        skipped = []
        if session.destination_volume is not None:
            try:
                _discard_destination(session.destination_volume)
            except pool.PoolError as error:
                if not session.force_cancel:
                    advance(session_id, Event.CANCEL_FAILED,
                            expected=State.CANCEL_IN_PROGRESS, error=error)
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
                    advance(session_id, Event.SOURCE_RESTORE_FAILED,
                            expected=State.CANCEL_IN_PROGRESS, error=error)
                    return
        advance(session_id, Event.CANCEL_SUCCEEDED, expected=State.CANCEL_IN_PROGRESS,
                details={"forced": session.force_cancel, "skipped": skipped,
                         "source_restored": session.source_access_backup is not None
                         and not session.force_cancel})


def run_cleanup(session_id: int) -> None:
    """Retry giving the source its host access back after a rollback could not; a forced
    cleanup gives up on it, records that, and ends the session."""
    with _lease(session_id, Job.CLEANUP) as lease_id:
        if lease_id is None:
            return
        session = _load(session_id)
        failpoints.reached("cleanup.started")
        if session.force_cancel:
            _give_up_on_source(session)
            return
        try:
            if session.source_access_backup is not None:
                _restore_source(session)
        except SourceError as error:
            advance(session_id, Event.CLEANUP_FAILED, expected=State.CLEANUP_IN_PROGRESS,
                    error=error)
            return
        advance(session_id, Event.CLEANUP_SUCCEEDED, expected=State.CLEANUP_IN_PROGRESS)


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
