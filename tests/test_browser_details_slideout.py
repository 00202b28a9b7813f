"""A row opens a details slide-out beside the list: state, progress, rates, errors and the
timeline, refreshed live, closed with Escape, the focus back on the row (issue 12)."""

import pytest
from playwright.sync_api import expect

from importer.models import ImportEvent, ImportSession
from tests.conftest import SCREENSHOTS, log_in
from tests.dashboard_rows import box, make_list_rows, open_list


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_row_opens_its_details_beside_the_list_and_they_follow_the_copy(
        browser, live_server, operator, scheme):
    rows = make_list_rows()
    copying = rows["copying"]
    ImportEvent.objects.create(session=copying, session_name=copying.name, actor_name="system",
                               action="copy_started", from_state="Ready_To_Start_Copy",
                               to_state="Copy_In_Progress")
    context, page = open_list(browser, live_server, operator, width=1280, height=800,
                              scheme=scheme)
    page.locator(f"#session-{copying.pk} .ferry-meta").click()  # anywhere on the row
    slideout = page.locator("#details-slideout")
    summary = slideout.locator("#session-summary")
    expect(slideout).to_be_visible()
    expect(page.locator("#details-slideout-close")).to_be_focused()  # shown, focus inside
    expect(slideout.locator("#details-slideout-title")).to_have_text(copying.name)
    expect(summary.locator(".ferry-badge")).to_have_text("Copy In Progress")
    expect(summary.locator("[data-summary=progress]")).to_contain_text("42%")
    expect(summary.locator("[data-summary=rate]")).to_contain_text("/s")
    expect(summary).to_contain_text("copy_started")
    expect(summary.get_by_role("link", name="Open the full details")).to_have_attribute(
        "href", f"/imports/{copying.pk}/")
    # The list stays in view beside it: the names are not covered.
    assert box(page, f"#name-{copying.pk}")["x"] + 50 < box(page, "#details-slideout")["x"]
    if scheme == "light":
        page.screenshot(path=SCREENSHOTS / "imports-details-slideout.png")

    full = page.locator(f"#summary-full-{copying.pk}")
    full.focus()
    ImportSession.objects.filter(pk=copying.pk).update(progress_percentage=77)
    expect(summary.locator("[data-summary=progress]")).to_contain_text("77%", timeout=6000)
    expect(full).to_be_focused()  # the poll swapped the summary; the focus stayed

    page.keyboard.press("Escape")
    expect(slideout).to_be_hidden()
    expect(page.locator(f"#details-{copying.pk}")).to_be_focused()
    assert page.locator("#session-summary").count() == 0  # no longer polled
    context.close()


def test_the_details_button_opens_the_slide_out_from_the_keyboard_and_shows_the_error(
        page, live_server, operator):
    failed = make_list_rows()["failed"]
    log_in(page, live_server, operator)
    button = page.locator(f"#details-{failed.pk}")
    button.focus()
    page.keyboard.press("Enter")
    slideout = page.locator("#details-slideout")
    expect(slideout.get_by_role("alert")).to_contain_text("source_truncated")
    expect(page.locator("#details-slideout-close")).to_be_focused()
    page.keyboard.press("Escape")
    expect(slideout).to_be_hidden()
    expect(button).to_be_focused()
