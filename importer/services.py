"""The only code that changes an import session's state: one function per operation.

Every state change is a conditional UPDATE on a locked row (the group's row first, the one
lock order everywhere), writes exactly one ImportEvent, and enqueues work on commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from importer import audit, pool, roles, states
from importer.drivers import driver_class, get_driver
from importer.errors import (
    ActionNotAllowed,
    FerryError,
    InUse,
    NotFound,
    PermissionDenied,
    SourceError,
    ValidationError,
)
from importer.models import (
    DestinationType,
    Host,
    HostOsType,
    HostVolumeMapping,
    IdempotencyRecord,
    ImportableCriteria,
    ImportEvent,
    ImportSession,
    RemoteSystem,
    SourceGroup,
    SourceVolume,
    SystemStatus,
    Volume,
    VolumeGroup,
)
from importer.states import Action, Event, State
from importer.validation import check_initiators, name_problem

log = logging.getLogger(__name__)

SCHEDULE_GRACE = timedelta(seconds=60)  # clock skew and latency, not a real past schedule
MIN_THROTTLE = 1024 * 1024
SCHEDULER_LOCK_KEY = 0x46455252  # "FERR": the scheduler's advisory lock on PostgreSQL
NAME_MAX = 255

# Work a state hands to the workers when a session enters it (see importer.tasks).
STATE_JOBS = {
    State.READY_TO_START_COPY: "enable_destination_session_task",
    State.COPY_IN_PROGRESS: "copy_session_task",
    State.CUTOVER_IN_PROGRESS: "cutover_session_task",
    State.CANCEL_IN_PROGRESS: "cancel_session_task",
    State.CLEANUP_IN_PROGRESS: "cleanup_session_task",
}
# Slots are freed, and so the queue may move, when a session reaches one of these.
_SLOT_RELEASING = {state for state, info in states.STATES.items() if info.is_terminal}
_SLOT_RELEASING.add(State.FAILED)
_IN_USE = [state for state, info in states.STATES.items() if not info.is_terminal]


@dataclass(frozen=True)
class Actor:
    """Who asks: a user (with the client's address) or Ferry itself."""

    user: Any = None
    address: str | None = None

    @classmethod
    def of(cls, request) -> "Actor":
        """The user behind a web, API or admin request, and where it came from."""
        return cls(request.user, audit.client_address(request))

    @property
    def is_system(self) -> bool:
        return self.user is None

    @property
    def name(self) -> str:
        return "system" if self.is_system else self.user.get_username()

    def require(self, permission: str, doing: str) -> None:
        if self.is_system or self.user.has_perm(permission):
            return
        refusal = PermissionDenied(f"{self.name} is not allowed to {doing}.",
                                   permission=permission, user=self.name)
        audit.record(audit.ACCESS_DENIED, user=self.user, actor_name=self.name,
                     address=self.address, subject=doing, outcome="refused",
                     error_code=refusal.code, error_message=refusal.message,
                     details={"permission": permission})
        raise refusal


SYSTEM = Actor()


# --- Remote systems ------------------------------------------------------------------------

def create_remote_system(*, name: str, driver_settings: dict, actor: Actor,
                         driver_type: str = "directory", description: str = "") -> RemoteSystem:
    actor.require(roles.MANAGE_SYSTEMS, "manage remote systems")
    name = (name or "").strip()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = ["A name is required."]
    elif problem := name_problem(name):
        errors["name"] = [problem]
    elif RemoteSystem.objects.filter(name=name).exists():
        errors["name"] = [f"A remote system named {name} already exists."]
    try:
        driver_settings = driver_class(driver_type).validate_settings(
            driver_settings, settings.FERRY_SOURCE_ROOTS)
    except SourceError as error:
        errors["driver_settings"] = [error.message]
    if errors:
        raise ValidationError(errors)
    system = RemoteSystem.objects.create(name=name, driver_type=driver_type,
                                         driver_settings=driver_settings,
                                         description=description)
    _audit_change("create_remote_system", actor, f"remote system {name}",
                  {"driver_settings": driver_settings})
    return system


def save_remote_system(system_id: int | None, *, name: str, driver_settings: dict,
                       actor: Actor, description: str = "") -> RemoteSystem:
    """Add a remote system, or change one. Its folder cannot move under a running import."""
    if system_id is None:
        return create_remote_system(name=name, driver_settings=driver_settings, actor=actor,
                                    description=description)
    actor.require(roles.MANAGE_SYSTEMS, "manage remote systems")
    system = _get(RemoteSystem, system_id)
    name = (name or "").strip()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = ["A name is required."]
    elif problem := name_problem(name):
        errors["name"] = [problem]
    elif RemoteSystem.objects.filter(name=name).exclude(pk=system.pk).exists():
        errors["name"] = [f"A remote system named {name} already exists."]
    try:
        driver_settings = driver_class(system.driver_type).validate_settings(
            driver_settings, settings.FERRY_SOURCE_ROOTS)
    except SourceError as error:
        errors["driver_settings"] = [error.message]
    moved = driver_settings.get("path") != system.driver_settings.get("path")
    if moved and system.import_sessions.filter(state__in=_IN_USE).exists():
        errors.setdefault("driver_settings", []).append(
            "The folder cannot change while imports from it are unfinished.")
    if errors:
        raise ValidationError(errors)
    system.name, system.driver_settings, system.description = name, driver_settings, description
    system.save(update_fields=["name", "driver_settings", "description"])
    _audit_change("change_remote_system", actor, f"remote system {name}",
                  {"driver_settings": driver_settings})
    return system


def delete_remote_system(system_id: int, *, actor: Actor) -> None:
    actor.require(roles.MANAGE_SYSTEMS, "manage remote systems")
    system = _get(RemoteSystem, system_id)
    in_use = system.import_sessions.count()
    if in_use:
        raise InUse(f"{system.name} is used by {in_use} import session(s); delete them first.",
                    remote_system=system.name, import_sessions=in_use)
    system.delete()
    _audit_change("delete_remote_system", actor, f"remote system {system.name}")


def discover_remote_system(system_id: int, *, actor: Actor) -> RemoteSystem:
    """Refresh what a remote system holds. An unreachable system is marked so, then raised."""
    actor.require(roles.OPERATE, "run discovery")
    system = _get(RemoteSystem, system_id)
    try:
        found = get_driver(system).discover()
    except SourceError as error:
        RemoteSystem.objects.filter(pk=system.pk).update(
            status=SystemStatus.UNREACHABLE, status_message=error.message[:500])
        _audit_change("discover", actor, f"remote system {system.name}", error=error)
        raise
    now = timezone.now()
    with transaction.atomic():
        groups = {g.identifier: _upsert_group(system, g, now) for g in found.groups}
        seen = [_upsert_volume(system, v, groups, now).pk for v in found.volumes]
        _mark_missing(system.source_volumes.exclude(pk__in=seen), system)
        _mark_missing(system.source_groups.exclude(pk__in=[g.pk for g in groups.values()]),
                      system)
        for group in groups.values():
            _summarise_group(group)
        system.status, system.status_message = SystemStatus.OK, ""
        system.last_discovery_timestamp = now
        system.save(update_fields=["status", "status_message", "last_discovery_timestamp"])
        _audit_change("discover", actor, f"remote system {system.name}",
                      {"volumes": len(seen), "groups": len(groups)})
    return system


def _audit_change(action: str, actor: Actor, subject: str, details: dict | None = None,
                  error: FerryError | None = None) -> None:
    audit.record(action, user=actor.user, actor_name=actor.name, address=actor.address,
                 subject=subject, outcome="failed" if error else "succeeded",
                 error_code=error.code if error else "",
                 error_message=error.message if error else "",
                 details=_jsonable(details or {}))


# --- Hosts ---------------------------------------------------------------------------------

def save_host(host_id: int | None, *, name: str, actor: Actor, os_type: str = "Linux",
              description: str = "", initiators=()) -> Host:
    """Add a host, or change one."""
    actor.require(roles.MANAGE_HOSTS, "manage hosts")
    host = _get(Host, host_id) if host_id is not None else Host()
    name = (name or "").strip()
    # Normalised, order kept, repeats dropped: a port listed twice is still one port.
    initiators, bad_initiators = check_initiators(initiators)
    errors: dict[str, list[str]] = {"initiators": bad_initiators} if bad_initiators else {}
    if not name:
        errors["name"] = ["A name is required."]
    elif problem := name_problem(name):
        errors["name"] = [problem]
    elif Host.objects.filter(name=name).exclude(pk=host.pk).exists():
        errors["name"] = [f"A host named {name} already exists."]
    if os_type not in HostOsType.values:
        errors["os_type"] = [f"Unknown OS type {os_type!r}. Types: "
                             f"{', '.join(HostOsType.values)}."]
    if errors:
        raise ValidationError(errors)
    host.name, host.os_type, host.description = name, os_type, description
    host.initiators = initiators
    host.save()
    _audit_change("save_host", actor, f"host {name}", {"initiators": initiators})
    return host


def delete_host(host_id: int, *, actor: Actor) -> None:
    """Remove a host that no volume is mapped to and no unfinished import will map."""
    actor.require(roles.MANAGE_HOSTS, "manage hosts")
    host = _get(Host, host_id)
    mapped = host.mappings.count()
    pending = host.import_sessions.filter(state__in=_IN_USE).count()
    if mapped or pending:
        raise InUse(f"{host.name} is mapped to {mapped} volume(s) and used by {pending} "
                    "unfinished import session(s); unmap it or finish them first.",
                    host=host.name, volumes=mapped, import_sessions=pending)
    host.delete()
    _audit_change("delete_host", actor, f"host {host.name}")


def _upsert_group(system, discovered, now) -> SourceGroup:
    group, _ = SourceGroup.objects.update_or_create(
        remote_system=system, identifier=discovered.identifier,
        defaults={"name": discovered.name, "last_seen": now})
    return group


def _upsert_volume(system, discovered, groups, now) -> SourceVolume:
    volume = SourceVolume.objects.filter(remote_system=system,
                                         identifier=discovered.identifier).first()
    volume = volume or SourceVolume(remote_system=system, identifier=discovered.identifier)
    volume.name, volume.last_seen = discovered.name, now
    volume.group = groups.get(discovered.group_identifier)
    if discovered.readable:
        volume.size = discovered.size
        volume.importable_reason = ""
        if volume.importable_criteria == ImportableCriteria.OFFLINE or volume._state.adding:
            volume.importable_criteria = _criteria_after_online(volume)
    else:
        volume.importable_criteria = ImportableCriteria.OFFLINE
        volume.importable_reason = discovered.reason[:500]
    volume.save()
    return volume


def _criteria_after_online(volume: SourceVolume) -> str:
    if volume.pk and volume.import_sessions.filter(state__in=_IN_USE).exists():
        return ImportableCriteria.IN_PROGRESS
    if volume.pk and volume.import_sessions.filter(state=State.IMPORT_COMPLETED).exists():
        return ImportableCriteria.IMPORTED
    return ImportableCriteria.READY


def _mark_missing(queryset, system) -> None:
    where = system.driver_settings.get("path", system.name)
    reason = f"Not found in {where} at the last discovery."
    queryset.update(importable_criteria=ImportableCriteria.OFFLINE, importable_reason=reason)


def _summarise_group(group: SourceGroup) -> None:
    volumes = list(group.volumes.all())
    group.size = sum(volume.size for volume in volumes)
    offline = [v.name for v in volumes if v.importable_criteria == ImportableCriteria.OFFLINE]
    if offline:
        group.importable_criteria = ImportableCriteria.OFFLINE
        group.importable_reason = f"Offline member(s): {', '.join(offline)}."[:500]
    elif group.importable_criteria == ImportableCriteria.OFFLINE:
        group.importable_criteria, group.importable_reason = ImportableCriteria.READY, ""
    group.save(update_fields=["size", "importable_criteria", "importable_reason"])


# --- Creating imports ---------------------------------------------------------------------

def create_import(*, name: str, source_resource_id, actor: Actor, description: str = "",
                  remote_system_id: int | None = None, host_ids=(),
                  automatic_cutover: bool = False,
                  scheduled_timestamp: datetime | None = None,
                  throttle_bytes_per_second: int | None = None) -> ImportSession:
    """Create a volume session, or a group session with one member per volume."""
    actor.require(roles.OPERATE, "create imports")
    name = (name or "").strip()
    errors = _check_import_options(name, scheduled_timestamp, throttle_bytes_per_second)
    hosts = _find_hosts(host_ids, errors)
    with transaction.atomic():
        source = _lock_source(source_resource_id, remote_system_id, errors)
        volumes = _importable_volumes(source, errors) if source else []
        if source and not errors:
            _check_names(name, source, volumes, errors)
        if errors:
            raise ValidationError(errors)
        now = timezone.now()
        state = (State.SCHEDULED if scheduled_timestamp and scheduled_timestamp > now
                 else State.QUEUED)
        common = {"description": description, "remote_system_id": source.remote_system_id,
                  "automatic_cutover": automatic_cutover, "state": state,
                  "scheduled_timestamp": scheduled_timestamp,
                  "throttle_bytes_per_second": throttle_bytes_per_second}
        session = _create_session(name, source, volumes, hosts, common, actor)
        transaction.on_commit(partial(_enqueue, "scheduler_tick_task"))
    return session


def _check_import_options(name, scheduled_timestamp, throttle) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = ["A name is required."]
    elif problem := name_problem(name):
        errors["name"] = [problem]
    elif len(name) > NAME_MAX - 40:
        errors["name"] = [f"A name has at most {NAME_MAX - 40} characters."]
    if scheduled_timestamp is not None:
        if not isinstance(scheduled_timestamp, datetime) or timezone.is_naive(
                scheduled_timestamp):
            errors["scheduled_timestamp"] = ["A schedule needs a date, a time and a timezone."]
        elif scheduled_timestamp < timezone.now() - SCHEDULE_GRACE:
            errors["scheduled_timestamp"] = [
                f"{scheduled_timestamp.isoformat()} is in the past."]
    if throttle is not None and (not isinstance(throttle, int) or throttle < MIN_THROTTLE):
        errors["throttle_bytes_per_second"] = [
            f"A bandwidth limit is at least {MIN_THROTTLE} bytes per second (1 MiB/s)."]
    return errors


def _find_hosts(host_ids, errors) -> list[Host]:
    host_ids = list(host_ids or [])
    hosts = list(Host.objects.filter(pk__in=[h for h in host_ids if str(h).isdigit()]))
    missing = sorted({str(h) for h in host_ids} - {str(h.pk) for h in hosts})
    if missing:
        errors["host_ids"] = [f"No host with id {', '.join(missing)}."]
    return hosts


def _lock_source(source_resource_id, remote_system_id, errors):
    lookup = {"pk": source_resource_id}
    if remote_system_id is not None:
        lookup["remote_system_id"] = remote_system_id
    try:
        source = (SourceVolume.objects.select_for_update().filter(**lookup).first()
                  or SourceGroup.objects.select_for_update().filter(**lookup).first())
    except (ValueError, TypeError, DjangoValidationError):  # not a UUID at all
        source = None
    if source is None:
        errors["source_resource_id"] = [
            f"No source volume or consistency group with id {source_resource_id}"
            + (f" on remote system {remote_system_id}." if remote_system_id else ".")]
    return source


def _importable_volumes(source, errors) -> list[SourceVolume]:
    if isinstance(source, SourceVolume):
        if source.group_id:
            errors["source_resource_id"] = [
                f"{source.name} belongs to consistency group {source.group.name}; "
                f"import the group so its volumes move together."]
        volumes = [source]
    else:
        volumes = list(source.volumes.select_for_update().order_by("identifier"))
        if not volumes:
            errors["source_resource_id"] = [f"Consistency group {source.name} is empty."]
    problems = [f"{v.name} is {v.get_importable_criteria_display()}"
                + (f" ({v.importable_reason})" if v.importable_reason else "")
                for v in volumes if v.importable_criteria != ImportableCriteria.READY]
    uses = Q(source_volume__in=volumes)
    if isinstance(source, SourceGroup):
        uses |= Q(source_group=source)
    busy = ImportSession.objects.filter(uses, state__in=_IN_USE)
    busy_names = sorted(busy.values_list("name", flat=True))
    if busy_names:
        problems.append(f"already being imported by {', '.join(busy_names)}")
    if problems:
        errors.setdefault("source_resource_id", []).append(
            f"{source.name} cannot be imported: {'; '.join(problems)}.")
    return volumes


def _check_names(name, source, volumes, errors) -> None:
    names = [name] + ([_member_name(name, v) for v in volumes]
                      if isinstance(source, SourceGroup) else [])
    taken = sorted(ImportSession.objects.filter(name__in=names).values_list("name", flat=True))
    if taken:
        errors["name"] = [f"An import session named {taken[0]} already exists."]


def _member_name(group_name: str, volume: SourceVolume) -> str:
    return f"{group_name} / {volume.name}"


def _create_session(name, source, volumes, hosts, common, actor) -> ImportSession:
    try:
        if isinstance(source, SourceVolume):
            session = ImportSession.objects.create(
                name=name, source_volume=source, total_bytes=source.size,
                destination_resource_type=DestinationType.VOLUME, **common)
            members = []
        else:
            session = ImportSession.objects.create(
                name=name, source_group=source, total_bytes=sum(v.size for v in volumes),
                destination_resource_type=DestinationType.VOLUME_GROUP, **common)
            members = [ImportSession.objects.create(
                name=_member_name(name, volume), source_volume=volume, parent_session=session,
                total_bytes=volume.size, destination_resource_type=DestinationType.VOLUME,
                **common) for volume in volumes]
    except IntegrityError:  # a concurrent create took the name between check and insert
        raise ValidationError(
            {"name": [f"An import session named {name} already exists."]}) from None
    session.hosts.set(hosts)
    for created in (session, *members):
        _record(created, "create", actor, "", created.state)
    _set_criteria(volumes, source, ImportableCriteria.IN_PROGRESS)
    return session


def _set_criteria(volumes, source, criteria) -> None:
    SourceVolume.objects.filter(pk__in=[v.pk for v in volumes]).update(
        importable_criteria=criteria)
    if isinstance(source, SourceGroup):
        SourceGroup.objects.filter(pk=source.pk).update(importable_criteria=criteria)


# --- Operator actions ---------------------------------------------------------------------

def perform_action(session_id: int, action: str, *, actor: Actor, force: bool = False,
                   scheduled_timestamp: datetime | None = None) -> ImportSession | None:
    """Run an operator action on a session, if its state allows it. Returns it fresh."""
    action = _parse_action(action)
    actor.require(roles.OPERATE, "run import actions")
    if force and action != Action.CANCEL:
        raise ValidationError({"force": ["force applies to cancel only."]})
    if force:
        actor.require(roles.FORCE_CANCEL, "force-cancel imports")
    if action == Action.DELETE:
        return delete_import(session_id, actor=actor)
    if action == Action.MODIFY_SCHEDULE:
        return modify_schedule(session_id, scheduled_timestamp, actor=actor)
    changes = {"force_cancel": True} if force else {}
    with transaction.atomic():
        session = _lock(session_id)
        _check_allowed(session, action)
        if session.is_group:
            _perform_group_action(session, action, actor, changes)
        else:
            _move(session, action, actor=actor, changes=changes)
    return ImportSession.objects.get(pk=session_id)


def modify_schedule(session_id: int, scheduled_timestamp, *, actor: Actor) -> ImportSession:
    actor.require(roles.OPERATE, "modify schedules")
    errors = _check_import_options("-", scheduled_timestamp, None)
    if scheduled_timestamp is None:
        errors["scheduled_timestamp"] = ["A new schedule is required."]
    if errors:
        raise ValidationError(errors)
    changes = {"scheduled_timestamp": scheduled_timestamp}
    with transaction.atomic():
        session = _lock(session_id)
        _check_allowed(session, Action.MODIFY_SCHEDULE)
        if session.is_group:
            _perform_group_action(session, Action.MODIFY_SCHEDULE, actor, changes)
            ImportSession.objects.filter(pk=session.pk).update(**changes)
        else:
            _move(session, Action.MODIFY_SCHEDULE, actor=actor, changes=changes)
    return ImportSession.objects.get(pk=session_id)


def describe_import(session_id: int, description: str, *, actor: Actor) -> ImportSession:
    """Change a session's description, which any state allows."""
    actor.require(roles.OPERATE, "describe imports")
    with transaction.atomic():
        session = _lock(session_id)
        ImportSession.objects.filter(pk=session.pk).update(description=description)
        _record(session, "describe", actor, session.state, session.state,
                details={"description": description})
    return ImportSession.objects.get(pk=session_id)


def delete_import(session_id: int, *, actor: Actor) -> None:
    """Remove a finished session's record (REST only). Its audit trail stays."""
    actor.require(roles.OPERATE, "delete import sessions")
    with transaction.atomic():
        session = _lock(session_id)
        _check_allowed(session, Action.DELETE)
        _record(session, Action.DELETE, actor, session.state, "")
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


def _perform_group_action(group, action, actor, changes) -> None:
    """Apply a group's action to every member that can take it, then re-derive the group."""
    members = list(group.members.select_for_update().order_by("pk"))
    movable = [m for m in members if states.next_volume_state(m.state, action)]
    if not movable:
        raise ActionNotAllowed(group.name, action, group.state, group.allowed_actions,
                               reason=f"No member of {group.name} can {action} now.")
    for member in movable:
        _move(member, action, actor=actor, changes=changes)
    _refresh_group(group.pk, action, actor, always_record=True)


# --- The transition core ------------------------------------------------------------------

def _lock(session_id) -> ImportSession:
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


def _move(session: ImportSession, trigger: str, *, actor: Actor, changes=None,
          error: FerryError | None = None, details=None) -> ImportSession:
    """Move one volume session along the table: a conditional UPDATE and one event."""
    target = states.next_volume_state(session.state, trigger)
    if target is None:
        raise ActionNotAllowed(session.name, trigger, session.state, session.allowed_actions)
    fields = {"state": target, "last_update_timestamp": timezone.now(), **(changes or {})}
    if error is not None:
        fields.update(error_code=error.code, error_message=error.message,
                      error_arguments=_jsonable(error.arguments))
    elif target == State.IMPORT_COMPLETED:
        fields.update(error_code="", error_message="", error_arguments={})
    updated = ImportSession.objects.filter(pk=session.pk, state=session.state).update(**fields)
    if updated != 1:
        current = ImportSession.objects.filter(pk=session.pk).values_list("state", flat=True)
        raise ActionNotAllowed(session.name, trigger, current.first() or session.state, ())
    from_state = session.state
    for field, value in fields.items():
        setattr(session, field, value)
    _record(session, trigger, actor, from_state, target, error, details)
    _after_entering(session, target)
    return session


def _after_entering(session: ImportSession, target: State) -> None:
    job = STATE_JOBS.get(target)
    if job:
        transaction.on_commit(partial(_enqueue, job, session.pk))
    if target in _SLOT_RELEASING:
        transaction.on_commit(partial(_enqueue, "scheduler_tick_task"))
    if target == State.IMPORT_COMPLETED:
        _set_criteria([session.source_volume], None, ImportableCriteria.IMPORTED)
    elif target == State.CANCELLED:
        _set_criteria([session.source_volume], None, ImportableCriteria.READY)


def _refresh_group(group_id: int, trigger: str, actor: Actor,
                   *, always_record: bool = False) -> ImportSession:
    """Re-derive a group's state from its members; record it if it changed."""
    group = ImportSession.objects.select_for_update().get(pk=group_id)
    members = list(group.members.values("state", "copied_bytes", "error_code",
                                        "error_message", "error_arguments"))
    derived = states.derive_group_state(m["state"] for m in members)
    fields = {"copied_bytes": sum(m["copied_bytes"] for m in members)}
    failed = next((m for m in members if m["error_code"]), None)
    if failed and derived in (State.CANCEL_REQUIRED, State.FAILED, State.CANCEL_FAILED,
                              State.CLEANUP_REQUIRED, State.CLEANUP_FAILED,
                              State.IMPORT_CUTOVER_INCOMPLETE):
        fields.update(error_code=failed["error_code"], error_message=failed["error_message"],
                      error_arguments=failed["error_arguments"])
    ImportSession.objects.filter(pk=group.pk).update(**fields)
    if derived == group.state and not always_record:
        return group
    from_state = group.state
    ImportSession.objects.filter(pk=group.pk, state=from_state).update(
        state=derived, last_update_timestamp=timezone.now())
    group.state = derived
    _record(group, trigger, actor, from_state, derived)
    if derived != from_state:
        _after_group_entering(group, derived)
    return group


def _after_group_entering(group: ImportSession, derived: State) -> None:
    if derived == State.CANCEL_REQUIRED:
        # A consistency group moves together: one failed member stops the others.
        for member in group.members.select_for_update().filter(state=State.COPY_IN_PROGRESS):
            _move(member, Event.GROUP_STOPPED, actor=SYSTEM)
        _refresh_group(group.pk, Event.GROUP_STOPPED, SYSTEM)
    elif derived == State.READY_FOR_CUTOVER and group.automatic_cutover:
        for member in group.members.select_for_update().filter(state=State.READY_FOR_CUTOVER):
            _move(member, Event.AUTOMATIC_CUTOVER, actor=SYSTEM)
        _refresh_group(group.pk, Event.AUTOMATIC_CUTOVER, SYSTEM)
    elif derived in (State.IMPORT_COMPLETED, State.CANCELLED,
                     State.IMPORT_COMPLETED_WITH_ERRORS):
        everything_imported = derived == State.IMPORT_COMPLETED
        SourceGroup.objects.filter(pk=group.source_group_id).update(
            importable_criteria=ImportableCriteria.IMPORTED if everything_imported
            else ImportableCriteria.READY)


def _advance(session_id: int, trigger: str, *, expected: State | None = None,
             changes=None, error: FerryError | None = None, details=None):
    """A worker's outcome: move the session if it is still where the worker left it."""
    with transaction.atomic():
        try:
            session = _lock(session_id)
        except NotFound:
            return None
        if expected is not None and session.state != expected:
            return None  # someone else moved it on (a pause, a cancel): the outcome is stale
        _move(session, trigger, actor=SYSTEM, changes=changes, error=error, details=details)
        if session.parent_session_id:
            _refresh_group(session.parent_session_id, trigger, SYSTEM)
        elif session.state == State.READY_FOR_CUTOVER and session.automatic_cutover:
            _move(session, Event.AUTOMATIC_CUTOVER, actor=SYSTEM)
        return session


def _record(session, action, actor: Actor, from_state, to_state,
            error: FerryError | None = None, details=None) -> ImportEvent:
    log.info("%s: %s %s → %s by %s%s", session.name, action, from_state or "-",
             to_state or "-", actor.name, f" ({error.code}: {error.message})" if error else "")
    return ImportEvent.objects.create(
        session=session, session_name=session.name, actor=actor.user,
        actor_name=actor.name, action=str(action), from_state=str(from_state),
        to_state=str(to_state), client_address=actor.address,
        outcome="failed" if error else "succeeded",
        error_code=error.code if error else "", error_message=error.message if error else "",
        details=_jsonable(details or {}))


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _enqueue(task_name: str, *args) -> None:
    from importer import tasks

    try:
        getattr(tasks, task_name).delay(*args)
    except Exception:  # the broker is down: the scheduler tick and the reaper catch up
        log.exception("Could not enqueue %s%s; the next scheduler tick will retry", task_name,
                      args)


def _get(model, pk):
    try:
        return model.objects.get(pk=pk)
    except (model.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"{model._meta.verbose_name.capitalize()} {pk} does not exist.",
                       id=str(pk)) from None


# --- Scheduler ----------------------------------------------------------------------------

def scheduler_tick(now: datetime | None = None) -> dict:
    """Start what is due, then admit queued imports FIFO into the free slots."""
    now = now or timezone.now()
    due = list(ImportSession.objects.filter(
        state=State.SCHEDULED, parent_session__isnull=True, scheduled_timestamp__lte=now)
        .values_list("pk", flat=True))
    for session_id in due:
        _start_scheduled(session_id)
    admitted = _admit_queued()
    restarted = _restart_orphaned_copies(now)
    IdempotencyRecord.objects.expired(now).delete()  # housekeeping for the API's retries
    return {"started": len(due), "admitted": len(admitted), "restarted": restarted}


def _restart_orphaned_copies(now: datetime) -> int:
    """The reaper: a copy whose lease expired lost its worker (a crash, a kill -9)."""
    quiet_since = now - timedelta(seconds=settings.FERRY_LEASE_SECONDS)
    orphaned = list(ImportSession.objects.filter(
        Q(lease_owner="") | Q(lease_expires_at__lt=now), state=State.COPY_IN_PROGRESS,
        last_update_timestamp__lt=quiet_since).values_list("pk", flat=True))
    for session_id in orphaned:
        _enqueue("copy_session_task", session_id)
    return len(orphaned)


def _start_scheduled(session_id: int) -> None:
    with transaction.atomic():
        session = _lock(session_id)
        if session.state != State.SCHEDULED:
            return
        if session.is_group:
            for member in session.members.select_for_update().filter(state=State.SCHEDULED):
                _move(member, Event.SCHEDULE_DUE, actor=SYSTEM)
            _refresh_group(session.pk, Event.SCHEDULE_DUE, SYSTEM)
        else:
            _move(session, Event.SCHEDULE_DUE, actor=SYSTEM)


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
            state__in=list(_SLOT_RELEASING)).count()
        free = max(0, settings.FERRY_MAX_ACTIVE_IMPORTS - holding)
        waiting = list(top_level.filter(state=State.QUEUED, admitted_timestamp__isnull=True)
                       .order_by("created", "pk")[:free])
        now = timezone.now()
        for session in waiting:
            units = [session.pk] + list(session.members.values_list("pk", flat=True))
            ImportSession.objects.filter(pk__in=units, admitted_timestamp__isnull=True).update(
                admitted_timestamp=now)
            for volume_session_id in units[1:] if session.is_group else units:
                transaction.on_commit(partial(_enqueue, "setup_session_task",
                                              volume_session_id))
    return [session.pk for session in waiting]


