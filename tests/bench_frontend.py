"""`make bench-frontend`: host I/O through Ferry's front end against nbdkit's own file plugin,
and the background copy's rate with and without a host writing.

Prints a table, then one JSON line (as tests/bench.py does). One volume (BENCH_FRONTEND_MIB,
1 GiB): its source is a file served by nbdkit (writable, on a Unix socket, standing in for
the array), its destination a file that Ferry's front end (nbdkit + importer/frontend/
plugin.py, FORWARD mode) and the reference (nbdkit's C ``file`` plugin) both serve, each on
a Unix socket and on 127.0.0.1 TCP with TLS PSK. Ferry and the reference take turns, the
first to go rotating, and each figure is the median of its runs: absolute MB/s drift a lot
on a shared 2-core machine; the ratios are what to read.

- 1 MiB sequential writes (then a flush): Ferry forwards each to the source first.
- 1 MiB sequential reads of copied ranges: both read the destination file.
- 4 KiB random reads and writes, queue depth 1 and 8: a libnbd client in Python (aio, N in
  flight), so a very fast server is capped by the client: the reference's IOPS are a floor.
- The background copy: Ferry's mover (copy_range with a CopyGuard, NbdSource on the
  source) in its own process, over the whole volume, alone and while a host process writes
  random 64 KiB-1 MiB blocks through the front end; then the destination must equal the
  source.

The source stands for a remote array, which has disks of its own: its file lives on tmpfs
(/dev/shm, or BENCH_SOURCE_DIR). With the source on the destination's disk, every forwarded
write is flushed twice to one disk, and sequential writes measured 0.41-0.49x of the
reference: that is the disk, not the front end.

Run it with FERRY_VAR_DIR pointing at a scratch folder (the Makefile uses var/bench-frontend).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

MiB, GiB = 1024 * 1024, 1024 * 1024 * 1024
SIZE = int(os.environ.get("BENCH_FRONTEND_MIB", "1024")) * MiB
SOURCE_DIR = Path(os.environ.get("BENCH_SOURCE_DIR") or (
    "/dev/shm/ferry-bench-source" if Path("/dev/shm").is_dir() else ""))
SEQ_BYTES = min(256 * MiB, SIZE)  # per sequential run
RUNS = int(os.environ.get("BENCH_FRONTEND_RUNS", "3"))  # sequential runs per server
IOPS_RUNS, IOPS_SECONDS = 2, 1.0
COPY_RUNS = 2  # each: one copy alone and one with a host writing
HOST_ALONE_SECONDS = 3.0
SETTLE_SECONDS = 1.0
TARGETS = {"write_ratio": 0.5, "read_ratio": 0.8}
TRANSPORTS = ("unix", "tls")
IDENTITY = "bench"

# Ferry's mover in its own process, as in a worker: its reader threads and the host's
# client do not share a GIL. Prints "start" when connected, then its JSON result.
COPIER = """
import json, os, sys, time
from importer.frontend.runtime import CopyGuard, VolumeRuntime
from importer.mover.copier import CopyPlan, copy_range
from importer.mover.sources import NbdSource, nbd_uri_connector
folder, uri, destination, chunk, checkpoint_bytes, checkpoint_seconds = sys.argv[1:]
runtime = VolumeRuntime.open(folder)
checkpoints = []
with NbdSource(nbd_uri_connector(uri), uri) as source:
    dst = os.open(destination, os.O_WRONLY)
    print("start", flush=True)
    began = time.perf_counter()
    outcome = copy_range(source, dst, 0, source.size, guard=CopyGuard(runtime),
                         on_checkpoint=checkpoints.append, plan=CopyPlan(
        chunk_size=int(chunk), checkpoint_bytes=int(checkpoint_bytes),
        checkpoint_seconds=float(checkpoint_seconds)))
    seconds = time.perf_counter() - began
    os.close(dst)
runtime.close()
print(json.dumps({"seconds": seconds, "finished": outcome.finished,
                  "checkpoints": len(checkpoints)}))
"""

# A host writing random 64 KiB-1 MiB blocks (4 KiB aligned), one at a time, until its
# stdin closes; it counts only what it wrote after a "mark" line (the copy's start).
HOST = """
import json, random, sys, threading, time
import nbd
uri, seed = sys.argv[1], int(sys.argv[2])
handle = nbd.NBD()
handle.set_uri_allow_local_file(True)
handle.connect_uri(uri)
size = handle.get_size()
chance = random.Random(seed)
pool = chance.randbytes(2 * 1024 * 1024)
marked, stop = threading.Event(), threading.Event()
def listen():
    for line in sys.stdin:
        if line.strip() == "mark":
            marked.set()
    marked.set()
    stop.set()
