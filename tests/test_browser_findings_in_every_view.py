"""Issue 12's findings 6-10, seen as an operator sees them, in light and dark and on a
desktop and a phone. (Findings 1-5 have their own browser tests per view: list layout,
mobile, accessibility, dialogs, keyboard.)"""

import re
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from importer.models import ImportSession
from importer.services.transitions import update_group_figures
from importer.states import State
from tests.conftest import (
    HostFactory,
    MiB,
    RemoteSystemFactory,
    log_in,
    make_group_session,
    make_session,
)

pytestmark = pytest.mark.integration

VIEWS = {"desktop-light": ({"width": 1280, "height": 800}, "light"),
         "desktop-dark": ({"width": 1280, "height": 800}, "dark"),
         "phone-light": ({"width": 390, "height": 844}, "light"),
         "phone-dark": ({"width": 390, "height": 844}, "dark")}
ABSOLUTE_TIME = re.compile(r"20\d\d")  # a date with its year, whatever the locale's order


def _copying_group() -> ImportSession:
    group = make_group_session(State.IN_PROGRESS, [State.COPY_IN_PROGRESS] * 2, name="cg-rates")
    eta = timezone.now() + timedelta(minutes=20)
    for member, rate in zip(group.members.order_by("name"), (3 * MiB, 5 * MiB), strict=True):
        ImportSession.objects.filter(pk=member.pk).update(
            current_transfer_rate=rate, average_transfer_rate=rate,
            estimated_completion_timestamp=eta, copied_bytes=MiB)
    update_group_figures(group.pk)
    return group


@pytest.mark.parametrize("view", VIEWS)
def test_findings_6_to_10_in_every_view(browser, live_server, operator, view):
    viewport, scheme = VIEWS[view]
    page = browser.new_context(viewport=viewport, color_scheme=scheme).new_page()
    group = _copying_group()
    cancelled = make_session("volume", State.CANCELLED, name="gone-now",
                             current_transfer_rate=2 * MiB)
    make_session("volume", State.PAUSED, name="on-hold")
    scheduled = make_session("volume", State.SCHEDULED, name="tonight",
                             scheduled_timestamp=timezone.now() + timedelta(days=1))
    log_in(page, live_server, operator)

    # 6: a group's row shows its members' summed rate and an ETA.
    group_row = page.locator(f"#session-{group.pk}")
    expect(group_row).to_contain_text("8.4 MB/s")
    expect(group_row).to_contain_text("in 2")  # "in 20 min" (or 19 as the clock moves)
    # 7: a cancelled session shows no current rate.
    expect(page.locator(f"#session-{cancelled.pk}")).not_to_contain_text("MB/s")
    # 8: the waiting counter counts Paused; times read "just now", the absolute on hover.
    expect(page.locator("#import-counts")).to_contain_text("1 waiting")
    stamp = page.locator(f"#session-{group.pk} time").first
    expect(stamp).to_contain_text("just now")
    expect(stamp).to_have_attribute("title", ABSOLUTE_TIME)
    # 8: an import created elsewhere appears without a reload.
    elsewhere = make_session("volume", State.MIRROR_ENABLED, name="made-elsewhere")
    expect(page.locator(f"#session-{elsewhere.pk}")).to_contain_text("made-elsewhere",
                                                                     timeout=12000)

    # 10: a terminal session's details say deletion is REST-only and show the call.
    page.goto(f"{live_server.url}/imports/{cancelled.pk}/")
    hint = page.locator(".ferry-rest-delete")
    expect(hint).to_be_visible()
    expect(hint).to_contain_text("curl -X DELETE")
    expect(hint).to_contain_text(f"/api/v1/import-sessions/{cancelled.pk}/")
    # 9: a Scheduled import's schedule changes in the dashboard.
    page.goto(f"{live_server.url}/imports/{scheduled.pk}/")
    later = timezone.localtime(timezone.now() + timedelta(days=2)).replace(second=0,
                                                                           microsecond=0)
    page.locator("#schedule-at").fill(later.strftime("%Y-%m-%dT%H:%M"))
    page.get_by_role("button", name="Change schedule").click()
    _wait_for(lambda: ImportSession.objects.get(pk=scheduled.pk).scheduled_timestamp == later)
    page.context.close()


@pytest.mark.parametrize("view", VIEWS)
def test_inventory_pages_ask_before_deleting_in_every_view(browser, live_server, admin_user,
                                                           view):
    viewport, scheme = VIEWS[view]
    page = browser.new_context(viewport=viewport, color_scheme=scheme).new_page()
    RemoteSystemFactory(name="old-array")
    HostFactory(name="retired-host")
    log_in(page, live_server, admin_user)
    for url, name in (("/remote-systems/", "old-array"), ("/hosts/", "retired-host")):
        page.goto(live_server.url + url)
        page.locator("tr", has_text=name).get_by_role("button", name="Delete").click()
        dialog = page.locator("#confirm-modal")
        expect(dialog).to_be_visible()
        expect(page.locator("#confirm-dismiss")).to_be_focused()
        page.keyboard.press("Enter")  # the safe button: nothing is deleted
        expect(dialog).to_be_hidden()
        expect(page.locator("tr", has_text=name)).to_be_visible()
    page.goto(live_server.url + "/hosts/new/")
    expect(page.get_by_label("OS type")).to_be_visible()
    page.context.close()


def _wait_for(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the change did not reach the database"
        time.sleep(0.1)
