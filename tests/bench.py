"""`make bench`: the data mover against cp, its memory, its re-copy after kill -9, pauses.

Prints a table, then one JSON line. Ferry and the reference alternate on the same files
(median of RUNS each), because absolute figures drift between runs on a shared machine.
Run it with FERRY_VAR_DIR pointing at a scratch folder (the Makefile uses var/bench).
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

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.conf import settings  # noqa: E402  (after django.setup)
from django.core.management import call_command  # noqa: E402

from importer import services  # noqa: E402
from importer.models import SourceVolume  # noqa: E402
from importer.mover.copier import CopyPlan, copy_range  # noqa: E402
from importer.mover.extents import allocated_bytes  # noqa: E402

MiB, GiB = 1024 * 1024, 1024 * 1024 * 1024
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
PAUSES = 5
WORK = Path(settings.VAR_DIR) / "work"
SOURCES = Path(settings.FERRY_SOURCE_ROOTS[0])
TARGETS = {"dense_ratio": 0.9, "sparse_ratio": 0.8, "verify_cost": 0.15,
           "peak_rss_mib": 256, "pause_latency_s": 1.0,
           "nbd_dense_ratio": 1.0, "nbd_sparse_ratio": 0.9}
NBD_RUNS = int(os.environ.get("BENCH_NBD_RUNS", "2"))


def write_dense(path: Path, size: int) -> None:
    with open(path, "wb") as out:
        for _ in range(size // (4 * MiB)):
            out.write(os.urandom(4 * MiB))
        os.fsync(out.fileno())


def write_sparse(path: Path, size: int, data: int, extent: int = 4 * MiB) -> None:
    """``data`` random bytes in ``extent``-sized runs at scattered, seeded offsets."""
    slots = random.Random(7).sample(range(size // extent), data // extent)
    with open(path, "wb") as out:
        out.truncate(size)
        for slot in sorted(slots):
            out.seek(slot * extent)
            out.write(os.urandom(extent))
        os.fsync(out.fileno())


SETTLE_SECONDS = 2.0


def settle(destination: Path) -> None:
    """Each run starts from the same quiet disk: the previous copy deleted and written back.

    Measured here: without this, whichever run follows another pays for its writeback.
    """
    destination.unlink(missing_ok=True)
    subprocess.run(["sync"], check=True)
    time.sleep(SETTLE_SECONDS)


def time_cp(source: Path, destination: Path, sparse: bool) -> float:
    settle(destination)
    start = time.perf_counter()
    subprocess.run(["cp", "--sparse=always" if sparse else "--sparse=auto",
                    str(source), str(destination)], check=True)
    subprocess.run(["sync"], check=True)
    return time.perf_counter() - start


def time_ferry(source: Path, destination: Path, checksums: bool = True) -> float:
    """The worker's copy loop, with its default plan: chunks, checkpoints, fdatasync."""
    settle(destination)
    size = source.stat().st_size
    plan = CopyPlan(chunk_size=settings.FERRY_CHUNK_BYTES,
                    checkpoint_bytes=settings.FERRY_CHECKPOINT_BYTES,
                    checkpoint_seconds=settings.FERRY_CHECKPOINT_SECONDS, checksums=checksums)
    start = time.perf_counter()
    src = os.open(source, os.O_RDONLY)
    dst = os.open(destination, os.O_WRONLY | os.O_CREAT, 0o640)
    try:
        os.ftruncate(dst, size)
        copy_range(src, dst, 0, size, plan=plan)
    finally:
        os.close(src)
        os.close(dst)
    return time.perf_counter() - start


def same_bytes(a: Path, b: Path) -> bool:
    return subprocess.run(["cmp", "-s", str(a), str(b)]).returncode == 0


def mbps(size: int, seconds: float) -> float:
    return size / seconds / 1e6


def bench_dense(results: dict) -> None:
    source = WORK / "dense.img"
    write_dense(source, GiB)
    cp_times, on_times, off_times = [], [], []
    for run in range(RUNS):  # alternate, and rotate who goes first
        order = [("cp", cp_times), ("on", on_times), ("off", off_times)]
        for name, times in order[run % 3:] + order[:run % 3]:
            target = WORK / f"dense-{name}.img"
            times.append(time_cp(source, target, False) if name == "cp"
                         else time_ferry(source, target, checksums=(name == "on")))
            if name != "cp":
                assert same_bytes(source, target), "Ferry's copy differs from its source"
            target.unlink()
    cp, on, off = (statistics.median(t) for t in (cp_times, on_times, off_times))
    results.update(dense_cp_mbps=mbps(GiB, cp), dense_ferry_mbps=mbps(GiB, on),
                   dense_ratio=cp / on, dense_ferry_no_verify_mbps=mbps(GiB, off),
                   verify_cost=on / off - 1)


