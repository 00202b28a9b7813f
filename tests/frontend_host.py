"""A host and a copier for front end tests: processes that race each other on one volume.

``run_host(uri, image, result, ...)`` is a host: random unaligned writes of random sizes
(some FUA) and reads through the front end, keeping the image it expects in memory and
verifying every read against it; it saves that expected image and its counts.
``run_copier(folder, result, ...)`` copies source → destination in random chunk order
with CopyGuard, as Ferry's mover must (snapshot, read unlocked, write under the lock,
re-read when a host wrote meanwhile); ``unsafe`` skips the lock and the check, for the
negative control. ``start_race(...)`` runs both as spawned processes.

Reusable: a chaos test with a real Celery worker can run ``run_host`` against the front
end and compare the destination with the saved expected image at the end.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import time
from pathlib import Path

MiB = 1024 * 1024


def run_host(uri: str, initial_image, result, *, seconds: float, seed: int = 1,
             max_write: int = 3 * MiB, write_share: float = 0.65, fua_share: float = 0.05,
             start_event=None) -> None:
    """Write and read ``uri`` for ``seconds``; ``initial_image`` is what the volume holds
    at the start (the source's bytes). Saves ``result`` (JSON counts) and, beside it,
    ``result.expected`` (the image the host expects)."""
    import nbd

    expected = bytearray(Path(initial_image).read_bytes())
    handle = nbd.NBD()
    handle.set_uri_allow_local_file(True)
    handle.connect_uri(uri)
    chance = random.Random(seed)
    counts = {"writes": 0, "reads": 0, "read_mismatches": 0, "errors": 0, "latencies": []}
    if start_event is not None:
        start_event.wait(30)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        length = chance.randint(1, max_write)
        offset = chance.randrange(0, len(expected) - length)
        began = time.perf_counter()
        if chance.random() < write_share:
            data = chance.randbytes(length)
            fua = nbd.CMD_FLAG_FUA if chance.random() < fua_share else 0
            handle.pwrite(data, offset, fua)
            expected[offset:offset + length] = data
            counts["writes"] += 1
        else:
            if handle.pread(length, offset) != expected[offset:offset + length]:
                counts["read_mismatches"] += 1
            counts["reads"] += 1
        counts["latencies"].append(time.perf_counter() - began)
    handle.flush()
    handle.shutdown()
    _save(result, counts, expected)


def _save(result, counts: dict, expected: bytearray) -> None:
    latencies = sorted(counts.pop("latencies")) or [0.0]
    counts["p50_ms"] = round(1000 * latencies[len(latencies) // 2], 2)
    counts["p99_ms"] = round(1000 * latencies[int(len(latencies) * 0.99)], 2)
    Path(str(result) + ".expected").write_bytes(expected)
    Path(result).write_text(json.dumps(counts))


def run_copier(folder, result, *, seconds: float = 0.0, chunk: int = 4 * MiB,
               race_window: float = 0.005, seed: int = 2, unsafe: bool = False,
               start_event=None) -> None:
    """Copy every chunk at least once, and keep making passes (as a redelivered slice
    would) until ``seconds`` have gone by, stopping mid-pass then. ``race_window``
    sleeps between reading the source and writing the destination, where a host write
    would be lost without the guard."""
    from importer.frontend.runtime import CopyGuard, VolumeRuntime
    from importer.frontend.sides import FileSide, open_source

    runtime = VolumeRuntime.open(folder, locking=not unsafe)
    guard = CopyGuard(runtime)
    source, destination = open_source(runtime.source), FileSide(runtime.destination)
    chance = random.Random(seed)
    counts = {"copies": 0, "rereads": 0, "passes": 0}
    if start_event is not None:
        start_event.wait(30)
    deadline = time.monotonic() + seconds
    while counts["passes"] == 0 or time.monotonic() < deadline:
        starts = list(range(0, runtime.size, chunk))
        chance.shuffle(starts)
        for start in starts:
            end = min(start + chunk, runtime.size)
            copy_range(guard, source, destination, start, end, race_window, counts, unsafe)
            if counts["passes"] and time.monotonic() >= deadline:
                break  # stop with the host: a later pass would repair what a race broke
        counts["passes"] += 1
    destination.flush()
    source.close()
    destination.close()
    runtime.close()
    Path(result).write_text(json.dumps(counts))


def copy_range(guard, source, destination, start, end, race_window, counts, unsafe):
    """The pattern Ferry's mover follows (see CopyGuard)."""
    data = bytearray(end - start)
    token = guard.snapshot(start, end)
    source.read_into(memoryview(data), start)
    time.sleep(race_window)
    with guard.writing(start, end, token) as still_valid:
        if not still_valid and not unsafe:
            source.read_into(memoryview(data), start)
            counts["rereads"] += 1
        destination.write(data, start)
    counts["copies"] += 1


def start_race(uri: str, folder, initial_image, results_dir, *, seconds: float,
               unsafe: bool = False) -> tuple[multiprocessing.Process, ...]:
    """Spawn a host and a copier that start at the same moment; join them, then read
    ``results_dir/host.json`` (+ ``.expected``) and ``results_dir/copier.json``."""
    context = multiprocessing.get_context("spawn")  # no inherited libnbd or lock fds
    go = context.Event()
    results_dir = Path(results_dir)
    host = context.Process(target=run_host, args=(uri, initial_image,
                                                  results_dir / "host.json"),
                           kwargs={"seconds": seconds, "start_event": go})
    copier = context.Process(target=run_copier, args=(folder, results_dir / "copier.json"),
                             kwargs={"seconds": seconds, "unsafe": unsafe,
                                     "start_event": go})
    host.start()
    copier.start()
    time.sleep(0.5)  # both imported and connected (the event waits for laggards anyway)
    go.set()
    return host, copier


def read_results(results_dir) -> tuple[dict, dict, bytes]:
    results_dir = Path(results_dir)
    host = json.loads((results_dir / "host.json").read_text())
    copier = json.loads((results_dir / "copier.json").read_text())
    return host, copier, (results_dir / "host.json.expected").read_bytes()


def differing_bytes(left: bytes, right: bytes) -> int:
    """How many bytes differ, counted per 4 KiB block that differs (fast enough here)."""
    block = 4096
    return sum(block for offset in range(0, len(left), block)
               if left[offset:offset + block] != right[offset:offset + block])


def build_volume(folder, size: int, source: dict, source_image=None,
                 copied_until: int = 0):
    """A runtime folder, an empty (sparse) destination and, if ``source_image`` is
    given, a random source image of ``size`` bytes. Returns the VolumeRuntime."""
    from importer.frontend.runtime import VolumeRuntime

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if source_image is not None:
        Path(source_image).write_bytes(os.urandom(size))
    destination = folder.parent / (folder.name + "-destination.img")
    with open(destination, "wb") as file:
        file.truncate(size)
    return VolumeRuntime.create(folder / "runtime", size, destination, source,
                                copied_until=copied_until)


class ResilientHost:
    """A host on a Ferry front end, in a thread: random writes of random sizes at random
    offsets, some FUA, each one logged in the image it expects only once acknowledged.

    Like a host with a multipath or reconnecting initiator, it rides out the front end
    going away (a kill -9, a worker restart): it reconnects and sends the same write
    again until it is acknowledged. ``expected`` is the volume as the host wrote it.
    """

    def __init__(self, uri: str, identity: str, key: str, initial: bytes, *, seed: int,
                 max_write: int = 256 * 1024, key_file=None, pause_seconds: float = 0.002):
        self.uri, self.identity, self.key = uri, identity, key
        self.expected = bytearray(initial)
        self.chance = random.Random(seed)
        self.max_write, self.pause_seconds = max_write, pause_seconds
        self.key_file = Path(key_file or f"/tmp/ferry-host-{os.getpid()}-{seed}.psk")
        self.key_file.write_text(f"{identity}:{key}\n")
        self.key_file.chmod(0o600)
        self.writes = self.reconnects = 0
        self.error: BaseException | None = None
        self._stop = None
        self._thread = None
        self.handle = None

    def connect(self, timeout: float = 30):
        import nbd

        deadline = time.monotonic() + timeout
        while True:
            try:
                handle = nbd.NBD()
                handle.set_tls(nbd.TLS_REQUIRE)
                handle.set_tls_psk_file(str(self.key_file))
                handle.set_tls_username(self.identity)
                handle.connect_uri(self.uri)
                self.handle = handle
                return handle
            except nbd.Error:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def write(self, data: bytes, offset: int, fua: bool = False) -> None:
        """Until acknowledged, reconnecting as often as it takes (up to a minute)."""
        import nbd

        deadline = time.monotonic() + 60
        while True:
            try:
                if self.handle is None:
                    self.connect()
                    self.reconnects += 1
                self.handle.pwrite(data, offset, nbd.CMD_FLAG_FUA if fua else 0)
                self.expected[offset:offset + len(data)] = data
                self.writes += 1
                return
            except nbd.Error:
                self.handle = None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def read(self, length: int, offset: int) -> bytes:
        if self.handle is None:
            self.connect()
        return self.handle.pread(length, offset)

    def flush(self) -> None:
        import nbd

        for _ in range(600):
            try:
                if self.handle is None:
                    self.connect()
                self.handle.flush()
                return
            except nbd.Error:
                self.handle = None
                time.sleep(0.1)

    def random_write(self) -> None:
        length = self.chance.randint(1, self.max_write)
        offset = self.chance.randrange(0, len(self.expected) - length)
        self.write(self.chance.randbytes(length), offset, self.chance.random() < 0.05)

    # --- In the background --------------------------------------------------------------

    def start(self) -> ResilientHost:
        import threading

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="host", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.random_write()
                time.sleep(self.pause_seconds)
        except BaseException as error:  # noqa: BLE001  (reported by stop())
            self.error = error

    def stop(self) -> bytes:
        """Stop writing, flush, and return the image the host expects."""
        self._stop.set()
        self._thread.join(90)
        if self.error is not None:
            raise AssertionError(f"the host failed: {self.error!r}")
        self.flush()
        return bytes(self.expected)

    def close(self) -> None:
        if self.handle is not None:
            try:
                self.handle.shutdown()
            except Exception:  # noqa: BLE001
                pass
        self.key_file.unlink(missing_ok=True)
