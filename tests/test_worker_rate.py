"""With a real worker: a throttled copy of a mostly sparse volume shows the throttled rate
(holes are skipped, not moved), a pause clears the rate and the ETA, and a resumed copy has
no ETA until it measures one."""

import os
import time

import pytest

from importer import services
from importer.models import ImportSession
from tests.conftest import MiB, discovered_system, start_copying, wait_for, wait_for_state

pytestmark = pytest.mark.integration
LIMIT = 2 * MiB


def _sparse_source(path, size, data_at):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as source:
        source.truncate(size)
        for offset in data_at:
            source.seek(offset)
            source.write(os.urandom(3 * MiB))
    return path


def _figures(session):
    return ImportSession.objects.filter(pk=session.pk).values(
        "state", "copied_bytes", "current_transfer_rate",
        "estimated_completion_timestamp").get()


def test_a_sparse_throttled_copy_shows_the_throttled_rate(source_root, live_worker,
                                                          operator_actor):
    # 30 MiB of data in 512 MiB: about 15 s at the limit, most of the volume skipped.
    _sparse_source(source_root / "array" / "thin.img", 512 * MiB,
                   [index * 50 * MiB for index in range(10)])
    system = discovered_system(source_root / "array")
    session = start_copying(system.source_volumes.get(), operator_actor, "thin",
                            throttle_bytes_per_second=LIMIT)
    rates = []
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        figures = _figures(session)
        if figures["state"] == "Copy_In_Progress" and figures["current_transfer_rate"]:
            rates.append(figures["current_transfer_rate"])
        time.sleep(0.2)
    assert rates, "the copy never reported a rate"
    assert max(rates) < 1.5 * LIMIT, f"holes counted as moved: {rates}"

    services.perform_action(session.pk, "pause", actor=operator_actor)
    time.sleep(1.5)  # the copier stops within a second; its last range in flight is kept
    paused = _figures(session)
    assert paused["state"] == "Paused"
    assert paused["current_transfer_rate"] == 0
    assert paused["estimated_completion_timestamp"] is None

    resumed = services.perform_action(session.pk, "resume", actor=operator_actor)
    assert resumed.estimated_completion_timestamp is None  # "estimating…", not "in 0 s"
    wait_for(lambda: _figures(session)["estimated_completion_timestamp"] is not None
             or _figures(session)["state"] != "Copy_In_Progress", timeout=30,
             what="an ETA measured after the resume")
    done = wait_for_state(session, "Ready_For_Cutover", timeout=60)
    assert done.current_transfer_rate == 0
