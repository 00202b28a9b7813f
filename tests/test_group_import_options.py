"""A consistency-group import's own options: its description, the name of its destination
volume group and the hosts of each member volume, through the service, setup and the API."""

import pytest

from importer import services
from importer.errors import ValidationError
from importer.models import HostVolumeMapping, ImportSession, VolumeGroup
from tests.api_helpers import API, client_for
from tests.conftest import HostFactory, MiB, discovered_system, run_jobs, write_random


@pytest.fixture
def group(source_root):
    for volume in ("a.img", "b.img"):
        write_random(source_root / "array" / "cg-web" / volume, MiB)
    write_random(source_root / "array" / "db.img", MiB)
    return discovered_system(source_root / "array").source_groups.get()


def _members(group):
    return {volume.name: volume.pk for volume in group.volumes.all()}


def _create(group, actor, **options):
    return services.create_import(name=options.pop("name", "web"), source_resource_id=group.pk,
                                  actor=actor, **options)


def _mapped(session) -> dict[str, set[str]]:
    mappings = HostVolumeMapping.objects.filter(
        volume__import_sessions__parent_session=session).select_related("host", "volume")
    found: dict[str, set[str]] = {}
    for member in session.members.select_related("source_volume", "destination_volume"):
        found[member.source_volume.name] = {m.host.name for m in mappings
                                            if m.volume_id == member.destination_volume_id}
    return found


@pytest.mark.django_db(transaction=True)
def test_setup_makes_the_named_volume_group_and_maps_each_member_to_its_hosts(
        group, operator_actor, enqueued):
    esx, web = HostFactory(name="esx-01"), HostFactory(name="web-01")
    members = _members(group)
    session = _create(group, operator_actor, description="Web tier, wave 1",
                      volume_group_name="web-prod", host_ids=[esx.pk],
                      consistency_group_member_host_ids=[
                          {"source_volume_id": members["b.img"], "host_ids": [web.pk, esx.pk]}])
    run_jobs(enqueued)
    session.refresh_from_db()
    assert session.description == "Web tier, wave 1"
    assert session.destination_volume_group.name == "web-prod"
    assert _mapped(session) == {"a.img": {"esx-01"}, "b.img": {"esx-01", "web-01"}}
    assert set(session.hosts.values_list("name", flat=True)) == {"esx-01", "web-01"}
    keys = HostVolumeMapping.objects.values_list("access_key", flat=True)
    assert len(set(keys)) == 3  # each mapping its own key for the front end


@pytest.mark.django_db(transaction=True)
def test_a_member_given_no_hosts_is_not_mapped(group, operator_actor, enqueued):
    esx = HostFactory(name="esx-01")
    members = _members(group)
    session = _create(group, operator_actor, host_ids=[esx.pk],
                      consistency_group_member_host_ids=[
                          {"source_volume_id": members["a.img"], "host_ids": []}])
    run_jobs(enqueued)
    assert _mapped(session) == {"a.img": set(), "b.img": {"esx-01"}}


@pytest.mark.django_db
def test_the_volume_group_is_named_after_the_source_group_unless_that_name_is_taken(
        group, source_root, operator_actor):
    VolumeGroup.objects.create(name="CG-WEB")  # names compare without case, as PowerStore's
    first = _create(group, operator_actor, name="first")
    assert first.volume_group_name == "cg-web-2"
    write_random(source_root / "second" / "cg-web" / "c.img", MiB)
    namesake = discovered_system(source_root / "second", name="second").source_groups.get()
    second = _create(namesake, operator_actor, name="second")  # first's is planned, not made
    assert second.volume_group_name == "cg-web-3"


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "words"), [
    ("taken", "A volume group named taken already exists."),
    ("planned", "Import session other creates a volume group named planned at setup."),
    ("bad\nname", "cannot contain control characters"),
    ("x" * 129, "at most 128 characters"),
])
def test_a_volume_group_name_must_be_new_and_well_formed(group, source_root, operator_actor,
                                                         name, words):
    VolumeGroup.objects.create(name="taken")
    write_random(source_root / "array" / "cg-other" / "c.img", MiB)
    other = services.discover_remote_system(group.remote_system_id, actor=services.SYSTEM)
    _create(other.source_groups.get(name="cg-other"), operator_actor, name="other",
            volume_group_name="planned")
    with pytest.raises(ValidationError) as refused:
        _create(group, operator_actor, volume_group_name=name)
    assert words in " ".join(refused.value.field_errors["volume_group_name"])
    assert not ImportSession.objects.filter(name="web").exists()


@pytest.mark.django_db
def test_member_hosts_must_name_known_hosts_and_the_groups_own_volumes(group, operator_actor):
    members = _members(group)
    stranger = group.remote_system.source_volumes.get(name="db.img")
    for mappings, words in [
        ([{"source_volume_id": members["a.img"], "host_ids": [987654]}], "No host with id 987654"),
        ([{"source_volume_id": stranger.pk, "host_ids": []}], "No member volume of consistency"),
        ([{"host_ids": []}], "needs a source_volume_id"),
    ]:
        with pytest.raises(ValidationError) as refused:
            _create(group, operator_actor, consistency_group_member_host_ids=mappings)
        assert words in " ".join(
            refused.value.field_errors["consistency_group_member_host_ids"])
    with pytest.raises(ValidationError) as refused:
        services.create_import(name="db", source_resource_id=stranger.pk, actor=operator_actor,
                               volume_group_name="x", consistency_group_member_host_ids=[
                                   {"source_volume_id": stranger.pk, "host_ids": []}])
    assert set(refused.value.field_errors) == {"volume_group_name",
                                               "consistency_group_member_host_ids"}
    assert not ImportSession.objects.exists()


@pytest.mark.django_db
def test_the_api_takes_the_same_options(group, operator):
    web = HostFactory(name="web-01")
    members = _members(group)
    body = {"name": "web", "source_resource_id": str(group.pk), "description": "wave 1",
            "volume_group_name": "web-prod", "consistency_group_member_host_ids": [
                {"source_volume_id": str(members["a.img"]), "host_ids": [web.pk]}]}
    created = client_for(operator).post(f"{API}/import-sessions/", body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["volume_group_name"] == "web-prod"
    assert created.json()["description"] == "wave 1"
    session = ImportSession.objects.get(name="web")
    assert list(session.members.get(source_volume__name="a.img").hosts.all()) == [web]
    assert not session.members.get(source_volume__name="b.img").hosts.exists()
    again = client_for(operator).post(f"{API}/import-sessions/", {**body, "name": "web-2"},
                                      format="json")
    assert again.status_code == 400
    assert "creates a volume group named web-prod" in again.json()["errors"][
        "volume_group_name"][0]
