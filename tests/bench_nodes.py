"""`make bench-nodes`: 8 imports on 2 storage nodes (two real workers) against one nbdcopy
of the same bytes, all read from one nbdkit. Part of `make bench`; results go into its table.

Ferry's window runs from the first start_copy until all 8 are Import_Completed, so it
includes each import's verification and automatic cutover, not only its copy.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import time
from contextlib import ExitStack
from pathlib import Path

from django.conf import settings

from importer import services
from importer.models import ImportSession, SourceVolume, StorageNode
from importer.states import State
from tests.bench import GiB, MiB, mbps, settle, time_tool, write_dense

VOLUMES, VOLUME_BYTES = 8, 256 * MiB
NODES = ("bench-node-a", "bench-node-b")
RUNS = int(os.environ.get("BENCH_NODES_RUNS", "2"))
TARGET_RATIO = 0.8
POLL_SECONDS = 0.05
ON_THE_WAY = (State.READY_TO_START_COPY, State.COPY_IN_PROGRESS, State.READY_FOR_CUTOVER,
              State.CUTOVER_IN_PROGRESS, State.IMPORT_COMPLETED)  # from start_copy to the end


def bench_nodes(results: dict, work: Path) -> None:
    from tests.nbd_servers import missing_tools, nbdkit_file_server

    missing = missing_tools()
    if missing:
        print(f"Skipping the two-node bench: no {', '.join(missing)}")
        return
    exports = _write_exports(work / "node-exports")
    with ExitStack() as cleanup:
        server = cleanup.enter_context(
            nbdkit_file_server(exports, socket=work / "nodes.sock"))
        system = services.create_remote_system(name="bench-nodes", driver_type="nbd",
                                               driver_settings={"uri": server.uri},
                                               actor=services.SYSTEM)
        services.discover_remote_system(system.pk, actor=services.SYSTEM)
        nodes = _start_nodes(work, cleanup)
        _alternate_runs(results, work, exports, server.uri, system, nodes)


def _write_exports(folder: Path) -> Path:
    """Eight dense volumes for Ferry, and one export of the same total size for nbdcopy."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(VOLUMES):
        write_dense(folder / f"vol{index}", VOLUME_BYTES)
    write_dense(folder / "all", VOLUMES * VOLUME_BYTES)
    return folder


def _start_nodes(work: Path, cleanup: ExitStack) -> list[StorageNode]:
    """Two workers, each its own storage node with its own pool, on the bench's database."""
    from tests.live_worker import LiveWorker, purge_broker

    purge_broker()
    # This process creates the imports, so its own limit must admit all eight too.
    settings.FERRY_MAX_ACTIVE_IMPORTS = max(settings.FERRY_MAX_ACTIVE_IMPORTS, VOLUMES)
    for index, name in enumerate(NODES):
        logs = work / f"logs-{name}"
        logs.mkdir(parents=True, exist_ok=True)
        worker = LiveWorker(logs, {
            "FERRY_NODE_NAME": name, "FERRY_POOL_DIR": str(work / f"pool-{name}"),
            "FERRY_NODE_HEARTBEAT_SECONDS": "1", "FERRY_TICK_SECONDS": "1",
            "FERRY_MAX_ACTIVE_IMPORTS": str(settings.FERRY_MAX_ACTIVE_IMPORTS)}, name=name)
        cleanup.callback(worker.stop)  # registered first: stopped even if start fails
        worker.start(with_beat=index == 0)
    return [_registered(name) for name in NODES]


def _registered(name: str, timeout: float = 30) -> StorageNode:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        node = StorageNode.objects.filter(name=name).first()
        if node is not None and node.is_online:
            return node
        time.sleep(0.1)
    raise RuntimeError(f"storage node {name} did not register within {timeout} s")


def _alternate_runs(results, work, exports, uri, system, nodes) -> None:
    ferry_times, copy_times, nbdcopy_times, rates = [], [], [], []
    reference = work / "nodes-nbdcopy.img"
    nbdcopy = ["nbdcopy", uri.replace(":///", ":///all", 1), str(reference)]
    for run in range(RUNS):  # alternate, and rotate who goes first
        for name in ("ferry", "nbdcopy")[run % 2:] + ("ferry", "nbdcopy")[:run % 2]:
            print(f"  two nodes, run {run + 1}: {name}...", flush=True)
            if name == "nbdcopy":
                nbdcopy_times.append(time_tool(nbdcopy, reference))
                reference.unlink()
                continue
            whole, copy, session_rates = _ferry_run(work, exports, system, nodes)
            print(f"    every byte copied after {copy:.1f} s, all completed after {whole:.1f} s",
                  flush=True)
            ferry_times.append(whole)
            copy_times.append(copy)
            rates.extend(session_rates)
    size = VOLUMES * VOLUME_BYTES
    ferry, nbdcopy_seconds = statistics.median(ferry_times), statistics.median(nbdcopy_times)
    results.update(nodes_runs=RUNS, nodes_ferry_mbps=mbps(size, ferry),
                   nodes_ferry_copy_phase_mbps=mbps(size, statistics.median(copy_times)),
                   nodes_session_rate_mbps=statistics.median(rates) / 1e6,
                   nodes_nbdcopy_mbps=mbps(size, nbdcopy_seconds),
                   nodes_ratio=nbdcopy_seconds / ferry)