def bench_sparse(results: dict) -> None:
    source = WORK / "sparse.img"
    write_sparse(source, 8 * GiB, GiB)
    cp_times, ferry_times, allocations = [], [], {}
    for _ in range(RUNS):
        for name, times in (("cp", cp_times), ("ferry", ferry_times)):
            target = WORK / f"sparse-{name}.img"
            times.append(time_cp(source, target, True) if name == "cp"
                         else time_ferry(source, target))
            allocations[name] = allocated_bytes(target)
            if name == "ferry":
                assert same_bytes(source, target), "Ferry's sparse copy differs"
            target.unlink()
    cp, ferry = statistics.median(cp_times), statistics.median(ferry_times)
    results.update(sparse_cp_mbps=mbps(8 * GiB, cp), sparse_ferry_mbps=mbps(8 * GiB, ferry),
                   sparse_ratio=cp / ferry, sparse_source_alloc_mib=allocated_bytes(source) / MiB,
                   sparse_cp_alloc_mib=allocations["cp"] / MiB,
                   sparse_ferry_alloc_mib=allocations["ferry"] / MiB)


# --- With a real worker process --------------------------------------------------------------

def _import(volume_name: str, **options):
    volume = SourceVolume.objects.get(identifier=volume_name)
    session = services.create_import(name=f"bench {volume_name} {time.time_ns()}",
                                     source_resource_id=volume.pk, actor=services.SYSTEM,
                                     **options)
    _wait(session, "Mirror_Enabled")
    services.perform_action(session.pk, "enable_destination_volume", actor=services.SYSTEM)
    _wait(session, "Ready_To_Start_Copy")
    return session


