"""nbdkit Python plugin: serves one destination volume to hosts while its import copies it.

    nbdkit -f --log=stderr python importer/frontend/plugin.py runtime=FOLDER

Runs in nbdkit's embedded Python (Debian's 3.11), so stdlib and Debian's ``nbd`` only;
start nbdkit with a clean environment (server.py does) or an activated venv makes that
interpreter load the wrong standard library.

In FORWARD mode reads of copied chunks come from the destination, the rest from the
source; a write goes to the SOURCE and the destination at once, under an exclusive lock
on its chunks and an intent mark, and is acknowledged only when the source has it, so the
source always holds every acknowledged write and a cancel can send the host back to it.
CUT_OVER serves the destination alone; FENCED refuses all I/O.

Test-only parameters: ``nolock=1`` disables the range locks (the race test's negative
control must then fail), ``test_write_delay_ms=N`` holds the destination write back that
long after the source has the data (to kill the front end in between).
"""

from __future__ import annotations

import errno
import queue
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import nbdkit

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # nbdkit loads us by path

from importer.frontend.runtime import CUT_OVER, FENCED, FORWARD, VolumeRuntime  # noqa: E402
from importer.frontend.sides import FileSide, open_source  # noqa: E402

API_VERSION = 2

settings = {"runtime": None, "nolock": False, "test_write_delay_ms": 0}
volume: VolumeRuntime | None = None
destination: FileSide | None = None


class Refused(Exception):
    """A request that must fail with the errno already given to nbdkit.set_error."""


# --- Configuration and start ---------------------------------------------------------------

def thread_model():
    # The GIL is released in os.pread/pwrite, libnbd calls and lock waits.
    return nbdkit.THREAD_MODEL_PARALLEL


def config(key, value):
    if key == "runtime":
        settings["runtime"] = value
    elif key == "nolock":
        settings["nolock"] = value in ("1", "true", "yes")
    elif key == "test_write_delay_ms":
        settings["test_write_delay_ms"] = int(value)
    else:
        raise RuntimeError(f"unknown parameter {key!r}")


def config_complete():
    if not settings["runtime"]:
        raise RuntimeError("runtime=FOLDER is required")


config_help = "runtime=FOLDER  the volume's runtime folder (importer/frontend/runtime.py)"


def get_ready():
    global volume, destination
    volume = VolumeRuntime.open(settings["runtime"], locking=not settings["nolock"])
    destination = FileSide(volume.destination)
    recover_interrupted_writes()


def recover_interrupted_writes():
    """A chunk with intent set: the previous front end died between the source write and
    the destination write (or in the middle of either). The source is authoritative, so
    copy the chunk from it; if the chunk was copied, the host has written it since."""
    chunks = volume.intent_chunks()
    if not chunks:
        return
    if volume.mode != FORWARD:
        log(f"{len(chunks)} chunks have an interrupted write, but the volume is not in "
            "forward mode: left as they are")
        return
    source = open_source(volume.source)
    try:
        volume.repair_interrupted_writes(source, destination)
    finally:
        source.close()
    log(f"repaired {len(chunks)} chunks with an interrupted write from the source")


# --- Connections -------------------------------------------------------------------------

def open(readonly):
    return {}


def close(h):
    pass


# Source connections are pooled, not one per client connection: libnbd runs one blocking
# call at a time per handle, so a host's queue of 8 forwarded writes went one by one
# (measured: 3,063 IOPS at depth 8 against 4,088 at depth 1). Made when first needed: a
# front end in CUT_OVER mode must serve even when the source is gone.
idle_sources: queue.SimpleQueue = queue.SimpleQueue()


@contextmanager
def a_source():
    """An idle source connection, or a new one. One that fails is dropped: the next
    request reconnects."""
    try:
        source = idle_sources.get_nowait()
    except queue.Empty:
        source = open_source(volume.source)
    try:
        yield source
    except BaseException:
        source.close()
        raise
    idle_sources.put(source)


def flush_source() -> None:
    """Flush every idle connection: a write acknowledged earlier may have gone through
    any of them, and a server without multi-conn flushes only its own connection's."""
    sources = []
    while True:
        try:
            sources.append(idle_sources.get_nowait())
        except queue.Empty:
            break
    if not sources:
        sources.append(open_source(volume.source))
    try:
        for source in sources:
            source.flush()
    except BaseException:
        for source in sources:
            source.close()
        raise
    for source in sources:
        idle_sources.put(source)


def get_size(h):
    return volume.size


def can_write(h):
    return True


def can_flush(h):
    return True


def can_fua(h):
    return nbdkit.FUA_NATIVE


def can_zero(h):
    return True


def can_fast_zero(h):
    return False


def can_trim(h):
    return False  # never trim the destination alone; not worth forwarding in v1


def can_multi_conn(h):
    return True  # every connection sees the same files, and flush covers both sides


# --- I/O ---------------------------------------------------------------------------------

