"""An operator creates a consistency-group import in the wizard with a description, a
volume group name and different hosts per member volume, then finds them on its page."""

import pytest
from playwright.sync_api import expect

from importer.models import ImportSession
from tests.conftest import (
    SCREENSHOTS,
    HostFactory,
    MiB,
    discovered_system,
    log_in,
    wait_for,
    write_random,
)

pytestmark = pytest.mark.integration


def _next(page):
    page.click("button:has-text('Next')")


def test_an_operator_maps_each_member_volume_to_its_own_hosts(page, live_server, live_worker,
                                                              operator, source_root):
    for volume in ("a.img", "b.img"):
        write_random(source_root / "array" / "cg-web" / volume, 4 * MiB)
    discovered_system(source_root / "array", name="demo-array")
    for host in ("esx-01", "web-01"):
        HostFactory(name=host)
    log_in(page, live_server, operator)
    page.click("a:has-text('Create Import')")
    page.check("label:has-text('demo-array')")
    _next(page)
    page.check("label:has-text('cg-web')")
    _next(page)

    page.get_by_label("esx-01", exact=True).check()  # for every volume...
    member_table = page.locator(".ferry-member-table")
    expect(member_table).to_be_hidden()
    page.get_by_label("Hosts per member volume").check()  # ...but b.img differs
    expect(member_table).to_be_visible()
    expect(page.get_by_label("esx-01 for a.img")).to_be_checked()  # started from every volume's
    page.get_by_label("esx-01 for b.img").uncheck()
    page.get_by_label("web-01 for b.img").check()
    SCREENSHOTS.mkdir(exist_ok=True)
    page.locator("#wizard").screenshot(path=SCREENSHOTS / "wizard-member-hosts-light.png")
    _next(page)

    volume_group = page.get_by_label("Volume group for cg-web")
    expect(volume_group).to_have_value("cg-web")  # proposed from the source group's name
    page.fill("#id_name", "wave-2")
    page.fill("#id_description", "Web tier, second wave")
    volume_group.fill("")
    _next(page)
    expect(page.locator(".invalid-feedback")).to_contain_text("required")  # at this step
    page.get_by_label("Volume group for cg-web").fill("web-prod")
    _next(page)

    review = page.locator("#wizard")
    expect(review.locator("[data-review='description']")).to_have_text("Web tier, second wave")
    group = review.locator("[data-review-group='cg-web']")
    expect(group).to_contain_text("Volume group web-prod; hosts per member volume")
    expect(group).to_contain_text("a.img → esx-01")
    expect(group).to_contain_text("b.img → web-01")
    page.click("button:has-text('Create')")
    page.wait_for_url(f"{live_server.url}/")

    session = ImportSession.objects.get(name="wave-2")
    wait_for(lambda: ImportSession.objects.filter(
        pk=session.pk, destination_volume_group__name="web-prod").exists()
        and not session.members.filter(destination_volume__isnull=True).exists(),
        30, what="setup to create the volume group and the member volumes")
    page.goto(f"{live_server.url}/imports/{session.pk}/")
    expect(page.locator("main")).to_contain_text("Web tier, second wave")
    details = page.locator(".card", has_text="Source and destination")
    expect(details).to_contain_text("web-prod")
    a, b = (session.members.get(source_volume__name=name).destination_volume.name
            for name in ("a.img", "b.img"))
    expect(details).to_contain_text(f"esx-01 → {a}")
    expect(details).to_contain_text(f"web-01 → {b}")
    expect(details).not_to_contain_text(f"esx-01 → {b}")


@pytest.mark.parametrize(("scheme", "viewport"), [
    ("light", {"width": 1280, "height": 800}), ("dark", {"width": 390, "height": 844})])
def test_every_member_host_box_is_labelled_and_reachable_in_both_themes_and_sizes(
        browser, live_server, operator, source_root, scheme, viewport):
    for volume in ("a.img", "b.img"):
        write_random(source_root / "array" / "cg-web" / volume, MiB)
    discovered_system(source_root / "array", name="demo-array")
    for host in ("esx-01", "web-01", "db-01"):
        HostFactory(name=host)
    context = browser.new_context(viewport=viewport, color_scheme=scheme)
    page = context.new_page()
    log_in(page, live_server, operator)
    page.goto(f"{live_server.url}/imports/new/")
    page.check("label:has-text('demo-array')")
    _next(page)
    page.check("label:has-text('cg-web')")
    _next(page)
    page.get_by_label("Hosts per member volume").check()
    for member in ("a.img", "b.img"):
        for host in ("esx-01", "web-01", "db-01"):
            box = page.get_by_label(f"{host} for {member}")
            box.scroll_into_view_if_needed()  # a wide table scrolls inside its own box
            expect(box).to_be_in_viewport()
    page.get_by_label("db-01 for b.img").check()
    _next(page)
    expect(page.get_by_label("Volume group for cg-web")).to_be_visible()
    context.close()