# --- Worker operations: setup, enable, cutover, cancel, cleanup ---------------------------

def run_setup(session_id: int) -> None:
    """Queued → Mirror_Enabled: create the destination with the source's size, map hosts."""
    session = _load_for_work(session_id, State.QUEUED)
    if session is None or session.is_group:
        return
    try:
        size = get_driver(session.remote_system).size(session.source_volume.identifier)
        volume = _create_destination(session, size)
    except (SourceError, pool.PoolError) as error:
        _advance(session_id, Event.SETUP_FAILED, expected=State.QUEUED, error=error)
        return
    moved = _advance(session_id, Event.SETUP_SUCCEEDED, expected=State.QUEUED,
                     changes={"destination_volume": volume, "total_bytes": size},
                     details={"destination": volume.location, "size": size})
    if moved is None:  # cancelled while we were creating it: leave nothing behind
        _discard_destination(volume)


def _load_for_work(session_id: int, *expected: State) -> ImportSession | None:
    session = (ImportSession.objects.select_related(
        "remote_system", "source_volume", "destination_volume", "parent_session")
        .filter(pk=session_id).first())
    if session is None or session.state not in expected:
        return None  # deleted, or moved on: a duplicate or stale job does nothing
    return session


def _create_destination(session: ImportSession, size: int) -> Volume:
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


