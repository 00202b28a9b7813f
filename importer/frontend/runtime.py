"""The runtime folder of one destination volume: state the front end and the copier share.

Stdlib only: nbdkit's embedded Python (Debian's /usr/bin python3.11) imports this module,
and so does the copier in Ferry's venv. The two processes share nothing but these files:

  params.json  size, chunk_size, destination path, source ({"path"} or {"uri"})
  map          1 byte per chunk: 1 = copied, the destination is authoritative for it
  intent       1 byte per chunk: a host write is between its source and destination write
  written      1 byte per chunk: the host wrote it after it was copied (cutover verifies
               these against the source; the copier's checksums no longer describe them)
  gen          uint32 per chunk, bumped by every host write (CopyGuard notices writes)
  ctl          the mode byte: FORWARD, CUT_OVER or FENCED
  stats        uint64 host I/O counters, for live rates
  lock         OFD lock file: lock byte i = chunk i, plus one gate byte (see quiesce)
  failed       present once a forwarded write failed; its text says why

The invariant: in FORWARD mode the source holds every acknowledged host write (each write
goes to the source first, under an exclusive lock on its chunks), and the destination is
authoritative only for chunks marked copied. The map files are MAP_SHARED mmaps, so both
processes see each other's updates at once; they live in the page cache and survive a
process crash, not a machine crash (the DB checkpoint is the durable record).
"""

from __future__ import annotations

import json
import mmap
import os
import re
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path

from importer.frontend.locks import LockPool, RangeLock

MiB = 1024 * 1024
FORWARD, CUT_OVER, FENCED = 0, 1, 2
MODE_NAMES = {FORWARD: "forward", CUT_OVER: "cut_over", FENCED: "fenced"}

# Host requests take this lock byte (shared, briefly) before their chunks, and quiesce
# takes it exclusively: without it a steady stream of overlapping host requests could keep
# some chunk locked forever, and quiesce, which needs all of them at once, would starve.
GATE_BYTE = 1 << 48

STAT_NAMES = ("read_ops", "read_bytes", "write_ops", "write_bytes", "zero_ops",
              "zero_bytes", "flushes", "errors")
STAT_SLOTS = 16  # room for more counters without resizing the file

PARAMS, MAP, INTENT, WRITTEN, GEN, CTL, STATS, LOCK, FAILED = (
    "params.json", "map", "intent", "written", "gen", "ctl", "stats", "lock", "failed")


class CopyRefused(RuntimeError):
    """The volume is no longer in FORWARD mode: the copier must stop."""


