"""Every (kind, state, action) through the service layer: the right move, or a refusal
that changes nothing: not the state, not the events, not the jobs."""

from datetime import timedelta

import pytest
from django.utils import timezone

from importer import services
from importer.errors import ActionNotAllowed
from importer.models import ImportEvent, ImportSession
from importer.states import Action
from tests.conftest import make_session

# (kind, state) → {action: the session's state right after the action}. Written out so a
# behaviour change is a deliberate edit here. None: the session is deleted.
EXPECTED = {
    ("volume", "Scheduled"): {"cancel": "Cancel_In_Progress", "modify_schedule": "Scheduled"},
    ("volume", "Queued"): {"cancel": "Cancel_In_Progress"},
    ("volume", "In_Progress"): {},
    ("volume", "Mirror_Enabled"): {"enable_destination_volume": "Ready_To_Start_Copy",
                                   "cancel": "Cancel_In_Progress"},
    ("volume", "Ready_To_Start_Copy"): {"start_copy": "Copy_In_Progress",
                                        "cancel": "Cancel_In_Progress"},
    ("volume", "Copy_In_Progress"): {"pause": "Paused", "cancel": "Cancel_In_Progress"},
    ("volume", "Paused"): {"resume": "Copy_In_Progress", "cancel": "Cancel_In_Progress"},
    ("volume", "Ready_For_Cutover"): {"cutover": "Cutover_In_Progress",
                                      "cancel": "Cancel_In_Progress"},
    ("volume", "Cutover_In_Progress"): {},
    ("volume", "Import_Completed"): {"delete": None},
    ("volume", "Import_Completed_With_Errors"): {},
    ("volume", "Import_Cutover_Incomplete"): {},
    ("volume", "Cancel_Required"): {"cancel": "Cancel_In_Progress"},
    ("volume", "Cancel_In_Progress"): {},
    ("volume", "Cancel_Failed"): {"cancel": "Cancel_In_Progress"},
    ("volume", "Cancelled"): {"delete": None},
    ("volume", "Cleanup_Required"): {"cleanup": "Cleanup_In_Progress"},
    ("volume", "Cleanup_In_Progress"): {},
    ("volume", "Cleanup_Failed"): {"cleanup": "Cleanup_In_Progress"},
    ("volume", "Failed"): {"cancel": "Cancel_In_Progress", "delete": None},
    ("group", "Scheduled"): {"cancel": "Cancel_In_Progress", "modify_schedule": "Scheduled"},
    ("group", "Queued"): {"cancel": "Cancel_In_Progress"},
    ("group", "In_Progress"): {"pause": "Paused", "cancel": "Cancel_In_Progress"},
    ("group", "Mirror_Enabled"): {"enable_destination_volume": "Ready_To_Start_Copy",
                                  "cancel": "Cancel_In_Progress"},
    ("group", "Ready_To_Start_Copy"): {"start_copy": "In_Progress",
                                       "cancel": "Cancel_In_Progress"},
    ("group", "Copy_In_Progress"): {},
    ("group", "Paused"): {"resume": "In_Progress", "cancel": "Cancel_In_Progress"},
    ("group", "Ready_For_Cutover"): {"cutover": "Cutover_In_Progress",
                                     "cancel": "Cancel_In_Progress"},
    ("group", "Cutover_In_Progress"): {},
    ("group", "Import_Completed"): {"delete": None},
    ("group", "Import_Completed_With_Errors"): {"delete": None},
    ("group", "Import_Cutover_Incomplete"): {"cutover": "Cutover_In_Progress",
                                             "cancel": "Cancel_In_Progress"},
    ("group", "Cancel_Required"): {"cancel": "Cancel_In_Progress"},
    ("group", "Cancel_In_Progress"): {},
    ("group", "Cancel_Failed"): {"cancel": "Cancel_In_Progress"},
    ("group", "Cancelled"): {"delete": None},
    ("group", "Cleanup_Required"): {"cleanup": "Cleanup_In_Progress"},
    ("group", "Cleanup_In_Progress"): {},
    ("group", "Cleanup_Failed"): {"cleanup": "Cleanup_In_Progress"},
    ("group", "Failed"): {"cancel": "Cancel_In_Progress", "delete": None},
}

