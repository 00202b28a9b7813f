"""A Scheduled import's start time is changed from its details page (through the service,
audited); a past time is refused there and at the wizard's Options step."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from importer.models import ImportEvent, ImportSession
from tests.conftest import make_session
from tests.test_dashboard_pages import WIZARD, demo  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db


def _when(delta) -> str:
    return (timezone.now() + delta).strftime("%Y-%m-%dT%H:%M")


def test_an_operator_changes_the_schedule_of_a_scheduled_import(client, operator):
    session = make_session("volume", "Scheduled", name="nightly",
                           scheduled_timestamp=timezone.now() + timedelta(hours=1))
    client.force_login(operator)
    page = client.get(reverse("importer:session-detail", args=[session.pk])).content.decode()
    assert "Change schedule" in page
    later = _when(timedelta(days=2))
    response = client.post(reverse("importer:session-schedule", args=[session.pk]),
                           {"scheduled_at": later}, follow=True)
    assert "now starts at" in response.content.decode()
    changed = ImportSession.objects.get(pk=session.pk)
    assert changed.scheduled_timestamp.strftime("%Y-%m-%dT%H:%M") == later
    event = ImportEvent.objects.get(session=session, action="modify_schedule")
    assert event.actor_name == operator.username


def test_a_past_schedule_is_refused_on_the_details_page(client, operator):
    soon = timezone.now() + timedelta(hours=1)
    session = make_session("volume", "Scheduled", name="nightly", scheduled_timestamp=soon)
    client.force_login(operator)
    response = client.post(reverse("importer:session-schedule", args=[session.pk]),
                           {"scheduled_at": _when(-timedelta(hours=3))}, follow=True)
    assert "The schedule was not changed" in response.content.decode()
    assert "is in the past" in response.content.decode()
    assert ImportSession.objects.get(pk=session.pk).scheduled_timestamp == soon


def test_a_started_import_offers_no_schedule_change(client, operator):
    session = make_session("volume", "Copy_In_Progress", name="running")
    client.force_login(operator)
    page = client.get(reverse("importer:session-detail", args=[session.pk])).content.decode()
    assert "Change schedule" not in page
    response = client.post(reverse("importer:session-schedule", args=[session.pk]),
                           {"scheduled_at": _when(timedelta(days=1))}, follow=True)
    assert "The schedule was not changed" in response.content.decode()


def test_a_viewer_cannot_change_a_schedule(client, viewer):
    soon = timezone.now() + timedelta(hours=1)
    session = make_session("volume", "Scheduled", name="nightly", scheduled_timestamp=soon)
    client.force_login(viewer)
    page = client.get(reverse("importer:session-detail", args=[session.pk])).content.decode()
    assert "Change schedule" not in page
    client.post(reverse("importer:session-schedule", args=[session.pk]),
                {"scheduled_at": _when(timedelta(days=1))})
    assert ImportSession.objects.get(pk=session.pk).scheduled_timestamp == soon


def test_the_options_step_refuses_a_past_schedule(client, operator, demo):  # noqa: F811
    client.force_login(operator)
    volume = demo.source_volumes.get(identifier="db.img")
    answers = {"remote_system": demo.pk, "resources": [str(volume.pk)], "name": "nightly",
               "schedule": "later", "scheduled_at": _when(-timedelta(hours=2)),
               "step": "options", "go": "next"}
    page = client.post(WIZARD, answers).content.decode()
    assert "is in the past" in page
    assert 'name="step" value="options"' in page  # still at Options, not at Review
