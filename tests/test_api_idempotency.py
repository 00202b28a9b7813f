"""Idempotency-Key on POSTs: a retry replays the first answer instead of acting twice."""

from datetime import timedelta

import pytest
from django.utils import timezone

from importer.api.idempotency import purge_expired
from importer.models import IdempotencyRecord, ImportEvent, ImportSession
from tests.api_helpers import API, client_for, session_url
from tests.conftest import SourceVolumeFactory, make_session

pytestmark = pytest.mark.django_db


def _create(client, source, key=None, name="db-lun"):
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(f"{API}/import-sessions/", {"name": name, "source_resource_id":
                                                   str(source.pk)}, format="json",
                       headers=headers)


def test_the_same_key_and_body_replays_the_first_response(operator, enqueued):
    source, client = SourceVolumeFactory(), client_for(operator)
    first = _create(client, source, key="create-db-lun-1")
    again = _create(client, source, key="create-db-lun-1")

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert ImportSession.objects.count() == 1
    assert ImportEvent.objects.filter(action="create").count() == 1


def test_a_replayed_action_does_not_act_twice(operator, enqueued):
    session = make_session("volume", "Copy_In_Progress")
    client = client_for(operator)
    headers = {"Idempotency-Key": "pause-1"}
    first = client.post(session_url(session.pk, "pause/"), headers=headers)
    session.refresh_from_db()
    assert session.state == "Paused"
    client.post(session_url(session.pk, "resume/"))  # someone resumes meanwhile
    again = client.post(session_url(session.pk, "pause/"), headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json()["state"] == "Paused"  # the first answer, not a second pause
    session.refresh_from_db()
    assert session.state == "Copy_In_Progress"


def test_a_refusal_is_replayed_as_the_same_problem(operator):
    session = make_session("volume", "Ready_For_Cutover")
    client = client_for(operator)
    first = client.post(session_url(session.pk, "pause/"), headers={"Idempotency-Key": "k"})
    again = client.post(session_url(session.pk, "pause/"), headers={"Idempotency-Key": "k"})
    assert first.status_code == again.status_code == 409
    assert again["Content-Type"] == "application/problem+json"
    assert again.json() == first.json()


def test_the_same_key_with_another_body_is_a_422(operator, enqueued):
    client = client_for(operator)
    _create(client, SourceVolumeFactory(), key="k1")
    response = _create(client, SourceVolumeFactory(), key="k1", name="other")
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert ImportSession.objects.count() == 1


def test_the_same_key_on_another_endpoint_is_a_422(operator, enqueued):
    session = make_session("volume", "Queued")
    client = client_for(operator)
    client.post(session_url(session.pk, "cancel/"), headers={"Idempotency-Key": "k2"})
    response = _create(client, SourceVolumeFactory(), key="k2")
    assert response.status_code == 422


def test_keys_belong_to_their_user(operator, admin_user, enqueued):
    _create(client_for(operator), SourceVolumeFactory(), key="shared", name="a")
    response = _create(client_for(admin_user), SourceVolumeFactory(), key="shared", name="b")
    assert response.status_code == 201 and "Idempotent-Replayed" not in response


def test_without_a_key_each_post_acts(operator, enqueued):
    client = client_for(operator)
    source = SourceVolumeFactory()
    assert _create(client, source).status_code == 201
    second = _create(client, source)
    assert second.status_code == 400  # acted again: the name is taken now
    assert IdempotencyRecord.objects.count() == 0


def test_a_key_whose_first_request_is_still_running_is_a_409(operator, enqueued):
    source, client = SourceVolumeFactory(), client_for(operator)
    _create(client, source, key="busy")
    IdempotencyRecord.objects.update(status_code=None, response_body=None)  # still running
    response = _create(client, source, key="busy")
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_in_use"


def test_an_oversized_key_is_a_400(operator):
    response = _create(client_for(operator), SourceVolumeFactory(), key="k" * 300)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"


def test_expired_keys_are_forgotten(operator, enqueued, settings):
    client = client_for(operator)
    _create(client, SourceVolumeFactory(), key="old", name="first")
    IdempotencyRecord.objects.update(created=timezone.now() - timedelta(
        hours=settings.FERRY_IDEMPOTENCY_HOURS + 1))
    response = _create(client, SourceVolumeFactory(), key="old", name="second")
    assert response.status_code == 201 and response.json()["name"] == "second"
    IdempotencyRecord.objects.update(created=timezone.now() - timedelta(days=30))
    assert purge_expired() == 1


@pytest.mark.parametrize("key", ["a\x00b", "line\nbreak", "\x1b[2J"])
def test_a_key_with_control_characters_is_a_400_not_a_server_error(operator, key):
    # PostgreSQL cannot store a NUL: it was a 500 there.
    response = client_for(operator).post(f"{API}/import-sessions/", {}, format="json",
                                         HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 400 and response.json()["code"] == "invalid_idempotency_key"
    assert not IdempotencyRecord.objects.exists()


def test_the_schema_documents_the_key_on_the_posts_that_honour_it(viewer):
    paths = client_for(viewer).get(f"{API}/schema/?format=json").json()["paths"]
    names = lambda operation: [p["name"] for p in operation.get("parameters", [])]  # noqa: E731
    assert "Idempotency-Key" in names(paths["/api/v1/import-sessions/"]["post"])
    assert "Idempotency-Key" not in names(paths["/api/v1/auth/token/"]["post"])
