"""Every worker operation on real files: setup, enable, copy, cutover, cancel, cleanup.

Jobs run in-process here, in the order they were enqueued on commit; the integration suite
runs the same jobs in a real worker process.
"""

import os
import stat

import pytest

from importer import services
from importer.models import ImportSession, Volume
from importer.mover.extents import data_map
from tests.conftest import MiB, discovered_system, run_jobs, sha256_of, write_random

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("small_chunks")]


@pytest.fixture
def actor(operator_actor):
    return operator_actor


def _act(session, action, actor, jobs, **options):
    services.perform_action(session.pk, action, actor=actor, **options)
    run_jobs(jobs)
    session.refresh_from_db()
    return session


def _import(folder, identifier, actor, jobs, **options):
    system = discovered_system(folder)
    source = (system.source_volumes.filter(identifier=identifier).first()
              or system.source_groups.get(identifier=identifier))
    session = services.create_import(name=f"import {identifier}", source_resource_id=source.pk,
                                     actor=actor, **options)
    run_jobs(jobs)
    session.refresh_from_db()
    return session


def test_a_volume_import_copies_real_bytes_end_to_end(source_root, actor, enqueued):
    source = write_random(source_root / "array" / "db.img", 13 * MiB + 4096)
    mode = stat.S_IMODE(os.stat(source).st_mode)
    session = _import(source_root / "array", "db.img", actor, enqueued)

    assert session.state == "Mirror_Enabled"
    destination = session.destination_volume
    assert destination.size == source.stat().st_size and destination.is_read_only
    assert os.stat(destination.location).st_blocks == 0  # created sparse: nothing allocated

    session = _act(session, "enable_destination_volume", actor, enqueued)
    assert session.state == "Ready_To_Start_Copy"
    assert not os.stat(source).st_mode & 0o222  # the source lost its host (write) access
    assert Volume.objects.get(pk=destination.pk).is_enabled

    session = _act(session, "start_copy", actor, enqueued)
    assert session.state == "Ready_For_Cutover"
    assert session.copied_bytes == session.total_bytes and session.progress_percentage == 100
    assert session.copied_extents.count() >= 3  # checkpointed as it went

    session = _act(session, "cutover", actor, enqueued)
    assert session.state == "Import_Completed"
    assert sha256_of(destination.location) == sha256_of(source)
    assert session.source_volume.importable_criteria == "Imported"
    assert stat.S_IMODE(os.stat(source).st_mode) == mode & ~0o222
    assert [(e.action, e.to_state) for e in session.events.order_by("id")] == [
        ("create", "Queued"), ("setup_succeeded", "Mirror_Enabled"),
        ("enable_destination_volume", "Ready_To_Start_Copy"),
        ("start_copy", "Copy_In_Progress"), ("copy_completed", "Ready_For_Cutover"),
        ("cutover", "Cutover_In_Progress"), ("cutover_succeeded", "Import_Completed")]


def test_a_sparse_source_stays_sparse(source_root, actor, enqueued):
    path = source_root / "array" / "sparse.img"
    path.parent.mkdir()
    with open(path, "wb") as sparse:
        sparse.truncate(64 * MiB)
        for offset in (0, 20 * MiB + 12345, 63 * MiB):
            sparse.seek(offset)
            sparse.write(os.urandom(300 * 1024))
        os.fsync(sparse.fileno())  # compare allocations after writeback, not before
    session = _import(source_root / "array", "sparse.img", actor, enqueued)
    for action in ("enable_destination_volume", "start_copy", "cutover"):
        session = _act(session, action, actor, enqueued)
    assert session.state == "Import_Completed"
    location = session.destination_volume.location
    assert sha256_of(location) == sha256_of(path)
    assert data_map(location) == data_map(path)  # holes stay holes


def test_cancel_removes_the_destination_and_restores_the_source(source_root, actor, enqueued):
    source = write_random(source_root / "array" / "web.img", 5 * MiB)
    before = (sha256_of(source), stat.S_IMODE(os.stat(source).st_mode))
    session = _import(source_root / "array", "web.img", actor, enqueued)
    session = _act(session, "enable_destination_volume", actor, enqueued)
    location = session.destination_volume.location
    session = _act(session, "cancel", actor, enqueued)
    assert session.state == "Cancelled"
    assert not os.path.exists(location) and session.destination_volume is None
    assert (sha256_of(source), stat.S_IMODE(os.stat(source).st_mode)) == before
    assert session.source_volume.importable_criteria == "Ready_For_Agentless_Import"


