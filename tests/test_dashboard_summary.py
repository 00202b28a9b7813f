"""The details slide-out's partial: a summary of one session that polls while it is active."""

import pytest
from django.urls import reverse

from tests.conftest import make_session

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.mark.django_db
def test_the_summary_needs_a_login_and_a_real_session(client, operator):
    session = make_session("volume", "Copy_In_Progress")
    url = reverse("importer:session-summary", args=[session.pk])
    assert client.get(url).status_code == 302
    client.force_login(operator)
    missing = reverse("importer:session-summary", args=[session.pk + 99])
    assert client.get(missing).status_code == 404


@pytest.mark.django_db
def test_the_summary_polls_while_active_and_stops_when_terminal(client, operator):
    client.force_login(operator)
    copying = make_session("volume", "Copy_In_Progress", name="copying", progress_percentage=42)
    done = make_session("volume", "Import_Completed", name="done")
    active = client.get(reverse("importer:session-summary", args=[copying.pk]), **HTMX)
    body = active.content.decode()
    assert active.status_code == 200 and "<html" not in body and 'id="session-summary"' in body
    assert 'hx-trigger="every 2s"' in body and "42%" in body and "HX-Request" in active["Vary"]
    assert f'href="/imports/{copying.pk}/"' in body  # the full details page
    finished = client.get(reverse("importer:session-summary", args=[done.pk]), **HTMX)
    assert "hx-trigger" not in finished.content.decode()


@pytest.mark.django_db
def test_the_imports_page_sorts_with_a_select_and_ignores_an_unknown_sort(client, operator):
    client.force_login(operator)
    make_session("volume", "Paused", name="alpha")
    page = client.get(reverse("importer:session-list"), {"sort": "name"}).content.decode()
    assert '<select class="form-select form-select-sm w-auto" name="sort"' in page
    assert '<option value="name" selected>' in page
    response = client.get(reverse("importer:session-list"), {"sort": "bogus"})
    assert response.status_code == 200
    assert '<option value="-created" selected>' in response.content.decode()
