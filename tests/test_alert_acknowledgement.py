"""Operators acknowledge alerts, one or many; each acknowledgement is audited. Viewers may
not acknowledge."""

import pytest

from importer import services
from importer.errors import PermissionDenied
from importer.models import Alert, ImportEvent
from importer.services import alerts
from importer.states import State
from tests.conftest import make_volume_session

pytestmark = pytest.mark.django_db


def _alerts(count):
    found = []
    for index in range(count):
        session = make_volume_session(State.FAILED, name=f"failed-{index}")
        alerts.session_entered(session, State.FAILED)
        found.append(Alert.objects.get(resource_id=str(session.pk)))
    return found


def test_acknowledging_marks_who_and_when_and_audits_each(operator_actor):
    first, second, third = _alerts(3)
    done = alerts.acknowledge_alerts([first.pk, second.pk], actor=operator_actor)
    assert done == 2
    first.refresh_from_db()
    assert first.is_acknowledged and first.acknowledged_by == "otto-operator"
    assert first.acknowledged_timestamp is not None
    assert alerts.unacknowledged().get() == third
    events = ImportEvent.objects.filter(action="acknowledge_alert")
    assert events.count() == 2
    assert {event.details["alert"] for event in events} == {str(first.pk), str(second.pk)}
    assert all(event.actor_name == "otto-operator" for event in events)


def test_acknowledging_again_or_bad_ids_changes_nothing(operator_actor):
    [alert] = _alerts(1)
    alerts.acknowledge_alerts([alert.pk], actor=operator_actor)
    assert alerts.acknowledge_alerts([alert.pk, "not-a-uuid", 42], actor=operator_actor) == 0
    assert ImportEvent.objects.filter(action="acknowledge_alert").count() == 1


def test_a_viewer_may_not_acknowledge(viewer):
    [alert] = _alerts(1)
    with pytest.raises(PermissionDenied):
        alerts.acknowledge_alerts([alert.pk], actor=services.Actor(viewer))
    alert.refresh_from_db()
    assert not alert.is_acknowledged


def test_an_acknowledged_alert_still_clears_when_its_session_moves_on(operator_actor):
    [alert] = _alerts(1)
    alerts.acknowledge_alerts([alert.pk], actor=operator_actor)
    services.perform_action(int(alert.resource_id), "cancel", actor=operator_actor)
    alert.refresh_from_db()
    assert alert.state == "CLEARED" and alert.is_acknowledged
