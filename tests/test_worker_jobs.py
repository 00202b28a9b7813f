"""A real worker runs an import's jobs, and each is recorded as it happened: Completed, with
start, end and duration; a job that fails records its error."""

import os

import pytest

from importer import services
from importer.models import Job, JobState
from tests.conftest import (
    MiB,
    discovered_system,
    start_copying,
    wait_for,
    wait_for_state,
    write_random,
)

pytestmark = pytest.mark.integration


def _records(session):
    return list(Job.objects.filter(session=session).order_by("queued_time"))


def test_an_imports_jobs_appear_completed_with_their_timings(source_root, live_worker,
                                                              operator_actor):
    write_random(source_root / "array" / "db.img", 24 * MiB)
    system = discovered_system(source_root / "array")
    session = services.create_import(name="db", source_resource_id=system.source_volumes.get().pk,
                                     actor=operator_actor)
    wait_for_state(session, "Mirror_Enabled")
    services.perform_action(session.pk, "enable_destination_volume", actor=operator_actor)
    wait_for(lambda: Job.objects.filter(session=session, resource_action="enable",
                                        end_time__isnull=False).exists(), 30,
             what="the enable job to end")  # before Start Copy, or the copy does its work
    services.perform_action(session.pk, "start_copy", actor=operator_actor)
    wait_for_state(session, "Ready_For_Cutover", 60)
    services.perform_action(session.pk, "cutover", actor=operator_actor)
    wait_for_state(session, "Import_Completed", 60)

    def all_ended():
        return all(record.end_time for record in _records(session))
    wait_for(all_ended, 10, what="every job to end")
    records = _records(session)
    assert [record.resource_action for record in records] == [
        "setup", "enable", "copy", "cutover"]
    for record in records:
        assert record.state == JobState.COMPLETED, (record, record.step, record.error)
        assert record.queued_time <= record.start_time <= record.end_time
        assert record.duration.total_seconds() >= 0 and record.progress_percentage == 100
        assert record.attempts >= 1


def test_a_failing_job_records_its_error(source_root, live_worker, operator_actor):
    source = write_random(source_root / "array" / "db.img", 96 * MiB)
    system = discovered_system(source_root / "array")
    session = start_copying(system.source_volumes.get(), operator_actor, "db",
                            throttle_bytes_per_second=16 * MiB)
    def copying():
        session.refresh_from_db()
        return session.copied_bytes >= 8 * MiB
    wait_for(copying, 60, what="the copy to start")
    os.truncate(source, 20 * MiB)
    wait_for_state(session, "Cancel_Required", 30)
    copy = Job.objects.get(session=session, resource_action="copy")
    assert copy.state == JobState.FAILED and copy.end_time is not None
    assert copy.error["code"] == "source_truncated"
    assert "db.img" in copy.error["message"]
    assert 0 < copy.progress_percentage < 100