def _discard_destination(volume: Volume) -> None:
    pool.remove_volume_file(volume.location)
    volume.delete()


def run_enable_destination(session_id: int) -> None:
    """Make the destination writable and revoke the source's host access."""
    session = _load_for_work(session_id, State.READY_TO_START_COPY, State.COPY_IN_PROGRESS)
    if session is None:
        return
    try:
        ensure_destination_enabled(session)
    except (SourceError, pool.PoolError) as error:
        _advance(session_id, Event.IO_FAILED, expected=session.state, error=error)
        return
    _undo_enable_if_cancelled(session_id)


def _undo_enable_if_cancelled(session_id: int) -> None:
    """A cancel that ran while we revoked access found nothing to restore: restore it now."""
    session = _load_for_work(session_id, State.CANCELLED)
    if session is not None and session.source_access_backup is not None:
        try:
            _restore_source(session)
        except SourceError:
            log.exception("%s: could not restore the source's access after a cancel",
                          session.name)


def ensure_destination_enabled(session: ImportSession) -> None:
    """Idempotent: the enable job and the first copy slice both call it."""
    volume = session.destination_volume
    if volume is None:
        raise pool.PoolError(f"{session.name} has no destination volume.", session=session.name)
    pool.set_read_only(volume.location, False)
    Volume.objects.filter(pk=volume.pk).update(is_read_only=False)
    if session.source_access_backup is None:
        backup = get_driver(session.remote_system).revoke_host_access(
            session.source_volume.identifier)
        ImportSession.objects.filter(pk=session.pk, source_access_backup__isnull=True).update(
            source_access_backup=backup)
        session.source_access_backup = backup


