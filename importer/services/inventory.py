"""Remote systems, their discovery, and hosts: the inventory imports are made from."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from importer import failpoints, roles
from importer.drivers import driver_class, get_driver
from importer.errors import InUse, NotFound, SourceError, ValidationError
from importer.models import (
    DriverType,
    Host,
    HostOsType,
    ImportableCriteria,
    RemoteSystem,
    SourceGroup,
    SourceVolume,
    SystemStatus,
)
from importer.services import alerts, dispatch, job_records
from importer.services.common import SYSTEM, Actor, audit_change, get_object
from importer.states import UNFINISHED, State
from importer.validation import check_initiators, name_problem

DISCOVERY_TASK = "discover_remote_system_task"


def create_remote_system(*, name: str, driver_settings: dict, actor: Actor,
                         driver_type: str = "directory", description: str = "") -> RemoteSystem:
    actor.require(roles.MANAGE_SYSTEMS, "manage remote systems")
    name = (name or "").strip()
    errors = _name_errors(name, RemoteSystem.objects.all(), "remote system")
    if driver_type not in DriverType.values:
        errors["driver_type"] = [f"Unknown driver {driver_type!r}. Known: "
                                 f"{', '.join(DriverType.values)}."]
        raise ValidationError(errors)
    driver_settings = _valid_settings(driver_type, driver_settings, errors)
    if errors:
        raise ValidationError(errors)
    system = RemoteSystem.objects.create(name=name, driver_type=driver_type,
                                         driver_settings=driver_settings,
                                         description=description)
    audit_change("create_remote_system", actor, f"remote system {name}",
                  {"driver_settings": driver_settings})
    return system


def save_remote_system(system_id: int | None, *, name: str, driver_settings: dict,
                       actor: Actor, description: str = "",
                       driver_type: str = "directory") -> RemoteSystem:
    """Add a remote system, or change one. Its folder or server cannot move under a
    running import."""
    if system_id is None:
        return create_remote_system(name=name, driver_settings=driver_settings, actor=actor,
                                    description=description, driver_type=driver_type)
    actor.require(roles.MANAGE_SYSTEMS, "manage remote systems")
    system = get_object(RemoteSystem, system_id)
    name = (name or "").strip()
    errors = _name_errors(name, RemoteSystem.objects.exclude(pk=system.pk), "remote system")
    driver_settings = _valid_settings(system.driver_type, driver_settings, errors)
    moved = RemoteSystem(driver_settings=driver_settings).address != system.address
    if moved and system.import_sessions.filter(state__in=UNFINISHED).exists():
        errors.setdefault("driver_settings", []).append(
            f"The {'server' if system.driver_type == DriverType.NBD else 'folder'} cannot "
            "change while imports from it are unfinished.")
    if errors:
        raise ValidationError(errors)
    system.name, system.driver_settings, system.description = name, driver_settings, description
    system.save(update_fields=["name", "driver_settings", "description"])
    audit_change("change_remote_system", actor, f"remote system {name}",
                  {"driver_settings": driver_settings})
    return system


def _name_errors(name: str, others, what: str) -> dict[str, list[str]]:
    """A name's problems: missing, with control characters, or taken by one of ``others``."""
    if not name:
        return {"name": ["A name is required."]}
    if problem := name_problem(name):
        return {"name": [problem]}
    if others.filter(name=name).exists():
        return {"name": [f"A {what} named {name} already exists."]}
    return {}


def _valid_settings(driver_type: str, driver_settings: dict, errors: dict) -> dict:
    """The driver's settings normalised; what is wrong with them goes into ``errors``."""
    try:
        return driver_class(driver_type).validate_settings(driver_settings,
                                                           settings.FERRY_SOURCE_ROOTS)
    except SourceError as error:
        errors["driver_settings"] = [error.message]
        return driver_settings


