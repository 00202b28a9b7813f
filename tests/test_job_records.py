"""Every background job gets a record when it is enqueued, which the services keep up to
date as the worker runs it: Queued, Running, then Completed or Failed with its error.
Jobs run in-process here; tests/test_worker_jobs.py runs them in a real worker."""

import os
from datetime import timedelta

import pytest
from django.utils import timezone

from importer import services
from importer.models import Job, JobState
from importer.services import job_records, jobs
from tests.conftest import MiB, discovered_system, run_jobs, write_random

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("small_chunks")]


def _records(session):
    return list(Job.objects.filter(session=session).order_by("queued_time"))


def _import(source_root, actor, jobs_, size=6 * MiB):
    write_random(source_root / "array" / "db.img", size)
    system = discovered_system(source_root / "array")
    session = services.create_import(name="db", actor=actor,
                                     source_resource_id=system.source_volumes.get().pk)
    run_jobs(jobs_)
    return session


def test_an_imports_jobs_are_recorded_from_queued_to_completed(source_root, operator_actor,
                                                               enqueued):
    session = _import(source_root, operator_actor, enqueued)
    [setup] = _records(session)
    assert setup.state == JobState.COMPLETED and setup.resource_action == "setup"
    assert setup.description_l10n == "Set up the import of db"
    assert setup.resource_type == "import_session" and setup.resource_id == str(session.pk)
    for action in ("enable_destination_volume", "start_copy", "cutover"):
        services.perform_action(session.pk, action, actor=operator_actor,
                                source_unmapped_confirmed=True)
        run_jobs(enqueued)
    records = _records(session)
    assert [record.resource_action for record in records] == [
        "setup", "enable", "copy", "cutover"]
    for record in records:
        assert record.state == JobState.COMPLETED, record
        assert record.progress_percentage == 100
        assert record.queued_time <= record.start_time <= record.end_time
        assert record.error is None


def test_a_failing_job_records_its_error(source_root, operator_actor, enqueued):
    write_random(source_root / "array" / "gone.img", MiB)
    system = discovered_system(source_root / "array")
    os.remove(source_root / "array" / "gone.img")
    session = services.create_import(name="gone", actor=operator_actor,
                                     source_resource_id=system.source_volumes.get().pk)
    run_jobs(enqueued)
    [setup] = _records(session)
    assert setup.state == JobState.FAILED and setup.end_time is not None
    assert setup.error["code"] == "source_volume_missing"
    assert "gone.img" in setup.error["message"]


def test_an_attempt_that_raises_keeps_its_error_and_waits_to_be_sent_again(
        source_root, operator_actor, enqueued, monkeypatch):
    write_random(source_root / "array" / "db.img", MiB)
    system = discovered_system(source_root / "array")

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in setup")
    monkeypatch.setattr(jobs, "_create_destination", broken)
    session = services.create_import(name="db", actor=operator_actor,
                                     source_resource_id=system.source_volumes.get().pk)
    with pytest.raises(RuntimeError):
        run_jobs(enqueued)
    [setup] = _records(session)
    assert setup.state == JobState.QUEUED and setup.attempts == 1
    assert setup.error["message"] == "a bug in setup"


def test_a_pause_ends_the_copy_job_and_a_resume_starts_another(source_root, operator_actor,
                                                              enqueued):
    session = _import(source_root, operator_actor, enqueued)
    services.perform_action(session.pk, "enable_destination_volume", actor=operator_actor)
    run_jobs(enqueued)
    services.perform_action(session.pk, "start_copy", actor=operator_actor)
    services.perform_action(session.pk, "pause", actor=operator_actor)
    run_jobs(enqueued)
    copy = Job.objects.get(session=session, resource_action="copy")
    assert copy.state == JobState.COMPLETED
    assert copy.step == "Stopped by Pause before a worker took it"
    services.perform_action(session.pk, "resume", actor=operator_actor)
    run_jobs(enqueued)
    assert Job.objects.filter(session=session, resource_action="copy").count() == 2


def test_discovery_is_a_job(source_root, operator_actor, enqueued):
    write_random(source_root / "array" / "a.img", MiB)
    system = services.create_remote_system(
        name="array", driver_settings={"path": str(source_root / "array")},
        actor=services.SYSTEM)
    services.request_discovery(system.pk, actor=operator_actor)
    [job] = Job.objects.filter(resource_type="remote_system")
    assert job.state == JobState.QUEUED and job.description_l10n == "Discover remote system array"
    run_jobs(enqueued)
    job.refresh_from_db()
    assert job.state == JobState.COMPLETED and job.step == "Found 1 volume(s) and 0 group(s)"


def test_finished_jobs_older_than_the_retention_are_pruned(settings):
    settings.FERRY_JOB_RETENTION_DAYS = 30
    now = timezone.now()
    old = Job.objects.create(resource_type="remote_system", resource_action="discover",
                             resource_id="1", description_l10n="old", state=JobState.COMPLETED,
                             end_time=now - timedelta(days=31))
    recent = Job.objects.create(resource_type="remote_system", resource_action="discover",
                                resource_id="1", description_l10n="recent",
                                state=JobState.FAILED, end_time=now - timedelta(days=29))
    running = Job.objects.create(resource_type="remote_system", resource_action="discover",
                                 resource_id="2", description_l10n="running",
                                 state=JobState.RUNNING)
    assert job_records.prune(now) == 1
    assert set(Job.objects.values_list("pk", flat=True)) == {recent.pk, running.pk}
    assert not Job.objects.filter(pk=old.pk).exists()


def test_a_running_copy_stopped_by_a_pause_keeps_the_progress_it_reached(operator_actor):
    from importer.states import State
    from tests.conftest import make_volume_session

    session = make_volume_session(State.COPY_IN_PROGRESS, pending_job="copy",
                                  progress_percentage=40, job_attempts=1)
    record_id = job_records.session_job_started(session.pk, "copy")
    services.perform_action(session.pk, "pause", actor=operator_actor)
    copy = Job.objects.get(pk=record_id)
    assert copy.state == JobState.COMPLETED and copy.step == "Stopped by Pause"
    assert copy.progress_percentage == 40 and copy.start_time <= copy.end_time
