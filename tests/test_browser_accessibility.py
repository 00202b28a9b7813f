"""Every dashboard page, in light and dark mode, on a desktop and a phone, checked by
axe-core in a real browser: no text below WCAG AA contrast (4.5:1), and no other
violation axe finds, whatever its impact."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from importer import states
from importer.models import Host, ImportSession, TransferSample
from tests.conftest import (
    HostFactory,
    MiB,
    discovered_system,
    log_in,
    make_session,
    write_random,
)

pytestmark = pytest.mark.integration

AXE = "/static/importer/vendor/axe-core/axe.min.js"
# Everything axe checks (WCAG 2.x A and AA, best practices) runs, and a page fails on any
# finding, minor ones included: each page passes clean, so a new one shows at once.
THEMES = ("light", "dark")
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


@pytest.fixture
def dashboard_data(source_root, admin_user):
    """Sessions in every state (volumes and groups), failures with errors, systems, hosts."""
    write_random(source_root / "array" / "db01.img", MiB)
    write_random(source_root / "array" / "cg-web" / "a.img", MiB)
    discovered_system(source_root / "array", name="demo-array")
    HostFactory(name="web-01")
    for state in states.STATES:
        make_session("volume", state, name=f"vol-{state.lower()}", progress_percentage=40,
                     current_transfer_rate=3 * MiB, copied_bytes=2 * MiB)
    for state in (states.State.COPY_IN_PROGRESS, states.State.FAILED,
                  states.State.CANCEL_REQUIRED):
        make_session("group", state, name=f"cg-{state.lower()}", progress_percentage=30)
    _rate_history(ImportSession.objects.filter(state=states.State.COPY_IN_PROGRESS,
                                               source_volume__isnull=False))
    for name in ("vol-failed", "cg-failed", "vol-cancel_failed"):
        ImportSession.objects.filter(name=name).update(
            error_code="source_truncated", error_message="db01.img ended early.")
    return {name: ImportSession.objects.get(name=name).pk
            for name in ("vol-copy_in_progress", "vol-failed", "cg-failed",
                         "cg-copy_in_progress", "vol-cancel_failed")}


def _rate_history(sessions):
    """Samples, so the details pages and the Overview draw their charts."""
    start = timezone.now() - timedelta(minutes=5)
    for session in sessions:
        for index in range(30):
            TransferSample.objects.create(session=session, copied_bytes=index * MiB,
                                          timestamp=start + timedelta(seconds=5 * index),
                                          bytes_per_second=(2 + index % 5) * MiB)


def _violations(page) -> list[dict]:
    """axe's findings on the page, as plain dicts (rule, impact, where, why)."""
    if not page.evaluate("() => Boolean(window.axe)"):
        page.add_script_tag(url=AXE)  # from 'self': the page's CSP allows it
    results = page.evaluate("""async () => {
        const result = await axe.run(document, {resultTypes: ["violations"]});
        return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 5).map(n => ({target: n.target.join(" "),
                                                   summary: n.failureSummary}))}));
    }""")
    return results


def _check(page, found: dict, label: str) -> None:
    page.wait_for_load_state("networkidle")
    for chart in page.locator(".ferry-chart").all():  # drawn, so axe sees the chart too
        expect(chart).to_have_attribute("data-ready", "true")
    for violation in _violations(page):
        found.setdefault(label, []).append(violation)


def _walk_wizard(page, live_server, found, theme):
    """Every wizard step, answered with the first choice, up to the review."""
    page.goto(f"{live_server.url}/imports/new/")
    for number in range(1, 10):
        wizard = page.locator("#wizard")
        _check(page, found, f"wizard step {number}")
        next_button = wizard.locator("button:has-text('Next')")
        if not next_button.count():
            return
        for kind in ("input[type=radio]", "input[type=checkbox][name=resources]"):
            for choice in wizard.locator(f"{kind}:not(:disabled)").all()[:1]:
                choice.check()
        if wizard.locator("#id_name").count() and not wizard.locator("#id_name").input_value():
            wizard.locator("#id_name").fill(f"a11y-{theme}")
        step = wizard.locator("[aria-current=step]").inner_text()
        next_button.click()
        expect(page.locator("#wizard [aria-current=step]")).not_to_have_text(step)
    raise AssertionError("the wizard never reached a step without Next")


def _open_menu(page, row):
    """Open a row's actions menu. A poll answered just as it opens replaces the row, menu
    closed (polls wait only while a menu is open): then open it again."""
    menu = row.locator(".dropdown-menu")
    for _ in range(5):
        row.locator(".dropdown-toggle").first.click()
        page.wait_for_timeout(500)  # a poll already on its way lands meanwhile
        if menu.is_visible():
            return menu
    raise AssertionError("the actions menu never stayed open")


def _check_open_states(page, live_server, found, sessions):
    """What only shows on demand: an actions menu (with the admin's forced entries), a
    confirmation dialog, and a toast."""
    page.goto(f"{live_server.url}/")
    menu = _open_menu(page, page.locator(f"#session-{sessions['vol-cancel_failed']}"))
    _check(page, found, "actions menu, open")
    menu.locator("button.dropdown-item[data-confirm]:not([disabled])").first.click()
    expect(page.locator("#confirm-modal")).to_be_visible()
    _check(page, found, "confirmation dialog")
    page.keyboard.press("Escape")
    expect(page.locator("#confirm-modal")).to_be_hidden()
    page.goto(f"{live_server.url}/hosts/{Host.objects.first().pk}/edit/")
    page.locator("main form button:has-text('Save')").click()  # saved: a toast says so
    expect(page.locator("#toasts .toast").last).to_be_visible()
    _check(page, found, "toast")


@pytest.mark.parametrize("viewport", VIEWPORTS)
@pytest.mark.parametrize("theme", THEMES)
def test_every_page_meets_wcag_aa_contrast_in_both_themes(browser, live_server, admin_user,
                                                          dashboard_data, theme, viewport):
    # Reduced motion: Bootstrap then shows dialogs and toasts without fading in, so axe
    # measures their colours as they are, not halfway through a transition.
    context = browser.new_context(viewport=VIEWPORTS[viewport], color_scheme=theme,
                                  reduced_motion="reduce")
    page = context.new_page()
    found: dict = {}
    page.goto(f"{live_server.url}/accounts/login/")
    expect(page.locator("html")).to_have_attribute("data-bs-theme", theme)
    _check(page, found, "login")
    log_in(page, live_server, admin_user)
    expect(page.locator("html")).to_have_attribute("data-bs-theme", theme)
    # Every page the navigation links to (pages other branches add come along), then the
    # pages reached from them.
    nav_links = page.locator("nav[aria-label=Main] a").evaluate_all(
        "links => links.map(a => a.getAttribute('href'))")
    pages = [link for link in nav_links if not link.startswith("/admin")]
    pages += [f"/imports/{pk}/" for pk in dashboard_data.values()]
    pages += ["/remote-systems/new/", "/hosts/new/", f"/hosts/{Host.objects.first().pk}/edit/",
              "/?state=Failed&state=Cancel_Failed&state=Cleanup_Failed"]
    for path in dict.fromkeys(pages):
        page.goto(f"{live_server.url}{path}")
        expect(page.locator("html")).to_have_attribute("data-bs-theme", theme)
        _check(page, found, path)
    _walk_wizard(page, live_server, found, theme)
    _check_open_states(page, live_server, found, dashboard_data)
    context.close()
    assert not found, json.dumps(found, indent=1)
