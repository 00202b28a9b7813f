"""Rate and ETA: the rate counts data actually moved (not holes), the ETA is smoothed,
and there is no estimate ("estimating…") until there is a measurement."""

import os
from datetime import UTC, datetime, timedelta

from importer.figures import Pace, group_figures
from importer.mover.copier import CopyPlan, copy_range
from importer.states import COPYING, State
from importer.templatetags.importer_ui import eta

MiB = 1024 * 1024
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_the_first_measurement_is_taken_as_is():
    pace = Pace()
    pace.measure(moved=2 * MiB, span=10 * MiB, seconds=1)
    assert pace.data_rate == 2 * MiB
    assert pace.span_rate == 10 * MiB


def test_holes_do_not_count_as_data_moved():
    pace = Pace()
    pace.measure(moved=0, span=500 * MiB, seconds=1)  # a run of holes, skipped
    assert pace.data_rate == 0
    assert pace.span_rate == 500 * MiB


def test_one_fast_checkpoint_does_not_swing_the_smoothed_rate():
    pace = Pace()
    for _ in range(30):
        pace.measure(moved=2 * MiB, span=2 * MiB, seconds=1)
    pace.measure(moved=62 * MiB, span=62 * MiB, seconds=1)
    assert 2 * MiB < pace.data_rate < 8 * MiB


def test_the_smoothed_rate_follows_a_lasting_change():
    pace = Pace()
    pace.measure(moved=2 * MiB, span=2 * MiB, seconds=1)
    for _ in range(60):
        pace.measure(moved=10 * MiB, span=10 * MiB, seconds=1)
    assert abs(pace.data_rate - 10 * MiB) < 0.05 * MiB


def test_there_is_no_eta_before_a_measurement():
    assert Pace().eta(100 * MiB, NOW) is None


def test_the_eta_divides_what_is_left_by_the_pace_through_the_volume():
    pace = Pace()
    pace.measure(moved=1 * MiB, span=4 * MiB, seconds=1)
    assert pace.eta(40 * MiB, NOW) == NOW + timedelta(seconds=10)


def test_no_estimate_reads_estimating_never_in_zero_seconds():
    assert eta(None) == "estimating…"
    assert eta(datetime.now(UTC) - timedelta(seconds=30)) == "estimating…"
    assert eta(datetime.now(UTC) + timedelta(seconds=46)).startswith("in 4")


def _member(state, copied, total, rate, average, estimate):
    return {"state": state, "copied_bytes": copied, "total_bytes": total,
            "current_transfer_rate": rate, "average_transfer_rate": average,
            "estimated_completion_timestamp": estimate}


def test_a_group_adds_its_copying_members_rates_and_ends_with_the_last():
    figures = group_figures([
        _member(State.COPY_IN_PROGRESS, 30, 100, 5, 4, NOW + timedelta(minutes=2)),
        _member(State.COPY_IN_PROGRESS, 50, 100, 7, 6, NOW + timedelta(minutes=9)),
        _member(State.READY_FOR_CUTOVER, 100, 100, 0, 8, None)], COPYING)
    assert figures["current_transfer_rate"] == 12
    assert figures["average_transfer_rate"] == 18
    assert figures["estimated_completion_timestamp"] == NOW + timedelta(minutes=9)
    assert figures["copied_bytes"] == 180 and figures["progress_percentage"] == 60


def test_a_group_is_estimating_while_a_copying_member_is():
    figures = group_figures([
        _member(State.COPY_IN_PROGRESS, 30, 100, 5, 4, NOW + timedelta(minutes=2)),
        _member(State.COPY_IN_PROGRESS, 0, 100, 0, 0, None)], COPYING)
    assert figures["estimated_completion_timestamp"] is None


def test_a_paused_group_has_no_current_rate():
    figures = group_figures([_member(State.PAUSED, 30, 100, 5, 4, None)] * 2, COPYING)
    assert figures["current_transfer_rate"] == 0


def test_checkpoints_report_only_the_bytes_written_not_the_holes(tmp_path):
    size = 64 * MiB
    with open(tmp_path / "src", "wb") as source:
        source.truncate(size)
        source.seek(16 * MiB)
        source.write(os.urandom(3 * MiB))  # 3 MiB of data in 64 MiB of holes
    src = os.open(tmp_path / "src", os.O_RDONLY)
    dst = os.open(tmp_path / "dst", os.O_WRONLY | os.O_CREAT, 0o640)
    checkpoints = []
    try:
        os.ftruncate(dst, size)
        copy_range(src, dst, 0, size, on_checkpoint=checkpoints.append,
                   plan=CopyPlan(chunk_size=MiB, checkpoint_bytes=4 * MiB,
                                 checkpoint_seconds=60))
    finally:
        os.close(src)
        os.close(dst)
    assert sum(c.end - c.start for c in checkpoints) == size
    assert sum(c.moved for c in checkpoints) == 3 * MiB
