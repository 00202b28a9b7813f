"""Out of copying there is no current rate and no ETA; a resumed copy is "estimating…"
until it measures; the range in flight when a pause came is kept but adds no rate."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from importer import copying, services
from importer.models import ImportSession
from importer.mover.copier import Checkpoint
from importer.states import State
from tests.conftest import MiB, make_volume_session

pytestmark = pytest.mark.django_db


@pytest.fixture
def copying_session():
    return make_volume_session(
        State.COPY_IN_PROGRESS, current_transfer_rate=2 * MiB, average_transfer_rate=2 * MiB,
        estimated_completion_timestamp=timezone.now() + timedelta(minutes=3),
        copied_bytes=MiB, progress_percentage=25, copy_seconds=1, lease_owner="worker-1",
        lease_expires_at=timezone.now() + timedelta(minutes=1))


def _row(client, session):
    return client.get(reverse("importer:session-row", args=[session.pk])).content.decode()


def test_a_paused_copy_shows_no_rate_and_no_eta(copying_session, operator_actor, client,
                                                operator):
    services.perform_action(copying_session.pk, "pause", actor=operator_actor)
    paused = ImportSession.objects.get(pk=copying_session.pk)
    assert paused.current_transfer_rate == 0
    assert paused.estimated_completion_timestamp is None
    client.force_login(operator)
    row = _row(client, paused)
    assert "MB/s" not in row and "estimating" not in row


def test_a_resumed_copy_is_estimating_until_it_measures(copying_session, operator_actor,
                                                        client, operator):
    services.perform_action(copying_session.pk, "pause", actor=operator_actor)
    services.perform_action(copying_session.pk, "resume", actor=operator_actor)
    client.force_login(operator)
    row = _row(client, copying_session)
    assert "estimating…" in row
    assert "in 0 s" not in row
    page = client.get(reverse("importer:session-detail", args=[copying_session.pk]))
    assert "estimating…" in page.content.decode()


def test_a_cancelled_session_shows_no_current_rate(copying_session, operator_actor, client,
                                                   operator):
    services.perform_action(copying_session.pk, "cancel", actor=operator_actor)
    ImportSession.objects.filter(pk=copying_session.pk).update(state=State.CANCELLED)
    client.force_login(operator)
    page = client.get(reverse("importer:session-detail", args=[copying_session.pk]))
    assert " now ·" not in page.content.decode()
    assert "MB/s" not in _row(client, copying_session)


def test_the_range_in_flight_at_a_pause_is_kept_without_a_rate(copying_session,
                                                               operator_actor, monkeypatch):
    progress = copying._Progress(copying_session, "worker-1", driver=None, identifier="")
    monkeypatch.setattr(progress, "check_source", lambda offset: None)
    services.perform_action(copying_session.pk, "pause", actor=operator_actor)
    progress.save(Checkpoint(0, MiB, MiB, ["digest"], moved=MiB))
    paused = ImportSession.objects.get(pk=copying_session.pk)
    assert paused.state == State.PAUSED
    assert paused.copied_bytes == MiB  # the range is on disk: kept
    assert paused.current_transfer_rate == 0
    assert paused.estimated_completion_timestamp is None


def test_a_checkpoint_while_copying_reports_data_moved_not_holes(copying_session,
                                                                 monkeypatch):
    ImportSession.objects.filter(pk=copying_session.pk).update(current_transfer_rate=0)
    copying_session.refresh_from_db()
    progress = copying._Progress(copying_session, "worker-1", driver=None, identifier="")
    monkeypatch.setattr(progress, "check_source", lambda offset: None)
    progress.last_time -= 1.0  # one second of copying
    progress.save(Checkpoint(0, 3 * MiB, MiB, ["a", "", ""], moved=MiB))
    session = ImportSession.objects.get(pk=copying_session.pk)
    assert 0.9 * MiB < session.current_transfer_rate < 1.05 * MiB  # not the 3 MiB span
    assert session.estimated_completion_timestamp is not None
