"""The front end serving a destination volume: real nbdkit running importer/frontend/plugin.py,
a real source (a local file, or qemu-nbd serving one), real clients (nbdcopy, qemu-io,
libnbd)."""

from __future__ import annotations

import errno
import os
import subprocess
import threading
import time

import pytest

from importer.frontend.runtime import CUT_OVER, FENCED, MiB, VolumeRuntime
from importer.frontend.server import FrontEnd
from tests import nbd_servers
from tests.frontend_host import build_volume

SIZE = 8 * MiB


@pytest.fixture(autouse=True)
def tools():
    nbd_servers.require_nbd_tools(frontend=True)


@pytest.fixture(params=["file", "qemu-nbd"])
def served(request, tmp_path):
    """(runtime, front end, source image) for a file source and an NBD source."""
    image = tmp_path / "source.img"
    if request.param == "file":
        runtime = build_volume(tmp_path / "volume", SIZE, {"path": str(image)}, image)
        yield from _serving(tmp_path, runtime, image)
        return
    image.write_bytes(os.urandom(SIZE))  # before qemu-nbd starts: it reads the size once
    with nbd_servers.qemu_nbd_server(image, socket=tmp_path / "source.sock",
                                     read_only=False) as source:
        runtime = build_volume(tmp_path / "volume", SIZE, {"uri": source.uri})
        yield from _serving(tmp_path, runtime, image)


@pytest.fixture
def file_served(tmp_path):
    image = tmp_path / "source.img"
    runtime = build_volume(tmp_path / "volume", SIZE, {"path": str(image)}, image)
    yield from _serving(tmp_path, runtime, image)


def _serving(tmp_path, runtime, image):
    front_end = FrontEnd(runtime.folder, socket=tmp_path / "frontend.sock")
    with front_end:
        yield runtime, front_end, image
    runtime.close()


def connect(front_end):
    import nbd

    handle = nbd.NBD()
    handle.connect_uri(front_end.uri())
    return handle


def read_file(path, offset, length) -> bytes:
    with open(path, "rb") as file:
        file.seek(offset)
        return file.read(length)


def test_an_uncopied_volume_reads_as_its_source(served, tmp_path):
    runtime, front_end, image = served
    subprocess.run(["nbdcopy", front_end.uri(), str(tmp_path / "copy.img")], check=True)
    assert (tmp_path / "copy.img").read_bytes() == image.read_bytes()
    assert runtime.stats()["read_bytes"] >= SIZE


def test_a_host_write_lands_on_the_source_and_the_destination(served):
    runtime, front_end, image = served
    offset, length = MiB - 5, 65536  # across a chunk boundary, unaligned
    result = subprocess.run(
        ["qemu-io", "-f", "raw", front_end.uri(), "-c", f"write -P 0xab {offset} {length}",
         "-c", "flush", "-c", f"read -P 0xab {offset} {length}"],
        capture_output=True, text=True, check=True)
    assert "Pattern verification failed" not in result.stdout
    assert read_file(image, offset, length) == b"\xab" * length
    assert read_file(runtime.destination, offset, length) == b"\xab" * length
    assert runtime.intent_chunks() == []
    assert runtime.stats()["write_ops"] == 1 and runtime.stats()["flushes"] >= 1