class VolumeRuntime:
    """One volume's runtime folder, opened (mmaped) by this process."""

    def __init__(self, folder, params: dict, locking: bool = True):
        self.folder = Path(folder)
        self.size = int(params["size"])
        self.chunk_size = int(params["chunk_size"])
        self.destination = params["destination"]
        self.source = params["source"]
        self.chunks = -(-self.size // self.chunk_size)
        self.locking = locking
        self.map = self._map(MAP, self.chunks)
        self.intent = self._map(INTENT, self.chunks)
        self.written = self._map(WRITTEN, self.chunks)
        self._gen_file = self._map(GEN, 4 * self.chunks)
        self.gen = memoryview(self._gen_file).cast("I")
        self.ctl = self._map(CTL, 8)
        self._stats_file = self._map(STATS, 8 * STAT_SLOTS)
        self._stats = memoryview(self._stats_file).cast("Q")
        self._stats_guard = threading.Lock()  # += on shared memory is not atomic
        self.locks = LockPool(self.folder / LOCK)

    # --- Making and opening ---------------------------------------------------------------

    @classmethod
    def create(cls, folder, size: int, destination, source: dict, chunk_size: int = MiB,
               copied_until: int = 0, locking: bool = True) -> VolumeRuntime:
        """Make (or reset) the folder. Only while no front end or copier has it open.

        ``copied_until``: the chunks below it are marked copied, for a front end started
        on a partly copied volume (from the DB checkpoint).
        """
        if size <= 0 or chunk_size <= 0:
            raise ValueError("size and chunk_size must be positive")
        source = _checked_source(source)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / FAILED).unlink(missing_ok=True)
        chunks = -(-size // chunk_size)
        for name, length in ((MAP, chunks), (INTENT, chunks), (WRITTEN, chunks),
                             (GEN, 4 * chunks), (CTL, 8), (STATS, 8 * STAT_SLOTS)):
            _fresh_file(folder / name, length)
        (folder / LOCK).touch(mode=0o600)
        params = {"size": size, "chunk_size": chunk_size, "chunks": chunks,
                  "destination": str(destination), "source": source}
        # Written last, atomically: whoever finds params.json finds the other files ready.
        temporary = folder / (PARAMS + ".tmp")
        temporary.write_text(json.dumps(params, indent=1))
        os.replace(temporary, folder / PARAMS)
        runtime = cls(folder, params, locking)
        if copied_until:
            runtime.mark_copied(0, copied_until)
        return runtime

    @classmethod
    def open(cls, folder, locking: bool = True) -> VolumeRuntime:
        params = json.loads((Path(folder) / PARAMS).read_text())
        return cls(folder, params, locking)

    def _map(self, name: str, length: int) -> mmap.mmap:
        with open(self.folder / name, "r+b") as file:
            return mmap.mmap(file.fileno(), length, mmap.MAP_SHARED)

    def close(self) -> None:
        self.gen.release()
        self._stats.release()
        for mapped in (self.map, self.intent, self.written, self._gen_file, self.ctl,
                       self._stats_file):
            mapped.close()
        self.locks.close()

    def __enter__(self) -> VolumeRuntime:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- Geometry: byte ranges and chunks -------------------------------------------------

    def chunks_covering(self, start: int, end: int) -> tuple[int, int]:
        """[first, stop) of the chunks that [start, end) touches."""
        return start // self.chunk_size, min(-(-end // self.chunk_size), self.chunks)

    def chunks_inside(self, start: int, end: int) -> tuple[int, int]:
        """[first, stop) of the chunks wholly inside [start, end). The volume's last chunk
        may be short: it is whole when the range reaches the end of the volume."""
        first = -(-start // self.chunk_size)
        stop = self.chunks if end >= self.size else end // self.chunk_size
        return first, max(first, stop)

    def byte_range(self, first: int, stop: int) -> tuple[int, int]:
        return first * self.chunk_size, min(stop * self.chunk_size, self.size)

    # --- Mode -----------------------------------------------------------------------------

    @property
    def mode(self) -> int:
        return self.ctl[0]

    @mode.setter
    def mode(self, value: int) -> None:
        if value not in MODE_NAMES:
            raise ValueError(f"unknown mode {value!r}")
        self.ctl[0] = value

    # --- The copied map -------------------------------------------------------------------

    def mark_copied(self, start: int, end: int) -> None:
        """Bytes [start, end) of the destination now equal the source; only whole chunks
        inside the range count (a partly written chunk still reads from the source)."""
        first, stop = self.chunks_inside(start, end)
        self.map[first:stop] = b"\x01" * (stop - first)

    def unmark_copied(self, first: int, stop: int) -> None:
        self.map[first:stop] = bytes(stop - first)

    def copied_runs(self, first: int, stop: int) -> list[tuple[int, int, bool]]:
        """Chunks [first, stop) as runs of (first, stop, copied)."""
        flags = self.map[first:stop]
        runs, run_start = [], first
        for index in range(1, len(flags) + 1):
            if index == len(flags) or flags[index] != flags[index - 1]:
                runs.append((run_start, first + index, flags[index - 1] == 1))
                run_start = first + index
        return runs

    def copied_fraction(self) -> float:
        return self.map[:].count(1) / self.chunks

    def copied_ranges(self) -> list[tuple[int, int]]:
        return self._byte_ranges(self.map)

    def uncopied_ranges(self) -> list[tuple[int, int]]:
        """What the copier still has to copy, as byte ranges."""
        return self._byte_ranges(self.map, b"\x00")

    # --- Written after copy, intent, generations ------------------------------------------

    def mark_written(self, first: int, stop: int) -> None:
        """The host wrote chunks [first, stop): remember those already copied."""
        for chunk in range(first, stop):
            if self.map[chunk]:
                self.written[chunk] = 1

    def written_ranges(self) -> list[tuple[int, int]]:
        return self._byte_ranges(self.written)

    def clear_written(self) -> None:
        self.written[:] = bytes(self.chunks)

    def set_intent(self, first: int, stop: int, flag: bool) -> None:
        self.intent[first:stop] = (b"\x01" if flag else b"\x00") * (stop - first)

    def intent_chunks(self) -> list[int]:
        return [match.start() for match in re.finditer(b"\x01", self.intent[:])]

    def generations(self, first: int, stop: int) -> bytes:
        return bytes(self._gen_file[4 * first:4 * stop])

    def bump_generations(self, first: int, stop: int) -> None:
        """Only under the exclusive lock of these chunks (read-modify-write)."""
        for chunk in range(first, stop):
            self.gen[chunk] = (self.gen[chunk] + 1) & 0xFFFFFFFF

    def _byte_ranges(self, flags: mmap.mmap, value: bytes = b"\x01"):
        return [self.byte_range(match.start(), match.end())
                for match in re.finditer(re.escape(value) + b"+", flags[:])]

    # --- Stats and failure ----------------------------------------------------------------

    def count(self, name: str, amount: int = 1) -> None:
        index = STAT_NAMES.index(name)
        with self._stats_guard:
            self._stats[index] = self._stats[index] + amount

    def stats(self) -> dict[str, int]:
        return {name: self._stats[index] for index, name in enumerate(STAT_NAMES)}

    def record_failure(self, text: str) -> None:
        """Leave the ``failed`` marker: Ferry moves the session to Cancel_Required."""
        temporary = self.folder / (FAILED + ".tmp")
        temporary.write_text(text + "\n")
        os.replace(temporary, self.folder / FAILED)

    def failure(self) -> str | None:
        try:
            return (self.folder / FAILED).read_text().strip()
        except FileNotFoundError:
            return None

    # --- Interrupted writes ---------------------------------------------------------------

    def repair_interrupted_writes(self, source, destination, *, held: bool = False) -> int:
        """Chunks with intent set: a front end died between the source write and the
        destination write (or in either). The source is authoritative, so copy them from
        it; the host has written them since they were copied. ``source`` and
        ``destination`` are sides (sides.py); ``held``: the caller holds every chunk
        already (quiesce). Returns how many chunks it repaired."""
        chunks = self.intent_chunks()
        for chunk in chunks:
            with nullcontext() if held else self.chunk_lock(chunk, chunk + 1):
                start, end = self.byte_range(chunk, chunk + 1)
                data = bytearray(end - start)
                source.read_into(memoryview(data), start)
                self.bump_generations(chunk, chunk + 1)
                destination.write(data, start)
                self.mark_written(chunk, chunk + 1)
                self.set_intent(chunk, chunk + 1, False)
        if chunks:
            destination.flush()
        return len(chunks)

    # --- Locks ----------------------------------------------------------------------------

    @contextmanager
    def host_lock(self, first: int, stop: int, exclusive: bool):
        """A host request's lock on chunks [first, stop): through the gate, so quiesce
        can stop new requests while it waits for those in flight."""
        if not self.locking or stop <= first:  # a zero-length request touches no chunk
            yield
            return
        with self.locks.borrowed() as handle:
            handle.lock(GATE_BYTE, 1, exclusive=False)
            try:
                handle.lock(first, stop - first, exclusive)
            finally:
                handle.unlock(GATE_BYTE, 1)
            try:
                yield
            finally:
                handle.unlock(first, stop - first)

    def chunk_lock(self, first: int, stop: int, exclusive: bool = True):
        """The copier's (and intent recovery's) lock: no gate, so it never waits on a
        quiesce it could not be starving anyway (it holds chunks for milliseconds)."""
        if not self.locking or stop <= first:
            return nullcontext()
        return _held_with_pool(self.locks, first, stop - first, exclusive)

    @contextmanager
    def quiesce(self):
        """Hold every chunk exclusively: waits for all host requests and copies in flight
        and blocks new ones until the block ends. For mode switches:
        ``with rt.quiesce(): flush the source; rt.mode = CUT_OVER``."""
        if not self.locking:
            yield
            return
        handle = RangeLock(self.folder / LOCK)  # its own description, in any process
        try:
            with handle.held(GATE_BYTE, 1, exclusive=True), \
                    handle.held(0, self.chunks, exclusive=True):
                yield
        finally:
            handle.close()


@contextmanager
def _held_with_pool(pool: LockPool, start: int, length: int, exclusive: bool):
    with pool.borrowed() as handle, handle.held(start, length, exclusive):
        yield


class CopyGuard:
    """What the copier (another process) uses so that it never races host writes.

    The pattern, per range it copies (byte offsets; ideally aligned to the map's chunk
    size, or ending at the volume's end, since only whole chunks get marked copied):

        token = guard.snapshot(start, end)        # BEFORE reading the source
        data = read the source [start, end)       # unlocked: host I/O goes on
        with guard.writing(start, end, token) as still_valid:
            if not still_valid:                   # a host wrote meanwhile
                data = read the source again      # now under the lock: nothing can change
            write data to the destination
        # leaving the block marked the whole chunks copied, then unlocked

    A range found to be a hole in the source works the same way (write nothing if still
    valid). An exception inside the block leaves the chunks uncopied.
    """

    def __init__(self, runtime: VolumeRuntime):
        self.runtime = runtime

    def snapshot(self, start: int, end: int) -> tuple[int, int, bytes]:
        first, stop = self.runtime.chunks_covering(start, end)
        return start, end, self.runtime.generations(first, stop)

    @contextmanager
    def writing(self, start: int, end: int, token: tuple[int, int, bytes]):
        if token[:2] != (start, end):
            raise ValueError("the token is for another range")
        first, stop = self.runtime.chunks_covering(start, end)
        with self.runtime.chunk_lock(first, stop, exclusive=True):
            if self.runtime.mode != FORWARD:
                raise CopyRefused(f"the volume is {MODE_NAMES[self.runtime.mode]}")
            yield self.runtime.generations(first, stop) == token[2]
            self.runtime.mark_copied(start, end)

    def host_activity(self) -> int:
        """A count that moves whenever a host request is served (for the copy to yield)."""
        stats = self.runtime.stats()
        return stats["read_ops"] + stats["write_ops"] + stats["zero_ops"] + stats["flushes"]

    @contextmanager
    def read_locked(self, start: int, end: int):
        """The copy of a range done entirely under the lock (simpler, holds it longer):
        ``with guard.read_locked(s, e): read the source, write the destination``."""
        with self.writing(start, end, self.snapshot(start, end)):
            yield


class UncheckedGuard(CopyGuard):
    """A test build's copier (FERRY_FRONTEND_NOLOCK): no lock, no check for host writes
    made while it read, so it can write stale data over them. It exists to prove that
    the chaos test catches exactly that; never use it otherwise."""

    @contextmanager
    def writing(self, start: int, end: int, token):
        yield True
        self.runtime.mark_copied(start, end)


def _fresh_file(path: Path, length: int) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, length)
    finally:
        os.close(fd)


def _checked_source(source: dict) -> dict:
    """{"path": "/abs/file"}, or {"uri": "nbd...://..."} with optional "tls_psk_file" and
    "tls_username" (the same settings Ferry's NBD driver keeps beside its URI)."""
    if len(set(source) & {"path", "uri"}) != 1:
        raise ValueError('source must be {"path": "/abs/file"} or {"uri": "nbd..."}')
    unknown = set(source) - {"path", "uri", "tls_psk_file", "tls_username"}
    if unknown:
        raise ValueError(f"unknown source settings: {sorted(unknown)}")
    if "path" in source and not os.path.isabs(source["path"]):
        raise ValueError("a source path must be absolute")
    return {key: str(value) for key, value in source.items() if value}
