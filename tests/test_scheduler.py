"""The scheduler tick: due schedules start, queued imports are admitted FIFO into slots."""

from datetime import timedelta

import pytest
from django.utils import timezone

from importer import services
from importer.models import ImportSession
from tests.conftest import SourceGroupFactory, SourceVolumeFactory, make_session


def _create(name, actor, **options):
    source = options.pop("source", None) or SourceVolumeFactory()
    return services.create_import(name=name, source_resource_id=source.pk, actor=actor,
                                  **options)


@pytest.mark.django_db(transaction=True)
def test_a_scheduled_import_is_queued_when_its_time_comes(operator_actor, enqueued):
    when = timezone.now() + timedelta(minutes=30)
    session = _create("later", operator_actor, scheduled_timestamp=when)
    assert services.scheduler_tick(now=when - timedelta(seconds=1))["started"] == 0
    result = services.scheduler_tick(now=when + timedelta(seconds=1))
    session.refresh_from_db()
    assert result["started"] == 1
    assert session.state == "Queued" and session.admitted_timestamp is not None
    assert ("setup_session_task", session.pk) in enqueued
    assert session.events.latest("id").action == "schedule_due"


@pytest.mark.django_db(transaction=True)
def test_a_scheduled_group_starts_as_one(operator_actor, enqueued):
    group_source = SourceGroupFactory()
    for _ in range(2):
        SourceVolumeFactory(remote_system=group_source.remote_system, group=group_source)
    when = timezone.now() + timedelta(minutes=5)
    group = _create("cg", operator_actor, source=group_source, scheduled_timestamp=when)
    services.scheduler_tick(now=when + timedelta(seconds=1))
    group.refresh_from_db()
    assert group.state == "Queued"
    assert {m.state for m in group.members.all()} == {"Queued"}
    assert sorted(job for job in enqueued if job[0] == "setup_session_task") == sorted(
        ("setup_session_task", m.pk) for m in group.members.all())


@pytest.mark.django_db(transaction=True)
def test_the_queue_admits_up_to_the_limit_in_order(operator_actor, settings, enqueued):
    settings.FERRY_MAX_ACTIVE_IMPORTS = 2
    first, second, third = (_create(name, operator_actor) for name in ("a", "b", "c"))
    services.scheduler_tick()
    admitted = set(ImportSession.objects.filter(admitted_timestamp__isnull=False)
                   .values_list("name", flat=True))
    assert admitted == {"a", "b"}
    services.scheduler_tick()  # nothing frees up: the third keeps waiting
    third.refresh_from_db()
    assert third.state == "Queued" and third.admitted_timestamp is None
    ImportSession.objects.filter(pk=first.pk).update(state="Mirror_Enabled")
    services.perform_action(first.pk, "cancel", actor=operator_actor)
    services.scheduler_tick()
    third.refresh_from_db()
    assert third.admitted_timestamp is None  # a cancel in progress still holds its slot
    ImportSession.objects.filter(pk=first.pk).update(state="Cancelled")
    services.scheduler_tick()
    third.refresh_from_db()
    assert third.admitted_timestamp is not None


@pytest.mark.django_db(transaction=True)
def test_a_group_takes_one_slot_for_all_its_members(operator_actor, settings, enqueued):
    settings.FERRY_MAX_ACTIVE_IMPORTS = 1
    group_source = SourceGroupFactory()
    for _ in range(3):
        SourceVolumeFactory(remote_system=group_source.remote_system, group=group_source)
    group = _create("cg", operator_actor, source=group_source)
    services.scheduler_tick()
    assert group.members.filter(admitted_timestamp__isnull=False).count() == 3


@pytest.mark.django_db(transaction=True)
def test_the_reaper_restarts_a_copy_whose_worker_died(enqueued, settings):
    settings.FERRY_LEASE_SECONDS = 10
    sent = timezone.now() - timedelta(minutes=1)
    session = make_session("volume", "Copy_In_Progress", lease_owner="dead-worker",
                           lease_expires_at=timezone.now() - timedelta(seconds=1),
                           pending_job="copy", job_sent_at=sent)
    alive = make_session("volume", "Copy_In_Progress", lease_owner="live-worker",
                         lease_expires_at=timezone.now() + timedelta(seconds=9),
                         pending_job="copy", job_sent_at=sent)
    assert services.scheduler_tick()["resent"] == 1
    assert ("copy_session_task", session.pk) in enqueued
    assert ("copy_session_task", alive.pk) not in enqueued


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("state, job, task", [
    ("Queued", "setup", "setup_session_task"),
    ("Ready_To_Start_Copy", "enable", "enable_destination_session_task"),
    ("Cutover_In_Progress", "cutover", "cutover_session_task"),
    ("Cancel_In_Progress", "cancel", "cancel_session_task"),
    ("Cleanup_In_Progress", "cleanup", "cleanup_session_task"),
])
def test_the_reaper_sends_again_every_kind_of_job_whose_worker_died(state, job, task, enqueued,
                                                                    settings):
    settings.FERRY_LEASE_SECONDS = 10
    orphan = make_session("volume", state, lease_owner="dead-worker", pending_job=job,
                          admitted_timestamp=timezone.now() - timedelta(minutes=5),
                          lease_expires_at=timezone.now() - timedelta(seconds=1),
                          job_sent_at=timezone.now() - timedelta(minutes=5))
    assert services.scheduler_tick()["resent"] == 1
    assert enqueued.count((task, orphan.pk)) == 1
    services.scheduler_tick()  # sent again only after another lease period
    assert enqueued.count((task, orphan.pk)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_job_lost_between_commit_and_broker_is_sent_by_the_next_tick(operator_actor,
                                                                       enqueued, monkeypatch):
    from importer.services import dispatch

    session = make_session("volume", "Ready_For_Cutover")
    lost = lambda name, *args, **_options: False  # noqa: E731 - the publish is lost
    monkeypatch.setattr(dispatch, "send", lost)
    services.perform_action(session.pk, "cutover", actor=operator_actor)
    session.refresh_from_db()
    assert (session.pending_job, session.job_sent_at) == ("cutover", None)
    monkeypatch.setattr(dispatch, "send",
                        lambda name, *args, **_options: enqueued.append((name, *args)) or True)
    assert services.scheduler_tick()["resent"] == 1
    assert ("cutover_session_task", session.pk) in enqueued
    session.refresh_from_db()
    assert session.job_sent_at is not None


def test_every_job_is_sent_to_a_task_that_exists():
    from config.celery import app
    from importer import tasks  # noqa: F401 - registers the tasks
    from importer.services import dispatch
    from importer.states import Job

    names = {*dispatch.JOB_TASKS.values(), dispatch.SCHEDULER_TICK,
             "discover_remote_system_task"}
    assert set(dispatch.JOB_TASKS) == set(Job)
    assert {f"importer.tasks.{name}" for name in names} <= set(app.tasks)
