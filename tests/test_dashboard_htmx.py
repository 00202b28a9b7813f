"""htmx answers from the dashboard's actions, sent with django-htmx's response helpers."""

import json

import pytest
from django.urls import reverse

from tests.conftest import make_session
from tests.test_dashboard_pages import _walk, demo  # noqa: F401  (demo: a fixture)

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.mark.django_db
def test_an_action_on_a_session_deleted_meanwhile_removes_its_row_and_says_why(client,
                                                                              operator):
    client.force_login(operator)
    session = make_session("volume", "Copy_In_Progress")
    url = reverse("importer:session-action", args=[session.pk, "pause"])
    session.delete()
    response = client.post(url, **HTMX, HTTP_HX_TARGET=f"session-{session.pk}")
    assert response.status_code == 200
    assert response["HX-Reswap"] == "delete" and response.content == b""
    assert json.loads(response["HX-Trigger"])["ferry:toast"]["level"] == "danger"


@pytest.mark.django_db
def test_a_bulk_action_triggers_a_toast_and_a_table_refresh(client, operator):
    client.force_login(operator)
    session = make_session("volume", "Copy_In_Progress")
    response = client.post(reverse("importer:bulk-action", args=["pause"]),
                           {"ids": str(session.pk)}, **HTMX)
    events = json.loads(response["HX-Trigger"])
    assert events["ferry:toast"]["level"] == "success" and events["ferry:refresh-table"] == {}


@pytest.mark.django_db(transaction=True)
def test_the_wizard_sends_htmx_to_the_imports_page(client, operator, demo, enqueued):  # noqa: F811
    client.force_login(operator)
    volume = demo.source_volumes.get(identifier="db.img")
    client.defaults.update(HTMX)  # every step, as the wizard's hx-post sends them
    response = _walk(client, demo, [str(volume.pk)])
    assert response["HX-Redirect"] == "/"
