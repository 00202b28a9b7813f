"""On a phone (390×844) the Imports page is usable: a menu button instead of the sidebar, a
compact state filter, rows as cards with 44 px tap targets (issue 12, finding 2)."""

import pytest
from playwright.sync_api import expect

from tests.conftest import SCREENSHOTS
from tests.dashboard_rows import box, make_list_rows, open_list, overlaps

TAP = 44


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_imports_page_is_usable_on_a_phone(browser, live_server, operator, scheme):
    rows = make_list_rows()
    context, page = open_list(browser, live_server, operator, width=390, height=844,
                              scheme=scheme)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"imports-mobile-{scheme}.png")

    # Navigation: a menu button; the sidebar slides in on demand.
    nav_link = page.locator("#ferry-nav a", has_text="Remote Systems")
    expect(nav_link).not_to_be_visible()
    page.get_by_role("button", name="Menu").click()
    expect(nav_link).to_be_visible()
    page.get_by_role("button", name="Close menu").click()
    expect(nav_link).not_to_be_visible()

    # The 20 state chips are one compact filter.
    filter_toggle = page.locator("#state-filter-toggle")
    expect(page.locator("label[for='chip-Paused']")).not_to_be_visible()
    assert box(page, "#state-filter-toggle")["height"] < 60
    filter_toggle.click()
    page.locator("label[for='chip-Copy_In_Progress']").click()
    expect(page.locator("#state-filter-summary")).to_have_text("1 chosen")
    expect(page.locator("tbody.ferry-session")).to_have_count(1)
    page.keyboard.press("Escape")

    # Rows are cards: the actions sit below the name, and every control is big enough to tap.
    row = f"#session-{rows['copying'].pk} tr[data-session='{rows['copying'].pk}']"
    name, actions = box(page, f"{row} .ferry-cell-name"), box(page, f"{row} .ferry-cell-actions")
    assert not overlaps(name, actions)
    for control in ("label.ferry-hit", ".ferry-name", ".ferry-details",
                    ".ferry-actions .dropdown-toggle"):
        found = box(page, f"{row} {control}")
        assert found["width"] >= TAP and found["height"] >= TAP, (control, found)
        assert found["x"] >= 0 and found["x"] + found["width"] <= 390, (control, found)

    # Tapping the card opens its details.
    page.locator(f"{row} .ferry-cell-progress").click()
    expect(page.locator("#details-slideout")).to_be_visible()
    expect(page.locator("#session-summary")).to_contain_text("Copy In Progress")
    context.close()
