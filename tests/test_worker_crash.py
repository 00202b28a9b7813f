"""Crashes and duplicates: kill -9 of the worker mid-copy, and the same task delivered twice.

The copy always continues from its last checkpoint (never from zero, never skipping a
range), and only one worker ever copies a session at a time.
"""

import os
import random

import pytest

from importer import services, tasks
from importer.mover.extents import data_map
from tests.conftest import (
    MiB,
    discovered_system,
    sha256_of,
    start_copying,
    wait_for,
    wait_for_state,
    write_random,
)

pytestmark = pytest.mark.integration
KILLS = 5


def _start_copy(source_root, operator_actor, size, throttle):
    source = write_random(source_root / "array" / "db.img", size)
    system = discovered_system(source_root / "array")
    session = start_copying(system.source_volumes.get(), operator_actor, "db",
                            throttle_bytes_per_second=throttle)
    return source, session


def _checkpointed(session) -> int:
    session.refresh_from_db()
    return session.copied_bytes


def _assert_extents_tile_the_volume(session):
    extents = list(session.copied_extents.order_by("start").values_list("start", "end"))
    position = 0
    for start, end in extents:
        assert start == position, f"a gap or an overlap at {position}: {extents}"
        position = end
    assert position == session.total_bytes


def test_kill_9_of_the_worker_mid_copy_resumes_from_the_checkpoint(source_root, live_worker,
                                                                   operator_actor):
    seed = int(os.environ.get("FERRY_TEST_SEED") or random.randrange(1_000_000))
    chance = random.Random(seed)
    # Progress is read at checkpoints, up to 8 MiB behind the copier: stop short of the end,
    # so every kill lands mid-copy rather than in the copy's last milliseconds.
    points = sorted(chance.uniform(0.05, 0.7) for _ in range(KILLS))
    print(f"kill points (seed {seed}): {[round(p, 2) for p in points]}")
    source, session = _start_copy(source_root, operator_actor, 128 * MiB, 16 * MiB)
    for point in points:
        target = int(point * session.total_bytes)
        wait_for(lambda goal=target: _checkpointed(session) >= goal, 90,
                 what=f"{target} bytes copied")
        live_worker.kill_worker()
        at_kill = _checkpointed(session)
        assert session.state == "Copy_In_Progress" and session.lease_owner  # orphaned
        live_worker.start_worker()
        wait_for(lambda killed=at_kill: _checkpointed(session) > killed
                 or session.state != "Copy_In_Progress", 60,
                 what="the copy to continue after the crash")
        resumed_extent = session.copied_extents.filter(start__gte=at_kill).order_by("start")
        assert resumed_extent.first().start == at_kill, "did not resume from the checkpoint"
    wait_for_state(session, "Ready_For_Cutover", 120)
    _assert_extents_tile_the_volume(session)
    services.perform_action(session.pk, "cutover", actor=operator_actor)
    wait_for_state(session, "Import_Completed")
    assert sha256_of(session.destination_volume.location) == sha256_of(source)


def test_a_duplicate_delivery_of_the_copy_task_does_not_copy_twice(source_root, live_worker,
                                                                    operator_actor):
    source, session = _start_copy(source_root, operator_actor, 96 * MiB, 32 * MiB)
    wait_for(lambda: _checkpointed(session) >= 8 * MiB, 60, what="the copy to start")
    tasks.copy_session_task.delay(session.pk)  # the same task, delivered again
    holder = session.lease_owner
    tasks.copy_session_task.delay(session.pk, holder)  # a redelivered slice hand-off
    tasks.copy_session_task.delay(session.pk, holder)
    wait_for_state(session, "Ready_For_Cutover", 120)
    _assert_extents_tile_the_volume(session)  # two copiers would have overlapped
    assert sha256_of(session.destination_volume.location) == sha256_of(source)


def test_a_sparse_volume_stays_sparse_and_cuts_over_automatically(source_root, live_worker,
                                                                  operator_actor):
    path = source_root / "array" / "sparse.img"
    path.parent.mkdir(parents=True)
    with open(path, "wb") as sparse:
        sparse.truncate(512 * MiB)
        for offset in range(0, 512 * MiB, 64 * MiB):
            sparse.seek(offset + 3 * MiB + 4096 * 7)
            sparse.write(os.urandom(MiB + 123))
        os.fsync(sparse.fileno())  # compare allocations after writeback, not before
    system = discovered_system(source_root / "array")
    session = start_copying(system.source_volumes.get(), operator_actor, "sparse",
                            automatic_cutover=True)
    wait_for_state(session, "Import_Completed", 120)
    location = session.destination_volume.location
    assert sha256_of(location) == sha256_of(path)
    assert data_map(location) == data_map(path)  # holes stay holes
    assert "automatic_cutover" in session.events.values_list("action", flat=True)