def _ferry_run(work, exports, system, nodes) -> tuple[float, float, list[float]]:
    """One run of the eight imports. Returns (seconds until all Import_Completed, seconds
    until every byte was checkpointed, each session's average_transfer_rate)."""
    for node in nodes:
        for old in (work / f"pool-{node.name}").glob("*"):
            old.unlink()
    settle(work / "nodes-nbdcopy.img")  # the same quiet disk as nbdcopy's runs
    sessions = [_ready_import(system, f"vol{index}", nodes[index % len(nodes)])
                for index in range(VOLUMES)]
    start = time.perf_counter()
    for session in sessions:
        services.perform_action(session.pk, "start_copy", actor=services.SYSTEM)
    copied_at, done_at = _wait_all_completed([s.pk for s in sessions], start)
    for session in sessions:
        session.refresh_from_db()
    _check_bytes(sessions, exports)
    _print_timeline(sessions, start)
    _release_sources()
    return (done_at - start, copied_at - start,
            [float(s.average_transfer_rate) for s in sessions])


def _ready_import(system, volume_name: str, node: StorageNode) -> ImportSession:
    volume = system.source_volumes.get(name=volume_name)
    session = services.create_import(name=f"bench {volume_name} {time.time_ns()}",
                                     source_resource_id=volume.pk, storage_node_id=node.pk,
                                     automatic_cutover=True, actor=services.SYSTEM)
    _wait(session, "Mirror_Enabled")
    services.perform_action(session.pk, "enable_destination_volume", actor=services.SYSTEM,
                            source_unmapped_confirmed=True)  # NBD: the operator's unmap
    return _wait(session, "Ready_To_Start_Copy")


def _wait(session: ImportSession, state: str, timeout: float = 120) -> ImportSession:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        session.refresh_from_db()
        if session.state == state:
            return session
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"{session.name} stuck in {session.state}: {session.error}")


def _wait_all_completed(ids: list[int], start: float, timeout: float = 600):
    """(when every byte was checkpointed, when all were Import_Completed), perf_counter."""
    total, copied_at = VOLUMES * VOLUME_BYTES, None
    while time.perf_counter() - start < timeout:
        rows = list(ImportSession.objects.filter(pk__in=ids).values_list(
            "state", "copied_bytes", "error_message"))
        now = time.perf_counter()
        if copied_at is None and sum(copied for _, copied, _ in rows) >= total:
            copied_at = now
        if all(state == State.IMPORT_COMPLETED for state, _, _ in rows):
            return copied_at or now, now
        stuck = [(state, error) for state, _, error in rows if state not in ON_THE_WAY]
        if stuck:
            raise RuntimeError(f"imports left the copy path: {stuck}")
        time.sleep(POLL_SECONDS)
    raise RuntimeError(f"the eight imports did not complete within {timeout} s")


def _print_timeline(sessions: list[ImportSession], start: float) -> None:
    """Where each import spent the run, in seconds from the first start_copy: to see
    whether copying, waiting for a worker or verifying is what costs."""
    from importer.models import CopiedExtent, ImportEvent

    origin = time.time() - (time.perf_counter() - start)  # wall clock of ``start``
    print("    session  node  start_copy  1st checkpoint  last checkpoint  ready  completed",
          flush=True)
    for session in sessions:
        extents = CopiedExtent.objects.filter(session=session).order_by("created")
        entered = dict(ImportEvent.objects.filter(session=session)
                       .values_list("to_state", "timestamp"))
        def at(moment):
            return f"{moment.timestamp() - origin:6.2f}" if moment else "     -"
        print(f"    {session.source_volume.name:8} {session.storage_node.name[-1]}  "
              f"{at(entered.get(State.COPY_IN_PROGRESS))}  {at(extents.first().created)}  "
              f"{at(extents.last().created)}  "
              f"{at(entered.get(State.READY_FOR_CUTOVER))}  "
              f"{at(entered.get(State.IMPORT_COMPLETED))}", flush=True)


def _check_bytes(sessions: list[ImportSession], exports: Path) -> None:
    for session in sessions:
        destination = Path(session.destination_volume.location)
        source = exports / session.source_volume.name
        if _sha256(destination) != _sha256(source):
            raise AssertionError(f"{destination} differs from its source {source}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(4 * MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def _release_sources() -> None:
    """A completed import leaves its source released: give it back for the next run."""
    SourceVolume.objects.filter(name__startswith="vol").update(
        importable_criteria="Ready_For_Agentless_Import")


def node_rows(results: dict) -> list[tuple[str, str, str]]:
    if "nodes_ratio" not in results:
        return []
    what = f"{VOLUMES} x {VOLUME_BYTES // MiB} MiB dense on 2 nodes"
    return [
        (f"{what}: one nbdcopy of {VOLUMES * VOLUME_BYTES // GiB} GiB",
         f"{results['nodes_nbdcopy_mbps']:.0f} MB/s", "+ fdatasync"),
        (f"{what}: Ferry, until all Import_Completed",
         f"{results['nodes_ferry_mbps']:.0f} MB/s",
         f"{results['nodes_ratio']:.2f}x nbdcopy (target >= {TARGET_RATIO}); verification "
         "and cutover included"),
        (f"{what}: Ferry, copy phase only", f"{results['nodes_ferry_copy_phase_mbps']:.0f} MB/s",
         f"until every byte checkpointed; median session rate "
         f"{results['nodes_session_rate_mbps']:.0f} MB/s"),
    ]


def node_targets(results: dict) -> dict:
    if "nodes_ratio" not in results:
        return {}
    return {"nodes": results["nodes_ratio"] >= TARGET_RATIO}
