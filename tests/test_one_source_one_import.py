"""One source, one import: a volume is known by what it is (device and inode), not by the
name or the remote system that reaches it; discovery never blocks on what is not a volume."""

import os
import signal
import stat
import threading

import pytest
from django.db import connection

from importer import services
from importer.errors import ValidationError
from importer.models import ImportSession
from tests.conftest import MiB, discovered_system, run_jobs, write_random

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("small_chunks")]


def _create(volume, actor, name):
    return services.create_import(name=name, source_resource_id=volume.pk, actor=actor)


def _refused(volume, actor, name) -> str:
    with pytest.raises(ValidationError) as refused:
        _create(volume, actor, name)
    return " ".join(refused.value.field_errors["source_resource_id"])


def test_a_symlink_to_a_volume_under_import_is_refused(source_root, operator_actor, enqueued):
    write_random(source_root / "array" / "ok.img", 2 * MiB)
    os.symlink("ok.img", source_root / "array" / "alias.img")
    system = discovered_system(source_root / "array")
    ok, alias = (system.source_volumes.get(name=n) for n in ("ok.img", "alias.img"))
    assert ok.physical_id and ok.physical_id == alias.physical_id
    first = _create(ok, operator_actor, "first")
    message = _refused(alias, operator_actor, "second")
    assert "ok.img is already being imported by first" in message
    assert "the same volume as array:ok.img" in message
    services.perform_action(first.pk, "cancel", actor=operator_actor)
    run_jobs(enqueued)
    assert _create(alias, operator_actor, "second").state == "Queued"  # free again


def test_a_second_system_on_the_same_folder_cannot_import_it_twice(source_root, operator_actor,
                                                                   enqueued):
    source = write_random(source_root / "array" / "ok.img", 2 * MiB)
    mode = stat.S_IMODE(os.stat(source).st_mode)
    one = discovered_system(source_root / "array", name="one")
    two = discovered_system(source_root / "array", name="two")
    first = _create(one.source_volumes.get(), operator_actor, "first")
    run_jobs(enqueued)
    services.perform_action(first.pk, "enable_destination_volume", actor=operator_actor)
    run_jobs(enqueued)
    assert not os.stat(source).st_mode & 0o222
    assert "already being imported by first" in _refused(two.source_volumes.get(),
                                                          operator_actor, "second")
    services.perform_action(first.pk, "cancel", actor=operator_actor)
    run_jobs(enqueued)
    assert stat.S_IMODE(os.stat(source).st_mode) == mode  # host access is right again


def test_a_hard_link_is_the_same_volume(source_root, operator_actor):
    write_random(source_root / "array" / "ok.img", MiB)
    os.link(source_root / "array" / "ok.img", source_root / "array" / "linked.img")
    system = discovered_system(source_root / "array")
    _create(system.source_volumes.get(name="ok.img"), operator_actor, "first")
    assert "already being imported" in _refused(system.source_volumes.get(name="linked.img"),
                                                operator_actor, "second")


def _race_to_create(volumes, actor, round_number) -> list[str]:
    barrier, outcomes = threading.Barrier(len(volumes)), []

    def attempt(volume):
        barrier.wait()
        try:
            _create(volume, actor, f"r{round_number}-{volume.name}")
            outcomes.append("won")
        except ValidationError:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(volume,)) for volume in volumes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sorted(outcomes)


def test_two_names_of_one_volume_racing_have_one_winner(source_root, operator_actor):
    write_random(source_root / "array" / "ok.img", MiB)
    os.symlink("ok.img", source_root / "array" / "alias.img")
    system = discovered_system(source_root / "array")
    volumes = list(system.source_volumes.all())
    for round_number in range(10):
        assert _race_to_create(volumes, operator_actor, round_number) == ["refused", "won"]
        ImportSession.objects.filter(state="Queued").update(state="Cancelled")
        system.source_volumes.update(importable_criteria="Ready_For_Agentless_Import")


def test_a_fifo_never_blocks_discovery_and_is_not_a_volume(source_root):
    write_random(source_root / "array" / "ok.img", MiB)
    os.mkfifo(source_root / "array" / "pipe.img")
    os.mkfifo(source_root / "array" / "cg" / "pipe.img") if (
        source_root / "array" / "cg").mkdir() is None else None
    previous = signal.signal(signal.SIGALRM,
                             lambda *_: pytest.fail("discovery blocked on a FIFO"))
    signal.alarm(10)
    try:
        system = discovered_system(source_root / "array")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert sorted(system.source_volumes.values_list("identifier", flat=True)) == ["ok.img"]
    assert system.source_groups.get().importable_criteria == "Ready_For_Agentless_Import"


def test_a_link_changed_after_discovery_is_judged_by_what_it_is_now(source_root,
                                                                    operator_actor):
    write_random(source_root / "array" / "ok.img", MiB)
    write_random(source_root / "array" / "other.img", MiB)
    os.symlink("other.img", source_root / "array" / "alias.img")
    system = discovered_system(source_root / "array")
    os.remove(source_root / "array" / "alias.img")
    os.symlink("ok.img", source_root / "array" / "alias.img")  # no rediscovery since
    _create(system.source_volumes.get(name="ok.img"), operator_actor, "first")
    assert "already being imported by first" in _refused(
        system.source_volumes.get(name="alias.img"), operator_actor, "second")
