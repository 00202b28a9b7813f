"""A finished session's details say that deleting it is REST-only, with the call to make."""

import re

import pytest
from django.urls import reverse

from tests.conftest import make_session

pytestmark = pytest.mark.django_db


def _detail(client, session):
    return client.get(reverse("importer:session-detail", args=[session.pk])).content.decode()


@pytest.mark.parametrize("state", ["Import_Completed", "Cancelled", "Failed"])
def test_a_finished_session_shows_the_rest_delete_call(client, operator, state):
    session = make_session("volume", state, name="done")
    client.force_login(operator)
    page = _detail(client, session)
    assert "REST API only" in page
    assert ('curl -X DELETE -H &quot;Authorization: Token $FERRY_TOKEN&quot; '
            f"http://testserver/api/v1/import-sessions/{session.pk}/") in page


def test_the_call_is_the_api_s_delete_that_works(client, operator, admin_user):
    from tests.api_helpers import client_for

    session = make_session("volume", "Cancelled", name="gone")
    client.force_login(operator)
    path = re.search(r"curl -X DELETE .*? http://testserver(\S+?)<", _detail(client, session))[1]
    response = client_for(admin_user).delete(path)
    assert response.status_code == 204


def test_an_unfinished_session_shows_no_delete_call(client, operator):
    session = make_session("volume", "Copy_In_Progress", name="busy")
    client.force_login(operator)
    assert "curl -X DELETE" not in _detail(client, session)