TRIPLES = [(kind, state, action.value) for (kind, state) in EXPECTED for action in Action]


def _act(session, action, actor):
    later = timezone.now() + timedelta(hours=2)
    return services.perform_action(session.pk, action, actor=actor, scheduled_timestamp=later)


@pytest.mark.django_db
@pytest.mark.parametrize(("kind", "state", "action"), TRIPLES)
def test_state_matrix(kind, state, action, admin_user, enqueued,
                      django_capture_on_commit_callbacks):
    actor = services.Actor(admin_user, "198.51.100.7")
    session = make_session(kind, state, scheduled_timestamp=timezone.now() + timedelta(1))
    expected = EXPECTED[(kind, state)]
    events_before = ImportEvent.objects.count()
    rows_before = list(ImportSession.objects.order_by("pk").values())

    if action not in expected:
        with django_capture_on_commit_callbacks(execute=True):
            with pytest.raises(ActionNotAllowed) as refusal:
                _act(session, action, actor)
        assert refusal.value.state == state
        assert state.replace("_", " ").split()[0] in refusal.value.message or \
            "not allowed while" in refusal.value.message
        assert ImportEvent.objects.count() == events_before
        assert list(ImportSession.objects.order_by("pk").values()) == rows_before
        assert enqueued == []
        return

    with django_capture_on_commit_callbacks(execute=True):
        _act(session, action, actor)
    event = ImportEvent.objects.filter(session_name=session.name).latest("id")
    assert event.action == action
    assert event.from_state == state
    assert event.actor_name == admin_user.username
    assert event.client_address == "198.51.100.7"
    if expected[action] is None:
        assert not ImportSession.objects.filter(pk=session.pk).exists()
        assert event.session is None and event.to_state == ""
        return
    session.refresh_from_db()
    assert session.state == expected[action]
    assert event.to_state == expected[action]
    assert ImportEvent.objects.filter(session=session).count() == 1


@pytest.mark.django_db
def test_a_refusal_names_the_state_and_the_allowed_actions(operator_actor):
    session = make_session("volume", "Copy_In_Progress")
    with pytest.raises(ActionNotAllowed) as refusal:
        services.perform_action(session.pk, "cutover", actor=operator_actor)
    assert refusal.value.message == (
        f"cutover is not allowed while {session.name} is Copy In Progress. "
        "Allowed: cancel, pause.")
    assert refusal.value.as_dict()["arguments"]["allowed_actions"] == ["cancel", "pause"]


@pytest.mark.django_db
def test_member_sessions_take_no_actions_of_their_own(operator_actor):
    group = make_session("group", "Paused")
    member = group.members.first()
    with pytest.raises(ActionNotAllowed, match="run resume on the group session"):
        services.perform_action(member.pk, "resume", actor=operator_actor)
    member.refresh_from_db()
    assert member.state == "Paused"


@pytest.mark.django_db
def test_allowed_actions_enqueue_their_job_on_commit(operator_actor, enqueued,
                                                     django_capture_on_commit_callbacks):
    session = make_session("volume", "Ready_To_Start_Copy")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.perform_action(session.pk, "start_copy", actor=operator_actor)
        assert enqueued == []  # nothing is sent before the transaction commits
    for callback in callbacks:
        callback()
    assert enqueued == [("copy_session_task", session.pk)]


@pytest.mark.django_db
def test_a_group_action_moves_every_member_and_records_each(operator_actor, enqueued,
                                                            django_capture_on_commit_callbacks):
    group = make_session("group", "Ready_For_Cutover")
    with django_capture_on_commit_callbacks(execute=True):
        services.perform_action(group.pk, "cutover", actor=operator_actor)
    members = list(group.members.all())
    assert {m.state for m in members} == {"Cutover_In_Progress"}
    for member in members:
        assert member.events.get().action == "cutover"
    assert sorted(enqueued) == sorted(("cutover_session_task", m.pk) for m in members)