def delete_remote_system(system_id: int, *, actor: Actor) -> None:
    actor.require(roles.MANAGE_SYSTEMS, "manage remote systems")
    system = get_object(RemoteSystem, system_id)
    in_use = system.import_sessions.count()
    if in_use:
        raise InUse(f"{system.name} is used by {in_use} import session(s); delete them first.",
                    remote_system=system.name, import_sessions=in_use)
    system.delete()
    audit_change("delete_remote_system", actor, f"remote system {system.name}")


def request_discovery(system_id: int, *, actor: Actor) -> RemoteSystem:
    """Ask a worker to discover a system: a slow or hung source never holds a web request.

    The system shows "Discovering" until the job ends (FERRY_DISCOVERY_SECONDS at most).
    """
    actor.require(roles.OPERATE, "run discovery")
    system = get_object(RemoteSystem, system_id)
    with transaction.atomic():
        started = RemoteSystem.objects.filter(pk=system.pk).exclude(
            status=SystemStatus.DISCOVERING).update(
            status=SystemStatus.DISCOVERING, status_message="",
            discovery_requested_at=timezone.now())
        if not started:  # one discovery at a time: two would race on the same volumes
            raise InUse(f"A discovery of {system.name} is already running.",
                        remote_system=system.name)
        audit_change("discover_requested", actor, f"remote system {system.name}")
        job_records.discovery_queued(system)
        transaction.on_commit(partial(_send_discovery, system.pk))
    system.refresh_from_db()
    return system


def _send_discovery(system_id: int) -> None:
    # The limits travel with the message, so the setting that asked is the one obeyed.
    seconds = settings.FERRY_DISCOVERY_SECONDS
    if not dispatch.send(DISCOVERY_TASK, system_id, soft_time_limit=seconds,
                         time_limit=seconds + 30):
        message = ("Discovery could not be queued: the broker is unreachable. Try again once "
                   "it is back.")
        RemoteSystem.objects.filter(pk=system_id, status=SystemStatus.DISCOVERING).update(
            status=SystemStatus.UNKNOWN, status_message=message)
        job_records.discovery_ended(system_id, error=SourceError("broker_unreachable",
                                                                 message))


def run_discovery(system_id: int) -> None:
    """The discovery job. Its outcome is on the system (status, message) and audited,
    and on its job record."""
    job_records.discovery_started(system_id)
    try:
        system = discover_remote_system(system_id, actor=SYSTEM)
    except (SourceError, NotFound) as error:
        # Recorded on the system by discover_remote_system, or the system is gone.
        job_records.discovery_ended(system_id, error=error)
        return
    except Exception as error:
        job_records.discovery_ended(system_id, error=error)
        raise
    job_records.discovery_ended(
        system_id, step=f"Found {system.source_volumes.count()} volume(s) and "
                        f"{system.source_groups.count()} group(s)")


def discovery_timed_out(system_id: int) -> None:
    seconds = settings.FERRY_DISCOVERY_SECONDS
    error = SourceError("discovery_timeout", f"Discovery did not finish within {seconds} s; "
                        "the source may not be answering.", seconds=seconds)
    _mark_unreachable(get_object(RemoteSystem, system_id), error, SYSTEM)
    job_records.discovery_ended(system_id, error=error)


def expire_lost_discoveries(now) -> int:
    """A discovery whose worker died never reports: say so, so it can be asked again."""
    lost_before = now - timedelta(seconds=settings.FERRY_DISCOVERY_SECONDS + 60)
    lost = list(RemoteSystem.objects.filter(status=SystemStatus.DISCOVERING,
                                            discovery_requested_at__lt=lost_before))
    message = "Discovery was lost (its worker stopped); run it again."
    for system in lost:
        RemoteSystem.objects.filter(pk=system.pk, status=SystemStatus.DISCOVERING).update(
            status=SystemStatus.UNREACHABLE, status_message=message)
        job_records.discovery_ended(system.pk, error=SourceError("discovery_lost", message))
        alerts.system_unreachable(system, message)
    return len(lost)


