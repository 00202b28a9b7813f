"""An operator in a real browser watches a real worker's jobs on the Jobs page: they appear
and finish without a reload, filter by state, and link to their session."""

import re

import pytest
from playwright.sync_api import expect

from importer import services
from tests.conftest import (
    SCREENSHOTS,
    MiB,
    discovered_system,
    log_in,
    wait_for_state,
    write_random,
)

pytestmark = pytest.mark.integration


def test_the_jobs_page_follows_an_imports_jobs(page, live_server, live_worker, operator,
                                               source_root):
    write_random(source_root / "array" / "db01.img", 8 * MiB)
    system = discovered_system(source_root / "array")
    session = services.create_import(name="db01-migration", actor=services.SYSTEM,
                                     source_resource_id=system.source_volumes.get().pk)
    wait_for_state(session, "Mirror_Enabled")
    log_in(page, live_server, operator)
    page.get_by_role("link", name="Jobs").click()
    expect(page.locator("h1")).to_have_text("Jobs")
    setup = page.locator("#job-table tr", has_text="Set up the import of db01-migration")
    expect(setup.locator(".ferry-job-state")).to_have_text("Completed")
    expect(setup.locator(".ferry-job-duration")).to_have_text(re.compile(r"\d+ (ms|s)"))

    services.perform_action(session.pk, "enable_destination_volume", actor=services.SYSTEM)
    enable = page.locator("#job-table tr",
                          has_text="Enable the destination volume of db01-migration")
    expect(enable.locator(".ferry-job-state")).to_have_text("Completed", timeout=15000)
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "jobs.png")

    page.get_by_role("link", name="Failed", exact=True).click()
    expect(page.locator("#job-table")).to_contain_text("No failed jobs.")
    page.get_by_role("link", name="Completed", exact=True).click()
    expect(page.locator("#job-table tbody tr")).to_have_count(2)
    page.locator("#job-table tbody tr").first.get_by_role("link", name="db01-migration").click()
    expect(page).to_have_url(re.compile(rf"/imports/{session.pk}/$"))