def run_copy(session_id: int, *, handoff: str | None = None) -> str:
    """Copy one slice under the session's lease, then hand over, finish or fail.

    Returns what happened: "finished", "slice_done", "busy" (another worker holds the
    lease), or why the copy stopped ("Paused", "Cancel_In_Progress"...).
    """
    from importer import copying

    session = _load_for_work(session_id, State.COPY_IN_PROGRESS)
    if session is None:
        if handoff:  # paused or stopped during the hand-off: let go of what we were given
            copying.release_lease(session_id, handoff, keep_for_handoff=False)
        return "not_copying"
    lease_id = copying.new_lease_id()
    if not copying.acquire_lease(session_id, lease_id, handoff):
        return "busy"
    outcome = "failed"
    try:
        ensure_destination_enabled(session)
        outcome = copying.copy_slice(session, lease_id)
    except (SourceError, pool.PoolError) as error:
        _advance(session_id, Event.IO_FAILED, expected=State.COPY_IN_PROGRESS, error=error)
        return outcome
    finally:
        copying.release_lease(session_id, lease_id, keep_for_handoff=outcome == "slice_done")
        log.info("%s: copy slice %s ended: %s", session.name, lease_id, outcome)
    if outcome == "finished":
        _advance(session_id, Event.COPY_COMPLETED, expected=State.COPY_IN_PROGRESS,
                 changes={"progress_percentage": 100, "current_transfer_rate": 0,
                          "estimated_completion_timestamp": None})
    elif outcome == "slice_done":
        _enqueue("copy_session_task", session_id, lease_id)
    return outcome


