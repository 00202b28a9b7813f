"""The top bar counts imports waiting for an operator; times read "just now", "N s ago",
"N min ago", with the absolute time on hover."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from importer import states
from importer.models import ImportSession
from importer.templatetags.importer_ui import ago
from tests.conftest import make_session

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_waiting_is_derived_from_the_state_table():
    assert {"Paused", "Mirror_Enabled", "Ready_To_Start_Copy"} <= set(states.WAITING)
    assert not states.WAITING & states.NEEDS_ATTENTION
    assert all(states.STATES[state].phase is states.Phase.WAITING for state in states.WAITING)


@pytest.mark.django_db
def test_the_top_bar_counts_waiting_imports(client, operator):
    for index, state in enumerate(("Paused", "Mirror_Enabled", "Copy_In_Progress")):
        make_session("volume", state, name=f"s{index}")
    client.force_login(operator)
    counts = client.get(reverse("importer:import-counts")).content.decode()
    assert "2 waiting" in counts
    assert "state=Paused" in counts and "state=Mirror_Enabled" in counts


@pytest.mark.parametrize("seconds, words", [(0, "just now"), (3, "just now"),
                                            (45, "45 s ago"), (150, "2 min ago"),
                                            (7300, "2 h 1 min ago"), (200000, "2 days ago")])
def test_times_read_as_people_say_them(seconds, words):
    assert ago(NOW - timedelta(seconds=seconds), now=NOW) == words


@pytest.mark.django_db
def test_a_row_shows_just_now_with_the_absolute_time_on_hover(client, operator):
    session = make_session("volume", "Copy_In_Progress", name="fresh")
    client.force_login(operator)
    row = client.get(reverse("importer:session-row", args=[session.pk])).content.decode()
    stamp = ImportSession.objects.get(pk=session.pk).last_update_timestamp
    assert ">just now</time>" in row
    assert f'title="{stamp:%Y-%m-%d %H:%M}' in row
    assert "0 minutes ago" not in row