def test_a_source_that_vanished_before_setup_fails_the_setup(source_root, actor, enqueued):
    system = discovered_system(write_random(source_root / "a" / "x.img", MiB).parent)
    os.remove(source_root / "a" / "x.img")
    session = services.create_import(name="x", source_resource_id=system.source_volumes.get().pk,
                                     actor=actor)
    run_jobs(enqueued)
    session.refresh_from_db()
    assert session.state == "Failed"
    assert session.error["code"] == "source_volume_missing"
    assert "x.img" in session.error["message"]
    session = _act(session, "cancel", actor, enqueued)
    assert session.state == "Cancelled"


def test_a_truncated_source_stops_the_copy_with_the_offset(source_root, actor, enqueued):
    source = write_random(source_root / "array" / "db.img", 8 * MiB)
    session = _import(source_root / "array", "db.img", actor, enqueued)
    session = _act(session, "enable_destination_volume", actor, enqueued)
    os.truncate(source, 3 * MiB)
    session = _act(session, "start_copy", actor, enqueued)
    assert session.state == "Cancel_Required"
    assert session.error["code"] in ("source_truncated", "source_size_changed")
    assert "db.img" in session.error["message"] and "offset" in session.error["message"]
    assert session.error["arguments"]["offset"] <= 3 * MiB + MiB


def test_a_restore_that_fails_needs_cleanup_which_can_be_retried(source_root, actor,
                                                                 enqueued):
    source = write_random(source_root / "array" / "db.img", 2 * MiB)
    session = _import(source_root / "array", "db.img", actor, enqueued)
    session = _act(session, "enable_destination_volume", actor, enqueued)
    hidden = source.with_name(".db.img.moved")
    source.rename(hidden)  # the source is out of reach: its access cannot be restored
    session = _act(session, "cancel", actor, enqueued)
    assert session.state == "Cleanup_Required"
    assert session.error["code"] == "source_volume_missing" or \
        session.error["code"] == "host_access_error"
    session = _act(session, "cleanup", actor, enqueued)
    assert session.state == "Cleanup_Failed"
    hidden.rename(source)
    session = _act(session, "cleanup", actor, enqueued)
    assert session.state == "Cancelled"
    assert os.stat(source).st_mode & 0o200


def test_automatic_cutover_completes_without_an_operator(source_root, actor, enqueued):
    write_random(source_root / "array" / "db.img", 3 * MiB)
    session = _import(source_root / "array", "db.img", actor, enqueued, automatic_cutover=True)
    session = _act(session, "enable_destination_volume", actor, enqueued)
    session = _act(session, "start_copy", actor, enqueued)
    assert session.state == "Import_Completed"
    assert "automatic_cutover" in session.events.values_list("action", flat=True)


def test_a_pause_keeps_the_copied_ranges_and_resume_continues(source_root, actor, enqueued):
    write_random(source_root / "array" / "db.img", 16 * MiB)
    session = _import(source_root / "array", "db.img", actor, enqueued)
    session = _act(session, "enable_destination_volume", actor, enqueued)
    services.perform_action(session.pk, "start_copy", actor=actor)
    enqueued.clear()  # the copy job is lost: as if the worker had not picked it up yet
    session = _act(session, "pause", actor, enqueued)
    assert session.state == "Paused" and session.copied_bytes == 0
    session = _act(session, "resume", actor, enqueued)
    assert session.state == "Ready_For_Cutover"


# --- Consistency groups --------------------------------------------------------------------

@pytest.fixture
def finance(source_root):
    folder = source_root / "array"
    for name, size in (("ledger.img", 3 * MiB), ("journal.img", 2 * MiB),
                       ("archive.img", 5 * MiB)):
        write_random(folder / "cg-finance" / name, size)
    return folder


def _group_to_ready_for_cutover(finance, actor, jobs):
    group = _import(finance, "cg-finance", actor, jobs)
    assert group.state == "Mirror_Enabled"
    group = _act(group, "enable_destination_volume", actor, jobs)
    assert group.state == "Ready_To_Start_Copy"
    group = _act(group, "start_copy", actor, jobs)
    assert group.state == "Ready_For_Cutover"
    return group


def test_a_group_moves_and_cuts_over_together(finance, actor, enqueued):
    group = _group_to_ready_for_cutover(finance, actor, enqueued)
    group = _act(group, "cutover", actor, enqueued)
    assert group.state == "Import_Completed"
    for member in group.members.all():
        assert member.state == "Import_Completed"
        assert member.destination_volume.volume_group == group.destination_volume_group
        assert sha256_of(member.destination_volume.location) == sha256_of(
            finance / member.source_volume.identifier)
    assert group.source_group.importable_criteria == "Imported"
    assert group.copied_bytes == group.total_bytes == 10 * MiB


