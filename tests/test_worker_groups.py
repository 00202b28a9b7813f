"""A real worker imports consistency groups: all members together, or the group stops."""

import os

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


def _group(source_root, name, sizes):
    folder = source_root / "array" / name
    for volume, size in sizes.items():
        write_random(folder / volume, size)
    return folder


def test_a_three_volume_group_is_imported_together(source_root, live_worker, operator_actor):
    folder = _group(source_root, "cg-finance", {"ledger.img": 24 * MiB, "journal.img": 8 * MiB,
                                                "archive.img": 40 * MiB})
    system = discovered_system(source_root / "array")
    group = start_copying(system.source_groups.get(), operator_actor, "finance")
    wait_for_state(group, "Ready_For_Cutover", 120)
    assert group.copied_bytes == group.total_bytes == 72 * MiB
    services.perform_action(group.pk, "cutover", actor=operator_actor)
    wait_for_state(group, "Import_Completed")
    members = list(group.members.select_related("destination_volume", "source_volume"))
    assert len(members) == 3
    for member in members:
        assert member.state == "Import_Completed"
        assert member.destination_volume.volume_group_id == group.destination_volume_group_id
        assert sha256_of(member.destination_volume.location) == sha256_of(
            folder / member.source_volume.name)


def test_a_member_whose_copy_fails_stops_the_group(source_root, live_worker, operator_actor):
    folder = _group(source_root, "cg-web", {"a.img": 64 * MiB, "b.img": 64 * MiB,
                                            "c.img": 64 * MiB})
    system = discovered_system(source_root / "array")
    group = start_copying(system.source_groups.get(), operator_actor, "web",
                          throttle_bytes_per_second=16 * MiB)
    member_b = group.members.get(source_volume__name="b.img")

    def b_is_copying():
        member_b.refresh_from_db()
        return member_b.copied_bytes >= 8 * MiB
    wait_for(b_is_copying, 60, what="b.img to be copying")
    os.truncate(folder / "b.img", 4 * MiB)

    wait_for_state(group, "Cancel_Required", 60)
    states = dict(group.members.values_list("source_volume__name", "state"))
    assert states["b.img"] == "Cancel_Required"
    assert {states["a.img"], states["c.img"]} <= {"Paused", "Ready_For_Cutover"}
    assert group.error["code"] == "source_truncated"
    assert "b.img" in group.error["message"]

    for name in ("a.img", "c.img"):  # the others really stopped copying
        member = group.members.get(source_volume__name=name)
        wait_for(lambda m=member: _idle(m), 5, what=f"{name} to stop")
        before = member.copied_bytes
        member.refresh_from_db()
        assert member.copied_bytes == before

    services.perform_action(group.pk, "cancel", actor=operator_actor)
    wait_for_state(group, "Cancelled", 60)
    for member in group.members.all():
        assert member.destination_volume is None
        assert os.stat(folder / member.source_volume.name).st_mode & 0o200


def _idle(member) -> bool:
    member.refresh_from_db()
    return member.lease_owner == ""