def _mark_unreachable(system: RemoteSystem, error: SourceError, actor: Actor,
                      what: str = "discover") -> None:
    """The system is unhealthy: it and the volumes that could be imported say why."""
    RemoteSystem.objects.filter(pk=system.pk).update(
        status=SystemStatus.UNREACHABLE, status_message=error.message[:500],
        last_health_check=timezone.now(), latency_ms=None)
    alerts.system_unreachable(system, error.message)
    reason = f"{system.name} is unreachable: {error.message}"[:500]
    for sources in (system.source_volumes, system.source_groups):
        sources.filter(importable_criteria=ImportableCriteria.READY).update(
            importable_criteria=ImportableCriteria.OFFLINE, importable_reason=reason)
    audit_change(what, actor, f"remote system {system.name}", error=error)


# --- Health --------------------------------------------------------------------------------

HEALTH_TASK = "check_remote_system_health_task"


def request_health_checks(now) -> int:
    """The scheduler's part: a health check for each system not checked lately."""
    stale = now - timedelta(seconds=settings.FERRY_HEALTH_CHECK_SECONDS)
    due = (RemoteSystem.objects.exclude(status=SystemStatus.DISCOVERING)
           .exclude(last_health_check__gte=stale).values_list("pk", flat=True))
    for system_id in due:
        # Noted first, so the next tick does not send it again while this one runs.
        RemoteSystem.objects.filter(pk=system_id).update(last_health_check=now)
        seconds = settings.FERRY_NBD_CONNECT_TIMEOUT + 20
        dispatch.send(HEALTH_TASK, system_id, soft_time_limit=seconds,
                      time_limit=seconds + 10)
    return len(due)


def check_health(system_id: int) -> None:
    """Connect to the system (for NBD, the handshake) and record how long it took. A system
    that stops answering is marked unreachable, its volumes offline; one that answers again
    is rediscovered, which brings its volumes back."""
    system = RemoteSystem.objects.filter(pk=system_id).first()
    if system is None or system.status == SystemStatus.DISCOVERING:
        return
    try:
        seconds = get_driver(system).check_health()
    except SourceError as error:
        if system.status != SystemStatus.UNREACHABLE or system.status_message != error.message:
            _mark_unreachable(system, error, SYSTEM, what="health_check")
        else:
            RemoteSystem.objects.filter(pk=system.pk).update(last_health_check=timezone.now())
        return
    RemoteSystem.objects.filter(pk=system.pk).update(
        latency_ms=round(seconds * 1000, 2), last_health_check=timezone.now())
    if system.status == SystemStatus.UNREACHABLE:
        try:
            request_discovery(system.pk, actor=SYSTEM)
        except InUse:
            pass  # an operator asked for one first


def discover_remote_system(system_id: int, *, actor: Actor) -> RemoteSystem:
    """Refresh what a remote system holds. An unreachable system is marked so, then raised."""
    actor.require(roles.OPERATE, "run discovery")
    system = get_object(RemoteSystem, system_id)
    try:
        found = get_driver(system).discover()
        failpoints.reached("discovery.listed")
    except SourceError as error:
        _mark_unreachable(system, error, actor)
        raise
    now = timezone.now()
    with transaction.atomic():
        groups = {g.identifier: _upsert_group(system, g, now) for g in found.groups}
        seen = [_upsert_volume(system, v, groups, now).pk for v in found.volumes]
        # A volume that is gone is no longer a member: a group is judged by what it holds
        # now, so removing a bad member brings the group back online.
        _mark_missing(system.source_volumes.exclude(pk__in=seen), system, group=None)
        _mark_missing(system.source_groups.exclude(pk__in=[g.pk for g in groups.values()]),
                      system)
        for group in groups.values():
            _summarise_group(group)
        system.status, system.status_message = SystemStatus.OK, ""
        system.last_discovery_timestamp = now
        system.save(update_fields=["status", "status_message", "last_discovery_timestamp"])
        alerts.system_reachable(system)
        audit_change("discover", actor, f"remote system {system.name}",
                      {"volumes": len(seen), "groups": len(groups)})
    return system


