"""kill -9 of the worker in each active job: setup, enable, cutover, cancel and cleanup
(copies: test_worker_crash.py). The scheduler sends the orphaned job again once its lease
expires, the job finishes what was half done, and the session ends where it would have
ended: the bytes right, the source intact, and no import slot held."""

import os
import stat
import time

import pytest

from importer import services, states
from importer.models import ImportSession
from tests.conftest import (
    MiB,
    discovered_system,
    sha256_of,
    wait_for,
    wait_for_state,
    write_random,
)

pytestmark = pytest.mark.integration
SIZE = 24 * MiB


@pytest.fixture
def crash(live_worker, tmp_path, worker_settings):
    """Arms a failpoint in a fresh worker, then kills it there and starts a clean one."""
    markers = tmp_path / "failpoints"

    class Crash:
        def arm(self, point: str) -> None:
            live_worker.kill_worker()
            live_worker.env.update(FERRY_FAILPOINTS=point, FERRY_FAILPOINT_DIR=str(markers))
            live_worker.start_worker()

        def kill_at(self, point: str) -> float:
            """Kill the worker at ``point``; return when a new worker was ready."""
            wait_for(lambda: (markers / point).exists(), 60, what=f"the worker at {point}")
            live_worker.kill_worker()
            live_worker.env.pop("FERRY_FAILPOINTS")
            live_worker.start_worker()
            return time.monotonic()

    return Crash()


def _source(source_root, name="db.img"):
    source = write_random(source_root / "array" / name, SIZE)
    system = discovered_system(source_root / "array")
    return source, system.source_volumes.get()


def _create(volume, actor, **options):
    return services.create_import(name="db", source_resource_id=volume.pk, actor=actor,
                                  **options)


def _copied(session, actor):
    """Take a set-up session through enable and copy to Ready_For_Cutover."""
    wait_for_state(session, "Mirror_Enabled")
    services.perform_action(session.pk, "enable_destination_volume", actor=actor)
    wait_for_state(session, "Ready_To_Start_Copy")
    services.perform_action(session.pk, "start_copy", actor=actor)
    return wait_for_state(session, "Ready_For_Cutover", 90)


def _assert_no_slot_held():
    holding = ImportSession.objects.filter(
        parent_session__isnull=True, admitted_timestamp__isnull=False).exclude(
        state__in=states.RELEASES_SLOT)
    assert not holding.exists(), f"slots still held by {list(holding)}"


def _assert_recovered_in_time(ready: float, session, state: str, lease: float):
    wait_for_state(session, state, 60)
    took = time.monotonic() - ready
    print(f"{session.name} reached {state} {took:.1f} s after a new worker was ready "
          f"(lease {lease} s)")
    # The dead worker's lease lapses within one lease period of the kill; the next tick
    # (1 s here) sends the job again, the filesystem broker delivers it within a second's
    # poll, and the job itself takes well under a second.
    assert took < 2 * lease + 2, f"recovery took {took:.1f} s"
    assert session.pending_job == ""

    def let_go():  # the job lets go of the lease just after its transition commits
        session.refresh_from_db()
        return session.lease_owner == ""
    wait_for(let_go, 5, what="the job to release the lease")


def test_kill_9_during_setup(source_root, live_worker, crash, operator_actor, settings):
    crash.arm("setup.destination_created")
    source, volume = _source(source_root)
    session = _create(volume, operator_actor)
    ready = crash.kill_at("setup.destination_created")
    _assert_recovered_in_time(ready, session, "Mirror_Enabled", settings.FERRY_LEASE_SECONDS)
    destination = session.destination_volume.location
    assert os.path.getsize(destination) == SIZE
    assert len(os.listdir(os.path.dirname(destination))) == 1, "a second destination"
    assert session.events.filter(action="setup_succeeded").count() == 1


