"""A group's rate, average and ETA come from its members: on the row, the details page
and in the API."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from importer.models import ImportSession
from importer.services.transitions import update_group_figures
from importer.states import State
from tests.api_helpers import client_for, session_url
from tests.conftest import MiB, make_group_session

pytestmark = pytest.mark.django_db


@pytest.fixture
def copying_group():
    group = make_group_session(State.IN_PROGRESS, [State.COPY_IN_PROGRESS] * 2)
    soon = timezone.now() + timedelta(minutes=4)
    later = timezone.now() + timedelta(minutes=20)
    for member, (rate, eta) in zip(group.members.order_by("name"),
                                   [(3 * MiB, soon), (5 * MiB, later)], strict=True):
        ImportSession.objects.filter(pk=member.pk).update(
            current_transfer_rate=rate, average_transfer_rate=rate,
            estimated_completion_timestamp=eta, copied_bytes=MiB)
    update_group_figures(group.pk)
    group.refresh_from_db()
    return group, later


def test_a_group_stores_its_members_summed_rates_and_latest_eta(copying_group):
    group, later = copying_group
    assert group.current_transfer_rate == 8 * MiB
    assert group.average_transfer_rate == 8 * MiB
    assert group.estimated_completion_timestamp == later


def test_the_api_shows_the_group_rates_and_eta(copying_group, operator):
    group, later = copying_group
    body = client_for(operator).get(session_url(group.pk)).json()
    assert body["current_transfer_rate"] == 8 * MiB
    assert body["average_transfer_rate"] == 8 * MiB
    assert body["estimated_completion_timestamp"].startswith(
        later.isoformat(timespec="seconds")[:19])


def test_the_group_row_shows_the_rate_and_eta(copying_group, client, operator):
    group, _ = copying_group
    client.force_login(operator)
    row = client.get(reverse("importer:session-row", args=[group.pk])).content.decode()
    assert "8.4 MB/s" in row
    assert "in 2" in row  # "in 20 min" (or 19, as the clock moves)


def test_the_group_details_show_the_rate_and_eta(copying_group, client, operator):
    group, _ = copying_group
    client.force_login(operator)
    page = client.get(reverse("importer:session-detail", args=[group.pk])).content.decode()
    assert "8.4 MB/s now · 8.4 MB/s average" in page
    assert "estimating…" not in page
    members = page.split("Members", 1)[1]
    assert "3.1 MB/s" in members and "5.2 MB/s" in members  # each member's own
