"""The events list's ``since`` and ``until``: any valid ISO 8601 moment works, on every
database; anything else is a 400 problem, never a 500."""

from datetime import UTC, datetime, timedelta

import pytest

from importer.models import ImportEvent
from tests.api_helpers import API, client_for


def _event_at(moment: datetime) -> ImportEvent:
    event = ImportEvent.objects.create(action="pause", actor_name="system", subject="probe")
    ImportEvent.objects.filter(pk=event.pk).update(timestamp=moment)
    return event


def _count(client, **params) -> int:
    response = client.get(f"{API}/events/", params)
    assert response.status_code == 200, response.content
    return response.json()["count"]


# +16:00 and -18:00 are valid ISO 8601 (and Python) offsets; PostgreSQL stops at ±15:59.
@pytest.mark.parametrize("offset", ["+16:00", "-18:00", "+23:59", "+05:30", "Z"])
def test_since_and_until_take_any_offset(viewer, offset):
    _event_at(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    client = client_for(viewer)
    moment = f"2026-01-01T12:00:00{offset}"
    as_utc = datetime.fromisoformat(moment).astimezone(UTC)
    expected_since = int(as_utc <= datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    assert _count(client, since=moment) == expected_since
    assert _count(client, until=moment) == 1 - expected_since


@pytest.mark.postgres
@pytest.mark.django_db
def test_an_offset_beyond_postgresqls_range_is_not_a_server_error_there(viewer):
    test_since_and_until_take_any_offset(viewer, "+16:00")


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00Z",
                                   "2026-01-01T00:00:00+24:00", "0001-01-01T00:00:00+23:00"])
def test_an_invalid_or_unstorable_moment_is_a_400_problem(viewer, value):
    response = client_for(viewer).get(f"{API}/events/", {"since": value})
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "validation_error"
    assert "since" in response.json()["errors"]


def test_an_event_just_before_until_is_listed_and_one_at_it_is_not(viewer):
    moment = datetime(2026, 3, 1, tzinfo=UTC)
    _event_at(moment - timedelta(seconds=1))
    _event_at(moment)
    client = client_for(viewer)
    assert _count(client, until=moment.isoformat()) == 1
    assert _count(client, since=moment.isoformat()) == 1
