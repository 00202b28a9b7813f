"""A session's jobs go to its storage node's queue; discovery and the scheduler's tick go to
the shared one; and a job that reaches another node's worker is left alone."""

from datetime import timedelta

import pytest
from django.utils import timezone

from importer import services
from importer.models import ImportSession
from importer.services import dispatch
from importer.states import Job
from tests.conftest import (
    RemoteSystemFactory,
    SourceGroupFactory,
    SourceVolumeFactory,
    make_node,
    make_volume_session,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch) -> list[tuple]:
    """What dispatch.send published: (task, args, Celery options)."""
    published: list[tuple] = []
    monkeypatch.setattr(dispatch, "send", lambda name, *args, **options:
                        published.append((name, args, options)) or True)
    return published


@pytest.fixture
def node_b(storage_node):
    return make_node("node-b", free_bytes=storage_node.free_bytes * 2)


def _queues(sent, task) -> set[str]:
    return {options.get("queue", "celery") for name, _args, options in sent if name == task}


def test_a_sessions_setup_goes_to_its_nodes_queue(node_b, operator_actor, sent,
                                                  django_capture_on_commit_callbacks):
    source = SourceVolumeFactory()
    with django_capture_on_commit_callbacks(execute=True):
        session = services.create_import(name="db", source_resource_id=source.pk,
                                         actor=operator_actor, storage_node_id=node_b.pk)
    with django_capture_on_commit_callbacks(execute=True):
        services.scheduler_tick()
    assert ("setup_session_task", (session.pk,), {"queue": "ferry.node.node-b"}) in sent
    assert _queues(sent, "scheduler_tick_task") == {"celery"}


def test_every_member_of_a_group_is_sent_to_the_groups_node(node_b, operator_actor, sent,
                                                            django_capture_on_commit_callbacks):
    group_source = SourceGroupFactory()
    for _ in range(3):
        SourceVolumeFactory(remote_system=group_source.remote_system, group=group_source)
    with django_capture_on_commit_callbacks(execute=True):
        services.create_import(name="cg", source_resource_id=group_source.pk,
                               actor=operator_actor, storage_node_id=node_b.pk)
    with django_capture_on_commit_callbacks(execute=True):
        services.scheduler_tick()
    members = set(ImportSession.objects.filter(parent_session__name="cg")
                  .values_list("pk", flat=True))
    assert {args[0] for name, args, _options in sent if name == "setup_session_task"} == members
    assert _queues(sent, "setup_session_task") == {"ferry.node.node-b"}


@pytest.mark.parametrize(("job", "task"), list(dispatch.JOB_TASKS.items()))
def test_each_job_goes_to_the_nodes_queue(node_b, sent, job, task):
    session = make_volume_session("Copy_In_Progress", storage_node=node_b)
    dispatch.send_job(session.pk, job)
    assert sent == [(task, (session.pk,), {"queue": "ferry.node.node-b"})]


def test_a_copy_slices_hand_off_goes_to_the_same_node(node_b, sent):
    session = make_volume_session("Copy_In_Progress", storage_node=node_b)
    dispatch.send_job(session.pk, Job.COPY, "lease-1")
    assert sent == [("copy_session_task", (session.pk, "lease-1"),
                     {"queue": "ferry.node.node-b"})]


def test_a_session_from_before_storage_nodes_goes_to_the_shared_queue(sent):
    session = make_volume_session("Queued")
    dispatch.send_job(session.pk, Job.SETUP)
    assert sent == [("setup_session_task", (session.pk,), {"queue": "celery"})]


def test_discovery_goes_to_the_shared_queue(operator_actor, sent,
                                            django_capture_on_commit_callbacks):
    system = RemoteSystemFactory()
    with django_capture_on_commit_callbacks(execute=True):
        services.request_discovery(system.pk, actor=operator_actor)
    assert _queues(sent, "discover_remote_system_task") == {"celery"}


def test_a_lost_job_is_sent_again_to_its_node_but_not_while_the_node_is_offline(node_b, sent):
    online = make_volume_session("Queued", storage_node=node_b, pending_job=Job.SETUP)
    offline_node = make_node("node-c", last_heartbeat=timezone.now() - timedelta(minutes=5))
    stopped_node = make_node("node-d", status="Offline")
    make_volume_session("Queued", storage_node=offline_node, pending_job=Job.SETUP)
    make_volume_session("Queued", storage_node=stopped_node, pending_job=Job.SETUP)
    assert dispatch.resend_lost_jobs(timezone.now()) == 1
    assert sent == [("setup_session_task", (online.pk,), {"queue": "ferry.node.node-b"})]


@pytest.mark.django_db(transaction=True)
def test_a_job_that_reaches_another_nodes_worker_does_nothing(node_b, settings, sent):
    settings.FERRY_NODE_NAME = "node-1"  # this worker; the session is on node-b
    session = make_volume_session("Queued", storage_node=node_b, pending_job=Job.SETUP)
    services.run_setup(session.pk)
    session.refresh_from_db()
    assert session.state == "Queued" and session.lease_owner == ""
    assert session.destination_volume is None and session.job_attempts == 0
    settings.FERRY_NODE_NAME = "node-b"  # its own node's worker takes it
    services.run_setup(session.pk)  # it ran: its source is a fixture's, which it cannot read
    assert ImportSession.objects.get(pk=session.pk).state == "Failed"
