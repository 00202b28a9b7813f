"""The wizard's Next and Back wait for the step being sent: clicked again meanwhile, they do
not send the old step a second time (the operator, or a test, lands where intended)."""

import time

import pytest
from playwright.sync_api import expect

from importer import views
from tests.conftest import MiB, discovered_system, log_in, write_random

pytestmark = pytest.mark.integration


def test_next_clicked_while_a_step_is_sent_acts_on_the_step_that_follows(
        page, live_server, operator, source_root, monkeypatch):
    write_random(source_root / "array" / "web01.img", MiB)
    discovered_system(source_root / "array", name="demo-array")
    shown = views._wizard

    def slow_after_resources(request, form):  # a busy server
        if request.POST.get("step") == "resources":
            time.sleep(1.5)
        return shown(request, form)

    monkeypatch.setattr(views, "_wizard", slow_after_resources)
    log_in(page, live_server, operator)
    page.goto(f"{live_server.url}/imports/new/")
    page.check("label:has-text('demo-array')")
    page.click("button:has-text('Next')")
    page.check("label:has-text('web01.img')")
    page.click("button:has-text('Next')")
    next_button = page.locator("button:has-text('Next')")
    expect(next_button).to_be_disabled()  # while the resources step is sent
    next_button.click()  # meant for the hosts step, which is not shown yet
    expect(page.locator("[aria-current='step']")).to_have_text("4. Options")
    expect(page.locator("#id_name")).to_be_visible()