def test_a_partial_cutover_is_retried_until_complete(finance, actor, enqueued):
    group = _group_to_ready_for_cutover(finance, actor, enqueued)
    failing = group.members.get(source_volume__name="journal.img")
    location = failing.destination_volume.location
    os.rename(location, location + ".away")  # the commit of this one member cannot finish
    group = _act(group, "cutover", actor, enqueued)
    assert group.state == "Import_Cutover_Incomplete"
    failing.refresh_from_db()
    assert failing.state == "Ready_For_Cutover" and failing.error["code"] == "cutover_failed"
    assert group.error["code"] == "cutover_failed"
    os.rename(location + ".away", location)
    group = _act(group, "cutover", actor, enqueued)
    assert group.state == "Import_Completed"
    assert {m.state for m in group.members.all()} == {"Import_Completed"}


def test_cancel_after_a_partial_cutover_keeps_the_completed_members(finance, actor, enqueued):
    group = _group_to_ready_for_cutover(finance, actor, enqueued)
    failing = group.members.get(source_volume__name="ledger.img")
    location = failing.destination_volume.location
    os.rename(location, location + ".away")
    group = _act(group, "cutover", actor, enqueued)
    assert group.state == "Import_Cutover_Incomplete"
    group = _act(group, "cancel", actor, enqueued)
    assert group.state == "Import_Completed_With_Errors"
    states = dict(group.members.values_list("source_volume__name", "state"))
    assert states == {"ledger.img": "Cancelled", "journal.img": "Import_Completed",
                      "archive.img": "Import_Completed"}
    assert os.stat(finance / "cg-finance" / "ledger.img").st_mode & 0o200


def test_one_failed_member_stops_the_whole_group(finance, actor, enqueued):
    group = _import(finance, "cg-finance", actor, enqueued)
    group = _act(group, "enable_destination_volume", actor, enqueued)
    os.truncate(finance / "cg-finance" / "journal.img", MiB)
    services.perform_action(group.pk, "start_copy", actor=actor)
    # Run the failing member's copy first; its siblings' copies are still queued.
    journal = group.members.get(source_volume__name="journal.img")
    enqueued.sort(key=lambda job: job[1] != journal.pk)
    run_jobs(enqueued)
    group.refresh_from_db()
    assert group.state == "Cancel_Required"
    assert group.error["code"] in ("source_truncated", "source_size_changed")
    states = dict(group.members.values_list("source_volume__name", "state"))
    assert states == {"journal.img": "Cancel_Required", "ledger.img": "Paused",
                      "archive.img": "Paused"}
    group = _act(group, "cancel", actor, enqueued)
    assert group.state == "Cancelled"
    assert not ImportSession.objects.filter(parent_session=group,
                                            destination_volume__isnull=False).exists()


def test_a_member_setup_failure_fails_the_group(finance, actor, enqueued):
    system = discovered_system(finance)
    os.remove(finance / "cg-finance" / "archive.img")
    group = services.create_import(name="cg", actor=actor,
                                   source_resource_id=system.source_groups.get().pk)
    run_jobs(enqueued)
    group.refresh_from_db()
    assert group.state == "Failed"
    assert group.error["code"] == "source_volume_missing"
    group = _act(group, "cancel", actor, enqueued)
    assert group.state == "Cancelled"
    assert not Volume.objects.exists()


def test_a_cancel_racing_the_enable_job_still_restores_the_source(source_root, actor, enqueued,
                                                                  monkeypatch):
    from importer.drivers.directory import DirectoryDriver

    source = write_random(source_root / "array" / "db.img", MiB)
    session = _import(source_root / "array", "db.img", actor, enqueued)
    services.perform_action(session.pk, "enable_destination_volume", actor=actor)
    enable_job = enqueued.pop(0)
    revoke = DirectoryDriver.revoke_host_access

    def cancel_meanwhile(driver, identifier):
        # The operator cancels while the enable job is between its check and its revoke.
        services.perform_action(session.pk, "cancel", actor=actor)
        return revoke(driver, identifier)

    monkeypatch.setattr(DirectoryDriver, "revoke_host_access", cancel_meanwhile)
    run_jobs([enable_job])
    assert enqueued == [("cancel_session_task", session.pk)]
    run_jobs(enqueued)  # the cancel job runs once the enable job let go of the lease
    session.refresh_from_db()
    assert session.state == "Cancelled"
    assert os.stat(source).st_mode & 0o200, "the source was left read-only"
    assert session.source_access_backup is None


