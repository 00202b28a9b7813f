"""Which storage node a new import goes to: the one with the most room, or the operator's
choice if it can take it; an offline, unhealthy, full or unknown node is a clear 400."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from importer import services
from importer.errors import ValidationError
from importer.models import StorageNode
from tests.api_helpers import API, client_for
from tests.conftest import (
    MiB,
    SourceGroupFactory,
    SourceVolumeFactory,
    make_node,
    make_volume_session,
)
from tests.test_dashboard_pages import _walk

GiB = 1024 * MiB
pytestmark = pytest.mark.django_db


@pytest.fixture
def nodes(storage_node, settings):
    """Three nodes (the default one removed): a has 100 GiB free, b 300 GiB, c 50 GiB."""
    settings.FERRY_POOL_MIN_FREE_BYTES = 0
    storage_node.delete()
    return {name: make_node(name, free_bytes=free * GiB)
            for name, free in (("node-a", 100), ("node-b", 300), ("node-c", 50))}


def _create(actor, *, size=10 * GiB, **options):
    source = SourceVolumeFactory(size=size)
    return services.create_import(name=f"import-{source.identifier}",
                                  source_resource_id=source.pk, actor=actor, **options)


def _refusal(actor, **options) -> str:
    with pytest.raises(ValidationError) as refused:
        _create(actor, **options)
    return " ".join(refused.value.field_errors["storage_node"])


def test_the_node_with_the_most_room_is_chosen(nodes, operator_actor):
    assert _create(operator_actor).storage_node == nodes["node-b"]


def test_room_promised_to_unfinished_imports_is_not_counted_as_free(nodes, operator_actor):
    # node-b has 300 GiB free, but a copy on it may still write 250 GiB of them.
    make_volume_session("Copy_In_Progress", storage_node=nodes["node-b"],
                        source_volume=SourceVolumeFactory(size=260 * GiB),
                        copied_bytes=10 * GiB)
    make_volume_session("Import_Completed", storage_node=nodes["node-a"],  # its bytes are
                        source_volume=SourceVolumeFactory(size=90 * GiB))  # in free_bytes
    assert _create(operator_actor).storage_node == nodes["node-a"]


def test_the_operators_choice_is_kept_when_it_can_take_the_import(nodes, operator_actor):
    session = _create(operator_actor, storage_node_id=nodes["node-c"].pk)
    assert session.storage_node == nodes["node-c"]
    assert session.events.get().details == {"storage_node": "node-c"}


def test_an_offline_node_is_refused_and_never_chosen(nodes, operator_actor):
    StorageNode.objects.filter(name="node-b").update(
        last_heartbeat=timezone.now() - timedelta(minutes=5))
    assert "node-b is Offline (No heartbeat since" in _refusal(
        operator_actor, storage_node_id=nodes["node-b"].pk)
    assert _create(operator_actor).storage_node == nodes["node-a"]


def test_an_unhealthy_node_is_refused_with_its_reason(nodes, operator_actor):
    StorageNode.objects.filter(name="node-a").update(
        status="Unhealthy", status_message="The pool folder /pools/node-a is missing.")
    assert ("Storage node node-a is Unhealthy (The pool folder /pools/node-a is missing.)"
            in _refusal(operator_actor, storage_node_id=nodes["node-a"].pk))


def test_a_node_without_room_for_the_volume_is_refused(nodes, operator_actor):
    message = _refusal(operator_actor, size=60 * GiB, storage_node_id=nodes["node-c"].pk)
    assert "node-c is too full: it has room for 53.7 GB and this import needs 64.4 GB" in message


def test_the_space_kept_free_is_not_room_for_imports(nodes, operator_actor, settings):
    settings.FERRY_POOL_MIN_FREE_BYTES = 45 * GiB
    assert "too full" in _refusal(operator_actor, storage_node_id=nodes["node-c"].pk)


def test_an_unknown_node_is_refused(nodes, operator_actor):
    assert _refusal(operator_actor, storage_node_id=999) == (
        "No storage node with id 999.")


def test_no_node_that_can_take_it_says_why_for_each(nodes, operator_actor):
    message = _refusal(operator_actor, size=400 * GiB)
    assert message.startswith("No storage node can take this import.")
    assert all(f"{name} is too full" in message for name in nodes)


def test_with_no_node_registered_yet_the_operator_is_told_to_start_a_worker(
        storage_node, operator_actor):
    storage_node.delete()
    assert "No storage node has registered yet: start a worker" in _refusal(operator_actor)


def test_a_groups_members_all_live_on_the_groups_node(nodes, operator_actor):
    source = SourceGroupFactory()
    for _ in range(3):
        SourceVolumeFactory(remote_system=source.remote_system, group=source, size=40 * GiB)
    group = services.create_import(name="cg", source_resource_id=source.pk,
                                   actor=operator_actor)
    # 120 GiB in all: node-b is the only one with room for the whole group.
    assert group.storage_node == nodes["node-b"]
    assert {member.storage_node for member in group.members.all()} == {nodes["node-b"]}


def test_a_group_too_big_for_any_one_node_is_refused_whole(nodes, operator_actor):
    source = SourceGroupFactory()
    for _ in range(2):
        SourceVolumeFactory(remote_system=source.remote_system, group=source, size=200 * GiB)
    with pytest.raises(ValidationError) as refused:
        services.create_import(name="cg", source_resource_id=source.pk, actor=operator_actor)
    assert "No storage node can take this import" in str(refused.value.field_errors)


# --- Through the API and the wizard --------------------------------------------------------

def test_the_api_creates_on_the_chosen_node_and_shows_it(nodes, operator):
    source = SourceVolumeFactory()
    response = client_for(operator).post(f"{API}/import-sessions/", {
        "name": "on-c", "source_resource_id": str(source.pk),
        "storage_node": nodes["node-c"].pk}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["storage_node"] == nodes["node-c"].pk


@pytest.mark.parametrize(("node", "words"), [
    ("offline", "is Offline"), ("unknown", "No storage node with id"),
    ("full", "is too full")])
def test_the_api_refuses_a_node_that_cannot_take_the_import_with_a_problem(
        nodes, operator, node, words):
    StorageNode.objects.filter(name="node-a").update(last_heartbeat=None)
    node_id = {"offline": nodes["node-a"].pk, "unknown": 4242, "full": nodes["node-c"].pk}[node]
    source = SourceVolumeFactory(size=70 * GiB)
    response = client_for(operator).post(f"{API}/import-sessions/", {
        "name": "refused", "source_resource_id": str(source.pk), "storage_node": node_id},
        format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert words in " ".join(problem["errors"]["storage_node"])


def test_the_api_lists_nodes_with_their_health(nodes, viewer):
    StorageNode.objects.filter(name="node-c").update(
        last_heartbeat=timezone.now() - timedelta(hours=1))
    make_volume_session("Copy_In_Progress", storage_node=nodes["node-a"])
    response = client_for(viewer).get(f"{API}/storage-nodes/")
    assert response.status_code == 200
    rows = {row["name"]: row for row in response.json()["results"]}
    assert rows["node-a"]["status"] == "Healthy" and rows["node-a"]["unfinished_sessions"] == 1
    assert rows["node-c"]["status"] == "Offline"
    assert rows["node-c"]["status_message"].startswith("No heartbeat since")
    detail = client_for(viewer).get(f"{API}/storage-nodes/{nodes['node-b'].pk}/").json()
    assert detail["queue"] == "ferry.node.node-b" and detail["free_bytes"] == 300 * GiB
    assert client_for(viewer).post(f"{API}/storage-nodes/", {}).status_code in (403, 405)


@pytest.mark.django_db(transaction=True)
def test_the_wizard_creates_on_the_chosen_node(client, operator, nodes, source_root,
                                               enqueued):
    from tests.conftest import discovered_system, write_random

    write_random(source_root / "array" / "db.img", MiB)
    system = discovered_system(source_root / "array")
    client.force_login(operator)
    volume = system.source_volumes.get()
    response = _walk(client, system, [str(volume.pk)], storage_node=str(nodes["node-c"].pk))
    assert response.status_code == 302
    assert volume.import_sessions.get().storage_node == nodes["node-c"]


def test_the_wizard_says_why_a_node_was_refused(client, operator, nodes, source_root):
    from tests.conftest import discovered_system, write_random

    write_random(source_root / "array" / "db.img", MiB)
    system = discovered_system(source_root / "array")
    StorageNode.objects.filter(name="node-c").update(status="Offline",
                                                     status_message="Its worker stopped.")
    client.force_login(operator)
    response = _walk(client, system, [str(system.source_volumes.get().pk)],
                     storage_node=str(nodes["node-c"].pk))
    body = response.content.decode()
    assert response.status_code == 200
    assert "Storage node node-c is Offline (Its worker stopped.)" in body


def test_the_review_step_names_the_node(client, operator, nodes, source_root):
    from tests.conftest import discovered_system, write_random

    write_random(source_root / "array" / "db.img", MiB)
    system = discovered_system(source_root / "array")
    client.force_login(operator)
    answers = {"remote_system": system.pk, "resources": [str(system.source_volumes.get().pk)],
               "hosts": [], "name": "n", "schedule": "now",
               "storage_node": str(nodes["node-a"].pk), "step": "options", "go": "next"}
    body = client.post(reverse("importer:import-create"), answers).content.decode()
    assert "Storage node</dt><dd class=\"col-sm-9\">node-a</dd>" in body


@pytest.mark.django_db
@pytest.mark.parametrize(("copying", "each"), [(1, 4), (2, 2), (3, 1), (8, 1)])
def test_a_node_shares_its_nbd_connections_among_its_running_copies(copying, each, settings):
    from importer.copying import connections_for

    settings.FERRY_NBD_CONNECTIONS = 4
    node, other = make_node("node-a"), make_node("node-b")
    soon = timezone.now() + timedelta(seconds=10)
    sessions = [make_volume_session("Copy_In_Progress", storage_node=node, pending_job="copy",
                                    lease_expires_at=soon) for _ in range(copying)]
    make_volume_session("Copy_In_Progress", storage_node=other, pending_job="copy",
                        lease_expires_at=soon)  # another node's copy takes nothing here
    make_volume_session("Copy_In_Progress", storage_node=node, pending_job="copy",
                        lease_expires_at=timezone.now() - timedelta(seconds=1))  # a dead one
    assert connections_for(sessions[0]) == each
