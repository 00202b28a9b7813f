"""The charts' pages and data: a session's rate history as JSON, the Overview's throughput
as JSON, and both pages saying their figures in words (for screen readers)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from importer.models import TransferSample
from tests.conftest import MiB, make_session

pytestmark = pytest.mark.django_db


def _samples(session, rates, start=None):
    start = start or timezone.now() - timedelta(seconds=10 * len(rates))
    for index, rate in enumerate(rates):
        TransferSample.objects.create(session=session, bytes_per_second=rate,
                                      timestamp=start + timedelta(seconds=10 * index),
                                      copied_bytes=(index + 1) * MiB)


def test_a_session_rate_history_is_served_as_json(client, viewer):
    session = make_session("volume", "Copy_In_Progress")
    _samples(session, [2_000_000, 4_000_000, 3_000_000])
    client.force_login(viewer)
    data = client.get(reverse("importer:session-rates", args=[session.pk])).json()
    assert [rate for _, rate in data["points"]] == [2_000_000, 4_000_000, 3_000_000]
    times = [time for time, _ in data["points"]]
    assert times == sorted(times) and times[0] > 1_700_000_000  # Unix seconds
    assert (data["latest"], data["peak"], data["average"]) == (3_000_000, 4_000_000, 3_000_000)
    assert data["live"] is True


def test_a_finished_session_rate_history_is_no_longer_live(client, viewer):
    session = make_session("volume", "Import_Completed")
    client.force_login(viewer)
    data = client.get(reverse("importer:session-rates", args=[session.pk])).json()
    assert data["live"] is False and data["points"] == []


def test_rate_history_needs_a_login_and_an_existing_session(client, viewer):
    session = make_session("volume", "Copy_In_Progress")
    url = reverse("importer:session-rates", args=[session.pk])
    assert client.get(url).status_code == 302
    client.force_login(viewer)
    assert client.get(reverse("importer:session-rates", args=[99999])).status_code == 404


def test_the_overview_throughput_is_served_per_window(client, viewer):
    copying = make_session("volume", "Copy_In_Progress")
    _samples(copying, [5_000_000])
    client.force_login(viewer)
    url = reverse("importer:overview-throughput")
    data = client.get(url, {"window": "6h"}).json()
    assert data["window"] == "6h" and data["peak"] == 5_000_000
    assert len(data["points"]) > 100  # the whole window, idle buckets at zero
    refused = client.get(url, {"window": "2y"})
    assert refused.status_code == 400
    assert refused.json()["code"] == "invalid_window"


def test_the_details_page_shows_its_rate_chart_and_the_figures_in_words(client, viewer):
    session = make_session("volume", "Copy_In_Progress", name="db01")
    _samples(session, [2_000_000, 6_000_000])
    client.force_login(viewer)
    page = client.get(reverse("importer:session-detail", args=[session.pk])).content.decode()
    rates_url = reverse("importer:session-rates", args=[session.pk])
    assert f'data-chart-url="{rates_url}"' in page and 'data-live="true"' in page
    assert 'data-figure="peak">6.0 MB/s' in page
    assert 'data-figure="latest">6.0 MB/s' in page
    assert "Transfer rate of db01 as a table" in page
    assert "uPlot.iife.min.js" in page


def test_a_details_poll_keeps_the_chart_without_reading_its_samples(client, viewer):
    session = make_session("volume", "Copy_In_Progress")
    _samples(session, [2_000_000])
    client.force_login(viewer)
    page = client.get(reverse("importer:session-detail", args=[session.pk]),
                      HTTP_HX_REQUEST="true").content.decode()
    assert '<section id="rate-chart-card" hx-preserve="true"></section>' in page
    assert "data-chart-url" not in page


def test_the_overview_says_throughput_bytes_remaining_and_sessions_by_state(client, viewer):
    make_session("volume", "Copy_In_Progress", current_transfer_rate=3_000_000,
                 copied_bytes=1 * MiB)  # of 4 MiB
    make_session("volume", "Copy_In_Progress", current_transfer_rate=2_000_000)
    make_session("volume", "Failed")
    make_session("volume", "Import_Completed", copied_bytes=4 * MiB)
    client.force_login(viewer)
    response = client.get(reverse("importer:overview"))
    page = response.content.decode()
    assert 'href="/overview/"' in page  # in the navigation
    assert 'data-figure="throughput">5.0 MB/s' in page
    assert 'data-figure="remaining">11.5 MB' in page  # 3 + 4 + 4 MiB left of unfinished ones
    rows = {state: page.split(f'<tr data-state="{state}">')[1].split("</tr>")[0]
            for state in ("Copy_In_Progress", "Failed", "Import_Completed")}
    assert '<td class="text-end">2</td>' in rows["Copy_In_Progress"]
    assert '<td class="text-end">1</td>' in rows["Failed"]
    assert "Throughput of all imports as a table" in page


def test_an_overview_poll_gets_only_its_figures(client, viewer):
    client.force_login(viewer)
    response = client.get(reverse("importer:overview"), HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert page.lstrip().startswith('<div id="overview-figures"')
    assert "HX-Request" in response["Vary"]


def test_a_pause_is_a_break_in_the_line_not_a_slope(client, viewer, settings):
    settings.FERRY_SAMPLE_SECONDS = 5
    session = make_session("volume", "Copy_In_Progress")
    _samples(session, [1_000_000, 1_000_000])
    client.force_login(viewer)
    data = client.get(reverse("importer:session-rates", args=[session.pk])).json()
    # 10 s apart here; the chart breaks its line where points are further apart than this.
    assert data["gap_seconds"] == 15
