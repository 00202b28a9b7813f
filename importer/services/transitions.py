"""The sole writer of a session's state. Every change is a conditional UPDATE on a locked
row (the group's row first: the one lock order everywhere), writes exactly one ImportEvent,
puts the state's job in the outbox in the same UPDATE, and sends it once the transaction
commits."""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from importer import figures, states
from importer.errors import ActionNotAllowed, FerryError, NotFound
from importer.models import (
    ImportableCriteria,
    ImportEvent,
    ImportSession,
    SourceGroup,
    SourceVolume,
)
from importer.services import alerts, dispatch, job_records
from importer.services.common import SYSTEM, Actor, jsonable
from importer.states import Event, State

log = logging.getLogger(__name__)

_ERROR_STATES = frozenset(states.NEEDS_ATTENTION)

# Any move clears the live figures: out of copying there is no current rate and no ETA,
# and a copy that starts or resumes measures them afresh ("estimating…" until its first
# checkpoint), never showing an ETA from before the pause.
_FIGURES_CLEARED = {"current_transfer_rate": 0, "estimated_completion_timestamp": None}


def lock(session_id) -> ImportSession:
    """Lock a session's row, its group's row first: the one lock order everywhere."""
    parent_id = (ImportSession.objects.filter(pk=session_id)
                 .values_list("parent_session_id", flat=True).first())
    if parent_id:
        list(ImportSession.objects.select_for_update().filter(pk=parent_id))
    session = (ImportSession.objects.select_for_update(of=("self",))
               .select_related("parent_session").filter(pk=session_id).first())
    if session is None:
        raise NotFound(f"Import session {session_id} does not exist.", id=session_id)
    return session


def move(session: ImportSession, trigger: str, *, actor: Actor, changes=None,
         error: FerryError | None = None, details=None) -> ImportSession:
    """Move one volume session along the table: a conditional UPDATE and one event."""
    target = states.next_volume_state(session.state, trigger)
    if target is None:
        raise ActionNotAllowed(session.name, trigger, session.state, session.allowed_actions)
    job = None if session.is_group else states.ENTRY_JOBS.get(target)
    fields = {"state": target, "last_update_timestamp": timezone.now(),
              **dispatch.pending(job), **_FIGURES_CLEARED, **(changes or {})}
    if error is not None:
        fields.update(error_code=error.code, error_message=error.message,
                      error_arguments=jsonable(error.arguments))
    elif target == State.IMPORT_COMPLETED:
        fields.update(error_code="", error_message="", error_arguments={})
    updated = ImportSession.objects.filter(pk=session.pk, state=session.state).update(**fields)
    if updated != 1:
        current = ImportSession.objects.filter(pk=session.pk).values_list("state", flat=True)
        raise ActionNotAllowed(session.name, trigger, current.first() or session.state, ())
    from_state, left_job = session.state, session.pending_job
    for field, value in fields.items():
        setattr(session, field, value)
    record(session, trigger, actor, from_state, target, error, details)
    if left_job:
        job_records.session_job_left(session, left_job, trigger, error)
    if job:
        job_records.session_job_queued(session, job)
        dispatch.send_job_on_commit(session.pk, job)
    alerts.session_entered(session, target)
    _after_entering(session, target)
    return session


def update_group_figures(group_id: int) -> None:
    """The one place a group's progress, rates and ETA are derived from its members."""
    members = list(ImportSession.objects.filter(parent_session_id=group_id).values(
        "state", "copied_bytes", "total_bytes", "current_transfer_rate",
        "average_transfer_rate", "estimated_completion_timestamp"))
    if members:
        ImportSession.objects.filter(pk=group_id).update(
            **figures.group_figures(members, states.COPYING))


def _after_entering(session: ImportSession, target: State) -> None:
    if target in states.RELEASES_SLOT:
        dispatch.tick_on_commit()  # a slot is free: the queue may move
    if target == State.IMPORT_COMPLETED:
        set_criteria([session.source_volume_id], None, ImportableCriteria.IMPORTED)
    elif target == State.CANCELLED and session.force_cancel:
        # The source's host access was not restored: not importable again until it is
        # fixed and rediscovered (a new import would save the revoked access as its own).
        SourceVolume.objects.filter(pk=session.source_volume_id).update(
            importable_criteria=ImportableCriteria.OFFLINE,
            importable_reason=f"{session.name} was forced to end without restoring this "
                              "volume's host access; fix it on the source, then run "
                              "discovery."[:500])
    elif target == State.CANCELLED:
        set_criteria([session.source_volume_id], None, ImportableCriteria.READY)


