"""The Alerts page and the top bar's bell: filters, acknowledging one or many, links to the
subject, and what a viewer may do."""

import pytest
from django.urls import reverse

from importer.models import Alert
from importer.services import alerts
from importer.states import State
from tests.conftest import make_node, make_volume_session

pytestmark = pytest.mark.django_db
ALERTS = reverse("importer:alert-list")


@pytest.fixture
def failed():
    session = make_volume_session(State.FAILED, name="db01", error_message="db01.img is gone.")
    alerts.session_entered(session, State.FAILED)
    return session, Alert.objects.get(resource_id=str(session.pk))


def test_the_page_lists_active_alerts_with_a_link_to_the_session(client, viewer, failed):
    session, alert = failed
    client.force_login(viewer)
    page = client.get(ALERTS).content.decode()
    assert "Critical" in page and "db01.img is gone." in page
    assert f'href="{reverse("importer:session-detail", args=[session.pk])}"' in page
    assert "Acknowledge selected" not in page  # viewers see, operators acknowledge


def test_a_node_alert_links_to_the_storage_nodes_page(client, viewer):
    node = make_node("node-down")
    alerts.node_status_changed(node, "Offline", "Its worker stopped.")
    client.force_login(viewer)
    page = client.get(ALERTS).content.decode()
    assert f'href="{reverse("importer:node-list")}#node-{node.pk}"' in page


def test_acknowledging_moves_an_alert_from_active_to_acknowledged(client, operator, failed):
    _, alert = failed
    client.force_login(operator)
    response = client.post(reverse("importer:alert-acknowledge"),
                           {"only": str(alert.pk), "next": f"{ALERTS}?show=active"})
    assert response.status_code == 302 and response["Location"] == f"{ALERTS}?show=active"
    assert "db01.img" not in client.get(ALERTS).content.decode()
    assert "db01.img" in client.get(ALERTS, {"show": "acknowledged"}).content.decode()
    assert "otto-operator" in client.get(ALERTS, {"show": "acknowledged"}).content.decode()


def test_acknowledging_many_at_once(client, operator):
    for index in range(3):
        session = make_volume_session(State.CANCEL_REQUIRED, name=f"s{index}")
        alerts.session_entered(session, State.CANCEL_REQUIRED)
    client.force_login(operator)
    ids = [str(pk) for pk in Alert.objects.values_list("pk", flat=True)[:2]]
    client.post(reverse("importer:alert-acknowledge"), {"ids": ids})
    assert alerts.unacknowledged().count() == 1


def test_acknowledging_nothing_or_rubbish_is_a_message_not_an_error(client, operator):
    client.force_login(operator)
    response = client.post(reverse("importer:alert-acknowledge"), {}, follow=True)
    assert "Select at least one alert" in response.content.decode()
    response = client.post(reverse("importer:alert-acknowledge"),
                           {"ids": ["nonsense"], "next": "https://evil.example/"}, follow=True)
    assert response.status_code == 200 and "Acknowledged 0 alerts." in response.content.decode()


def test_a_viewer_cannot_acknowledge(client, viewer, failed):
    _, alert = failed
    client.force_login(viewer)
    response = client.post(reverse("importer:alert-acknowledge"), {"only": str(alert.pk)},
                           follow=True)
    assert "not allowed to acknowledge alerts" in response.content.decode()
    alert.refresh_from_db()
    assert not alert.is_acknowledged


def test_the_cleared_filter_shows_cleared_alerts(client, viewer, failed, operator_actor):
    from importer import services

    session, _ = failed
    services.perform_action(session.pk, "cancel", actor=operator_actor)
    client.force_login(viewer)
    assert "db01.img" not in client.get(ALERTS).content.decode()
    assert "db01.img" in client.get(ALERTS, {"show": "cleared"}).content.decode()
    assert client.get(ALERTS, {"show": "nonsense"}).status_code == 200


def test_every_page_shows_the_bell_with_the_unacknowledged_count(client, viewer, failed):
    client.force_login(viewer)
    page = client.get(reverse("importer:session-list")).content.decode()
    assert 'id="alert-bell"' in page
    bell = client.get(reverse("importer:alert-bell"), HTTP_HX_REQUEST="true")
    assert bell["Vary"] and "HX-Request" in bell["Vary"]
    assert '<span id="alert-bell-count"' in bell.content.decode()
    assert ">1<" in bell.content.decode()


def test_the_nav_links_to_alerts_and_jobs(client, viewer):
    client.force_login(viewer)
    page = client.get(reverse("importer:session-list")).content.decode()
    assert f'href="{ALERTS}"' in page and f'href="{reverse("importer:job-list")}"' in page


def test_the_alerts_page_marks_its_nav_entry_active(client, viewer):
    client.force_login(viewer)
    page = client.get(ALERTS).content.decode()
    assert f'class="ferry-nav-link active" href="{ALERTS}"' in page
    assert "<title>Alerts · Ferry</title>" in page
