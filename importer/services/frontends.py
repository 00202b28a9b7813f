"""Destination front ends, the database's side: where a volume's runtime lives, what its
front end should be doing in each state, how jobs work with it, and what hosts need.

The storage node's supervisor (importer.frontend_supervisor) runs the nbdkit processes;
the jobs here (enable, copy, cutover, cancel) run in the node's worker processes and meet
the front end only through the runtime folder: its map, its locks and its mode byte.
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager, nullcontext
from pathlib import Path

from django.conf import settings
from django.db.models import F, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from importer.drivers import get_driver
from importer.errors import FerryError, SourceError
from importer.frontend.runtime import (
    CUT_OVER,
    FENCED,
    FORWARD,
    CopyGuard,
    UncheckedGuard,
    VolumeRuntime,
)
from importer.models import FrontEndState, ImportSession, Volume
from importer.states import State

# From Enable Destination Volume until the session ends, hosts use the destination and
# every write is forwarded to the source; after cutover the destination alone serves them.
FORWARDING = {State.READY_TO_START_COPY, State.COPY_IN_PROGRESS, State.PAUSED,
              State.READY_FOR_CUTOVER, State.CUTOVER_IN_PROGRESS, State.CANCEL_REQUIRED}
SERVING_AFTER_CUTOVER = {State.IMPORT_COMPLETED}
# A cancel keeps forwarding until its job fences the volume (host I/O drained).
SERVED = FORWARDING | SERVING_AFTER_CUTOVER | {State.CANCEL_IN_PROGRESS}
COMPARE_BYTES = 8 * 1024 * 1024  # host-written ranges are checked in pieces of this size


class FrontEndError(FerryError):
    code = "frontend_error"


def wanted_mode(state: str) -> int | None:
    """The mode a volume's front end should be in while its session is in ``state``."""
    if state not in SERVED:
        return None
    return CUT_OVER if state in SERVING_AFTER_CUTOVER else FORWARD


def runtime_folder(volume: Volume) -> Path:
    return Path(settings.FERRY_RUNTIME_DIR) / volume.name


def open_runtime(volume: Volume | None) -> VolumeRuntime | None:
    """The volume's runtime, if it has a front end on this node."""
    if volume is None or not (runtime_folder(volume) / "params.json").exists():
        return None
    return VolumeRuntime.open(runtime_folder(volume), locking=not settings.FERRY_FRONTEND_NOLOCK)


# --- Enable: make the runtime the supervisor serves ---------------------------------------

def prepare(session: ImportSession) -> None:
    """Idempotent: the runtime of the session's destination, made once at enable, with
    what is already copied (a front end added to a half-copied volume) marked."""
    volume = session.destination_volume
    folder = runtime_folder(volume)
    if (folder / "params.json").exists():
        return
    source = get_driver(session.remote_system).frontend_source(session.source_volume.identifier)
    copied = session.copied_extents.order_by("start").values_list("start", "end")
    runtime = VolumeRuntime.create(folder, volume.size, volume.location, source)
    for start, end in copied:
        runtime.mark_copied(start, end)
    runtime.close()
    Volume.objects.filter(pk=volume.pk).update(frontend_state=FrontEndState.STARTING)


def discard(volume: Volume) -> None:
    shutil.rmtree(runtime_folder(volume), ignore_errors=True)


# --- Copy ---------------------------------------------------------------------------------

@contextmanager
def copy_guard(volume: Volume):
    """The copier's guard while hosts use the volume; None when nobody serves it."""
    runtime = open_runtime(volume)
    if runtime is None:
        yield None
        return
    try:
        yield UncheckedGuard(runtime) if settings.FERRY_FRONTEND_NOLOCK else CopyGuard(runtime)
    finally:
        runtime.close()


# --- Cutover and cancel ---------------------------------------------------------------------

def written_by_hosts(volume: Volume) -> list[tuple[int, int]]:
    """Ranges hosts wrote after they were copied: the copier's checksums no longer hold
    there, so the cutover compares them with the source instead."""
    runtime = open_runtime(volume)
    if runtime is None:
        return []
    try:
        return runtime.written_ranges()
    finally:
        runtime.close()


class HostWriteCheck:
    """Compares ranges hosts wrote with the source, while hosts keep writing.

    Each range is compared under its chunks' shared lock (a host write there waits the
    moment it takes), and remembered with its chunks' write generations; ``again`` then
    compares only what hosts wrote since (a new range, or a generation that moved)."""

    def __init__(self, session: ImportSession, runtime: VolumeRuntime):
        self.session, self.runtime = session, runtime
        self.seen: dict[tuple[int, int], bytes] = {}

    def compare(self, ranges, locked: bool = True) -> int | None:
        """The first offset where the destination differs from the source, or None."""
        todo = [r for r in ranges if self.seen.get(r) != self._generations(r)]
        if not todo:
            return None
        source = _open_side(self.session, self.runtime.source)
        fd = os.open(self.runtime.destination, os.O_RDONLY)
        try:
            for start, end in todo:
                first, stop = self.runtime.chunks_covering(start, end)
                lock = self.runtime.chunk_lock(first, stop, exclusive=False) if locked \
                    else nullcontext()
                with lock:
                    offset = _first_difference(source, fd, start, end)
                    if offset is not None:
                        return offset
                    self.seen[(start, end)] = self._generations((start, end))
        finally:
            os.close(fd)
            source.close()
        return None

    def _generations(self, byte_range: tuple[int, int]) -> bytes:
        return self.runtime.generations(*self.runtime.chunks_covering(*byte_range))


def _first_difference(source, fd: int, start: int, end: int) -> int | None:
    for offset in range(start, end, COMPARE_BYTES):
        length = min(COMPARE_BYTES, end - offset)
        theirs = bytearray(length)
        source.read_into(memoryview(theirs), offset)
        if os.pread(fd, length, offset) != theirs:
            return offset
    return None