def _wait(session, state: str, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session.refresh_from_db()
        if session.state == state:
            return session
        time.sleep(0.02)
    raise RuntimeError(f"{session.name} stuck in {session.state}: {session.error}")


def _proc(pid: int, file: str, key: str) -> int:
    for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0


def _release_source(volume_name: str) -> None:
    """Cutover leaves the source read-only (released): give it back for the next run."""
    SourceVolume.objects.filter(identifier=volume_name).update(
        importable_criteria="Ready_For_Agentless_Import")
    os.chmod(SOURCES / volume_name, 0o644)


def bench_worker(results: dict) -> None:
    from tests.live_worker import LiveWorker, purge_broker

    for name in ("dense.img", "sparse.img"):
        os.replace(WORK / name, SOURCES / name)
    system = services.create_remote_system(name="bench", actor=services.SYSTEM,
                                           driver_settings={"path": str(SOURCES)})
    services.discover_remote_system(system.pk, actor=services.SYSTEM)
    purge_broker()
    worker = LiveWorker(WORK, {"FERRY_LEASE_SECONDS": "3", "FERRY_TICK_SECONDS": "1"})
    worker.start()
    try:
        _bench_memory(worker, results)
        _bench_kill(worker, results)
        _bench_pause(results)
    finally:
        worker.stop()


def _bench_memory(worker, results: dict) -> None:
    for name in ("dense.img", "sparse.img"):
        session = _import(name)
        services.perform_action(session.pk, "start_copy", actor=services.SYSTEM)
        _wait(session, "Ready_For_Cutover")
        services.perform_action(session.pk, "cutover", actor=services.SYSTEM)
        _wait(session, "Import_Completed")
        assert same_bytes(SOURCES / name, Path(session.destination_volume.location))
        os.remove(session.destination_volume.location)
        _release_source(name)
    peak = max(_proc(pid, "status", "VmHWM:") for pid in worker.child_pids())
    results["peak_rss_mib"] = peak / 1024


def _bench_kill(worker, results: dict) -> None:
    session = _import("dense.img", throttle_bytes_per_second=256 * MiB)
    # wchar: bytes written, copy_file_range included; a crash's re-copy is re-written data.
    before = {pid: _proc(pid, "io", "wchar:") for pid in worker.child_pids()}
    services.perform_action(session.pk, "start_copy", actor=services.SYSTEM)
    while session.copied_bytes < 0.4 * session.total_bytes:
        time.sleep(0.01)
        session.refresh_from_db()
    written = sum(_proc(pid, "io", "wchar:") - before.get(pid, 0)
                  for pid in worker.child_pids())
    worker.kill_worker()
    session.refresh_from_db()
    checkpointed = session.copied_bytes
    worker.start_worker()
    _wait(session, "Ready_For_Cutover")
    results["recopy_after_kill_mib"] = max(written - checkpointed, 0) / MiB
    results["checkpoint_interval_mib"] = settings.FERRY_CHECKPOINT_BYTES / MiB
    services.perform_action(session.pk, "cutover", actor=services.SYSTEM)
    _wait(session, "Import_Completed")
    assert same_bytes(SOURCES / "dense.img", Path(session.destination_volume.location))
    os.remove(session.destination_volume.location)
    _release_source("dense.img")


def _bench_pause(results: dict) -> None:
    session = _import("dense.img", throttle_bytes_per_second=128 * MiB)
    services.perform_action(session.pk, "start_copy", actor=services.SYSTEM)
    latencies = []
    for _ in range(PAUSES):
        session.refresh_from_db()
        goal = session.copied_bytes + 64 * MiB
        while session.copied_bytes < goal or not session.lease_owner:
            time.sleep(0.01)
            session.refresh_from_db()
        services.perform_action(session.pk, "pause", actor=services.SYSTEM)
        requested = time.perf_counter()
        while session.lease_owner:  # the copier lets go once it has stopped
            time.sleep(0.005)
            session.refresh_from_db()
        latencies.append(time.perf_counter() - requested)
        services.perform_action(session.pk, "resume", actor=services.SYSTEM)
    results["pause_latency_s"] = max(latencies)
    results["pause_latency_median_s"] = statistics.median(latencies)
    services.perform_action(session.pk, "cancel", actor=services.SYSTEM)
    _wait(session, "Cancelled")


# --- Reading NBD: Ferry against nbdcopy and qemu-img, on nbdkit and qemu-nbd -----------------

# Ferry's NBD copy runs in a child process, as in a worker, so that its peak RSS is its own.
FERRY_NBD_COPY = """
import json, os, resource, sys, time
from importer.mover.copier import CopyPlan, copy_range
from importer.mover.sources import NbdSource, nbd_uri_connector
uri, destination, chunk, checkpoint_bytes, checkpoint_seconds = sys.argv[1:]
start = time.perf_counter()
with NbdSource(nbd_uri_connector(uri), uri) as source:
    dst = os.open(destination, os.O_WRONLY | os.O_CREAT, 0o640)
    os.ftruncate(dst, source.size)
    copy_range(source, dst, 0, source.size, plan=CopyPlan(
        chunk_size=int(chunk), checkpoint_bytes=int(checkpoint_bytes),
        checkpoint_seconds=float(checkpoint_seconds)))  # its last checkpoint fdatasyncs
    os.close(dst)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _fdatasync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def time_ferry_nbd(uri: str, destination: Path, memory: list) -> float:
    settle(destination)
    child = subprocess.run(
        [sys.executable, "-c", FERRY_NBD_COPY, uri, str(destination),
         str(settings.FERRY_CHUNK_BYTES), str(settings.FERRY_CHECKPOINT_BYTES),
         str(settings.FERRY_CHECKPOINT_SECONDS)],
        check=True, capture_output=True, text=True)
    measured = json.loads(child.stdout.strip().splitlines()[-1])
    memory.append(measured["peak_rss_mib"])
    return measured["seconds"]


def time_tool(argv: list[str], destination: Path) -> float:
    """A reference tool, timed like Ferry: until the destination is flushed (fdatasync)."""
    settle(destination)
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    _fdatasync(destination)
    return time.perf_counter() - start


def _nbd_servers(image: Path):
    from tests.nbd_servers import nbdkit_file_server, qemu_nbd_server

    socket = WORK / "nbd.sock"
    return {"nbdkit-unix": nbdkit_file_server(image, socket=socket),
            "nbdkit-tcp": nbdkit_file_server(image),
            "qemu-nbd-unix": qemu_nbd_server(image, socket=socket),
            "qemu-nbd-tcp": qemu_nbd_server(image)}


def bench_nbd_case(image: Path, layout: str, server_name: str, server, results: dict,
                   memory: list) -> None:
    size = image.stat().st_size
    times: dict[str, list[float]] = {"ferry": [], "nbdcopy": [], "qemu-img": []}
    allocations = {}
    with server:
        copies = {
            "ferry": lambda target: time_ferry_nbd(server.uri, target, memory),
            "nbdcopy": lambda target: time_tool(["nbdcopy", server.uri, str(target)], target),
            "qemu-img": lambda target: time_tool(
                ["qemu-img", "convert", "-f", "raw", "-O", "raw", server.uri, str(target)],
                target),
        }
        order = list(copies)
        for run in range(NBD_RUNS):  # alternate, and rotate who goes first
            for name in order[run % 3:] + order[:run % 3]:
                target = WORK / f"nbd-{name}.img"
                times[name].append(copies[name](target))
                allocations[name] = allocated_bytes(target)
                if name == "ferry":
                    assert same_bytes(image, target), f"Ferry's NBD copy differs ({server_name})"
                target.unlink()
    ferry, nbdcopy, qemu_img = (statistics.median(times[n]) for n in order)
    key = f"nbd_{layout}_{server_name.replace('-', '_')}"
    results.update({f"{key}_ferry_mbps": mbps(size, ferry),
                    f"{key}_nbdcopy_mbps": mbps(size, nbdcopy),
                    f"{key}_qemu_img_mbps": mbps(size, qemu_img),
                    f"{key}_ratio": nbdcopy / ferry, f"{key}_ratio_qemu_img": qemu_img / ferry,
                    f"{key}_ferry_alloc_mib": allocations["ferry"] / MiB,
                    f"{key}_nbdcopy_alloc_mib": allocations["nbdcopy"] / MiB,
                    f"{key}_source_alloc_mib": allocated_bytes(image) / MiB})


def bench_nbd(results: dict) -> None:
    from tests.nbd_servers import missing_tools

    missing = missing_tools()
    if missing:
        print(f"Skipping the NBD bench: no {', '.join(missing)}")
        return
    memory: list[float] = []
    dense, sparse = WORK / "nbd-dense.img", WORK / "nbd-sparse.img"
    write_dense(dense, 2 * GiB)
    write_sparse(sparse, 8 * GiB, GiB)
    for image, layout in ((dense, "dense"), (sparse, "sparse")):
        for server_name, server in _nbd_servers(image).items():
            print(f"  NBD {layout}, {server_name}...", flush=True)
            bench_nbd_case(image, layout, server_name, server, results, memory)
        image.unlink()
    results["nbd_peak_rss_mib"] = max(memory)


NBD_CASES = [(layout, server) for layout in ("dense", "sparse")
             for server in ("nbdkit_unix", "nbdkit_tcp", "qemu_nbd_unix", "qemu_nbd_tcp")]


def nbd_rows(results: dict) -> list[tuple[str, str, str]]:
    rows = []
    for layout, server in NBD_CASES:
        key = f"nbd_{layout}_{server}"
        if f"{key}_ratio" not in results:
            continue
        what = "2 GiB dense" if layout == "dense" else "8 GiB sparse, 1 GiB data"
        target = TARGETS[f"nbd_{layout}_ratio"]
        rows.append((f"NBD {what}, {server}: nbdcopy / qemu-img",
                     f"{results[f'{key}_nbdcopy_mbps']:.0f} MB/s",
                     f"qemu-img {results[f'{key}_qemu_img_mbps']:.0f} MB/s; nbdcopy allocated "
                     f"{results[f'{key}_nbdcopy_alloc_mib']:.0f} MiB"))
        rows.append((f"NBD {what}, {server}: Ferry", f"{results[f'{key}_ferry_mbps']:.0f} MB/s",
                     f"{results[f'{key}_ratio']:.2f}x nbdcopy (target >= {target}); "
                     f"{results[f'{key}_ratio_qemu_img']:.2f}x qemu-img; "
                     f"{results[f'{key}_ferry_alloc_mib']:.0f} MiB allocated, source "
                     f"{results[f'{key}_source_alloc_mib']:.0f} MiB"))
    if "nbd_peak_rss_mib" in results:
        rows.append(("NBD copy peak RSS (its own process)",
                     f"{results['nbd_peak_rss_mib']:.0f} MiB", "target <= 256 MiB"))
    return rows


def nbd_targets(results: dict) -> dict:
    if "nbd_peak_rss_mib" not in results:
        return {}
    met = {}
    for layout in ("dense", "sparse"):
        keys = [f"nbd_{layout}_{server}" for lay, server in NBD_CASES if lay == layout]
        met[f"nbd_{layout}"] = all(
            results[f"{key}_ratio"] >= TARGETS[f"nbd_{layout}_ratio"]
            and results[f"{key}_ferry_alloc_mib"] <= results[f"{key}_source_alloc_mib"] + 1
            for key in keys)
    met["nbd_rss"] = results["nbd_peak_rss_mib"] <= TARGETS["peak_rss_mib"]
    return met


def report(results: dict) -> None:
    from tests.bench_nodes import node_rows, node_targets

    rows = [
        ("dense 1 GiB: cp + sync", f"{results['dense_cp_mbps']:.0f} MB/s", ""),
        ("dense 1 GiB: Ferry", f"{results['dense_ferry_mbps']:.0f} MB/s",
         f"{results['dense_ratio']:.2f}x cp (target >= 0.9)"),
        ("sparse 8 GiB, 1 GiB data: cp --sparse=always + sync",
         f"{results['sparse_cp_mbps']:.0f} MB/s", f"{results['sparse_cp_alloc_mib']:.0f} MiB "
                                                   "allocated"),
        ("sparse 8 GiB, 1 GiB data: Ferry", f"{results['sparse_ferry_mbps']:.0f} MB/s",
         f"{results['sparse_ratio']:.2f}x cp (target >= 0.8); "
         f"{results['sparse_ferry_alloc_mib']:.0f} MiB allocated, source "
         f"{results['sparse_source_alloc_mib']:.0f} MiB"),
        ("verification (checksums) on vs off", f"{results['dense_ferry_no_verify_mbps']:.0f} "
         "MB/s off", f"{results['verify_cost'] * 100:+.1f}% time (target <= 15%)"),
        ("worker peak RSS", f"{results['peak_rss_mib']:.0f} MiB", "target <= 256 MiB"),
        ("re-copied after kill -9", f"{results['recopy_after_kill_mib']:.0f} MiB",
         f"checkpoint interval {results['checkpoint_interval_mib']:.0f} MiB"),
        (f"pause latency (max of {PAUSES})", f"{results['pause_latency_s'] * 1000:.0f} ms",
         f"median {results['pause_latency_median_s'] * 1000:.0f} ms; target <= 1000 ms"),
    ] if "dense_ratio" in results else []
    rows += nbd_rows(results) + node_rows(results)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure'.ljust(width)}  {'value':>12}  notes")
    for name, value, note in rows:
        print(f"{name.ljust(width)}  {value:>12}  {note}")
    passed = {} if "dense_ratio" not in results else {
        "dense": results["dense_ratio"] >= TARGETS["dense_ratio"],
        "sparse": results["sparse_ratio"] >= TARGETS["sparse_ratio"]
        and results["sparse_ferry_alloc_mib"] <= results["sparse_source_alloc_mib"],
        "verify": results["verify_cost"] <= TARGETS["verify_cost"],
        "rss": results["peak_rss_mib"] <= TARGETS["peak_rss_mib"],
        "recopy": results["recopy_after_kill_mib"] <= results["checkpoint_interval_mib"],
        "pause": results["pause_latency_s"] <= TARGETS["pause_latency_s"],
    }
    passed.update(nbd_targets(results))
    passed.update(node_targets(results))
    print(json.dumps({"bench": "mover", "runs": RUNS, **{k: round(v, 3) for k, v in
                                                         results.items()}, "targets_met": passed}))


def _fresh_scratch() -> None:
    for folder in (WORK, SOURCES, Path(settings.FERRY_POOL_DIR)):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    Path(settings.DATABASES["default"]["NAME"]).unlink(missing_ok=True)


def main() -> None:
    from tests.bench_nodes import bench_nodes  # it imports this module's helpers

    _fresh_scratch()
    call_command("migrate", verbosity=0)
    results: dict = {}
    only = {"--nbd-only", "--nodes-only"}.intersection(sys.argv)
    print(f"Benchmarking the data mover ({RUNS} runs each, {NBD_RUNS} for NBD, alternating) "
          f"in {WORK}...")
    if not only:
        bench_dense(results)
        bench_sparse(results)
        bench_worker(results)
    if not only or "--nbd-only" in only:
        bench_nbd(results)
    if not only or "--nodes-only" in only:
        bench_nodes(results, WORK)
    report(results)
    if not os.environ.get("BENCH_KEEP"):
        _fresh_scratch()


if __name__ == "__main__":
    sys.exit(main())
