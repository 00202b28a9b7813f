"""The copy loop itself, on real files: bytes, holes, checkpoints, stops, errors, digests."""

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from importer.mover import copier
from importer.mover.copier import (
    Checkpoint,
    CopyError,
    CopyPlan,
    copy_range,
    first_mismatch,
)
from importer.mover.extents import data_map, data_segments, missing_ranges
from importer.mover.throttle import TokenBucket

KiB, MiB = 1024, 1024 * 1024
PLAN = CopyPlan(chunk_size=MiB, checkpoint_bytes=4 * MiB, checkpoint_seconds=60)


def _write_layout(path, size, extents):
    with open(path, "wb") as out:
        out.truncate(size)
        for offset, length in extents:
            out.seek(offset)
            out.write(os.urandom(length))
        os.fsync(out.fileno())


def _copy(tmp_path, size, plan=PLAN, **options):
    src = os.open(tmp_path / "src", os.O_RDONLY)
    dst = os.open(tmp_path / "dst", os.O_WRONLY | os.O_CREAT, 0o640)
    checkpoints = []
    try:
        os.ftruncate(dst, size)
        outcome = copy_range(src, dst, 0, size, plan=plan, on_checkpoint=checkpoints.append,
                             **options)
    finally:
        os.close(src)
        os.close(dst)
    return outcome, checkpoints


def _same(tmp_path):
    return (tmp_path / "src").read_bytes() == (tmp_path / "dst").read_bytes()


@pytest.mark.parametrize("kernel_copy", [True, False], ids=["copy_file_range", "pwrite"])
def test_a_dense_file_is_copied_exactly_with_checkpoints(tmp_path, monkeypatch, kernel_copy):
    if not kernel_copy:
        monkeypatch.delattr(os, "copy_file_range")
    _write_layout(tmp_path / "src", 10 * MiB + 777, [(0, 10 * MiB + 777)])
    outcome, checkpoints = _copy(tmp_path, 10 * MiB + 777)
    assert outcome.finished and outcome.position == 10 * MiB + 777
    assert _same(tmp_path)
    assert [(c.start, c.end) for c in checkpoints] == [(0, 4 * MiB), (4 * MiB, 8 * MiB),
                                                       (8 * MiB, 10 * MiB + 777)]
    assert sum(len(c.digests) for c in checkpoints) == 11
    assert all(digest for c in checkpoints for digest in c.digests)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extents=st.lists(st.tuples(st.integers(0, 63), st.integers(1, 2 * 1024)), max_size=6))
def test_any_sparse_layout_copies_exactly_and_no_larger(tmp_path, extents):
    size = 64 * MiB
    layout = [(block * MiB + 4096, min(length * KiB, size - block * MiB - 4096))
              for block, length in extents]
    _write_layout(tmp_path / "src", size, layout)
    (tmp_path / "dst").unlink(missing_ok=True)
    outcome, checkpoints = _copy(tmp_path, size)
    assert outcome.finished and _same(tmp_path)
    # Data is allocated where the source has data and nowhere else. (st_blocks may differ
    # by an extent-tree block: file-system metadata, not data.)
    assert data_map(tmp_path / "dst") == data_map(tmp_path / "src")
    assert sum(len(c.digests) for c in checkpoints) == 64  # one digest per chunk, holes too


def test_all_zero_data_is_written_as_a_hole(tmp_path):
    with open(tmp_path / "src", "wb") as out:
        out.write(bytes(3 * MiB))  # allocated zeros, as on a block device
    outcome, [checkpoint] = _copy(tmp_path, 3 * MiB)
    assert _same(tmp_path)
    assert os.stat(tmp_path / "dst").st_blocks == 0
    assert checkpoint.digests == ["", "", ""]


def test_a_stop_request_stops_at_a_chunk_boundary_with_a_checkpoint(tmp_path):
    _write_layout(tmp_path / "src", 8 * MiB, [(0, 8 * MiB)])
    asked = []

    def stop_after_three():
        asked.append(1)
        return "Paused" if len(asked) > 3 else None
    outcome, checkpoints = _copy(tmp_path, 8 * MiB, should_stop=stop_after_three)
    assert (outcome.finished, outcome.stopped_because, outcome.position) == (False, "Paused",
                                                                              3 * MiB)
    assert checkpoints[-1].end == 3 * MiB  # everything copied so far is recorded


def test_a_truncated_source_is_an_error_with_its_offset(tmp_path):
    _write_layout(tmp_path / "src", 2 * MiB, [(0, 2 * MiB)])
    with pytest.raises(CopyError) as failure:
        _copy(tmp_path, 5 * MiB)  # the source is shorter than its recorded size
    assert failure.value.kind == "source_truncated"
    assert failure.value.offset == 2 * MiB


