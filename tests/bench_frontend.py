"""Host I/O through the front end against nbdkit's own file plugin.

``python -m tests.bench_frontend``: 1 MiB sequential writes (then a flush) and reads with
libnbd, one request at a time, on a 256 MiB volume whose source is a local file, in each
front end state. Each is run three times; prints the best MB/s (the first write of a
fresh sparse file pays for allocating its blocks).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from importer.frontend.runtime import CUT_OVER, MiB
from importer.frontend.server import FrontEnd
from tests.frontend_host import build_volume

SIZE = 256 * MiB


def throughput(uri: str, write: bool) -> float:
    import nbd

    handle = nbd.NBD()
    handle.connect_uri(uri)
    block = os.urandom(MiB)
    began = time.perf_counter()
    for offset in range(0, SIZE, MiB):
        if write:
            handle.pwrite(block, offset)
        else:
            handle.pread(MiB, offset)
    if write:
        handle.flush()
    seconds = time.perf_counter() - began
    handle.shutdown()
    return SIZE / seconds / 1e6


def measure(label: str, uri: str, results: list, runs: int = 3) -> None:
    results.append((label, max(throughput(uri, write=True) for _ in range(runs)),
                    max(throughput(uri, write=False) for _ in range(runs))))


def main() -> None:
    results: list = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        image = scratch / "source.img"
        runtime = build_volume(scratch / "volume", SIZE, {"path": str(image)}, image)
        plain = subprocess.Popen(["nbdkit", "-f", "-U", str(scratch / "plain.sock"), "file",
                                  runtime.destination], env={"PATH": "/usr/bin:/bin"})
        time.sleep(0.5)
        measure("nbdkit file plugin (C), the destination file",
                f"nbd+unix:///?socket={scratch / 'plain.sock'}", results)
        plain.terminate()
        plain.wait()
        with FrontEnd(runtime.folder, socket=scratch / "fe.sock") as front_end:
            measure("front end, forward, nothing copied (reads from the source)",
                    front_end.uri(), results)
            runtime.mark_copied(0, SIZE)
            measure("front end, forward, all copied (writes still forwarded)",
                    front_end.uri(), results)
            with runtime.quiesce():
                runtime.mode = CUT_OVER
            measure("front end, cut over (destination only)", front_end.uri(), results)
        runtime.close()
    print(f"{'':62} {'write MB/s':>10} {'read MB/s':>10}")
    for label, write, read in results:
        print(f"{label:62} {write:10.0f} {read:10.0f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
