"""At 1280×800 (and down to 768 px) every figure of a copying row is in view, and the
actions cell covers none of them (issue 12, finding 1)."""

import pytest

from tests.dashboard_rows import box, make_list_rows, open_list, overlaps

FIGURES = ("ferry-cell-name", "ferry-cell-state", "ferry-cell-progress", "ferry-cell-rate",
           "ferry-cell-eta")


def _assert_figures_fit(page, session, width):
    row = f"#session-{session.pk} tr[data-session='{session.pk}']"
    wrap = page.locator(".ferry-table-wrap")
    scroll, client = wrap.evaluate("w => [w.scrollWidth, w.clientWidth]")
    assert scroll <= client, f"the table is {scroll} px in a {client} px box at {width} px"
    actions = box(page, f"{row} .ferry-cell-actions")
    assert actions["x"] + actions["width"] <= width
    for cell in FIGURES:
        figure = box(page, f"{row} .{cell}")
        assert figure["x"] >= 0 and figure["x"] + figure["width"] <= width, (cell, figure)
        assert not overlaps(figure, actions), f"the actions cell covers {cell} at {width} px"


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_figure_of_a_copying_row_is_visible_at_1280_by_800(browser, live_server,
                                                                 operator, scheme):
    rows = make_list_rows()
    context, page = open_list(browser, live_server, operator, width=1280, height=800,
                              scheme=scheme)
    row = page.locator(f"#session-{rows['copying'].pk} tr").first
    assert "/s" in row.locator(".ferry-cell-rate").inner_text()  # a rate, not "—"
    assert row.locator(".ferry-cell-eta").inner_text().startswith("in ")
    assert "42%" in row.locator(".ferry-cell-progress").inner_text()
    _assert_figures_fit(page, rows["copying"], 1280)
    context.close()


@pytest.mark.parametrize("width", [768, 900, 1024, 1152])
def test_the_actions_cover_no_figure_between_768_and_1280_px(browser, live_server, operator,
                                                             width):
    rows = make_list_rows()
    context, page = open_list(browser, live_server, operator, width=width, height=800)
    for name in ("copying", "group", "failed"):
        _assert_figures_fit(page, rows[name], width)
    context.close()
