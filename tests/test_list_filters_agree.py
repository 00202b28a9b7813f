"""The dashboard's lists and the API's filter with the same FilterSet: a query string means
the same rows on the page, in the CSV export and in the API."""

import csv
import io
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from importer.models import ImportEvent
from tests.api_helpers import API, client_for
from tests.conftest import make_session

DAY = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def events(operator, admin_user):
    def at(moment, **fields):
        event = ImportEvent.objects.create(**fields)
        ImportEvent.objects.filter(pk=event.pk).update(timestamp=moment)
    db = make_session("volume", "Paused", name="db-01")
    at(DAY.replace(day=9, hour=23), session=db, session_name="db-01", action="pause",
       actor_name=operator.username)
    at(DAY, session=db, session_name="db-01", action="resume", actor_name=operator.username)
    at(DAY.replace(hour=23, minute=59), action="save_host", subject="host esx-db",
       actor_name=admin_user.username)
    at(DAY.replace(day=11), action="pause", actor_name="otto", outcome="refused")
    return db


QUERIES = [
    {}, {"actor": "otto"}, {"actor": "otto-operator"}, {"action": "pause"},
    {"outcome": "refused"}, {"q": "db"}, {"since": "2026-01-10"}, {"until": "2026-01-10"},
    {"until": "2026-01-10T12:00:00Z"}, {"since": "2026-01-10T12:00:00+16:00"},
    {"since": "2026-01-10", "until": "2026-01-10", "action": "resume"},
]


def _page_ids(client, query) -> set[int]:
    response = client.get(reverse("importer:event-list"), query)
    assert response.status_code == 200
    return {event.pk for event in response.context["page"]}


def _csv_rows(client, query) -> list[list[str]]:
    response = client.get(reverse("importer:event-export"), query)
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))[1:]


def _api_ids(client, query) -> set[int]:
    response = client.get(f"{API}/events/", query)
    assert response.status_code == 200, response.content
    return {event["id"] for event in response.json()["results"]}


@pytest.mark.django_db
@pytest.mark.parametrize("query", QUERIES, ids=lambda query: str(query) or "none")
def test_the_events_page_its_export_and_the_api_list_the_same_events(client, viewer, events,
                                                                     query):
    client.force_login(viewer)
    api_ids = _api_ids(client_for(viewer), query)
    assert _page_ids(client, query) == api_ids
    assert len(_csv_rows(client, query)) == len(api_ids)


@pytest.mark.django_db
def test_event_filters_mean_what_the_docs_say(viewer, events):
    client = client_for(viewer)
    count = lambda **query: len(_api_ids(client, query))  # noqa: E731
    assert count(actor="otto") == 1  # exactly: otto-operator is someone else
    assert count(until="2026-01-10") == 3  # a date includes that whole day
    assert count(until="2026-01-10T12:00:00Z") == 1  # a moment is an exclusive end
    assert count(since="2026-01-10") == 3  # a date is its start
    assert count(q="esx") == 1 and count(session=events.pk) == 2


@pytest.mark.django_db
def test_an_invalid_filter_is_a_400_in_the_api_and_named_on_the_page(client, viewer, events):
    assert client_for(viewer).get(f"{API}/events/", {"since": "soon"}).status_code == 400
    client.force_login(viewer)
    response = client.get(reverse("importer:event-list"), {"since": "soon", "action": "pause"})
    assert "Not applied: since" in response.content.decode()
    assert len(response.context["page"].object_list) == 2  # the valid filter still applies


SESSION_QUERIES = [{}, {"state": "Paused"}, {"state": ["Paused", "Queued"]}, {"q": "fin"},
                   {"q": "array"}, {"type": "Agentless"}, {"name": "db"},
                   {"destination_resource_type": "volume_group"}]


@pytest.mark.django_db
@pytest.mark.parametrize("query", SESSION_QUERIES, ids=str)
def test_the_imports_page_and_the_api_list_the_same_sessions(client, viewer, query):
    make_session("volume", "Paused", name="db-01")
    make_session("volume", "Queued", name="web-01", description="for finance")
    make_session("group", "Paused", name="cg-finance")
    client.force_login(viewer)
    page = client.get(reverse("importer:session-list"), query).context["page"]
    api = client_for(viewer).get(f"{API}/import-sessions/", {**query, "top_level": "true"})
    assert api.status_code == 200, api.content
    assert {s.pk for s in page} == {s["id"] for s in api.json()["results"]}
