"""Failures injected on real files while a real worker copies: the session stops cleanly,
nothing is lost, and a cancel rolls back without touching the source's bytes."""

import os
import stat

import pytest

from importer import services
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


def _copying(source_root, operator_actor, size=96 * MiB):
    source = write_random(source_root / "array" / "db.img", size)
    mode = stat.S_IMODE(os.stat(source).st_mode)
    system = discovered_system(source_root / "array")
    session = start_copying(system.source_volumes.get(), operator_actor, "db",
                            throttle_bytes_per_second=16 * MiB)

    def started():
        session.refresh_from_db()
        return session.copied_bytes >= 8 * MiB
    wait_for(started, 60, what="the copy to start")
    return source, mode, session


def _cancel_rolls_back(session, source, mode, operator_actor):
    location = session.destination_volume.location
    checksum = sha256_of(source)
    services.perform_action(session.pk, "cancel", actor=operator_actor)
    wait_for_state(session, "Cancelled", 60)
    assert not os.path.exists(location)
    assert session.destination_volume is None
    assert sha256_of(source) == checksum, "the rollback changed the source's bytes"
    assert stat.S_IMODE(os.stat(source).st_mode) == mode


def test_a_source_truncated_mid_copy_needs_a_cancel(source_root, live_worker, operator_actor):
    source, mode, session = _copying(source_root, operator_actor)
    os.truncate(source, 20 * MiB)
    wait_for_state(session, "Cancel_Required", 30)
    assert session.error["code"] == "source_truncated"
    assert "db.img" in session.error["message"]
    assert "offset" in session.error["message"]
    assert session.error["arguments"]["offset"] > 0
    _cancel_rolls_back(session, source, mode, operator_actor)


def test_a_source_removed_mid_copy_needs_a_cancel(source_root, live_worker, operator_actor):
    source, mode, session = _copying(source_root, operator_actor)
    original = sha256_of(source)
    away = source.with_name(".db.img.away")
    source.rename(away)
    wait_for_state(session, "Cancel_Required", 30)
    assert session.error["code"] == "source_volume_missing"
    assert "db.img" in session.error["message"]
    away.rename(source)  # the array is back: the rollback can restore its access
    _cancel_rolls_back(session, source, mode, operator_actor)
    assert sha256_of(source) == original


def test_a_full_destination_stops_the_copy(source_root, live_worker, operator_actor,
                                           monkeypatch):
    if not os.path.exists("/dev/full"):
        pytest.skip("this system has no /dev/full to stand for a full disk")
    source, mode, session = _copying(source_root, operator_actor)
    location = session.destination_volume.location
    # Swap the pool file for /dev/full: every write now fails with ENOSPC.
    os.rename(location, location + ".real")
    os.symlink("/dev/full", location)
    live_worker.kill_worker()  # the running slice holds the real file open
    live_worker.start_worker()
    wait_for_state(session, "Cancel_Required", 60)
    assert session.error["code"] == "destination_full"
    assert "No space left" in session.error["message"]
    os.remove(location)
    os.rename(location + ".real", location)
    _cancel_rolls_back(session, source, mode, operator_actor)
