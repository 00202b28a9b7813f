"""Refusals leave a trace: a role that may not do something is refused and audited, whether
the dashboard or a service says no."""

import json

import pytest
from django.urls import reverse

from importer import services
from importer.errors import PermissionDenied
from importer.models import ImportEvent
from tests.conftest import make_session

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.mark.django_db
@pytest.mark.parametrize(("role", "method", "url_name", "reason"), [
    ("viewer", "get", "importer:import-create", "not create them"),
    ("viewer", "post", "importer:import-create", "not create them"),
    ("operator", "post", "importer:system-create", "Only admins"),
    ("operator", "get", "importer:host-create", "Only admins"),
])
def test_a_dashboard_page_refused_to_a_role_is_audited(client, request, role, method, url_name,
                                                       reason):
    user = request.getfixturevalue(role)
    client.force_login(user)
    path = reverse(url_name)
    response = getattr(client, method)(path, REMOTE_ADDR="192.0.2.44")
    assert response.status_code == 403 and reason in response.content.decode()
    event = ImportEvent.objects.get()
    assert (event.action, event.outcome, event.error_code) == (
        "access_denied", "refused", "permission_denied")
    assert (event.actor, event.actor_name, event.client_address) == (
        user, user.username, "192.0.2.44")
    assert event.subject == path and reason in event.error_message
    assert event.details == {"method": method.upper()}


@pytest.mark.django_db
def test_a_page_the_role_may_see_is_not_audited(client, viewer):
    client.force_login(viewer)
    assert client.get(reverse("importer:session-list")).status_code == 200
    assert not ImportEvent.objects.exists()


@pytest.mark.django_db
def test_a_service_refusal_is_audited(viewer):
    session = make_session("volume", "Copy_In_Progress")
    with pytest.raises(PermissionDenied):
        services.perform_action(session.pk, "pause", actor=services.Actor(viewer, "192.0.2.45"))
    session.refresh_from_db()
    assert session.state == "Copy_In_Progress"
    event = ImportEvent.objects.get()
    assert (event.action, event.outcome, event.error_code) == (
        "access_denied", "refused", "permission_denied")
    assert (event.actor, event.actor_name, event.client_address) == (
        viewer, viewer.username, "192.0.2.45")
    assert event.details == {"permission": "importer.operate_importsession"}


@pytest.mark.django_db
def test_a_viewer_running_an_action_from_the_dashboard_is_refused_once_and_audited_once(
        client, viewer):
    session = make_session("volume", "Copy_In_Progress")
    client.force_login(viewer)
    response = client.post(reverse("importer:session-action", args=[session.pk, "pause"]),
                           REMOTE_ADDR="192.0.2.46", **HTMX)
    toast = json.loads(response["HX-Trigger"])["ferry:toast"]
    assert toast["level"] == "danger" and "not allowed" in toast["message"]
    event = ImportEvent.objects.get()  # the service's record; the view adds none
    assert (event.action, event.actor_name, event.client_address) == (
        "access_denied", viewer.username, "192.0.2.46")