def test_a_pause_keeps_the_range_copied_since_the_last_checkpoint(source_root, actor, enqueued,
                                                                  settings):
    from importer import copying
    from importer.models import ImportSession as Session

    settings.FERRY_CHECKPOINT_BYTES = 1024 * MiB  # no checkpoint before the pause...
    settings.FERRY_CHECKPOINT_SECONDS = 600
    write_random(source_root / "array" / "db.img", 12 * MiB)
    session = _import(source_root / "array", "db.img", actor, enqueued)
    session = _act(session, "enable_destination_volume", actor, enqueued)
    services.perform_action(session.pk, "start_copy", actor=actor)
    copy_job = enqueued.pop(0)
    checks = []

    def pause_after_five_chunks(progress):
        checks.append(1)
        if len(checks) == 5:
            Session.objects.filter(pk=session.pk).update(state="Paused")  # as the service does
            return "Paused"
        return None

    original = copying._Progress.should_stop
    copying._Progress.should_stop = pause_after_five_chunks
    try:
        run_jobs([copy_job])
    finally:
        copying._Progress.should_stop = original
    session.refresh_from_db()
    assert session.copied_bytes == 4 * MiB  # ...yet the four chunks copied are kept
    assert list(session.copied_extents.values_list("start", "end")) == [(0, 4 * MiB)]


def test_a_slow_throttle_takes_small_chunks_so_progress_keeps_moving(settings):
    from importer.copying import copy_plan

    settings.FERRY_CHUNK_BYTES = 8 * MiB
    assert copy_plan().chunk_size == 8 * MiB
    assert copy_plan(rate_limit=5 * MiB).chunk_size == 4 * MiB
    assert copy_plan(rate_limit=MiB).chunk_size == MiB  # a chunk a second at 1 MiB/s


def test_force_cancel_stops_without_rolling_the_source_back(source_root, admin_user, enqueued):
    admin = services.Actor(admin_user)
    source = write_random(source_root / "array" / "db.img", 2 * MiB)
    session = _import(source_root / "array", "db.img", admin, enqueued)
    session = _act(session, "enable_destination_volume", admin, enqueued)
    location = session.destination_volume.location
    session = _act(session, "cancel", admin, enqueued, force=True)
    assert session.state == "Cancelled"
    assert not os.path.exists(location)
    assert not os.stat(source).st_mode & 0o222  # no rollback: the source stays read-only
    assert session.events.get(action="cancel_succeeded").details == {
        "forced": True, "source_restored": False,
        "skipped": ["restore the source's host access"]}


@pytest.mark.django_db
def test_the_global_bandwidth_is_shared_by_the_running_copies(settings):
    from importer.copying import _throttle_for
    from tests.conftest import make_session

    settings.FERRY_GLOBAL_BANDWIDTH = 100 * MiB
    first = make_session("volume", "Copy_In_Progress", name="a")
    make_session("volume", "Copy_In_Progress", name="b")
    assert _throttle_for(first).rate == 50 * MiB
    first.throttle_bytes_per_second = 10 * MiB  # the stricter limit wins
    assert _throttle_for(first).rate == 10 * MiB
    settings.FERRY_GLOBAL_BANDWIDTH = 0
    first.throttle_bytes_per_second = None
    assert _throttle_for(first) is None


def test_a_pause_during_the_slice_hand_off_releases_the_lease(source_root, actor, enqueued,
                                                              settings):
    settings.FERRY_COPY_SLICE_SECONDS = 0  # every slice ends after one chunk: a hand-off
    write_random(source_root / "array" / "db.img", 4 * MiB)
    session = _import(source_root / "array", "db.img", actor, enqueued)
    session = _act(session, "enable_destination_volume", actor, enqueued)
    services.perform_action(session.pk, "start_copy", actor=actor)
    from importer import tasks
    first_slice = enqueued.pop(0)
    tasks.copy_session_task.run(*first_slice[1:])
    handoff = enqueued.pop(0)
    session.refresh_from_db()
    assert handoff[0] == "copy_session_task" and session.lease_owner == handoff[2]
    services.perform_action(session.pk, "pause", actor=actor)
    tasks.copy_session_task.run(*handoff[1:])
    session.refresh_from_db()
    assert session.state == "Paused" and session.lease_owner == ""
