"""Imports-list rows for the layout, mobile and keyboard browser tests: one of each shape a
row takes (copying with every figure, a group, a failure, a schedule), and a way in."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from importer.models import ImportSession, StorageNode
from tests.conftest import MiB, SourceVolumeFactory, log_in, make_session


def make_list_rows() -> dict[str, ImportSession]:
    """Rows with their longest realistic texts, so a layout that fits these fits the rest."""
    node = StorageNode.objects.first()
    now = timezone.now()
    copying = make_session(
        "volume", "Copy_In_Progress", name="erp-database-volume-primary-01",
        source_volume=SourceVolumeFactory(identifier="erp-db.img", size=1024 * MiB),
        progress_percentage=42, copied_bytes=430 * MiB,
        current_transfer_rate=118 * MiB, average_transfer_rate=96 * MiB,
        estimated_completion_timestamp=now + timedelta(minutes=7), storage_node=node)
    group = make_session("group", "In_Progress", name="finance-consistency-group",
                         progress_percentage=40, storage_node=node)
    failed = make_session("volume", "Cancel_Required", name="archive-02", progress_percentage=60)
    failed.error_code, failed.error_message = "source_truncated", "archive-02.img ended early."
    failed.save()
    waiting = make_session("volume", "Mirror_Enabled", name="web-frontend-03")
    scheduled = make_session("volume", "Scheduled", name="reports-04",
                             scheduled_timestamp=now + timedelta(days=1))
    return {"copying": copying, "group": group, "failed": failed, "waiting": waiting,
            "scheduled": scheduled}


def open_list(browser, live_server, user, *, width: int, height: int, scheme: str = "light"):
    """A fresh browser context at this viewport and colour scheme, logged in, on Imports."""
    context = browser.new_context(viewport={"width": width, "height": height},
                                  color_scheme=scheme)
    page = context.new_page()
    log_in(page, live_server, user)
    return context, page


def box(page, selector: str) -> dict:
    found = page.locator(selector).first.bounding_box()
    assert found, f"{selector} is not rendered"
    return found


def overlaps(first: dict, second: dict) -> bool:
    return not (first["x"] + first["width"] <= second["x"] or
                second["x"] + second["width"] <= first["x"] or
                first["y"] + first["height"] <= second["y"] or
                second["y"] + second["height"] <= first["y"])
