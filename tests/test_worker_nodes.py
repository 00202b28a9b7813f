"""Two storage nodes: two real worker processes, each with its own pool, sharing the test's
database and broker, importing from one NBD server. Each import is copied by its own node's
worker into its own node's pool, byte for byte; a node whose worker dies goes Offline and
takes no new import."""

import uuid
from pathlib import Path

import pytest

from importer import services
from importer.errors import ValidationError
from importer.models import StorageNode
from tests import nbd_servers
from tests.conftest import MiB, sha256_of, wait_for, wait_for_state
from tests.conftest import write_random as write_random_volume
from tests.live_worker import LiveWorker, purge_broker

pytestmark = pytest.mark.integration


@pytest.fixture
def source(tmp_path) -> tuple:
    """The source the two imports read: one NBD server (nbdkit) exporting two volumes of
    random data. Returns (remote system, {export name: the file behind it})."""
    nbd_servers.require_nbd_tools()
    folder = tmp_path / "exports"
    volumes = {name: write_random_volume(folder / name, 6 * MiB + 4096)
               for name in ("alpha", "beta")}
    with nbd_servers.nbdkit_file(folder, socket=tmp_path / "nbd.sock") as uri:
        system = services.create_remote_system(name="nbd-array", driver_type="nbd",
                                               driver_settings={"uri": uri},
                                               actor=services.SYSTEM)
        yield services.discover_remote_system(system.pk, actor=services.SYSTEM), volumes


@pytest.fixture
def two_nodes(worker_settings, transactional_db, tmp_path, settings, request):
    """Two workers, node-a (with beat) and node-b, each with its own pool. Names unique to
    this run, so no message left in a broker by an earlier run reaches them."""
    purge_broker()
    run = uuid.uuid4().hex[:6]
    settings.FERRY_NODE_OFFLINE_SECONDS = 3
    workers = {}
    for letter in "ab":
        name = f"node-{letter}-{run}"
        logs = tmp_path / f"logs-{name}"
        logs.mkdir()
        workers[name] = LiveWorker(logs, {
            **worker_settings, "FERRY_NODE_NAME": name,
            "FERRY_POOL_DIR": str(tmp_path / f"pool-{name}"),
            "FERRY_NODE_HEARTBEAT_SECONDS": "1"}, name=name)
    try:
        for index, worker in enumerate(workers.values()):
            worker.start(with_beat=index == 0)
        yield {StorageNode.objects.get(name=name): worker for name, worker in workers.items()}
    finally:
        for worker in workers.values():
            worker.stop()
        if getattr(request.node, "rep_call", None) and request.node.rep_call.failed:
            print("\n".join(worker.logs() for worker in workers.values()))


def _import(system, volume_name, node, actor):
    volume = system.source_volumes.get(name=volume_name)
    session = services.create_import(name=f"{volume_name} to {node.name}",
                                     source_resource_id=volume.pk, storage_node_id=node.pk,
                                     automatic_cutover=True, actor=actor)
    return session


def _start_copy(session, actor):
    wait_for_state(session, "Mirror_Enabled")
    services.perform_action(session.pk, "enable_destination_volume", actor=actor,
                            source_unmapped_confirmed=True)  # NBD: the manual unmap
    wait_for_state(session, "Ready_To_Start_Copy")
    services.perform_action(session.pk, "start_copy", actor=actor)


def test_each_node_copies_its_own_import_into_its_own_pool(source, two_nodes,
                                                           operator_actor):
    system, volumes = source
    nodes = list(two_nodes)
    assert all(node.health == "Healthy" for node in nodes)
    sessions = [_import(system, volume_name, node, operator_actor)
                for volume_name, node in zip(volumes, nodes, strict=True)]
    for session in sessions:
        _start_copy(session, operator_actor)
    for session in sessions:
        wait_for_state(session, "Import_Completed", 120)

    pools = [Path(node.pool_path) for node in nodes]
    for session, node, pool, other_pool, source_path in zip(
            sessions, nodes, pools, reversed(pools), volumes.values(), strict=True):
        destination = Path(session.destination_volume.location)
        assert destination.parent == pool and destination.is_file()
        assert not (other_pool / destination.name).exists()
        assert session.destination_volume.storage_node == node
        assert sha256_of(destination) == sha256_of(source_path)
        # The node's own worker ran its jobs, and the other node's never saw them.
        own_log, other_log = (_full_log(two_nodes[n]) for n in (node, *set(nodes) - {node}))
        assert f"{session.name}: copy slice" in own_log
        assert f"{session.name}: copy slice" not in other_log
    assert sorted(path.name for path in pools[0].iterdir()) == [
        Path(sessions[0].destination_volume.location).name]


def _full_log(worker) -> str:
    return "".join(path.read_text(errors="replace") for path in worker.log_dir.glob("*.log"))


def test_a_node_whose_worker_died_goes_offline_and_takes_no_new_import(
        source, two_nodes, operator_actor):
    system, volumes = source
    node_a, node_b = two_nodes
    two_nodes[node_b].kill_worker()

    def offline():
        node_b.refresh_from_db()
        return node_b.health == "Offline"
    wait_for(offline, 15, what=f"{node_b.name} to go Offline")
    with pytest.raises(ValidationError) as refused:
        _import(system, "alpha", node_b, operator_actor)
    assert f"Storage node {node_b.name} is Offline" in str(refused.value.field_errors)
    # Left to choose, Ferry picks a node that is online (node-a, or this process's own).
    chosen = services.create_import(name="auto", actor=operator_actor,
                                    source_resource_id=system.source_volumes.get(
                                        name="beta").pk).storage_node
    assert chosen != node_b and chosen.is_online