def set_criteria(volume_ids, group_id, criteria) -> None:
    SourceVolume.objects.filter(pk__in=volume_ids).exclude(
        importable_criteria=ImportableCriteria.OFFLINE).update(importable_criteria=criteria)
    if group_id is not None:
        SourceGroup.objects.filter(pk=group_id).exclude(
            importable_criteria=ImportableCriteria.OFFLINE).update(
            importable_criteria=criteria)


def refresh_group(group_id: int, trigger: str, actor: Actor,
                  *, always_record: bool = False) -> ImportSession:
    """Re-derive a group's state from its members; record it if it changed."""
    group = ImportSession.objects.select_for_update().get(pk=group_id)
    members = list(group.members.values("state", "error_code", "error_message",
                                        "error_arguments"))
    derived = states.derive_group_state(m["state"] for m in members)
    update_group_figures(group.pk)
    failed = next((m for m in members if m["error_code"]), None)
    if failed and derived in _ERROR_STATES:
        ImportSession.objects.filter(pk=group.pk).update(
            error_code=failed["error_code"], error_message=failed["error_message"],
            error_arguments=failed["error_arguments"])
        group.error_message = failed["error_message"]  # for its alert
    if derived == group.state and not always_record:
        return group
    from_state = group.state
    ImportSession.objects.filter(pk=group.pk, state=from_state).update(
        state=derived, last_update_timestamp=timezone.now())
    group.state = derived
    record(group, trigger, actor, from_state, derived)
    if derived != from_state:
        alerts.session_entered(group, derived)
        _after_group_entering(group, derived)
    return group


def _after_group_entering(group: ImportSession, derived: State) -> None:
    if derived == State.CANCEL_REQUIRED:
        # A consistency group moves together: one failed member stops the others.
        for member in group.members.select_for_update().filter(state=State.COPY_IN_PROGRESS):
            move(member, Event.GROUP_STOPPED, actor=SYSTEM)
        refresh_group(group.pk, Event.GROUP_STOPPED, SYSTEM)
    elif derived == State.READY_FOR_CUTOVER and group.automatic_cutover:
        for member in group.members.select_for_update().filter(state=State.READY_FOR_CUTOVER):
            move(member, Event.AUTOMATIC_CUTOVER, actor=SYSTEM)
        refresh_group(group.pk, Event.AUTOMATIC_CUTOVER, SYSTEM)
    elif derived in (State.IMPORT_COMPLETED, State.CANCELLED,
                     State.IMPORT_COMPLETED_WITH_ERRORS):
        everything_imported = derived == State.IMPORT_COMPLETED
        set_criteria([], group.source_group_id, ImportableCriteria.IMPORTED
                     if everything_imported else ImportableCriteria.READY)


def advance(session_id: int, trigger: str, *, expected: State | None = None,
            changes=None, error: FerryError | None = None, details=None):
    """A worker's outcome: move the session if it is still where the worker left it."""
    with transaction.atomic():
        try:
            session = lock(session_id)
        except NotFound:
            return None
        if expected is not None and session.state != expected:
            return None  # someone else moved it on (a pause, a cancel): the outcome is stale
        move(session, trigger, actor=SYSTEM, changes=changes, error=error, details=details)
        if session.parent_session_id:
            refresh_group(session.parent_session_id, trigger, SYSTEM)
        elif session.state == State.READY_FOR_CUTOVER and session.automatic_cutover:
            move(session, Event.AUTOMATIC_CUTOVER, actor=SYSTEM)
        return session


def record(session, action, actor: Actor, from_state, to_state,
           error: FerryError | None = None, details=None) -> ImportEvent:
    log.info("%s: %s %s → %s by %s%s", session.name, action, from_state or "-",
             to_state or "-", actor.name, f" ({error.code}: {error.message})" if error else "")
    return ImportEvent.objects.create(
        session=session, session_name=session.name, actor=actor.user,
        actor_name=actor.name, action=str(action), from_state=str(from_state),
        to_state=str(to_state), client_address=actor.address,
        outcome="failed" if error else "succeeded",
        error_code=error.code if error else "", error_message=error.message if error else "",
        details=jsonable(details or {}))