def _open_side(session: ImportSession, spec: dict):
    from importer.frontend.sides import open_source

    try:
        return open_source(spec)
    except Exception as error:  # noqa: BLE001  (libnbd's or the OS's error, named below)
        raise SourceError("source_unreachable", f"Cannot reach the source of {session.name}: "
                          f"{error}.", session=session.name) from error


def cut_over(session: ImportSession, verify_host_writes) -> None:
    """Stop forwarding. ``verify_host_writes(check, written_ranges, locked)`` compares
    what hosts wrote with the source: first while they keep working, then, with their I/O
    held for a moment, only what they wrote since. Then every chunk must be copied, both
    sides are flushed, and the destination alone serves from now on."""
    runtime = open_runtime(session.destination_volume)
    if runtime is None:
        return
    try:
        if runtime.mode == CUT_OVER:
            return  # a cutover run again after it switched
        check = HostWriteCheck(session, runtime)
        verify_host_writes(check, runtime.written_ranges(), True)
        with runtime.quiesce():
            _repair_interrupted_writes(session, runtime)
            _check_complete(session, runtime)
            verify_host_writes(check, runtime.written_ranges(), False)
            _flush_both(session, runtime)
            runtime.mode = CUT_OVER
    finally:
        runtime.close()
    Volume.objects.filter(pk=session.destination_volume_id).update(frontend_mode="cut_over")


def fence(session: ImportSession) -> None:
    """At cancel: hosts get no more I/O here (every acknowledged write is on the source,
    which is flushed), and the supervisor stops the server."""
    runtime = open_runtime(session.destination_volume)
    if runtime is None:
        return
    try:
        with runtime.quiesce():
            forwarding = runtime.mode == FORWARD
            runtime.mode = FENCED  # first: a source that is away must not keep hosts on
            if forwarding:
                _flush_source(session, runtime)
    finally:
        runtime.close()
        Volume.objects.filter(pk=session.destination_volume_id).update(frontend_mode="fenced")


def _repair_interrupted_writes(session: ImportSession, runtime: VolumeRuntime) -> None:
    """A front end killed in the middle of a host write leaves its chunks with intent set;
    the next front end repairs them when it starts, but the cutover may come first."""
    if not runtime.intent_chunks():
        return
    from importer.frontend.sides import FileSide

    source, destination = _open_side(session, runtime.source), FileSide(runtime.destination)
    try:
        runtime.repair_interrupted_writes(source, destination, held=True)
    finally:
        source.close()
        destination.close()


def _check_complete(session: ImportSession, runtime: VolumeRuntime) -> None:
    if runtime.intent_chunks() or runtime.copied_fraction() < 1:
        uncopied = runtime.uncopied_ranges()
        first = uncopied[0][0] if uncopied else runtime.intent_chunks()[0] * runtime.chunk_size
        raise FrontEndError(
            f"{session.name}: the front end's map says offset {first} is not copied (a host "
            "write failed there); the copy must run again before cutover.", offset=first)


def _flush_both(session: ImportSession, runtime: VolumeRuntime) -> None:
    fd = os.open(runtime.destination, os.O_WRONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)
    _flush_source(session, runtime)


def _flush_source(session: ImportSession, runtime: VolumeRuntime) -> None:
    """Flush what hosts wrote to the source; nothing to do (and no need to reach the
    source) if they wrote nothing."""
    stats = runtime.stats()
    if not (stats["write_ops"] or stats["zero_ops"]):
        return
    side = _open_side(session, runtime.source)
    try:
        side.flush()
    finally:
        side.close()


# --- What hosts need ------------------------------------------------------------------------

def destination_volumes(session: ImportSession) -> list[tuple[ImportSession, Volume]]:
    """(session, its destination volume) for a volume session, or for each member of a
    group that has one."""
    members = [session] if session.source_volume_id else list(
        session.members.select_related("destination_volume").order_by("name"))
    return [(member, member.destination_volume) for member in members
            if member.destination_volume is not None]


def host_access(session: ImportSession) -> list[dict]:
    """For each host mapped to the session's destination(s): where to connect and with
    which key. Empty until the destination is enabled."""
    access = []
    for _member, volume in destination_volumes(session):
        if not volume.frontend_port:
            continue
        for mapping in volume.mappings.select_related("host"):
            access.append(_access_for(volume, mapping))
    return access


def _access_for(volume: Volume, mapping) -> dict:
    address = f"{settings.FERRY_FRONTEND_HOST}:{volume.frontend_port}"
    return {
        "host": mapping.host.name, "volume": volume.name,
        "state": volume.frontend_state, "mode": volume.frontend_mode,
        "uri": f"nbds://{address}/", "address": settings.FERRY_FRONTEND_HOST,
        "port": volume.frontend_port, "tls_psk_identity": mapping.host.name,
        "tls_psk_key": mapping.access_key,
        "psk_file_line": f"{mapping.host.name}:{mapping.access_key}",
    }


def with_host_rates(sessions: QuerySet) -> QuerySet:
    """Annotates host_read_rate and host_write_rate (bytes/s): a session's destination
    volume's, a group's the sum of its members'. One subquery per row, not a query."""
    def rate(field: str):
        members = ImportSession.objects.filter(parent_session=OuterRef("pk")).order_by() \
            .values("parent_session").annotate(total=Sum(f"destination_volume__{field}")) \
            .values("total")
        return Coalesce(F(f"destination_volume__{field}"), Subquery(members), Value(0))
    return sessions.annotate(host_read_rate=rate("host_read_rate"),
                             host_write_rate=rate("host_write_rate"))
