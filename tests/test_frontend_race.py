"""Host writes racing the copier: with the front end's locks and CopyGuard no host write is
lost, and without them (the negative control) the same harness sees writes lost."""

from __future__ import annotations

import os

import pytest

from importer.frontend.runtime import MiB
from importer.frontend.server import FrontEnd
from tests import nbd_servers
from tests.frontend_host import build_volume, differing_bytes, read_results, start_race

SIZE = 64 * MiB
SECONDS = 6


@pytest.fixture(autouse=True)
def tools():
    nbd_servers.require_nbd_tools(frontend=True)


def race(tmp_path, unsafe: bool):
    """A host and a copier for SECONDS on a 64 MiB volume whose source is qemu-nbd.
    Returns (host counts, copier counts, expected, source, destination, copied)."""
    image = tmp_path / "source.img"
    image.write_bytes(os.urandom(SIZE))
    with nbd_servers.qemu_nbd_server(image, socket=tmp_path / "source.sock",
                                     read_only=False) as source:
        runtime = build_volume(tmp_path / "volume", SIZE, {"uri": source.uri})
        params = ["nolock=1"] if unsafe else []
        with FrontEnd(runtime.folder, socket=tmp_path / "fe.sock", params=params) as served:
            processes = start_race(served.uri(), runtime.folder, image, tmp_path,
                                   seconds=SECONDS, unsafe=unsafe)
            for process in processes:
                process.join(SECONDS + 60)
                assert process.exitcode == 0, served.output()[-2000:]
            with runtime.quiesce():  # nothing in flight while the images are compared
                copied = runtime.copied_fraction()
                source_bytes, destination = image.read_bytes(), \
                    open(runtime.destination, "rb").read()
    host, copier, expected = read_results(tmp_path)
    runtime.close()
    return host, copier, expected, source_bytes, destination, copied


def test_no_host_write_is_lost_while_the_copier_races_it(tmp_path):
    host, copier, expected, source, destination, copied = race(tmp_path, unsafe=False)
    print(f"host {host}, copier {copier}")
    assert host["writes"] > 100 and host["reads"] > 50 and copier["passes"] >= 2
    assert copier["rereads"] > 0  # the guard did catch host writes
    assert copied == 1.0
    assert host["read_mismatches"] == 0
    assert source == expected
    assert differing_bytes(destination, expected) == 0


def test_without_locks_the_same_race_loses_host_writes(tmp_path):
    """The negative control: if this passes the harness still detects lost writes."""
    host, copier, expected, source, destination, copied = race(tmp_path, unsafe=True)
    lost = differing_bytes(destination, expected)
    print(f"host {host}, copier {copier}, destination differs in {lost} bytes")
    assert source == expected  # the source got every write: only the copy is racy
    assert host["read_mismatches"] > 0 or lost > 0