def run_cutover(session_id: int) -> None:
    """Commit: the destination becomes the volume of record, and the source is released."""
    session = _load_for_work(session_id, State.CUTOVER_IN_PROGRESS)
    if session is None:
        return
    from importer import copying

    try:
        copying.verify_destination(session)
    except copying.VerificationFailed as error:
        _advance(session_id, Event.IO_FAILED, expected=State.CUTOVER_IN_PROGRESS, error=error)
        return
    except (SourceError, pool.PoolError, OSError) as error:
        _advance(session_id, Event.CUTOVER_RETRYABLE, expected=State.CUTOVER_IN_PROGRESS,
                 error=_as_ferry_error(error, "cutover_failed", session))
        return
    _advance(session_id, Event.CUTOVER_SUCCEEDED, expected=State.CUTOVER_IN_PROGRESS,
             details={"volume_of_record": session.destination_volume.location})


def run_cancel(session_id: int) -> None:
    """Roll back: remove the destination, then give the source its host access back."""
    session = _load_for_work(session_id, State.CANCEL_IN_PROGRESS)
    if session is None or session.is_group:
        return
    from importer import copying

    copying.wait_for_copy_to_stop(session)
    force = session.force_cancel
    volume = session.destination_volume
    if volume is not None:
        try:
            _discard_destination(volume)
        except pool.PoolError as error:
            if not force:
                _advance(session_id, Event.CANCEL_FAILED, expected=State.CANCEL_IN_PROGRESS,
                         error=error)
                return
    if session.source_access_backup is not None and not force:
        try:
            _restore_source(session)
        except SourceError as error:
            _advance(session_id, Event.SOURCE_RESTORE_FAILED,
                     expected=State.CANCEL_IN_PROGRESS, error=error)
            return
    _advance(session_id, Event.CANCEL_SUCCEEDED, expected=State.CANCEL_IN_PROGRESS,
             details={"forced": force, "source_restored": not force})


def run_cleanup(session_id: int) -> None:
    """Retry giving the source its host access back after a rollback could not."""
    session = _load_for_work(session_id, State.CLEANUP_IN_PROGRESS)
    if session is None or session.is_group:
        return
    try:
        if session.source_access_backup is not None:
            _restore_source(session)
    except SourceError as error:
        _advance(session_id, Event.CLEANUP_FAILED, expected=State.CLEANUP_IN_PROGRESS,
                 error=error)
        return
    _advance(session_id, Event.CLEANUP_SUCCEEDED, expected=State.CLEANUP_IN_PROGRESS)


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
