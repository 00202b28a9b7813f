"""By keyboard only: a skip link first, the first row's menu a few Tabs away, and the focus
kept across polls and given back when a dialog closes (issue 12, finding 5)."""

import pytest
from playwright.sync_api import expect

from tests.conftest import log_in, make_session
from tests.dashboard_rows import make_list_rows, open_list

FEW_TABS = 12


def _focused_id(page) -> str:
    return page.evaluate("document.activeElement && document.activeElement.id")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_a_skip_link_comes_first_and_the_first_rows_menu_is_a_few_tabs_away(
        browser, live_server, operator, scheme):
    make_list_rows()
    context, page = open_list(browser, live_server, operator, width=1280, height=800,
                              scheme=scheme)
    first = page.locator("tbody.ferry-session").first.get_attribute("id").split("-")[1]
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to content")
    expect(page.locator(":focus")).to_be_visible()
    page.keyboard.press("Enter")
    tabs = 1
    while _focused_id(page) != f"actions-{first}":
        page.keyboard.press("Tab")
        tabs += 1
        assert tabs <= FEW_TABS, f"the first row's menu is more than {FEW_TABS} Tabs away"
    page.keyboard.press("Enter")  # and it opens from the keyboard
    expect(page.locator(f"#session-{first} .dropdown-menu")).to_be_visible()
    context.close()


@pytest.mark.parametrize("control", ["select", "name", "details", "actions"])
def test_the_focus_stays_on_a_row_control_when_the_row_polls(page, live_server, operator,
                                                            control):
    session = make_session("volume", "Copy_In_Progress", name="polled")
    log_in(page, live_server, operator)
    element = f"#{control}-{session.pk}"
    page.focus(element)
    page.evaluate(f"document.querySelector('{element}').ferryOld = true")
    with page.expect_response(lambda r: f"/imports/{session.pk}/row/" in r.url):
        pass
    page.wait_for_function(f"() => !document.querySelector('{element}').ferryOld")  # swapped
    page.wait_for_timeout(100)
    assert _focused_id(page) == f"{control}-{session.pk}"


def test_the_focus_stays_on_the_details_pages_menu_when_it_polls(page, live_server, operator):
    session = make_session("volume", "Copy_In_Progress", name="polled")
    log_in(page, live_server, operator)
    page.goto(f"{live_server.url}/imports/{session.pk}/")
    page.focus("#detail-panel-actions")
    page.evaluate("document.querySelector('#detail-panel-actions').ferryOld = true")
    page.wait_for_function("() => !document.querySelector('#detail-panel-actions').ferryOld")
    page.wait_for_timeout(100)
    assert _focused_id(page) == "detail-panel-actions"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_escape_closing_the_confirm_dialog_gives_the_focus_back_to_the_menu(
        browser, live_server, operator, scheme):
    session = make_session("volume", "Ready_For_Cutover", name="ready")
    context, page = open_list(browser, live_server, operator, width=1280, height=800,
                              scheme=scheme)
    toggle = page.locator(f"#actions-{session.pk}")
    toggle.focus()
    page.keyboard.press("Enter")
    item = page.locator(f"#session-{session.pk} button.dropdown-item[data-action='cutover']")
    expect(item).to_be_visible()
    item.focus()
    page.keyboard.press("Enter")
    dialog = page.locator("#confirm-modal")
    expect(dialog).to_be_visible()
    page.wait_for_function(  # shown: Bootstrap ignores Escape while the dialog fades in
        "() => document.querySelector('#confirm-modal').contains(document.activeElement)")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(toggle).to_be_focused()
    context.close()