# --- Hosts ---------------------------------------------------------------------------------

def save_host(host_id: int | None, *, name: str, actor: Actor, os_type: str = "Linux",
              description: str = "", initiators=()) -> Host:
    """Add a host, or change one."""
    actor.require(roles.MANAGE_HOSTS, "manage hosts")
    host = get_object(Host, host_id) if host_id is not None else Host()
    name = (name or "").strip()
    # Normalised, order kept, repeats dropped: a port listed twice is still one port.
    initiators, bad_initiators = check_initiators(initiators)
    errors = _name_errors(name, Host.objects.exclude(pk=host.pk), "host")
    if bad_initiators:
        errors["initiators"] = bad_initiators
    if os_type not in HostOsType.values:
        errors["os_type"] = [f"Unknown OS type {os_type!r}. Types: "
                             f"{', '.join(HostOsType.values)}."]
    if errors:
        raise ValidationError(errors)
    host.name, host.os_type, host.description = name, os_type, description
    host.initiators = initiators
    host.save()
    audit_change("save_host", actor, f"host {name}", {"initiators": initiators})
    return host


def delete_host(host_id: int, *, actor: Actor) -> None:
    """Remove a host that no volume is mapped to and no unfinished import will map."""
    actor.require(roles.MANAGE_HOSTS, "manage hosts")
    host = get_object(Host, host_id)
    mapped = host.mappings.count()
    pending = host.import_sessions.filter(state__in=UNFINISHED).count()
    if mapped or pending:
        raise InUse(f"{host.name} is mapped to {mapped} volume(s) and used by {pending} "
                    "unfinished import session(s); unmap it or finish them first.",
                    host=host.name, volumes=mapped, import_sessions=pending)
    host.delete()
    audit_change("delete_host", actor, f"host {host.name}")


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
    volume.description, volume.read_only = discovered.description[:500], discovered.read_only
    volume.group = groups.get(discovered.group_identifier)
    if discovered.readable:
        volume.size, volume.physical_id = discovered.size, discovered.physical_id
        volume.importable_reason = ""
        if volume.importable_criteria == ImportableCriteria.OFFLINE or volume._state.adding:
            volume.importable_criteria = _criteria_after_online(volume)
    else:
        volume.importable_criteria = ImportableCriteria.OFFLINE
        volume.importable_reason = discovered.reason[:500]
    volume.save()
    return volume


def _criteria_after_online(source: SourceVolume | SourceGroup) -> str:
    """What a volume or group that is back online may do: its imports decide."""
    if source.pk and source.import_sessions.filter(state__in=UNFINISHED).exists():
        return ImportableCriteria.IN_PROGRESS
    if source.pk and source.import_sessions.filter(state=State.IMPORT_COMPLETED).exists():
        return ImportableCriteria.IMPORTED
    return ImportableCriteria.READY


def _mark_missing(queryset, system, **changes) -> None:
    where = system.address or system.name
    reason = f"Not found in {where} at the last discovery."
    queryset.update(importable_criteria=ImportableCriteria.OFFLINE, importable_reason=reason,
                    **changes)


def _summarise_group(group: SourceGroup) -> None:
    volumes = list(group.volumes.all())
    group.size = sum(volume.size for volume in volumes)
    offline = [v.name for v in volumes if v.importable_criteria == ImportableCriteria.OFFLINE]
    if offline:
        group.importable_criteria = ImportableCriteria.OFFLINE
        group.importable_reason = f"Offline member(s): {', '.join(offline)}."[:500]
    elif group.importable_criteria == ImportableCriteria.OFFLINE:
        group.importable_criteria, group.importable_reason = _criteria_after_online(group), ""
    group.save(update_fields=["size", "importable_criteria", "importable_reason"])


