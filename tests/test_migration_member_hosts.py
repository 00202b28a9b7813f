"""Group sessions created before member host mappings keep what setup would have done:
each member gets its group's hosts, and the group its volume group's name."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("importer", "0009_host_frontends")]
AFTER = [("importer", "0010_volume_group_name_and_member_hosts")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def back_to_the_latest_schema():
    yield
    executor = MigrationExecutor(connection)
    _migrate(executor.loader.graph.leaf_nodes())  # the tests after this one need it


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("back_to_the_latest_schema")
def test_members_of_existing_groups_get_their_groups_hosts_and_a_volume_group_name():
    apps = _migrate(BEFORE)
    System = apps.get_model("importer", "RemoteSystem")
    Group = apps.get_model("importer", "SourceGroup")
    Volume = apps.get_model("importer", "SourceVolume")
    Session = apps.get_model("importer", "ImportSession")
    host = apps.get_model("importer", "Host").objects.create(name="esx-01")
    system = System.objects.create(name="old-array")
    group = Group.objects.create(remote_system=system, identifier="cg", name="cg")
    volume = Volume.objects.create(remote_system=system, group=group, identifier="cg/a.img",
                                   name="a.img")
    parent = Session.objects.create(name="old", remote_system=system, source_group=group,
                                    destination_resource_type="volume_group", state="Queued")
    parent.hosts.add(host)
    member = Session.objects.create(name="old / a.img", remote_system=system,
                                    source_volume=volume, parent_session=parent,
                                    destination_resource_type="volume", state="Queued")
    apps = _migrate(AFTER)
    Session = apps.get_model("importer", "ImportSession")
    assert Session.objects.get(pk=parent.pk).volume_group_name == f"import-{parent.pk}-cg"
    assert [h.name for h in Session.objects.get(pk=member.pk).hosts.all()] == ["esx-01"]
