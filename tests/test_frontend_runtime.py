"""The front end's runtime folder: map semantics, range locks across processes, CopyGuard,
quiesce. No NBD: these are the files and locks the plugin and the copier share."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time

import pytest

from importer.frontend.locks import RangeLock
from importer.frontend.runtime import (
    CUT_OVER,
    FENCED,
    FORWARD,
    CopyGuard,
    CopyRefused,
    MiB,
    VolumeRuntime,
)

SIZE = 5 * MiB + 100  # six chunks, the last one short
fork = multiprocessing.get_context("fork")


@pytest.fixture
def runtime(tmp_path):
    runtime = VolumeRuntime.create(tmp_path / "rt", SIZE, tmp_path / "dst.img",
                                   {"path": str(tmp_path / "src.img")})
    yield runtime
    runtime.close()


def test_create_writes_every_file_and_open_reads_the_parameters(tmp_path, runtime):
    names = {path.name for path in (tmp_path / "rt").iterdir()}
    assert {"params.json", "map", "intent", "written", "gen", "ctl", "stats",
            "lock"} <= names
    with VolumeRuntime.open(tmp_path / "rt") as again:
        assert (again.size, again.chunk_size, again.chunks) == (SIZE, MiB, 6)
        assert again.source == {"path": str(tmp_path / "src.img")}
        assert again.mode == FORWARD and again.copied_fraction() == 0


def test_a_source_must_be_one_absolute_path_or_one_uri(tmp_path):
    for source in ({"path": "relative.img"}, {"path": "/a", "uri": "nbd://x"}, {},
                   {"uri": "nbd://x", "password": "no"}):
        with pytest.raises(ValueError):
            VolumeRuntime.create(tmp_path / "rt", SIZE, "/dst", source)


def test_copied_until_marks_only_whole_chunks_below_it(tmp_path):
    runtime = VolumeRuntime.create(tmp_path / "rt", SIZE, "/dst", {"path": "/src"},
                                   copied_until=3 * MiB + 5)
    assert runtime.copied_ranges() == [(0, 3 * MiB)]
    assert runtime.uncopied_ranges() == [(3 * MiB, SIZE)]


def test_mark_copied_counts_only_chunks_wholly_inside_the_range(runtime):
    runtime.mark_copied(MiB // 2, 3 * MiB + 1)  # chunk 0 half, chunk 3 one byte
    assert runtime.copied_ranges() == [(MiB, 3 * MiB)]
    assert runtime.copied_runs(0, 6) == [(0, 1, False), (1, 3, True), (3, 6, False)]


def test_the_short_last_chunk_is_whole_when_the_range_ends_at_the_volume_end(runtime):
    runtime.mark_copied(5 * MiB, SIZE)
    assert runtime.copied_ranges() == [(5 * MiB, SIZE)]
    runtime.mark_copied(4 * MiB, 5 * MiB + 50)  # ends inside the last chunk
    assert runtime.copied_ranges() == [(4 * MiB, SIZE)]
    assert runtime.copied_fraction() == pytest.approx(2 / 6)


def test_written_remembers_host_writes_to_copied_chunks_only(runtime):
    runtime.mark_copied(0, 2 * MiB)
    runtime.mark_written(1, 4)  # a host write over chunks 1-3
    assert runtime.written_ranges() == [(MiB, 2 * MiB)]
    runtime.clear_written()
    assert runtime.written_ranges() == []


def test_generations_count_writes_per_chunk_and_wrap(runtime):
    runtime.bump_generations(2, 4)
    runtime.gen[5] = 0xFFFFFFFF
    runtime.bump_generations(5, 6)
    assert list(runtime.gen) == [0, 0, 1, 1, 0, 0]


def test_intent_mode_stats_and_failure_marker_are_shared_through_the_files(tmp_path,
                                                                           runtime):
    runtime.set_intent(1, 3, True)
    runtime.mode = CUT_OVER
    runtime.count("write_ops")
    runtime.count("write_bytes", 4096)
    runtime.record_failure("the source refused a host write")
    with VolumeRuntime.open(tmp_path / "rt") as other:
        assert other.intent_chunks() == [1, 2]
        assert other.mode == CUT_OVER
        assert other.stats()["write_ops"] == 1 and other.stats()["write_bytes"] == 4096
        assert other.failure() == "the source refused a host write"
    with pytest.raises(ValueError):
        runtime.mode = 7


# --- Locks across processes ---------------------------------------------------------------

def _hold(path, start, length, exclusive, seconds, ready):
    lock = RangeLock(path)  # after fork: its own open file description
    lock.lock(start, length, exclusive)
    ready.set()
    time.sleep(seconds)


def _holder(path, start, length, exclusive=True, seconds=0.5):
    ready = fork.Event()
    process = fork.Process(target=_hold, args=(path, start, length, exclusive, seconds,
                                               ready))
    process.start()
    assert ready.wait(10)
    return process


def _waited(lock, start, length, exclusive=True) -> float:
    began = time.monotonic()
    lock.lock(start, length, exclusive)
    lock.unlock(start, length)
    return time.monotonic() - began


def test_an_exclusive_range_lock_waits_for_another_process(runtime):
    holder = _holder(runtime.folder / "lock", 2, 2, seconds=0.4)
    assert _waited(RangeLock(runtime.folder / "lock"), 3, 1) >= 0.3
    holder.join()


def test_disjoint_ranges_and_shared_locks_do_not_wait(runtime):
    holder = _holder(runtime.folder / "lock", 2, 2, seconds=2)
    lock = RangeLock(runtime.folder / "lock")
    assert _waited(lock, 4, 2) < 0.2
    assert not lock.lock(2, 1, exclusive=True, wait=False)
    holder.kill()
    holder.join()
    reader = _holder(runtime.folder / "lock", 0, 6, exclusive=False, seconds=2)
    assert _waited(lock, 0, 6, exclusive=False) < 0.2
    reader.kill()
    reader.join()


def test_a_lock_is_released_when_its_holder_is_killed(runtime):
    holder = _holder(runtime.folder / "lock", 0, 6, seconds=60)
    lock = RangeLock(runtime.folder / "lock")
    assert not lock.lock(0, 1, exclusive=True, wait=False)
    os.kill(holder.pid, signal.SIGKILL)
    assert _waited(lock, 0, 6) < 2
    holder.join()


# --- CopyGuard and quiesce ----------------------------------------------------------------

def _host_write(folder, first, stop, ready):
    """What the plugin does for a host write, minus the I/O."""
    runtime = VolumeRuntime.open(folder)
    with runtime.host_lock(first, stop, exclusive=True):
        ready.set()
        runtime.bump_generations(first, stop)


def test_the_guard_is_invalidated_by_a_host_write_in_another_process(runtime):
    guard = CopyGuard(runtime)
    token = guard.snapshot(MiB, 3 * MiB)
    writer = fork.Process(target=_host_write, args=(runtime.folder, 2, 3, fork.Event()))
    writer.start()
    writer.join()
    with guard.writing(MiB, 3 * MiB, token) as still_valid:
        assert not still_valid
    token = guard.snapshot(MiB, 3 * MiB)
    with guard.writing(MiB, 3 * MiB, token) as still_valid:
        assert still_valid
    assert runtime.copied_ranges() == [(MiB, 3 * MiB)]


def test_a_host_write_elsewhere_leaves_the_guard_valid(runtime):
    guard = CopyGuard(runtime)
    token = guard.snapshot(0, 2 * MiB)
    runtime.bump_generations(2, 6)
    with guard.writing(0, 2 * MiB, token) as still_valid:
        assert still_valid


def test_a_failed_copy_marks_nothing_and_a_cut_over_volume_refuses_copies(runtime):
    guard = CopyGuard(runtime)
    with pytest.raises(OSError):
        with guard.writing(0, 4 * MiB, guard.snapshot(0, 4 * MiB)):
            raise OSError("destination full")
    assert runtime.copied_fraction() == 0
    for mode in (CUT_OVER, FENCED):
        runtime.mode = mode
        with pytest.raises(CopyRefused):
            with guard.read_locked(0, MiB):
                pass


def test_the_guard_holds_the_chunks_while_the_copier_writes(runtime):
    guard = CopyGuard(runtime)
    with guard.writing(0, 4 * MiB, guard.snapshot(0, 4 * MiB)):
        lock = RangeLock(runtime.folder / "lock")
        assert not lock.lock(3, 1, exclusive=False, wait=False)  # a host read waits
        assert lock.lock(4, 1, exclusive=True, wait=False)


def _timed_host_write(folder, first, stop, began, acquired):
    runtime = VolumeRuntime.open(folder)
    began.set()
    with runtime.host_lock(first, stop, exclusive=True):
        acquired.value = time.monotonic()


def test_quiesce_blocks_host_writes_until_it_ends(runtime):
    began, acquired = fork.Event(), fork.Value("d", 0.0)
    with runtime.quiesce():
        writer = fork.Process(target=_timed_host_write,
                              args=(runtime.folder, 3, 4, began, acquired))
        writer.start()
        assert began.wait(10)
        time.sleep(0.3)
        assert acquired.value == 0.0
        released = time.monotonic()
    writer.join(10)
    assert acquired.value >= released


def test_quiesce_waits_for_a_host_request_in_flight(runtime):
    holder = _holder(runtime.folder / "lock", 5, 1, seconds=0.4)
    began = time.monotonic()
    with runtime.quiesce():
        assert time.monotonic() - began >= 0.3
    holder.join()


def test_an_empty_range_takes_no_lock(runtime):
    with pytest.raises(ValueError):
        RangeLock(runtime.folder / "lock").lock(3, 0, exclusive=True)
    with runtime.host_lock(2, 2, exclusive=True), runtime.chunk_lock(2, 2):
        assert RangeLock(runtime.folder / "lock").lock(0, 6, exclusive=True, wait=False)