def test_copied_chunks_are_read_from_the_destination(served):
    runtime, front_end, image = served
    with open(runtime.destination, "r+b") as destination:  # not the source's bytes
        destination.seek(2 * MiB)
        destination.write(b"D" * MiB)
    runtime.mark_copied(2 * MiB, 3 * MiB)
    handle = connect(front_end)
    data = handle.pread(3 * MiB, MiB + MiB // 2)  # uncopied, copied, uncopied
    assert data[MiB // 2:MiB // 2 + MiB] == b"D" * MiB
    assert data[:MiB // 2] == read_file(image, MiB + MiB // 2, MiB // 2)
    assert data[MiB + MiB // 2:] == read_file(image, 3 * MiB, 3 * MiB // 2)


def test_writes_to_copied_chunks_are_remembered_for_the_cutover_check(served):
    runtime, front_end, image = served
    runtime.mark_copied(0, 2 * MiB)
    handle = connect(front_end)
    handle.pwrite(b"w" * 100, MiB + 10, 0)
    handle.pwrite(b"w" * 100, 5 * MiB, 0)  # not copied: the copier will copy it
    assert runtime.written_ranges() == [(MiB, 2 * MiB)]


def test_write_zeroes_and_fua_reach_both_sides(served):
    import nbd

    runtime, front_end, image = served
    handle = connect(front_end)
    handle.zero(3 * MiB, MiB // 2, nbd.CMD_FLAG_FUA)
    handle.pwrite(b"f" * 4096, 6 * MiB, nbd.CMD_FLAG_FUA)
    for path in (image, runtime.destination):
        assert read_file(path, MiB // 2, 3 * MiB) == bytes(3 * MiB)
        assert read_file(path, 6 * MiB, 4096) == b"f" * 4096
    assert runtime.stats()["zero_ops"] == 1 and runtime.stats()["flushes"] >= 2


def test_after_cut_over_writes_reach_only_the_destination(file_served):
    runtime, front_end, image = file_served
    before = image.read_bytes()
    handle = connect(front_end)
    with runtime.quiesce():
        runtime.mode = CUT_OVER
    handle.pwrite(b"c" * 5000, 3 * MiB, 0)
    handle.flush()
    assert image.read_bytes() == before
    assert read_file(runtime.destination, 3 * MiB, 5000) == b"c" * 5000
    assert handle.pread(5000, 3 * MiB) == b"c" * 5000  # uncopied, still the destination


def test_a_fenced_volume_refuses_all_io(file_served):
    import nbd

    runtime, front_end, image = file_served
    handle = connect(front_end)
    runtime.mode = FENCED
    for request in (lambda: handle.pread(512, 0), lambda: handle.pwrite(b"x", 0, 0),
                    lambda: handle.flush()):
        with pytest.raises(nbd.Error) as refused:
            request()
        assert refused.value.errnum == errno.ESHUTDOWN
    assert read_file(runtime.destination, 0, 1) == b"\0"


def test_a_dead_source_fails_the_write_and_leaves_the_failed_marker(tmp_path):
    import nbd

    image = tmp_path / "source.img"
    image.write_bytes(os.urandom(SIZE))
    source = nbd_servers.qemu_nbd_server(image, socket=tmp_path / "source.sock",
                                         read_only=False)
    with source:
        runtime = build_volume(tmp_path / "volume", SIZE, {"uri": source.uri})
        runtime.mark_copied(0, SIZE)
        with FrontEnd(runtime.folder, socket=tmp_path / "frontend.sock") as front_end:
            handle = connect(front_end)
            handle.pwrite(b"ok" * 100, 0, 0)
            source.kill()
            with pytest.raises(nbd.Error) as refused:
                handle.pwrite(b"lost" * 100, 2 * MiB, 0)
            assert refused.value.errnum == errno.EIO
            assert "the source refused a host write" in runtime.failure()
            assert runtime.copied_ranges() == [(0, 2 * MiB), (3 * MiB, SIZE)]
            assert read_file(runtime.destination, 2 * MiB, 400) != b"lost" * 100
    runtime.close()


def test_an_interrupted_write_is_repaired_from_the_source_on_restart(tmp_path):
    """SIGKILL between the source write and the destination write: the restarted front
    end copies the chunk from the source, and both views show the write."""

    image = tmp_path / "source.img"
    runtime = build_volume(tmp_path / "volume", SIZE, {"path": str(image)}, image,
                           copied_until=SIZE)  # the host reads the destination
    socket = tmp_path / "frontend.sock"
    slow = FrontEnd(runtime.folder, socket=socket, params=["test_write_delay_ms=5000"])
    with slow:
        handle = connect(slow)
        writer = threading.Thread(target=_write_ignoring_errors,
                                  args=(handle, b"N" * 3000, 4 * MiB - 1000))
        writer.start()
        _wait_until(lambda: read_file(image, 4 * MiB - 1000, 3000) == b"N" * 3000)
        slow.kill()
        writer.join(10)
    assert runtime.intent_chunks() == [3, 4]
    assert read_file(runtime.destination, 4 * MiB - 1000, 3000) != b"N" * 3000
    with FrontEnd(runtime.folder, socket=socket) as restarted:
        assert read_file(runtime.destination, 3 * MiB, 2 * MiB) == \
            read_file(image, 3 * MiB, 2 * MiB)
        assert runtime.intent_chunks() == []
        assert runtime.written_ranges() == [(3 * MiB, 5 * MiB)]
        assert connect(restarted).pread(3000, 4 * MiB - 1000) == b"N" * 3000
        assert "repaired 2 chunks" in restarted.output()
    runtime.close()


def _write_ignoring_errors(handle, data, offset):
    try:
        handle.pwrite(data, offset, 0)
    except Exception:  # noqa: BLE001  (the server is killed mid-write, on purpose)
        pass


def _wait_until(condition, timeout=10):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_front_end_started_on_a_partly_copied_volume_serves_the_copied_part(tmp_path):
    image = tmp_path / "source.img"
    runtime = build_volume(tmp_path / "volume", SIZE, {"path": str(image)}, image,
                           copied_until=4 * MiB)
    runtime.close()
    with open(tmp_path / "volume-destination.img", "r+b") as destination:
        destination.write(b"C" * MiB)
    runtime = VolumeRuntime.open(tmp_path / "volume" / "runtime")
    with FrontEnd(runtime.folder, socket=tmp_path / "fe.sock") as front_end:
        handle = connect(front_end)
        assert handle.pread(MiB, 0) == b"C" * MiB
        assert handle.pread(MiB, 5 * MiB) == read_file(image, 5 * MiB, MiB)
    runtime.close()
