"""An operator imports a consistency group from an NBD server in a real browser: the
enable dialog names the manual unmap step and refuses to go on until it is confirmed."""

import pytest
from playwright.sync_api import expect

from importer import services
from tests import nbd_servers
from tests.conftest import SCREENSHOTS, MiB, log_in, sha256_of, write_random
from tests.test_browser import _badge, _menu_item

pytestmark = pytest.mark.integration


def test_an_nbd_group_import_with_the_manual_unmap_step(page, live_server, live_worker,
                                                        operator, tmp_path):
    nbd_servers.require_nbd_tools()
    exports = tmp_path / "exports"
    sources = {name: write_random(exports / name, size)
               for name, size in (("erp-db", 12 * MiB), ("erp-log", 4 * MiB))}
    with nbd_servers.nbdkit_file(exports, socket=tmp_path / "nbd.sock") as uri:
        system = services.create_remote_system(
            name="old-array", driver_type="nbd", actor=services.SYSTEM,
            driver_settings={"uri": uri, "groups": {"erp": list(sources)}})
        services.discover_remote_system(system.pk, actor=services.SYSTEM)
        group = services.create_import(name="erp", actor=services.SYSTEM,
                                       automatic_cutover=True,
                                       source_resource_id=system.source_groups.get().pk)
        log_in(page, live_server, operator)
        expect(_badge(page, group)).to_have_text("Ready To Enable Destination Volume",
                                                 timeout=20000)
        body = page.locator(f"#session-{group.pk}")
        body.locator(".dropdown-toggle").first.click()
        _menu_item(body, "enable_destination_volume").click()
        dialog = page.locator("#confirm-modal")
        expect(dialog.locator("#confirm-manual-step")).to_contain_text(
            "Unmap every host that uses them from the volumes of group erp")
        expect(dialog.locator("#confirm-note")).to_contain_text("Ferry cannot remove host")
        dialog.locator("#confirm-submit").click()  # not confirmed: the form does not go
        expect(dialog).to_be_visible()
        SCREENSHOTS.mkdir(exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "enable-manual-step.png")
        dialog.locator("#confirm-manual").check()
        dialog.locator("#confirm-submit").click()
        expect(dialog).to_be_hidden()
        expect(_badge(page, group)).to_have_text("Ready To Start Copy", timeout=10000)
        body.locator(".dropdown-toggle").first.click()
        _menu_item(body, "start_copy").click()
        page.locator("#confirm-modal #confirm-submit").click()
        expect(_badge(page, group)).to_have_text("Import Completed", timeout=60000)
    for member in group.members.select_related("source_volume", "destination_volume"):
        assert sha256_of(member.destination_volume.location) == \
            sha256_of(sources[member.source_volume.identifier])
    page.goto(f"{live_server.url}/imports/{group.pk}/")
    expect(page.locator("body")).to_contain_text(f"{operator.username} confirmed the hosts")