def test_kill_9_during_enable(source_root, live_worker, crash, operator_actor, settings):
    source, volume = _source(source_root)
    mode = stat.S_IMODE(os.stat(source).st_mode)
    session = _create(volume, operator_actor)
    wait_for_state(session, "Mirror_Enabled")
    crash.arm("enable.destination_writable")
    services.perform_action(session.pk, "enable_destination_volume", actor=operator_actor)
    ready = crash.kill_at("enable.destination_writable")
    wait_for(lambda: not ImportSession.objects.filter(pk=session.pk).exclude(
        pending_job="").exists(), 2 * settings.FERRY_LEASE_SECONDS + 2,
        what="the enable job to finish after the crash")
    print(f"enable finished {time.monotonic() - ready:.1f} s after a new worker was ready")
    session.refresh_from_db()
    assert not os.stat(source).st_mode & 0o222, "the source's host access was not revoked"
    assert session.source_access_backup == {"mode": mode}
    assert os.stat(session.destination_volume.location).st_mode & 0o200
    services.perform_action(session.pk, "start_copy", actor=operator_actor)
    wait_for_state(session, "Ready_For_Cutover", 90)
    services.perform_action(session.pk, "cutover", actor=operator_actor)
    wait_for_state(session, "Import_Completed")
    assert sha256_of(session.destination_volume.location) == sha256_of(source)


def test_kill_9_during_cutover(source_root, live_worker, crash, operator_actor, settings):
    source, volume = _source(source_root)
    session = _copied(_create(volume, operator_actor), operator_actor)
    crash.arm("cutover.verified")
    services.perform_action(session.pk, "cutover", actor=operator_actor)
    ready = crash.kill_at("cutover.verified")
    _assert_recovered_in_time(ready, session, "Import_Completed",
                              settings.FERRY_LEASE_SECONDS)
    assert sha256_of(session.destination_volume.location) == sha256_of(source)
    assert session.events.filter(action="cutover_succeeded").count() == 1
    _assert_no_slot_held()


def test_kill_9_during_cancel(source_root, live_worker, crash, operator_actor, settings):
    source, volume = _source(source_root)
    mode = stat.S_IMODE(os.stat(source).st_mode)
    checksum = sha256_of(source)
    session = _copied(_create(volume, operator_actor), operator_actor)
    location = session.destination_volume.location
    crash.arm("cancel.destination_removed")
    services.perform_action(session.pk, "cancel", actor=operator_actor)
    ready = crash.kill_at("cancel.destination_removed")
    _assert_recovered_in_time(ready, session, "Cancelled", settings.FERRY_LEASE_SECONDS)
    assert session.events.filter(action="cancel_succeeded").count() == 1
    assert not os.path.exists(location)
    assert stat.S_IMODE(os.stat(source).st_mode) == mode, "the source stayed read-only"
    assert sha256_of(source) == checksum
    _assert_no_slot_held()
    volume.refresh_from_db()
    assert volume.importable_criteria == "Ready_For_Agentless_Import"


def test_kill_9_during_cleanup(source_root, live_worker, crash, operator_actor, settings):
    source, volume = _source(source_root)
    mode = stat.S_IMODE(os.stat(source).st_mode)
    session = _copied(_create(volume, operator_actor), operator_actor)
    kept = source.with_name("kept.bin")
    os.rename(source, kept)  # the source goes away: the rollback cannot restore it
    services.perform_action(session.pk, "cancel", actor=operator_actor)
    wait_for_state(session, "Cleanup_Required", 60)
    os.rename(kept, source)  # the operator brings it back (still read-only)
    assert not os.stat(source).st_mode & 0o222
    crash.arm("cleanup.started")
    services.perform_action(session.pk, "cleanup", actor=operator_actor)
    ready = crash.kill_at("cleanup.started")
    _assert_recovered_in_time(ready, session, "Cancelled", settings.FERRY_LEASE_SECONDS)
    assert stat.S_IMODE(os.stat(source).st_mode) == mode
    _assert_no_slot_held()


def test_kill_9_during_a_consistency_groups_cutover(source_root, live_worker, crash,
                                                    operator_actor, settings):
    sources = [write_random(source_root / "array" / "cg" / f"{name}.img", SIZE // 2)
               for name in ("data", "redo")]
    system = discovered_system(source_root / "array")
    group = services.create_import(name="cg", source_resource_id=system.source_groups.get().pk,
                                   actor=operator_actor)
    group = _copied(group, operator_actor)
    crash.arm("cutover.verified")
    services.perform_action(group.pk, "cutover", actor=operator_actor)
    ready = crash.kill_at("cutover.verified")
    wait_for_state(group, "Import_Completed", 2 * settings.FERRY_LEASE_SECONDS + 10)
    print(f"cg reached Import_Completed {time.monotonic() - ready:.1f} s after a new worker "
          "was ready")
    for member in group.members.all():
        source = next(s for s in sources if member.name.endswith(s.name))
        assert sha256_of(member.destination_volume.location) == sha256_of(source)
        assert member.events.filter(action="cutover_succeeded").count() == 1
    _assert_no_slot_held()
