"""Chaos: a host writes random blocks of random sizes through the front end while the copy
runs, is paused and resumed, and while the worker (the copier, and with it the front
end), then the front end alone, are kill -9ed. At cutover the destination must equal the
image the host expects (the source plus its acknowledged writes) byte for byte; after a
cancel the source must. A test build without the range locks must fail the same rounds,
which proves the rounds can catch a lost write."""

import time

import pytest

from importer import services
from tests.conftest import MiB, wait_for, wait_for_state, write_random
from tests.frontend_host import differing_bytes
from tests.test_worker_frontend import _nbd_system, enabled_import, host_for, kill_frontend

pytestmark = pytest.mark.integration

ROUNDS = 20
VOLUME = 16 * MiB
CHAOS = ("pause", "kill_worker", "kill_frontend", "everything")


def _copied(session) -> int:
    session.refresh_from_db()
    return session.copied_bytes


def _run_round(number, system, exports, live_worker, actor) -> dict:
    name = f"vol{number}"
    chaos, cancel = CHAOS[number % len(CHAOS)], number % 5 == 4
    session = enabled_import(system, name, actor, host_name=f"host-{number}",
                             throttle_bytes_per_second=6 * MiB)
    source = exports / name
    host = host_for(session, source.read_bytes(), seed=number).start()
    services.perform_action(session.pk, "start_copy", actor=actor)
    wait_for(lambda: _copied(session) >= 2 * MiB, 60, what=f"{name}'s copy to start")
    if chaos in ("pause", "everything"):
        services.perform_action(session.pk, "pause", actor=actor)
        wait_for_state(session, "Paused")
        time.sleep(0.3)  # the host writes on while the copy is paused
        services.perform_action(session.pk, "resume", actor=actor)
    if chaos in ("kill_frontend", "everything"):
        kill_frontend(session)
        time.sleep(0.5)
    if chaos in ("kill_worker", "everything"):
        live_worker.kill_worker()
        time.sleep(0.3)  # the host finds no server and keeps retrying its write
        live_worker.start_worker()
    if cancel:
        wait_for(lambda: _copied(session) >= 8 * MiB, 60, what=f"{name} half copied")
        expected = host.stop()
        services.perform_action(session.pk, "cancel", actor=actor)
        wait_for_state(session, "Cancelled", 60)
        outcome, refused = differing_bytes(source.read_bytes(), expected), False
    else:
        wait_for_state(session, "Ready_For_Cutover", 90)
        services.perform_action(session.pk, "cutover", actor=actor)
        state = wait_for(lambda: session.refresh_from_db() or session.state in (
            "Import_Completed", "Cancel_Required"), 60, what=f"{name}'s cutover") and \
            session.state
        expected = host.stop()
        destination = open(session.destination_volume.location, "rb").read()
        outcome = differing_bytes(destination, expected)
        refused = state != "Import_Completed"  # the cutover's own check caught something
    host.close()
    return {"round": number, "chaos": chaos, "end": "cancel" if cancel else "cutover",
            "writes": host.writes, "reconnects": host.reconnects, "differing_bytes": outcome,
            "cutover_refused": not cancel and refused}


def _rounds(count, exports, nbd_server, live_worker, actor) -> list[dict]:
    for number in range(count):
        write_random(exports / f"vol{number}", VOLUME)
    system = _nbd_system(nbd_server)
    results = []
    for number in range(count):
        results.append(_run_round(number, system, exports, live_worker, actor))
        print(results[-1])
    return results


# Both builds widen the copier's window between reading the source and writing the
# destination, where a host write to the same chunk would be lost without the locks.
RACE_WINDOW = {"FERRY_DELAYS": "copy.between_read_and_write=0.02"}


@pytest.mark.parametrize("live_worker", [RACE_WINDOW], indirect=True)
def test_twenty_chaos_rounds_lose_no_host_write(writable_exports, writable_nbd_server,
                                                frontend_settings, live_worker,
                                                operator_actor):
    results = _rounds(ROUNDS, writable_exports, writable_nbd_server, live_worker,
                      operator_actor)
    assert [r for r in results if r["differing_bytes"] or r["cutover_refused"]] == []
    assert all(r["writes"] > 10 for r in results)
    assert sum(r["reconnects"] for r in results) > 0, "no round made the host reconnect"


@pytest.mark.parametrize("live_worker", [{**RACE_WINDOW, "FERRY_FRONTEND_NOLOCK": "true"}],
                         indirect=True)
def test_without_the_locks_the_same_rounds_lose_writes(writable_exports, writable_nbd_server,
                                                       frontend_settings, live_worker,
                                                       operator_actor):
    results = _rounds(4, writable_exports, writable_nbd_server, live_worker, operator_actor)
    # Lost host writes: bytes that differ from what the host wrote, or a cutover that its
    # own comparison with the source refused (then the destination differs too).
    assert any(r["differing_bytes"] for r in results), results
