"""The directory driver on real folders: volumes, groups, unreadable files, escapes."""

import os

import pytest

from importer import services
from importer.errors import SourceError, ValidationError
from importer.models import RemoteSystem, SourceGroup, SourceVolume
from tests.conftest import MiB, write_random


@pytest.fixture
def array(source_root):
    folder = source_root / "array"
    write_random(folder / "db.img", 2 * MiB)
    with open(folder / "sparse.img", "wb") as sparse:
        sparse.truncate(64 * MiB)
    write_random(folder / "cg1" / "redo.img", MiB)
    write_random(folder / "cg1" / "data.img", 3 * MiB)
    (folder / ".hidden.img").write_bytes(b"x")
    return folder


def _system(path):
    return services.create_remote_system(name="array", driver_settings={"path": str(path)},
                                         actor=services.SYSTEM)


@pytest.mark.django_db
def test_discovery_finds_volumes_and_groups_with_their_sizes(array):
    system = services.discover_remote_system(_system(array).pk, actor=services.SYSTEM)
    volumes = {v.identifier: v for v in system.source_volumes.all()}
    assert set(volumes) == {"db.img", "sparse.img", "cg1/redo.img", "cg1/data.img"}
    assert volumes["db.img"].size == 2 * MiB
    assert volumes["sparse.img"].size == 64 * MiB
    assert volumes["db.img"].group is None
    group = SourceGroup.objects.get(remote_system=system, identifier="cg1")
    assert {v.name for v in group.volumes.all()} == {"redo.img", "data.img"}
    assert group.size == 4 * MiB
    assert {v.importable_criteria for v in volumes.values()} == {"Ready_For_Agentless_Import"}
    assert system.status == "OK" and system.last_discovery_timestamp is not None


@pytest.mark.django_db
def test_unreadable_volumes_are_offline_with_the_reason(array):
    (array / "gone.img").symlink_to(array / "deleted-target.img")
    (array / "cg1" / "broken.img").symlink_to(array / "nowhere.img")
    system = services.discover_remote_system(_system(array).pk, actor=services.SYSTEM)
    gone = system.source_volumes.get(identifier="gone.img")
    assert gone.importable_criteria == "Source_Volume_Offline"
    assert "No such file" in gone.importable_reason
    group = system.source_groups.get(identifier="cg1")
    assert group.importable_criteria == "Source_Volume_Offline"
    assert "broken.img" in group.importable_reason


@pytest.mark.django_db
def test_a_symlink_escaping_the_roots_is_offline_and_never_read(array, tmp_path):
    secret = tmp_path / "outside" / "secret.img"
    write_random(secret, MiB)
    (array / "escape.img").symlink_to(secret)
    system = services.discover_remote_system(_system(array).pk, actor=services.SYSTEM)
    escape = system.source_volumes.get(identifier="escape.img")
    assert escape.importable_criteria == "Source_Volume_Offline"
    assert "outside" in escape.importable_reason
    with pytest.raises(SourceError) as refused:
        from importer.drivers import get_driver
        get_driver(system).open_for_read("../../outside/secret.img")
    assert refused.value.code == "path_outside_roots"


@pytest.mark.django_db
def test_rediscovery_updates_sizes_and_marks_missing_volumes_offline(array):
    system = _system(array)
    services.discover_remote_system(system.pk, actor=services.SYSTEM)
    os.remove(array / "db.img")
    write_random(array / "cg1" / "redo.img", 2 * MiB)
    services.discover_remote_system(system.pk, actor=services.SYSTEM)
    assert system.source_volumes.get(identifier="db.img").importable_criteria == \
        "Source_Volume_Offline"
    assert system.source_volumes.get(identifier="cg1/redo.img").size == 2 * MiB
    assert SourceVolume.objects.filter(remote_system=system).count() == 4


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "code"), [
    ("", "path_required"),
    ("/etc", "path_outside_roots"),
    ("{root}/../../etc", "path_outside_roots"),
    ("{root}/missing", "folder_not_found"),
])
def test_a_bad_folder_is_rejected_and_nothing_is_created(source_root, path, code):
    with pytest.raises(ValidationError) as refused:
        services.create_remote_system(name="bad", driver_settings={
            "path": path.format(root=source_root)}, actor=services.SYSTEM)
    assert "driver_settings" in refused.value.field_errors
    assert not RemoteSystem.objects.exists()


@pytest.mark.django_db
def test_a_folder_that_vanished_marks_the_system_unreachable(array):
    system = _system(array)
    array.rename(array.parent / "moved")
    with pytest.raises(SourceError) as failure:
        services.discover_remote_system(system.pk, actor=services.SYSTEM)
    assert failure.value.code == "folder_not_found"
    system.refresh_from_db()
    assert system.status == "Unreachable"
    assert "does not exist" in system.status_message
