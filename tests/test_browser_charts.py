"""The charts in a real browser: a session's transfer rate over a labelled time axis that
follows the copy, and the Overview's throughput, in light and dark mode."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from importer.models import TransferSample
from tests.conftest import (
    SCREENSHOTS,
    MiB,
    discovered_system,
    log_in,
    make_session,
    start_copying,
    wait_for_state,
    write_random,
)

pytestmark = pytest.mark.integration

TIME_TICKS = re.compile(r"^(\d\d:\d\d(:\d\d)? ?)+$")


def _samples(session, rates, start):
    for index, rate in enumerate(rates):
        TransferSample.objects.create(session=session, bytes_per_second=rate,
                                      timestamp=start + timedelta(seconds=5 * index),
                                      copied_bytes=(index + 1) * MiB)


def _themed_page(browser, live_server, user, theme):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme=theme)
    page = context.new_page()
    log_in(page, live_server, user)
    expect(page.locator("html")).to_have_attribute("data-bs-theme", theme)
    return context, page


@pytest.mark.parametrize("theme", ("light", "dark"))
def test_the_details_page_charts_the_rate_over_time_and_follows_the_copy(
        browser, live_server, operator, theme):
    session = make_session("volume", "Copy_In_Progress", name="db01")
    start = timezone.now() - timedelta(minutes=2)
    _samples(session, [2_000_000, 8_000_000, 6_000_000, 7_000_000], start)
    context, page = _themed_page(browser, live_server, operator, theme)
    page.goto(f"{live_server.url}/imports/{session.pk}/")
    chart = page.locator(".ferry-chart")
    expect(chart).to_have_attribute("data-points", "4")
    expect(chart).to_have_attribute("data-gaps", "0")
    expect(chart).to_have_attribute("data-theme", theme)
    expect(chart.locator("canvas")).to_have_count(1)
    assert chart.locator("canvas").bounding_box()["width"] > 300
    expect(chart).to_have_attribute("data-x-ticks", TIME_TICKS)  # times, not indices
    figures = page.locator(".ferry-chart-figures")
    expect(figures.locator("[data-figure=peak]")).to_have_text("8.0 MB/s")

    with page.expect_response(lambda r: r.url.endswith(f"/imports/{session.pk}/")):
        pass  # the details panel polls and is swapped around the chart...
    page.wait_for_timeout(300)
    expect(chart.locator("canvas")).to_have_count(1)  # ...which stays drawn
    expect(chart).to_have_attribute("data-points", "4")
    # The copy goes on: the chart and its figures follow with no reload.
    _samples(session, [12_000_000], start + timedelta(minutes=2))
    expect(chart).to_have_attribute("data-points", "5", timeout=10000)
    expect(chart).to_have_attribute("data-gaps", "1")  # not measured meanwhile: no slope
    expect(figures.locator("[data-figure=latest]")).to_have_text("12.0 MB/s")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.locator(".ferry-chart").screenshot(path=SCREENSHOTS / f"rate-chart-{theme}.png")
    context.close()


def test_switching_the_theme_redraws_the_chart_in_its_colours(browser, live_server, operator):
    session = make_session("volume", "Copy_In_Progress")
    _samples(session, [1_000_000, 2_000_000], timezone.now() - timedelta(seconds=30))
    context, page = _themed_page(browser, live_server, operator, "light")
    page.goto(f"{live_server.url}/imports/{session.pk}/")
    chart = page.locator(".ferry-chart")
    expect(chart).to_have_attribute("data-theme", "light")
    page.click("#theme-toggle")
    expect(chart).to_have_attribute("data-theme", "dark")
    expect(chart.locator("canvas")).to_have_count(1)  # redrawn, not added
    context.close()


@pytest.mark.parametrize("theme", ("light", "dark"))
def test_the_overview_charts_throughput_and_counts_sessions_by_state(
        browser, live_server, operator, theme):
    copying = [make_session("volume", "Copy_In_Progress", name=f"copy-{i}",
                            current_transfer_rate=4_000_000) for i in range(2)]
    make_session("volume", "Failed", name="broken")
    start = timezone.now() - timedelta(minutes=10)
    for session in copying:
        _samples(session, [4_000_000] * 20, start)
    context, page = _themed_page(browser, live_server, operator, theme)
    page.click("nav[aria-label=Main] a:has-text('Overview')")
    chart = page.locator(".ferry-chart")
    expect(chart).to_have_attribute("data-ready", "true")
    expect(chart.locator("canvas")).to_have_count(1)
    expect(chart).to_have_attribute("data-x-ticks", TIME_TICKS)
    assert int(chart.get_attribute("data-points")) > 100  # the whole hour
    expect(page.locator("[data-figure=peak]")).to_have_text("8.0 MB/s")
    expect(page.locator("[data-figure=throughput]")).to_have_text("8.0 MB/s")
    expect(page.locator("tr[data-state=Copy_In_Progress]")).to_contain_text("2")
    expect(page.locator("tr[data-state=Failed]")).to_contain_text("1")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"overview-{theme}.png")
    page.click("a:has-text('6h')")
    expect(chart).to_have_attribute("data-chart-url", re.compile("window=6h"))
    expect(chart).to_have_attribute("data-ready", "true")
    context.close()


@pytest.mark.parametrize("live_worker", [{"FERRY_SAMPLE_SECONDS": "1"}], indirect=True)
def test_a_real_copy_draws_its_rate_as_it_goes(page, live_server, source_root, live_worker,
                                               operator, operator_actor):
    write_random(source_root / "array" / "db01.img", 48 * MiB)
    system = discovered_system(source_root / "array")
    session = start_copying(system.source_volumes.get(), operator_actor, "db01",
                            throttle_bytes_per_second=4 * MiB)  # about 12 s of copying
    log_in(page, live_server, operator)
    page.goto(f"{live_server.url}/imports/{session.pk}/")
    chart = page.locator(".ferry-chart")
    expect(chart).to_have_attribute("data-points", re.compile(r"^[2-9]$|^\d\d+$"),
                                    timeout=20000)
    first = int(chart.get_attribute("data-points"))
    page.wait_for_function(  # more points arrive with no reload
        f"() => +document.querySelector('.ferry-chart').dataset.points > {first}",
        timeout=20000)
    peak = page.locator("[data-figure=peak]").inner_text()
    assert re.fullmatch(r"[\d.]+ (KB|MB)/s", peak), peak
    wait_for_state(session, "Ready_For_Cutover", timeout=60)
    samples = TransferSample.objects.filter(session=session)
    assert samples.count() >= 3
    assert all(sample.bytes_per_second > 0 for sample in samples)
