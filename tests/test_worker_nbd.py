"""Imports from a real NBD server (nbdkit) by a real worker: dense with a pause and a
resume, sparse, kill -9 mid-copy, a consistency group, and a server that dies mid-copy.
Every copy is checked byte for byte (sha256) against the export's file."""

import os

import pytest

from importer import services
from importer.mover.extents import allocated_bytes, data_map
from tests import nbd_servers
from tests.conftest import MiB, sha256_of, start_copying, wait_for, wait_for_state, write_random

pytestmark = pytest.mark.integration


@pytest.fixture
def exports(tmp_path):
    nbd_servers.require_nbd_tools()
    folder = tmp_path / "exports"
    folder.mkdir()
    return folder


@pytest.fixture
def nbd_server(exports, tmp_path):
    server = nbd_servers.nbdkit_file_server(exports, socket=tmp_path / "nbd.sock")
    server.start()
    yield server
    server.kill()


def _nbd_system(server, **settings):
    system = services.create_remote_system(
        name="nbd-array", driver_type="nbd", actor=services.SYSTEM,
        driver_settings={"uri": server.uri, **settings})
    return services.discover_remote_system(system.pk, actor=services.SYSTEM)


def _checkpointed(session) -> int:
    session.refresh_from_db()
    return session.copied_bytes


def test_a_dense_export_is_imported_with_a_pause_and_a_resume(exports, nbd_server, live_worker,
                                                              operator_actor):
    source = write_random(exports / "db", 96 * MiB)
    system = _nbd_system(nbd_server)
    session = start_copying(system.source_volumes.get(), operator_actor, "db",
                            throttle_bytes_per_second=32 * MiB)
    wait_for(lambda: _checkpointed(session) >= 24 * MiB, 60, what="a quarter of the copy")
    services.perform_action(session.pk, "pause", actor=operator_actor)
    wait_for_state(session, "Paused")
    wait_for(lambda: not _lease_held(session), 10, what="the copier to let go")
    paused_at = _checkpointed(session)
    services.perform_action(session.pk, "resume", actor=operator_actor)
    wait_for_state(session, "Ready_For_Cutover", 120)
    starts = list(session.copied_extents.values_list("start", flat=True))
    assert paused_at in starts, "the resumed copy did not continue from the checkpoint"
    services.perform_action(session.pk, "cutover", actor=operator_actor)
    wait_for_state(session, "Import_Completed")
    assert sha256_of(session.destination_volume.location) == sha256_of(source)
    enable = session.events.get(action="enable_destination_volume")
    assert enable.details["source_unmapped_confirmed"] is True  # the manual step, audited


def _lease_held(session) -> bool:
    session.refresh_from_db()
    return bool(session.lease_owner)


def test_a_sparse_export_stays_sparse(exports, nbd_server, live_worker, operator_actor):
    path = exports / "thin"
    with open(path, "wb") as sparse:
        sparse.truncate(512 * MiB)
        for offset in range(0, 512 * MiB, 64 * MiB):
            sparse.seek(offset + 5 * MiB + 4096 * 3)
            sparse.write(os.urandom(MiB + 77))
        os.fsync(sparse.fileno())
    system = _nbd_system(nbd_server)
    session = start_copying(system.source_volumes.get(), operator_actor, "thin",
                            automatic_cutover=True)
    wait_for_state(session, "Import_Completed", 120)
    location = session.destination_volume.location
    assert sha256_of(location) == sha256_of(path)
    assert allocated_bytes(location) <= allocated_bytes(path) + 4096
    assert len(data_map(location)) == len(data_map(path))  # holes stay holes


def test_kill_9_of_the_worker_mid_copy_resumes_from_the_checkpoint(
        exports, nbd_server, live_worker, operator_actor):
    source = write_random(exports / "db", 96 * MiB)
    system = _nbd_system(nbd_server)
    session = start_copying(system.source_volumes.get(), operator_actor, "db",
                            throttle_bytes_per_second=24 * MiB)
    wait_for(lambda: _checkpointed(session) >= 32 * MiB, 60, what="a third of the copy")
    live_worker.kill_worker()
    at_kill = _checkpointed(session)
    live_worker.start_worker()
    wait_for_state(session, "Ready_For_Cutover", 120)
    resumed = session.copied_extents.filter(start__gte=at_kill).order_by("start").first()
    assert resumed.start == at_kill, "did not resume from the checkpoint"
    services.perform_action(session.pk, "cutover", actor=operator_actor)
    wait_for_state(session, "Import_Completed")
    assert sha256_of(session.destination_volume.location) == sha256_of(source)


def test_a_consistency_group_of_exports_moves_and_cuts_over_together(
        exports, nbd_server, live_worker, operator_actor):
    sources = {name: write_random(exports / name, size)
               for name, size in (("erp-db", 24 * MiB), ("erp-log", 8 * MiB + 4096))}
    system = _nbd_system(nbd_server, groups={"erp": list(sources)})
    group = system.source_groups.get(name="erp")
    session = start_copying(group, operator_actor, "erp", automatic_cutover=True)
    wait_for_state(session, "Import_Completed", 120)
    for member in session.members.select_related("source_volume", "destination_volume"):
        assert member.state == "Import_Completed"
        assert sha256_of(member.destination_volume.location) == \
            sha256_of(sources[member.source_volume.identifier])


def test_a_server_that_dies_mid_copy_is_retried_then_cancel_required(
        exports, nbd_server, live_worker, operator_actor, settings):
    source = write_random(exports / "db", 64 * MiB)
    before = sha256_of(source)
    system = _nbd_system(nbd_server)
    session = start_copying(system.source_volumes.get(), operator_actor, "db",
                            throttle_bytes_per_second=16 * MiB)
    wait_for(lambda: _checkpointed(session) >= 16 * MiB, 60, what="the copy to start")
    nbd_server.kill()
    kept = _checkpointed(session)
    wait_for_state(session, "Cancel_Required", 60)  # after FERRY_NBD_RETRY_SECONDS (2 s)
    session.refresh_from_db()
    assert session.error_code == "source_unreachable"
    message = session.error_message
    assert "export 'db'" in message and nbd_server.socket in message and "offset" in message
    assert session.copied_bytes >= kept  # nothing copied is lost
    assert sha256_of(source) == before  # the source is untouched