def pread(h, buf, offset, flags):
    view = memoryview(buf)
    first, stop = volume.chunks_covering(offset, offset + len(view))
    with volume.host_lock(first, stop, exclusive=False):
        if current_mode() == CUT_OVER:
            destination.read_into(view, offset)
        else:
            read_routed(h, view, offset, first, stop)
    volume.count("read_ops")
    volume.count("read_bytes", len(view))


def read_routed(h, view, offset, first, stop):
    """Per run of chunks in the same state: the destination if copied, else the source."""
    end = offset + len(view)
    for run_first, run_stop, copied in volume.copied_runs(first, stop):
        run_start, run_end = volume.byte_range(run_first, run_stop)
        start, finish = max(run_start, offset), min(run_end, end)
        part = view[start - offset:finish - offset]
        if copied:
            destination.read_into(part, start)
            continue
        try:
            with a_source() as source:
                source.read_into(part, start)
        except Exception:
            volume.count("errors")
            raise


def pwrite(h, buf, offset, flags):
    write_both(h, offset, len(buf), lambda side: side.write(buf, offset), flags, "write")


def zero(h, count, offset, flags):
    write_both(h, offset, count, lambda side: side.zero(count, offset), flags, "zero")


def write_both(h, offset, count, apply, flags, kind):
    first, stop = volume.chunks_covering(offset, offset + count)
    with volume.host_lock(first, stop, exclusive=True):
        if current_mode() == FORWARD:
            forward(h, first, stop, count, apply, f"{kind} of {count} bytes at {offset}")
        else:
            apply(destination)
        if flags & nbdkit.FLAG_FUA:
            flush(h, 0)
    volume.count(f"{kind}_ops")
    volume.count(f"{kind}_bytes", count)


# The source half of each forwarded write runs here while the request's own thread writes
# the destination: one after the other, a host's sequential writes ran at 0.41-0.49x of
# nbdkit's file plugin; side by side they cost about one write. (As many as nbdkit's
# request threads, which default to 16.)
source_writers = ThreadPoolExecutor(max_workers=16, thread_name_prefix="forward")
# Below this, handing the source half to another thread costs more than it saves (4 KiB
# random writes: 11,500 IOPS one after the other, 5,800 side by side).
SIDE_BY_SIDE_BYTES = 256 * 1024


def forward(h, first, stop, count, apply, what):
    """Source and destination at once (large writes; small ones source first), and
    acknowledged only once both have it. The intent
    mark covers the window a crash can tear (recovery copies those chunks from the
    source, which is authoritative). The generation is bumped before (a copier that read
    the source earlier must re-read) and after the source write (a copier that read it
    during the write must re-read too)."""
    volume.set_intent(first, stop, True)
    volume.bump_generations(first, stop)
    if count < SIDE_BY_SIDE_BYTES:
        source_error = write_source(apply)
        destination_error = write_destination(apply) if source_error is None else None
    else:
        source_write = source_writers.submit(write_source, apply)
        destination_error = write_destination(apply)
        source_error = source_write.result()
    volume.bump_generations(first, stop)
    if source_error is not None:
        fail(first, stop, f"the source refused a host {what}: {source_error}")
    if destination_error is not None:
        fail(first, stop, f"the destination refused a host {what} (the source has it): "
                          f"{destination_error}")
    volume.mark_written(first, stop)
    volume.set_intent(first, stop, False)


def write_source(apply) -> Exception | None:
    try:
        with a_source() as source:
            apply(source)
    except Exception as error:
        return error
    return None


def write_destination(apply) -> Exception | None:
    if settings["test_write_delay_ms"]:
        time.sleep(settings["test_write_delay_ms"] / 1000)
    try:
        apply(destination)
    except Exception as error:
        return error
    return None


def fail(first, stop, message):
    """Never acknowledge a write that may not be on both sides. The chunks read from the
    source from now on (it is authoritative), and the ``failed`` marker tells Ferry to
    move the session to Cancel_Required."""
    volume.unmark_copied(first, stop)
    volume.set_intent(first, stop, False)
    volume.count("errors")
    volume.record_failure(message)
    log(message)
    nbdkit.set_error(errno.EIO)
    raise Refused(message)


def flush(h, flags):
    if current_mode() == FORWARD:
        try:
            flush_source()
        except Exception as error:
            volume.count("errors")
            volume.record_failure(f"the source refused a flush: {error}")
            nbdkit.set_error(errno.EIO)
            raise
    destination.flush()
    volume.count("flushes")


def current_mode() -> int:
    """Read under the request's lock, so that a quiesced mode switch applies to every
    request after it."""
    mode = volume.mode
    if mode == FENCED:
        volume.count("errors")
        nbdkit.set_error(errno.ESHUTDOWN)
        raise Refused("the volume is fenced")
    return mode


def log(message: str) -> None:
    print(f"ferry front end {settings['runtime']}: {message}", file=sys.stderr, flush=True)
