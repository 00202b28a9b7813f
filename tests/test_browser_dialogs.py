"""Confirmation dialogs name their buttons by what they do and focus the safe one: Enter
right after the dialog opens never runs the action."""

import pytest
from playwright.sync_api import expect

from importer.models import ImportSession
from tests.conftest import log_in, make_session

pytestmark = pytest.mark.integration


def _open(page, session, action, forced=False):
    body = page.locator(f"#session-{session.pk}")
    body.locator(".dropdown-toggle").first.click()
    selector = f"button.dropdown-item[data-action='{action}']"
    body.locator(selector + ("[data-force]" if forced else ":not([data-force])")).click()
    dialog = page.locator("#confirm-modal")
    expect(dialog).to_be_visible()
    return dialog


VIEWS = {"desktop-light": ({"width": 1280, "height": 800}, "light"),
         "desktop-dark": ({"width": 1280, "height": 800}, "dark"),
         "phone-light": ({"width": 390, "height": 844}, "light"),
         "phone-dark": ({"width": 390, "height": 844}, "dark")}


@pytest.mark.parametrize("view", VIEWS)
def test_enter_in_the_cancel_dialog_keeps_the_import_running(browser, live_server, operator,
                                                             view):
    viewport, scheme = VIEWS[view]
    page = browser.new_context(viewport=viewport, color_scheme=scheme).new_page()
    session = make_session("volume", "Copy_In_Progress", name="keep-me")
    log_in(page, live_server, operator)
    dialog = _open(page, session, "cancel")
    expect(dialog.locator("#confirm-title")).to_have_text("Cancel import?")
    expect(dialog.locator("#confirm-submit")).to_have_text("Cancel import")
    expect(dialog.locator("#confirm-dismiss")).to_have_text("Keep importing")
    expect(dialog.locator("#confirm-dismiss")).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    page.wait_for_timeout(500)  # a cancel, had it been sent, would have landed by now
    assert ImportSession.objects.get(pk=session.pk).state == "Copy_In_Progress"
    page.context.close()


def test_every_confirmed_action_names_both_buttons(page, live_server, operator):
    session = make_session("volume", "Ready_For_Cutover", name="ready")
    log_in(page, live_server, operator)
    dialog = _open(page, session, "cutover")
    expect(dialog.locator("#confirm-submit")).to_have_text("Cut over")
    expect(dialog.locator("#confirm-dismiss")).to_have_text("Not yet")
    expect(dialog.locator("#confirm-dismiss")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert ImportSession.objects.get(pk=session.pk).state == "Ready_For_Cutover"


def test_a_forced_cancel_runs_only_once_the_name_is_typed(page, live_server, admin_user):
    session = make_session("volume", "Cancel_Failed", name="stuck")
    log_in(page, live_server, admin_user)
    dialog = _open(page, session, "cancel", forced=True)
    expect(dialog.locator("#confirm-name")).to_be_focused()
    expect(dialog.locator("#confirm-submit")).to_be_disabled()
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()  # nothing was sent: the name is still missing
    assert ImportSession.objects.get(pk=session.pk).state == "Cancel_Failed"
    dialog.locator("#confirm-name").fill("stuck")
    expect(dialog.locator("#confirm-submit")).to_be_enabled()
    expect(dialog.locator("#confirm-submit")).to_have_text("Force cancel import")


def test_deleting_a_remote_system_asks_first(page, live_server, admin_user):
    from importer.models import RemoteSystem
    from tests.conftest import RemoteSystemFactory

    system = RemoteSystemFactory(name="old-array")
    log_in(page, live_server, admin_user)
    page.goto(f"{live_server.url}/remote-systems/")
    page.locator("#systems-table [data-confirm-form]").click()
    dialog = page.locator("#confirm-modal")
    expect(dialog.locator("#confirm-title")).to_have_text("Delete remote system?")
    expect(dialog.locator("#confirm-dismiss")).to_have_text("Keep it")
    expect(dialog.locator("#confirm-dismiss")).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    assert RemoteSystem.objects.filter(pk=system.pk).exists()
    page.locator("#systems-table [data-confirm-form]").click()
    dialog.locator("#confirm-submit").click()
    expect(page.locator("#toasts .toast").last).to_contain_text("Remote system deleted.")
    assert not RemoteSystem.objects.filter(pk=system.pk).exists()