def test_a_full_disk_is_an_error_that_names_it(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("this system has no /dev/full to stand for a full disk")
    _write_layout(tmp_path / "src", MiB, [(0, MiB)])
    src, dst = os.open(tmp_path / "src", os.O_RDONLY), os.open("/dev/full", os.O_WRONLY)
    try:
        with pytest.raises(CopyError) as failure:
            copy_range(src, dst, 0, MiB, plan=PLAN)
    finally:
        os.close(src)
        os.close(dst)
    assert failure.value.kind == "destination_full"


def test_verification_finds_the_chunk_that_changed(tmp_path):
    _write_layout(tmp_path / "src", 4 * MiB, [(0, 2 * MiB)])
    _, [checkpoint] = _copy(tmp_path, 4 * MiB)
    dst = os.open(tmp_path / "dst", os.O_RDWR)
    try:
        assert first_mismatch(dst, checkpoint) is None
        original = os.pread(dst, 7, MiB + 10)
        os.pwrite(dst, b"corrupt", MiB + 10)
        assert first_mismatch(dst, checkpoint) == MiB
        os.pwrite(dst, original, MiB + 10)
        os.pwrite(dst, b"x", 3 * MiB)  # a chunk that must read as zeros does not
        assert first_mismatch(dst, checkpoint) == 3 * MiB
    finally:
        os.close(dst)


def test_a_resumed_copy_may_start_anywhere_with_another_chunk_size(tmp_path):
    _write_layout(tmp_path / "src", 9 * MiB, [(0, 2 * MiB), (7 * MiB, MiB)])
    src, dst = os.open(tmp_path / "src", os.O_RDONLY), os.open(tmp_path / "dst",
                                                               os.O_WRONLY | os.O_CREAT)
    checkpoints = []
    try:
        os.ftruncate(dst, 9 * MiB)
        copy_range(src, dst, 0, 3 * MiB, plan=PLAN, on_checkpoint=checkpoints.append)
        bigger = CopyPlan(chunk_size=4 * MiB, checkpoint_bytes=64 * MiB)
        copy_range(src, dst, 3 * MiB, 9 * MiB, plan=bigger, on_checkpoint=checkpoints.append)
    finally:
        os.close(src)
        os.close(dst)
    assert _same(tmp_path)
    assert [(c.start, c.end, c.chunk_size) for c in checkpoints] == [
        (0, 3 * MiB, MiB), (3 * MiB, 9 * MiB, 4 * MiB)]
    verify = os.open(tmp_path / "dst", os.O_RDONLY)
    try:
        assert all(first_mismatch(verify, c) is None for c in checkpoints)
    finally:
        os.close(verify)


def test_the_token_bucket_paces_without_sleeping_whole_seconds():
    now = [0.0]
    bucket = TokenBucket(10 * MiB, clock=lambda: now[0])
    waits = [bucket.delay_for(MiB) for _ in range(5)]
    assert waits[:2] == [0.0, 0.0]  # the burst (a quarter second's worth)
    assert 0 < waits[2] <= 0.1 and waits == sorted(waits)
    now[0] += 1.0
    assert bucket.delay_for(MiB) == 0.0  # refilled


def test_missing_ranges_and_data_segments(tmp_path):
    assert missing_ranges([(4, 8), (0, 2)], 10) == [(2, 4), (8, 10)]
    assert missing_ranges([], 5) == [(0, 5)]
    _write_layout(tmp_path / "f", 8 * MiB, [(2 * MiB, MiB)])
    fd = os.open(tmp_path / "f", os.O_RDONLY)
    try:
        assert list(data_segments(fd, 0, 8 * MiB)) == [(2 * MiB, 3 * MiB)]
        assert list(data_segments(fd, 4 * MiB, 8 * MiB)) == []
    finally:
        os.close(fd)


def test_chunk_digests_are_xxh3_128():
    assert copier.chunk_digest(b"ferry") == __import__("xxhash").xxh3_128_hexdigest(b"ferry")
    assert Checkpoint(0, 1, 1).digests == []


def test_a_read_error_is_a_copy_error_with_its_offset(tmp_path):
    unreadable = os.open(tmp_path, os.O_RDONLY)  # a directory: every read fails with EISDIR
    dst = os.open(tmp_path / "dst", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(CopyError) as failure:
            copy_range(unreadable, dst, 0, 2 * MiB, plan=PLAN)
    finally:
        os.close(unreadable)
        os.close(dst)
    assert failure.value.kind == "source_read_error"
    assert failure.value.offset == 0 and "directory" in failure.value.cause


def test_a_throttled_copy_keeps_to_its_rate(tmp_path):
    import time

    _write_layout(tmp_path / "src", 6 * MiB, [(0, 6 * MiB)])
    started = time.monotonic()
    _copy(tmp_path, 6 * MiB, throttle=TokenBucket(8 * MiB))
    elapsed = time.monotonic() - started
    assert elapsed >= (6 - 2) / 8  # 6 MiB at 8 MiB/s, less the quarter-second burst
    assert _same(tmp_path)
