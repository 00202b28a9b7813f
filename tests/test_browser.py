"""An operator in a real browser (Chromium), against a live server and a real worker."""

import re

import pytest
from playwright.sync_api import expect

from importer import services
from importer.models import ImportSession
from tests.conftest import (
    SCREENSHOTS,
    MiB,
    discovered_system,
    log_in,
    make_session,
    sha256_of,
    write_random,
)
from tests.test_worker_frontend import _nbd_system, enabled_import

pytestmark = pytest.mark.integration


def _menu_item(body, action):
    return body.locator(f"button.dropdown-item[data-action='{action}']:not([data-force])")


def _act(page, session, action, confirm=True):
    body = page.locator(f"#session-{session.pk}")
    body.locator(".dropdown-toggle").first.click()
    _menu_item(body, action).click()
    if confirm:
        dialog = page.locator("#confirm-modal")
        expect(dialog).to_be_visible()
        note = dialog.locator("#confirm-note").inner_text()
        dialog.locator("#confirm-submit").click()
        expect(dialog).to_be_hidden()
        return note
    return None


def _badge(page, session):
    return page.locator(f"#session-{session.pk} tr").first.locator(".ferry-badge")


def _percent(page, session) -> int:
    text = page.locator(f"#session-{session.pk} tr").first.locator(
        ".ferry-progress-cell span").inner_text()
    return int(text.rstrip("%"))


def test_an_operator_drives_an_import_to_completion(page, live_server, live_worker, operator,
                                                    source_root):
    source = write_random(source_root / "array" / "db01.img", 96 * MiB)
    system = discovered_system(source_root / "array")
    session = services.create_import(name="db01-migration", actor=services.SYSTEM,
                                     source_resource_id=system.source_volumes.get().pk,
                                     throttle_bytes_per_second=12 * MiB)
    log_in(page, live_server, operator)
    expect(_badge(page, session)).to_have_text("Ready To Enable Destination Volume",
                                               timeout=20000)
    note = _act(page, session, "enable_destination_volume")
    assert "Shut the host application down" in note
    expect(_badge(page, session)).to_have_text("Ready To Start Copy")
    expect(page.locator("#toasts .toast").last).to_contain_text("Ready To Start Copy")
    assert "Reconfigure the host application" in _act(page, session, "start_copy")
    expect(_badge(page, session)).to_have_text("Copy In Progress", timeout=10000)

    first = _percent(page, session)
    page.wait_for_function(  # progress moves with no reload
        f"() => parseInt(document.querySelector('#session-{session.pk} .ferry-progress-cell "
        f"span').textContent) > {first}", timeout=20000)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "imports-copying.png")

    _act(page, session, "pause", confirm=False)
    expect(_badge(page, session)).to_have_text("Paused")
    _act(page, session, "resume", confirm=False)
    expect(_badge(page, session)).to_have_text("Ready For Cutover", timeout=60000)
    assert "volume of record" in _act(page, session, "cutover")
    expect(_badge(page, session)).to_have_text("Import Completed", timeout=30000)

    body = page.locator(f"#session-{session.pk}")
    expect(body).not_to_have_attribute("hx-trigger", re.compile(".*"))  # polling stopped
    session.refresh_from_db()
    assert sha256_of(session.destination_volume.location) == sha256_of(source)
    page.goto(f"{live_server.url}/imports/{session.pk}/")
    expect(page.locator(".ferry-timeline")).to_contain_text("cutover_succeeded")
    page.screenshot(path=SCREENSHOTS / "details.png", full_page=True)


def test_a_group_imports_together_in_the_browser(page, live_server, live_worker, operator,
                                                 source_root):
    for name, size in (("ledger.img", 8 * MiB), ("journal.img", 4 * MiB),
                       ("archive.img", 12 * MiB)):
        write_random(source_root / "array" / "cg-finance" / name, size)
    system = discovered_system(source_root / "array")
    group = services.create_import(name="finance", actor=services.SYSTEM,
                                   source_resource_id=system.source_groups.get().pk)
    log_in(page, live_server, operator)
    expect(_badge(page, group)).to_have_text("Ready To Enable Destination Volume",
                                             timeout=20000)
    page.locator(f"#session-{group.pk} .ferry-expand").click()
    expect(page.locator(f"#session-{group.pk} tr.ferry-member")).to_have_count(3)
    expect(page.locator(f"#session-{group.pk} tr.ferry-member").first).to_be_visible()
    _act(page, group, "enable_destination_volume")
    expect(_badge(page, group)).to_have_text("Ready To Start Copy", timeout=10000)
    _act(page, group, "start_copy")
    expect(_badge(page, group)).to_have_text("Ready For Cutover", timeout=60000)
    _act(page, group, "cutover")
    expect(_badge(page, group)).to_have_text("Import Completed", timeout=30000)
    members = page.locator(f"#session-{group.pk} tr.ferry-member .ferry-badge")
    expect(members).to_have_text(["Import Completed"] * 3)
    page.screenshot(path=SCREENSHOTS / "imports-group.png")


def test_a_refused_action_shows_a_toast_and_refreshes_the_menu(page, live_server, operator):
    session = make_session("volume", "Ready_For_Cutover", name="raced")
    log_in(page, live_server, operator)
    body = page.locator(f"#session-{session.pk}")
    body.locator(".dropdown-toggle").first.click()
    # Another operator cancels first, while this menu is open (polling waits meanwhile).
    ImportSession.objects.filter(pk=session.pk).update(state="Cancel_In_Progress")
    _menu_item(body, "cutover").click()
    page.locator("#confirm-submit").click()
    toast = page.locator("#toasts .toast").last
    expect(toast).to_contain_text("refused")
    expect(toast).to_contain_text("Cancel In Progress now")
    expect(_badge(page, session)).to_have_text("Cancel In Progress")
    expect(_menu_item(body, "cutover")).to_be_disabled()


