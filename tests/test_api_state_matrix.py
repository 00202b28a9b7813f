"""Every (kind, state, action) through the REST API: 202 (or 200/204) with the right state,
or 409 naming the state and the allowed actions, with nothing changed."""

from datetime import timedelta

import pytest
from django.utils import timezone

from importer.models import ImportEvent, ImportSession
from tests.api_helpers import client_for, run_action
from tests.conftest import make_session
from tests.test_state_matrix import EXPECTED, TRIPLES

SUCCESS = {"delete": 204, "modify_schedule": 200}


@pytest.mark.django_db
@pytest.mark.parametrize(("kind", "state", "action"), TRIPLES)
def test_state_matrix_through_the_api(kind, state, action, admin_user, enqueued):
    session = make_session(kind, state, scheduled_timestamp=timezone.now() + timedelta(1))
    expected = EXPECTED[(kind, state)]
    events_before = ImportEvent.objects.count()
    rows_before = list(ImportSession.objects.order_by("pk").values())
    later = (timezone.now() + timedelta(hours=2)).isoformat()
    body = {"scheduled_timestamp": later} if action == "modify_schedule" else {}

    response = run_action(client_for(admin_user), session.pk, action, **body)

    if action not in expected:
        assert response.status_code == 409, response.content
        assert response["Content-Type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "action_not_allowed"
        assert problem["state"] == state
        assert problem["allowed_actions"] == sorted(session.allowed_actions)
        assert ImportEvent.objects.count() == events_before
        assert list(ImportSession.objects.order_by("pk").values()) == rows_before
        assert enqueued == []
        return
    assert response.status_code == SUCCESS.get(action, 202), response.content
    if expected[action] is None:
        assert not ImportSession.objects.filter(pk=session.pk).exists()
        return
    assert response.json()["state"] == expected[action]
    session.refresh_from_db()
    assert session.state == expected[action]
