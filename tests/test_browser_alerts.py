"""An operator in a real browser: the bell counts unacknowledged alerts and follows new
ones without a reload; acknowledging on the Alerts page brings it down."""

import pytest
from playwright.sync_api import expect

from importer.errors import SourceError
from importer.services.transitions import advance
from importer.states import Event, State
from tests.conftest import SCREENSHOTS, log_in, make_volume_session

pytestmark = pytest.mark.integration


def _fail_setup(name):
    session = make_volume_session(State.QUEUED, pending_job="setup", name=name)
    advance(session.pk, Event.SETUP_FAILED, expected=State.QUEUED,
            error=SourceError("source_volume_missing", f"{name}.img is gone."))
    return session


def test_the_bell_counts_alerts_live_and_acknowledging_clears_it(page, live_server, operator):
    _fail_setup("db01")
    log_in(page, live_server, operator)
    count = page.locator("#alert-bell-count")
    expect(page.get_by_role("link", name="Alerts: 1 not acknowledged")).to_be_visible()
    _fail_setup("web01")  # raised elsewhere (a worker): the bell follows, no reload
    expect(count).to_contain_text("2", timeout=10000)

    page.locator("#alert-bell").click()
    expect(page.locator("h1")).to_have_text("Alerts")
    rows = page.locator("#alert-table tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("#alert-table")).to_contain_text("web01.img is gone.")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "alerts.png")

    page.locator("tr", has_text="db01").get_by_role("button", name="Acknowledge").click()
    expect(page.locator("#alert-bell-count")).to_contain_text("1")
    expect(rows).to_have_count(1)
    page.locator("#alert-select-all").check()
    page.locator("#acknowledge-selected").click()
    expect(page.locator("#alert-bell-count")).to_contain_text("0")
    expect(page.locator("#alert-table")).to_contain_text("No active alerts.")
    page.get_by_role("link", name="Acknowledged", exact=True).click()
    expect(page.locator("#alert-table tbody tr")).to_have_count(2)
    expect(page.locator("#alert-table")).to_contain_text("otto-operator")
