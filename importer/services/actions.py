"""Operator actions on import sessions: the spec's Import Actions, the schedule, the
description and deleting a finished session's record."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from importer import roles, states
from importer.errors import ActionNotAllowed, ValidationError
from importer.models import ImportSession
from importer.services import alerts, source_access
from importer.services.common import Actor
from importer.services.imports import check_import_options
from importer.services.transitions import lock, move, record, refresh_group
from importer.states import Action


def perform_action(session_id: int, action: str, *, actor: Actor, force: bool = False,
                   scheduled_timestamp: datetime | None = None,
                   source_unmapped_confirmed: bool = False) -> ImportSession | None:
    """Run an operator action on a session, if its state allows it. Returns it fresh.

    ``force`` (admins only) skips what cannot be done: a forced cancel does not restore the
    source's host access, a forced cleanup gives up on it. Both record what they skipped.
    ``source_unmapped_confirmed``: the operator did the manual step that enabling the
    destination of a source Ferry cannot protect needs (see source_access).
    """
    action = _parse_action(action)
    actor.require(roles.OPERATE, "run import actions")
    if force and action not in states.FORCEABLE_ACTIONS:
        forceable = " and ".join(sorted(states.FORCEABLE_ACTIONS))
        raise ValidationError({"force": [f"force applies to {forceable} only."]})
    if force:
        actor.require(roles.FORCE, f"force-{action} imports")
    if action == Action.DELETE:
        return delete_import(session_id, actor=actor)
    if action == Action.MODIFY_SCHEDULE:
        return modify_schedule(session_id, scheduled_timestamp, actor=actor)
    changes = {"force_cancel": True} if force else {}
    details = {"forced": True} if force else None
    with transaction.atomic():
        session = lock(session_id)
        _check_allowed(session, action)
        if action == Action.ENABLE_DESTINATION_VOLUME:
            changes, details = _confirm_source_unmapped(session, source_unmapped_confirmed,
                                                        actor)
        if session.is_group:
            _perform_group_action(session, action, actor, changes, details)
        else:
            move(session, action, actor=actor, changes=changes, details=details)
    return ImportSession.objects.get(pk=session_id)


def _confirm_source_unmapped(session, confirmed: bool, actor: Actor) -> tuple[dict, dict]:
    details = source_access.require_confirmation(session, confirmed)
    if not details:
        return {}, None
    changes = {"source_unmap_confirmed_at": timezone.now(),
               "source_unmap_confirmed_by": actor.name[:150]}
    if session.is_group:  # the group's own row: its members get theirs as they move
        ImportSession.objects.filter(pk=session.pk).update(**changes)
    return changes, details


def modify_schedule(session_id: int, scheduled_timestamp, *, actor: Actor) -> ImportSession:
    actor.require(roles.OPERATE, "modify schedules")
    errors = check_import_options("-", scheduled_timestamp, None)
    if scheduled_timestamp is None:
        errors["scheduled_timestamp"] = ["A new schedule is required."]
    if errors:
        raise ValidationError(errors)
    changes = {"scheduled_timestamp": scheduled_timestamp}
    with transaction.atomic():
        session = lock(session_id)
        _check_allowed(session, Action.MODIFY_SCHEDULE)
        if session.is_group:
            _perform_group_action(session, Action.MODIFY_SCHEDULE, actor, changes)
            ImportSession.objects.filter(pk=session.pk).update(**changes)
        else:
            move(session, Action.MODIFY_SCHEDULE, actor=actor, changes=changes)
    return ImportSession.objects.get(pk=session_id)


def describe_import(session_id: int, description: str, *, actor: Actor) -> ImportSession:
    """Change a session's description, which any state allows."""
    actor.require(roles.OPERATE, "describe imports")
    with transaction.atomic():
        session = lock(session_id)
        ImportSession.objects.filter(pk=session.pk).update(description=description)
        record(session, "describe", actor, session.state, session.state,
               details={"description": description})
    return ImportSession.objects.get(pk=session_id)


def delete_import(session_id: int, *, actor: Actor) -> None:
    """Remove a finished session's record (REST only). Its audit trail stays."""
    actor.require(roles.OPERATE, "delete import sessions")
    with transaction.atomic():
        session = lock(session_id)
        _check_allowed(session, Action.DELETE)
        record(session, Action.DELETE, actor, session.state, "")
        alerts.session_deleted(session.pk)
        session.delete()


def _parse_action(action: str) -> Action:
    try:
        return Action(action)
    except ValueError:
        raise ValidationError({"action": [
            f"Unknown action {action!r}. Actions: {', '.join(a.value for a in Action)}."]}
        ) from None


def _check_allowed(session: ImportSession, action: Action) -> None:
    if session.is_member:
        raise ActionNotAllowed(
            session.name, action, session.state, (),
            reason=f"{session.name} is a member of {session.parent_session.name}; "
                   f"run {action} on the group session.")
    if action not in session.allowed_actions:
        raise ActionNotAllowed(session.name, action, session.state, session.allowed_actions)


def _perform_group_action(group, action, actor, changes, details=None) -> None:
    """Apply a group's action to every member that can take it, then re-derive the group."""
    members = list(group.members.select_for_update().order_by("pk"))
    movable = [m for m in members if states.next_volume_state(m.state, action)]
    if not movable:
        raise ActionNotAllowed(group.name, action, group.state, group.allowed_actions,
                               reason=f"No member of {group.name} can {action} now.")
    for member in movable:
        move(member, action, actor=actor, changes=changes, details=details)
    refresh_group(group.pk, action, actor, always_record=True)