threading.Thread(target=listen, daemon=True).start()
print("ready", flush=True)
written = writes = 0
began = None
while not stop.is_set():
    if began is None and marked.is_set():
        began, written, writes = time.perf_counter(), 0, 0
    length = chance.randrange(16, 257) * 4096
    offset = chance.randrange(0, (size - length) // 4096) * 4096
    start = chance.randrange(0, 1024 * 1024) & ~4095
    handle.pwrite(pool[start:start + length], offset)
    written += length
    writes += 1
seconds = time.perf_counter() - (began or time.perf_counter())
handle.flush()
handle.shutdown()
print(json.dumps({"bytes": written, "writes": writes, "seconds": seconds}), flush=True)
"""


def connect(uri: str):
    import nbd

    handle = nbd.NBD()
    handle.set_uri_allow_local_file(True)  # ?tls-psk-file=
    handle.connect_uri(uri)
    return handle


def sequential(uri: str, write: bool) -> float:
    """MB/s of 1 MiB requests, one at a time, over SEQ_BYTES (writes: then a flush)."""
    handle = connect(uri)
    block = os.urandom(MiB)
    began = time.perf_counter()
    for offset in range(0, SEQ_BYTES, MiB):
        if write:
            handle.pwrite(block, offset)
        else:
            handle.pread(MiB, offset)
    if write:
        handle.flush()
    seconds = time.perf_counter() - began
    handle.shutdown()
    return SEQ_BYTES / seconds / 1e6


def random_iops(uri: str, write: bool, depth: int, seconds: float = IOPS_SECONDS) -> float:
    """4 KiB requests at random 4 KiB-aligned offsets, ``depth`` in flight, for ``seconds``."""
    import nbd

    handle = connect(uri)
    blocks = SIZE // 4096
    chance = random.Random(depth * 2 + write)
    buffers = [nbd.Buffer.from_bytearray(bytearray(os.urandom(4096))) if write
               else nbd.Buffer(4096) for _ in range(depth)]
    issue = handle.aio_pwrite if write else handle.aio_pread
    done, in_flight, slot = 0, 0, 0
    began = time.perf_counter()
    deadline = began + seconds
    while True:
        now_open = time.perf_counter() < deadline
        while now_open and in_flight < depth:
            issue(buffers[slot], chance.randrange(blocks) * 4096)
            slot, in_flight = (slot + 1) % depth, in_flight + 1
        if not in_flight:
            break
        handle.poll(-1)
        while in_flight:
            cookie = handle.aio_peek_command_completed()
            if not cookie:
                break
            handle.aio_command_completed(cookie)
            in_flight, done = in_flight - 1, done + 1
    elapsed = time.perf_counter() - began
    if write:
        handle.flush()
    handle.shutdown()
    return done / elapsed


def alternate(measure, uris: dict[str, str], runs: int, turn: list[int]) -> dict[str, float]:
    """The median of ``runs`` per server, Ferry and the reference taking turns; ``turn``
    carries who goes first across calls."""
    values: dict[str, list[float]] = {name: [] for name in uris}
    names = list(uris)
    for _ in range(runs):
        first = turn[0] % len(names)
        turn[0] += 1
        for name in names[first:] + names[:first]:
            values[name].append(measure(uris[name]))
    return {name: statistics.median(found) for name, found in values.items()}


# --- Servers ---------------------------------------------------------------------------------

class Bench:
    def __init__(self, work: Path):
        self.work = work
        self.results: dict = {}
        self.rows: list[tuple[str, str, str, str, str]] = []
        self.turn = [0]
        self.stack: list = []

    def start(self) -> None:
        from importer.frontend.runtime import VolumeRuntime
        from importer.frontend.server import FrontEnd
        from importer.frontend.server import free_port as ferry_port
        from tests.nbd_servers import nbdkit_file_server, tls_args, write_psk

        work = self.work
        source_dir = SOURCE_DIR if str(SOURCE_DIR) not in ("", ".") else work
        source_dir.mkdir(parents=True, exist_ok=True)
        self.source_image = source_dir / "source.img"
        self.destination = work / "destination.img"
        with open(self.source_image, "wb") as out:
            for _ in range(SIZE // (16 * MiB)):
                out.write(os.urandom(16 * MiB))
        # A destination that is a finished copy: blocks allocated (the first write of a
        # sparse file pays for allocating them, and that would land on whoever went first),
        # and marked copied below, so that the front end's view is the source's.
        shutil.copyfile(self.source_image, self.destination)
        psk = write_psk(work / "bench.psk", IDENTITY)  # the servers' and the clients' file
        self.source = self._started(nbdkit_file_server(
            self.source_image, socket=work / "source.sock", read_only=False))
        self.runtime = VolumeRuntime.create(work / "runtime", SIZE, self.destination,
                                            {"uri": self.source.uri})
        reference_unix = self._started(nbdkit_file_server(
            self.destination, socket=work / "reference.sock", read_only=False))
        reference_tls = self._started(nbdkit_file_server(
            self.destination, read_only=False, extra_args=tls_args(psk)))
        ferry_unix = self._started(FrontEnd(self.runtime.folder, socket=work / "ferry.sock",
                                            log_path=work / "ferry-unix.log"))
        ferry_tls = self._started(FrontEnd(self.runtime.folder, port=ferry_port(20000, 30000),
                                           psk_file=psk, log_path=work / "ferry-tls.log"))
        tls_query = f"?tls-psk-file={psk}"
        self.uris = {
            "unix": {"ferry": ferry_unix.uri(), "reference": reference_unix.uri},
            "tls": {"ferry": ferry_tls.uri(IDENTITY, psk),
                    "reference": f"nbds://{IDENTITY}@127.0.0.1:{reference_tls.port}/"
                                 f"{tls_query}"},
        }

    def _started(self, server):
        self.stack.append(server)
        return server.__enter__()

    def stop(self) -> None:
        while self.stack:
            self.stack.pop().__exit__(None, None, None)
        if hasattr(self, "runtime"):
            self.runtime.close()

    def settle(self) -> None:
        subprocess.run(["sync"], check=True)
        time.sleep(SETTLE_SECONDS)

    # --- Host I/O -------------------------------------------------------------------------

    def host_io(self) -> None:
        self.runtime.mark_copied(0, SIZE)  # reads come from the destination; writes forward
        for transport in TRANSPORTS:
            uris = self.uris[transport]
            print(f"  host I/O over {transport}...", flush=True)
            self.settle()
            self._compare(f"{transport}_seq_write_mbps", uris, RUNS,
                          lambda uri: sequential(uri, write=True),
                          f"1 MiB seq write + flush, {transport}", "MB/s",
                          TARGETS["write_ratio"])
            self._compare(f"{transport}_seq_read_mbps", uris, RUNS,
                          lambda uri: sequential(uri, write=False),
                          f"1 MiB seq read, copied ranges, {transport}", "MB/s",
                          TARGETS["read_ratio"])
            for write in (False, True):
                for depth in (1, 8):
                    kind = "write" if write else "read"
                    self._compare(
                        f"{transport}_4k_{kind}_qd{depth}_iops", uris, IOPS_RUNS,
                        lambda uri, w=write, d=depth: random_iops(uri, w, d),
                        f"4 KiB random {kind}, QD{depth}, {transport}", "IOPS", None)

    def _compare(self, key, uris, runs, measure, label, unit, target) -> None:
        found = alternate(measure, uris, runs, self.turn)
        ratio = found["ferry"] / found["reference"]
        self.results.update({f"{key}_ferry": found["ferry"],
                             f"{key}_reference": found["reference"],
                             f"{key.rsplit('_', 1)[0]}_ratio": ratio})
        self.rows.append((label, f"{found['ferry']:,.0f} {unit}",
                          f"{found['reference']:,.0f} {unit}", f"{ratio:.2f}x",
                          f"target >= {target}" if target else ""))

    # --- The background copy --------------------------------------------------------------

    def copies(self) -> None:
        from django.conf import settings

        self.plan_args = [str(settings.FERRY_CHUNK_BYTES), str(settings.FERRY_CHECKPOINT_BYTES),
                          str(settings.FERRY_CHECKPOINT_SECONDS)]
        print("  background copy, alone and with a host writing...", flush=True)
        alone, loaded, host_rates = [], [], []
        for run in range(COPY_RUNS):
            for with_host in ((False, True) if run % 2 == 0 else (True, False)):
                seconds, host = self._copy(with_host)
                (loaded if with_host else alone).append(seconds)
                if with_host:
                    host_rates.append(host["bytes"] / host["seconds"] / 1e6)
                    self.results["host_writes_during_copy"] = host["writes"]
        print("  a host writing alone...", flush=True)
        host = self._host_alone()
        copy_alone, copy_loaded = statistics.median(alone), statistics.median(loaded)
        host_during, host_alone = statistics.median(host_rates), host["bytes"] / host[
            "seconds"] / 1e6
        self.results.update(copy_alone_mbps=SIZE / copy_alone / 1e6,
                            copy_with_host_mbps=SIZE / copy_loaded / 1e6,
                            copy_with_host_ratio=copy_alone / copy_loaded,
                            host_with_copy_ratio=host_during / host_alone,
                            host_write_mbps_during_copy=host_during,
                            host_write_mbps_alone=host_alone)
        self.rows += [
            (f"background copy of {SIZE // MiB} MiB, alone (Ferry's mover)",
             f"{SIZE / copy_alone / 1e6:,.0f} MB/s", "", "", "copy_range + CopyGuard, "
                                                           "NbdSource"),
            ("background copy, host writing 64 KiB-1 MiB",
             f"{SIZE / copy_loaded / 1e6:,.0f} MB/s", "", f"{copy_alone / copy_loaded:.2f}x",
             "of the copy alone"),
            ("host random writes during the copy (unix)", f"{host_during:,.0f} MB/s", "",
             f"{host_during / host_alone:.2f}x", f"of the host alone ({host_alone:,.0f} MB/s)"),
        ]

    def _reset_destination(self) -> None:
        """Nothing copied, and a destination with no blocks: every copy starts the same."""
        self.runtime.unmark_copied(0, self.runtime.chunks)
        self.runtime.clear_written()
        os.truncate(self.destination, 0)
        os.truncate(self.destination, SIZE)
        self.settle()

    def _copy(self, with_host: bool) -> tuple[float, dict | None]:
        self._reset_destination()
        host = self._start_host(seed=len(self.results)) if with_host else None
        copier = subprocess.Popen(
            [sys.executable, "-c", COPIER, str(self.runtime.folder), self.source.uri,
             str(self.destination), *self.plan_args],
            stdout=subprocess.PIPE, text=True)
        assert copier.stdout.readline().strip() == "start", "the copier did not start"
        if host:
            host.stdin.write("mark\n")
            host.stdin.flush()
        measured = json.loads(copier.stdout.read().strip().splitlines()[-1])
        if copier.wait() != 0 or not measured["finished"]:
            raise RuntimeError(f"the copy failed: {measured}")
        host_result = self._stop_host(host) if host else None
        self.results.setdefault("copier_checkpoints", measured["checkpoints"])
        if self.runtime.copied_fraction() != 1.0:
            raise RuntimeError("the copy left chunks uncopied")
        if subprocess.run(["cmp", "-s", str(self.source_image),
                           str(self.destination)]).returncode != 0:
            raise RuntimeError("the destination differs from the source after the copy")
        return measured["seconds"], host_result

    def _start_host(self, seed: int) -> subprocess.Popen:
        host = subprocess.Popen([sys.executable, "-c", HOST, self.uris["unix"]["ferry"],
                                 str(seed)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True)
        assert host.stdout.readline().strip() == "ready", "the host did not connect"
        return host

    def _stop_host(self, host: subprocess.Popen) -> dict:
        host.stdin.close()
        result = json.loads(host.stdout.read().strip().splitlines()[-1])
        if host.wait() != 0:
            raise RuntimeError("the host failed")
        return result

    def _host_alone(self) -> dict:
        host = self._start_host(seed=99)
        host.stdin.write("mark\n")
        host.stdin.flush()
        time.sleep(HOST_ALONE_SECONDS)
        return self._stop_host(host)

    # --- Report ---------------------------------------------------------------------------

    def report(self, seconds: float) -> None:
        header = ("measure", "Ferry", "nbdkit file", "ratio", "notes")
        widths = [max(len(str(row[i])) for row in [header, *self.rows]) for i in range(5)]
        print()
        for row in [header, *self.rows]:
            print(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:>{widths[2]}}  "
                  f"{row[3]:>{widths[3]}}  {row[4]}")
        met = {}
        for transport in TRANSPORTS:
            met[f"{transport}_seq_write"] = (self.results[f"{transport}_seq_write_ratio"]
                                             >= TARGETS["write_ratio"])
            met[f"{transport}_seq_read"] = (self.results[f"{transport}_seq_read_ratio"]
                                            >= TARGETS["read_ratio"])
        print(json.dumps({"bench": "frontend", "size_mib": SIZE // MiB, "runs": RUNS,
                          "iops_client": "libnbd aio (Python)", "seconds": round(seconds, 1),
                          **{key: round(value, 3) for key, value in self.results.items()},
                          "targets_met": met}))


def main() -> int:
    from tests.nbd_servers import missing_frontend_tools

    missing = missing_frontend_tools()
    if missing:
        print(f"Skipping the front end bench: no {', '.join(missing)}")
        return 0
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.conf import settings

    work = Path(settings.VAR_DIR).resolve() / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print(f"Benchmarking the front end against nbdkit's file plugin ({SIZE // MiB} MiB "
          f"volume, alternating) in {work}, the source in {SOURCE_DIR or work}...", flush=True)
    began = time.perf_counter()
    bench = Bench(work)
    try:
        bench.start()
        bench.host_io()
        bench.copies()
    finally:
        bench.stop()
        if str(SOURCE_DIR) not in ("", "."):
            shutil.rmtree(SOURCE_DIR, ignore_errors=True)
    bench.report(time.perf_counter() - began)
    if not os.environ.get("BENCH_KEEP"):
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
