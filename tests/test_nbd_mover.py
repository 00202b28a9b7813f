"""The mover reading NBD exports from real servers (nbdkit, qemu-nbd): bytes, holes, stops,
lost servers."""

import hashlib
import os
import threading
import time

import pytest

from importer.mover.copier import CopyError, CopyPlan, copy_range
from importer.mover.extents import allocated_bytes, data_map
from importer.mover.sources import NbdSource, nbd_uri_connector
from tests.nbd_servers import (
    nbdkit_file,
    nbdkit_file_server,
    qemu_nbd,
    qemu_nbd_server,
    require_nbd_tools,
)
from tests.test_mover import _write_layout

MiB = 1024 * 1024
SIZE = 64 * MiB
PLAN = CopyPlan(chunk_size=4 * MiB, checkpoint_bytes=8 * MiB, checkpoint_seconds=60)


@pytest.fixture(autouse=True)
def _nbd_tools():
    require_nbd_tools()


def _write_image(path, extents, size=SIZE):
    _write_layout(path, size, extents)


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        while block := data.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


def _copy(uri, destination, start=0, end=None, retry_seconds=5.0, on_checkpoint=None,
          **options):
    checkpoints = []

    def record(checkpoint):
        checkpoints.append(checkpoint)
        if on_checkpoint:
            on_checkpoint(checkpoint)
    with NbdSource(nbd_uri_connector(uri), uri, retry_seconds=retry_seconds) as source:
        end = source.size if end is None else end
        dst = os.open(destination, os.O_WRONLY | os.O_CREAT, 0o640)
        try:
            os.ftruncate(dst, source.size)
            outcome = copy_range(source, dst, start, end, plan=PLAN,
                                 on_checkpoint=record, **options)
        finally:
            os.close(dst)
    return outcome, checkpoints


SERVERS = {
    "nbdkit-unix": lambda image, tmp: nbdkit_file(image, socket=tmp / "nbd.sock"),
    "nbdkit-tcp": lambda image, tmp: nbdkit_file(image),
    "qemu-nbd-unix": lambda image, tmp: qemu_nbd(image, socket=tmp / "nbd.sock"),
    "qemu-nbd-tcp": lambda image, tmp: qemu_nbd(image),
}
SPARSE = [(3 * MiB, MiB), (10 * MiB + 64 * 1024, 5 * MiB), (40 * MiB, 256 * 1024),
          (SIZE - MiB, MiB)]


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_an_export_is_copied_exactly_and_keeps_its_holes(tmp_path, server, layout):
    image, copy = tmp_path / "source.img", tmp_path / "copy.img"
    _write_image(image, [(0, SIZE)] if layout == "dense" else SPARSE)
    with SERVERS[server](image, tmp_path) as uri:
        outcome, checkpoints = _copy(uri, copy)
    assert outcome.finished and checkpoints[-1].end == SIZE
    assert _sha256(copy) == _sha256(image)
    # Data exactly where the source has data; st_blocks may differ by one extent-tree
    # block (file-system metadata, not data), as in test_mover.
    assert data_map(copy) == data_map(image)
    assert allocated_bytes(copy) <= allocated_bytes(image) + 4096


def test_without_block_status_zero_chunks_still_become_holes(tmp_path):
    image, copy = tmp_path / "source.img", tmp_path / "copy.img"
    _write_image(image, [(8 * MiB, 4 * MiB)])
    with open(image, "r+b") as out:  # allocated zeros too, as a block device has them
        out.seek(32 * MiB)
        out.write(bytes(8 * MiB))
    # --no-sr: no structured replies, so no block status: the copier must read the zeros.
    with nbdkit_file(image, socket=tmp_path / "nbd.sock", extra_args=["--no-sr"]) as uri:
        with NbdSource(nbd_uri_connector(uri), uri) as source:
            assert not source.has_block_status
        _copy(uri, copy)
    assert _sha256(copy) == _sha256(image)
    assert allocated_bytes(copy) <= 4 * MiB + 64 * 1024  # the data, not the 8 MiB of zeros


def test_a_paused_copy_resumes_from_its_checkpoint(tmp_path):
    image, copy = tmp_path / "source.img", tmp_path / "copy.img"
    _write_image(image, [(0, SIZE)])
    asked = []

    def pause_after_five():
        asked.append(1)
        return "Paused" if len(asked) > 5 else None
    with nbdkit_file_server(image, socket=tmp_path / "nbd.sock") as server:
        outcome, checkpoints = _copy(server.uri, copy, should_stop=pause_after_five)
        assert (outcome.finished, outcome.stopped_because) == (False, "Paused")
        assert checkpoints[-1].end == outcome.position == 5 * 4 * MiB
        assert server.process.poll() is None, server.output()
        resumed, more = _copy(server.uri, copy, start=outcome.position)
        assert server.process.poll() is None, server.output()
    assert resumed.finished and more[0].start == outcome.position
    assert _sha256(copy) == _sha256(image)


def test_a_server_that_comes_back_within_the_retry_window_finishes_the_copy(tmp_path):
    image, copy = tmp_path / "source.img", tmp_path / "copy.img"
    _write_image(image, [(0, SIZE)])
    server = qemu_nbd_server(image, socket=tmp_path / "nbd.sock")
    restarted = []

    def crash_once(checkpoint):
        if not restarted:  # the server dies mid-copy and is back half a second later
            server.kill()
            restarter = threading.Timer(0.5, server.start)
            restarter.start()
            restarted.append(restarter)
    with server:
        outcome, checkpoints = _copy(server.uri, copy, retry_seconds=10,
                                     on_checkpoint=crash_once)
        restarted[0].join()
    assert outcome.finished and restarted
    assert _sha256(copy) == _sha256(image)


def test_a_server_that_stays_dead_is_source_unreachable_and_keeps_what_was_copied(tmp_path):
    image, copy = tmp_path / "source.img", tmp_path / "copy.img"
    _write_image(image, [(0, SIZE)])
    server = nbdkit_file_server(image, socket=tmp_path / "nbd.sock")
    checkpoints = []

    def crash(checkpoint):
        checkpoints.append(checkpoint)
        server.kill()
    with server:
        with pytest.raises(CopyError) as failure:
            _copy(server.uri, copy, retry_seconds=1, on_checkpoint=crash)
    error = failure.value
    assert error.kind == "source_unreachable"
    assert server.uri in str(error) and f"at offset {error.offset}" in str(error)
    assert error.offset >= checkpoints[-1].end
    end = checkpoints[-1].end
    with open(image, "rb") as source, open(copy, "rb") as destination:
        assert destination.read(end) == source.read(end)  # the checkpointed extents


def test_a_pause_is_seen_within_a_second_while_a_read_is_retrying(tmp_path):
    image, copy = tmp_path / "source.img", tmp_path / "copy.img"
    _write_image(image, [(0, SIZE)])
    server = nbdkit_file_server(image, socket=tmp_path / "nbd.sock")
    paused_at = []

    def crash(checkpoint):
        server.kill()
        paused_at.append(time.monotonic())

    def pause_once_crashed():
        return "Paused" if paused_at else None
    with server:
        outcome, _ = _copy(server.uri, copy, retry_seconds=30, on_checkpoint=crash,
                           should_stop=pause_once_crashed)
    assert outcome.stopped_because == "Paused"
    assert time.monotonic() - paused_at[0] < 1.5  # not the 30 s of retries
