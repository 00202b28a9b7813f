"""A session that enters a state states.py marks with a severity raises one alert, with
that severity; it is cleared when the session leaves the state. Groups alert, members
do not."""

import pytest

from importer import services, states
from importer.errors import SourceError
from importer.models import Alert, AlertState
from importer.services import alerts
from importer.services.transitions import advance
from importer.states import Event, Severity, State
from tests.conftest import make_group_session, make_volume_session

pytestmark = pytest.mark.django_db


def _active(session):
    return list(Alert.objects.filter(resource_id=str(session.pk), state=AlertState.ACTIVE))


def _fail_setup(session):
    return advance(session.pk, Event.SETUP_FAILED, expected=State.QUEUED,
                   error=SourceError("source_volume_missing", "x.img is gone."))


def test_every_state_that_needs_an_operator_declares_an_alert():
    for state in states.NEEDS_ATTENTION | {State.READY_FOR_CUTOVER}:
        assert states.info(state).alert is not None, state
    assert states.info(State.FAILED).alert == Severity.CRITICAL
    assert states.info(State.READY_FOR_CUTOVER).alert == Severity.INFO
    assert all(states.info(state).alert is None for state in states.ACTIVE)


def test_a_failed_setup_raises_a_critical_alert_with_the_error(operator_actor):
    session = make_volume_session(State.QUEUED, pending_job="setup")
    _fail_setup(session)
    [alert] = _active(session)
    assert alert.severity == "Critical" and alert.resource_type == "import_session"
    assert alert.resource_name == session.name and alert.event_code == "session_state_failed"
    assert "is Failed" in alert.description_l10n and "x.img is gone." in alert.description_l10n
    assert not alert.is_acknowledged


def test_leaving_the_state_clears_its_alert(operator_actor):
    session = make_volume_session(State.QUEUED, pending_job="setup")
    _fail_setup(session)
    services.perform_action(session.pk, "cancel", actor=operator_actor)
    assert _active(session) == []
    cleared = Alert.objects.get(resource_id=str(session.pk))
    assert cleared.state == AlertState.CLEARED and cleared.cleared_timestamp is not None


def test_ready_for_cutover_raises_an_info_alert_that_cutover_clears(operator_actor):
    session = make_volume_session(State.COPY_IN_PROGRESS, pending_job="copy")
    advance(session.pk, Event.COPY_COMPLETED, expected=State.COPY_IN_PROGRESS)
    [alert] = _active(session)
    assert alert.severity == "Info" and "needs action" in alert.description_l10n
    services.perform_action(session.pk, "cutover", actor=operator_actor)
    assert _active(session) == []


def test_a_persisting_condition_is_one_alert_not_many():
    session = make_volume_session(State.FAILED)
    for _ in range(3):
        alerts.session_entered(session, State.FAILED)
    assert len(_active(session)) == 1
    assert Alert.objects.count() == 1


def test_moving_from_one_alerting_state_to_another_replaces_the_alert():
    session = make_volume_session(State.CANCEL_IN_PROGRESS, pending_job="cancel")
    advance(session.pk, Event.SOURCE_RESTORE_FAILED, expected=State.CANCEL_IN_PROGRESS,
            error=SourceError("source_unreachable", "the array is away."))
    [alert] = _active(session)
    assert alert.event_code == "session_state_cleanup_required"
    assert alert.severity == "Major"


def test_a_group_alerts_once_and_its_members_not_at_all():
    group = make_group_session(State.IN_PROGRESS, [State.QUEUED, State.QUEUED],
                               pending_job="setup")
    member = group.members.first()
    _fail_setup(member)
    assert _active(member) == []
    [alert] = _active(group)
    assert alert.severity == "Critical" and alert.resource_name == group.name
    assert "x.img is gone." in alert.description_l10n


def test_deleting_a_session_clears_its_alerts(operator_actor):
    session = make_volume_session(State.FAILED)
    alerts.session_entered(session, State.FAILED)
    services.delete_import(session.pk, actor=operator_actor)
    assert Alert.objects.get().state == AlertState.CLEARED

