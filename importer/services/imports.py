"""Creating imports: a volume session, or a group session with one member per volume (its
destination volume group's name, and each member's hosts)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from importer import roles
from importer.drivers import get_driver
from importer.errors import SourceError, ValidationError
from importer.models import (
    DestinationType,
    Host,
    ImportableCriteria,
    ImportSession,
    SourceGroup,
    SourceVolume,
    VolumeGroup,
)
from importer.services import dispatch, nodes
from importer.services.common import NAME_MAX, Actor
from importer.services.transitions import record
from importer.states import UNFINISHED, State
from importer.validation import name_problem

SCHEDULE_GRACE = timedelta(seconds=60)  # clock skew and latency, not a real past schedule
MIN_THROTTLE = 1024 * 1024
PHYSICAL_LOCK_SPACE = 0x4645  # advisory locks on one physical source volume (PostgreSQL)
VOLUME_GROUP_LOCK_SPACE = 0x4647  # ... and on one volume group name
VOLUME_GROUP_NAME_MAX = 128  # PowerStore's limit on a volume group's name
MEMBER_HOSTS = "consistency_group_member_host_ids"  # PowerStore's field name


def create_import(*, name: str, source_resource_id, actor: Actor, description: str = "",
                  remote_system_id: int | None = None, host_ids=(),
                  consistency_group_member_host_ids=(),
                  volume_group_name: str | None = None,
                  automatic_cutover: bool = False,
                  scheduled_timestamp: datetime | None = None,
                  throttle_bytes_per_second: int | None = None,
                  storage_node_id: int | None = None) -> ImportSession:
    """Create a volume session, or a group session with one member per volume, on
    ``storage_node_id`` or, without one, on the node with the most room (services.nodes).

    A group's destination volume group is named ``volume_group_name`` (default: after the
    source group, see ``default_volume_group_name``). Each member volume listed in
    ``consistency_group_member_host_ids`` ({"source_volume_id", "host_ids"} items, like
    PowerStore's {volume_wwn, host_ids}) is mapped to its hosts, the others to ``host_ids``.
    """
    actor.require(roles.OPERATE, "create imports")
    name = (name or "").strip()
    description = description or ""
    errors = check_import_options(name, scheduled_timestamp, throttle_bytes_per_second)
    hosts = _find_hosts(host_ids, errors)
    member_hosts = _find_member_hosts(consistency_group_member_host_ids, errors)
    with transaction.atomic():
        source = _lock_source(source_resource_id, remote_system_id, errors)
        volumes = _importable_volumes(source, errors) if source else []
        if source and not errors:
            _check_names(name, source, volumes, errors)
        if source:
            _check_members(source, volumes, member_hosts, errors)
            volume_group_name = _choose_volume_group_name(source, volume_group_name, errors)
            # a group's destinations all live on one node: it cuts over as one
            node = nodes.choose_node(storage_node_id, sum(v.size for v in volumes), errors)
        if errors:
            raise ValidationError(errors)
        now = timezone.now()
        state = (State.SCHEDULED if scheduled_timestamp and scheduled_timestamp > now
                 else State.QUEUED)
        common = {"description": description, "remote_system_id": source.remote_system_id,
                  "automatic_cutover": automatic_cutover, "state": state,
                  "scheduled_timestamp": scheduled_timestamp,
                  "throttle_bytes_per_second": throttle_bytes_per_second,
                  "storage_node": node}
        session = _create_session(name, source, volumes, common, actor,
                                  {v.pk: member_hosts.get(str(v.pk), hosts) for v in volumes},
                                  volume_group_name)
        dispatch.tick_on_commit()
    return session


def check_import_options(name, scheduled_timestamp, throttle) -> dict[str, list[str]]:
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


def _find_member_hosts(mappings, errors) -> dict[str, list[Host]]:
    """Each listed member volume's hosts, by source volume id."""
    try:
        wanted = {str(m["source_volume_id"]): [str(h) for h in m["host_ids"]]
                  for m in mappings or ()}
    except (KeyError, TypeError):
        errors[MEMBER_HOSTS] = ["Each item needs a source_volume_id and its host_ids."]
        return {}
    asked = {h for ids in wanted.values() for h in ids}
    known = {str(h.pk): h for h in Host.objects.filter(pk__in=[h for h in asked if h.isdigit()])}
    if missing := sorted(asked - set(known)):
        errors[MEMBER_HOSTS] = [f"No host with id {', '.join(missing)}."]
    return {volume_id: [known[h] for h in ids if h in known]
            for volume_id, ids in wanted.items()}


def _check_members(source, volumes, member_hosts, errors) -> None:
    if not member_hosts:
        return
    if isinstance(source, SourceVolume):
        errors[MEMBER_HOSTS] = [
            "Hosts per member volume are for a consistency group; a volume takes host_ids."]
        return
    members = {str(v.pk) for v in volumes}
    if strangers := sorted(set(member_hosts) - members):
        errors[MEMBER_HOSTS] = [f"No member volume of consistency group {source.name} "
                                     f"has id {', '.join(strangers)}."]


def volume_group_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a new destination volume group, or None if it can."""
    if not name:
        return "A volume group name is required."
    if problem := name_problem(name):
        return problem
    if len(name) > VOLUME_GROUP_NAME_MAX:
        return f"A volume group name has at most {VOLUME_GROUP_NAME_MAX} characters."
    if existing := VolumeGroup.objects.filter(name__iexact=name).first():
        return f"A volume group named {existing.name} already exists."
    if planned := _planned_volume_group(name):
        return f"Import session {planned.name} creates a volume group named " \
               f"{planned.volume_group_name} at setup."
    return None


def _planned_volume_group(name: str) -> ImportSession | None:
    """A group session that will make a volume group of this name (not set up yet)."""
    return ImportSession.objects.filter(
        volume_group_name__iexact=name, state__in=UNFINISHED, source_group__isnull=False,
        destination_volume_group__isnull=True).first()


def default_volume_group_name(group: SourceGroup) -> str:
    """The source group's name, or with -2, -3... when that volume group exists."""
    base = group.name.strip()[:VOLUME_GROUP_NAME_MAX - 4] or "volume-group"
    candidates = [base] + [f"{base}-{number}" for number in range(2, 1000)]
    return next(name for name in candidates if volume_group_name_problem(name) is None)


def _choose_volume_group_name(source, volume_group_name, errors) -> str:
    volume_group_name = (volume_group_name or "").strip()
    if isinstance(source, SourceVolume):
        if volume_group_name:
            errors["volume_group_name"] = [
                "A volume group name is for a consistency group import."]
        return ""
    volume_group_name = volume_group_name or default_volume_group_name(source)
    _serialise_creates_of(volume_group_name.lower())
    if problem := volume_group_name_problem(volume_group_name):
        errors["volume_group_name"] = [problem]
    return volume_group_name


def _serialise_creates_of(volume_group_name: str) -> None:
    """Two creates that name one volume group queue here, so only one of them wins."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                           [VOLUME_GROUP_LOCK_SPACE, volume_group_name])


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
    problems += _already_importing(source, volumes)
    if problems:
        errors.setdefault("source_resource_id", []).append(
            f"{source.name} cannot be imported: {'; '.join(problems)}.")
    return volumes


def _already_importing(source, volumes) -> list[str]:
    """One physical volume, one unfinished import: by this name, or by another name of the
    same volume (a symlink, a hard link, a second remote system on the same folder)."""
    _refresh_physical_ids(source.remote_system, volumes)
    physical_ids = sorted({v.physical_id for v in volumes if v.physical_id})
    _serialise_imports_of(physical_ids)
    uses = Q(source_volume__in=volumes) | Q(source_volume__physical_id__in=physical_ids)
    if isinstance(source, SourceGroup):
        uses |= Q(source_group=source)
    busy = (ImportSession.objects.filter(uses, state__in=UNFINISHED, source_volume__isnull=False)
            .select_related("source_volume__remote_system").order_by("name"))
    problems = []
    for session in busy:
        volume = session.source_volume
        same = "" if volume in volumes else (
            f", the same volume as {volume.remote_system.name}:{volume.identifier}")
        problems.append(f"{volume.name} is already being imported by {session.name}{same}")
    return problems


def _refresh_physical_ids(system, volumes) -> None:
    """Ask the driver what each volume is now: a link changed since the last discovery,
    or a volume discovered before Ferry knew physical ids, is judged by what it is."""
    try:
        driver = get_driver(system)
    except SourceError:
        return  # the system is unreachable: setup will say so
    for volume in volumes:
        try:
            current = driver.physical_id(volume.identifier)
        except SourceError:
            continue
        if current and current != volume.physical_id:
            volume.physical_id = current
            SourceVolume.objects.filter(pk=volume.pk).update(physical_id=current)


def _serialise_imports_of(physical_ids: list[str]) -> None:
    """Two creates for two names of one volume queue here, so only one of them wins.

    SQLite's IMMEDIATE transactions already serialise writers; PostgreSQL needs a lock.
    """
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for physical_id in physical_ids:  # sorted: one lock order
            cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                           [PHYSICAL_LOCK_SPACE, physical_id])


def _check_names(name, source, volumes, errors) -> None:
    names = [name] + ([_member_name(name, v) for v in volumes]
                      if isinstance(source, SourceGroup) else [])
    taken = sorted(ImportSession.objects.filter(name__in=names).values_list("name", flat=True))
    if taken:
        errors["name"] = [f"An import session named {taken[0]} already exists."]


def _member_name(group_name: str, volume: SourceVolume) -> str:
    return f"{group_name} / {volume.name}"


def _create_session(name, source, volumes, common, actor, hosts_of,
                    volume_group_name) -> ImportSession:
    """``hosts_of``: each volume's hosts, by source volume id."""
    try:
        if isinstance(source, SourceVolume):
            session = ImportSession.objects.create(
                name=name, source_volume=source, total_bytes=source.size,
                destination_resource_type=DestinationType.VOLUME, **common)
            members = []
        else:
            session = ImportSession.objects.create(
                name=name, source_group=source, total_bytes=sum(v.size for v in volumes),
                destination_resource_type=DestinationType.VOLUME_GROUP,
                volume_group_name=volume_group_name, **common)
            members = [ImportSession.objects.create(
                name=_member_name(name, volume), source_volume=volume, parent_session=session,
                total_bytes=volume.size, destination_resource_type=DestinationType.VOLUME,
                **common) for volume in volumes]
    except IntegrityError:  # a concurrent create took the name between check and insert
        raise ValidationError(
            {"name": [f"An import session named {name} already exists."]}) from None
    for member in members:
        member.hosts.set(hosts_of[member.source_volume_id])
    # a group's hosts are all its members': what its source access steps name
    session.hosts.set({host for hosts in hosts_of.values() for host in hosts})
    for created in (session, *members):
        record(created, "create", actor, "", created.state,
               details={"storage_node": created.storage_node.name})
    _set_criteria(volumes, source, ImportableCriteria.IN_PROGRESS)
    return session


def _set_criteria(volumes, source, criteria) -> None:
    SourceVolume.objects.filter(pk__in=[v.pk for v in volumes]).update(
        importable_criteria=criteria)
    if isinstance(source, SourceGroup):
        SourceGroup.objects.filter(pk=source.pk).update(importable_criteria=criteria)