def test_screenshots_of_the_main_pages_in_light_and_dark(browser, live_server, operator,
                                                        source_root):
    write_random(source_root / "array" / "db01.img", MiB)
    discovered_system(source_root / "array", name="demo-array")
    for index, state in enumerate(("Copy_In_Progress", "Ready_For_Cutover", "Cancel_Required",
                                   "Paused", "Import_Completed")):
        make_session("volume", state, name=f"volume-{index}", progress_percentage=20 * index)
    failed = ImportSession.objects.get(name="volume-2")
    failed.error_code, failed.error_message = "source_truncated", "db01.img ended early."
    failed.save()
    make_session("group", "In_Progress", name="finance-cg", progress_percentage=40)
    SCREENSHOTS.mkdir(exist_ok=True)
    pages = {"imports": "/", "details": f"/imports/{failed.pk}/",
             "wizard": "/imports/new/", "remote-systems": "/remote-systems/"}
    for scheme in ("light", "dark"):
        context = browser.new_context(viewport={"width": 1440, "height": 900},
                                      color_scheme=scheme)
        page = context.new_page()
        log_in(page, live_server, operator)
        expect(page.locator("html")).to_have_attribute("data-bs-theme", scheme)
        for name, path in pages.items():
            page.goto(f"{live_server.url}{path}")
            page.screenshot(path=SCREENSHOTS / f"{name}-{scheme}.png")
        context.close()


def test_a_bulk_action_reports_row_by_row(page, live_server, operator):
    copying = [make_session("volume", "Copy_In_Progress", name=f"copy-{i}") for i in range(2)]
    done = make_session("volume", "Import_Completed", name="done")
    log_in(page, live_server, operator)
    for session in (*copying, done):
        page.locator(f"#session-{session.pk} .ferry-row-select").check()
    expect(page.locator("#selected-count")).to_have_text("3 selected")
    page.click("button:has-text('Bulk Actions')")
    page.click("[data-bulk]:has-text('Pause')")
    results = page.locator("#bulk-results")
    expect(results).to_contain_text("copy-0: Pause: copy-0 is Paused.")
    expect(results).to_contain_text("done: Pause was refused")
    for session in copying:
        expect(_badge(page, session)).to_have_text("Paused")


def test_an_operator_creates_an_import_with_the_wizard(page, live_server, live_worker, operator,
                                                       source_root):
    write_random(source_root / "array" / "web01.img", 8 * MiB)
    write_random(source_root / "array" / "cg-web" / "a.img", 4 * MiB)
    discovered_system(source_root / "array", name="demo-array")
    log_in(page, live_server, operator)
    page.click("a:has-text('Create Import')")
    page.check("label:has-text('demo-array')")
    page.click("button:has-text('Next')")
    page.check("label:has-text('web01.img')")
    page.check("label:has-text('cg-web')")
    page.click("button:has-text('Next')")
    page.click("button:has-text('Next')")  # no hosts
    page.fill("#id_name", "")
    page.click("button:has-text('Next')")
    expect(page.locator(".invalid-feedback")).to_contain_text("required")  # server-side
    page.fill("#id_name", "wave-1")
    page.click("button:has-text('Next')")
    expect(page.locator("#wizard")).to_contain_text("cg-web, web01.img")
    page.click("button:has-text('Create')")
    page.wait_for_url(f"{live_server.url}/")
    expect(page.locator("#toasts .toast").last).to_contain_text("Created 2 imports")
    created = ImportSession.objects.filter(parent_session__isnull=True)
    assert sorted(created.values_list("name", flat=True)) == ["wave-1 cg-web", "wave-1 web01.img"]
    for session in created:
        expect(_badge(page, session)).to_have_text("Ready To Enable Destination Volume",
                                                   timeout=20000)


def test_an_operator_sees_how_a_host_reaches_the_served_destination(
        page, live_server, writable_exports, writable_nbd_server, frontend_settings,
        live_worker, operator, operator_actor):
    from importer.services import frontends

    write_random(writable_exports / "db", 8 * MiB)
    session = enabled_import(_nbd_system(writable_nbd_server), "db", operator_actor)
    access = frontends.host_access(session)[0]
    log_in(page, live_server, operator)
    page.goto(f"{live_server.url}/imports/{session.pk}/")
    panel = page.locator("#host-access")
    expect(panel.locator("[data-frontend-state]")).to_have_text("Serving")
    expect(panel).to_contain_text("Forwarding writes to the source")
    expect(panel.locator("[data-host='web-01']")).to_contain_text(str(access["port"]))
    key = panel.locator(".ferry-psk-key")
    expect(key).to_be_hidden()  # until the operator asks for it
    panel.locator("summary", has_text="Show key").click()
    expect(key).to_have_text(access["tls_psk_key"])
    expect(panel.locator(".ferry-psk-line")).to_have_text(access["psk_file_line"])
    with page.expect_response(lambda r: f"/imports/{session.pk}/" in r.url):
        pass  # the panel polls (every 2 s) and is swapped...
    page.wait_for_timeout(300)
    expect(key).to_be_visible()  # ...and the key the operator opened stays shown
    panel.locator("summary", has_text="Host commands").click()
    expect(panel).to_contain_text(f"nbdinfo 'nbds://web-01@{access['address']}:"
                                  f"{access['port']}/?tls-psk-file=/etc/ferry/")
    SCREENSHOTS.mkdir(exist_ok=True)
    panel.screenshot(path=SCREENSHOTS / "host-access.png")
