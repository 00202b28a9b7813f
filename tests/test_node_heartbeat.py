"""A worker registers its storage node and reports its pool: health, capacity, free and used
space; a node not heard from is Offline; and the Storage Nodes page shows all of it."""

import os
import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from importer import nodeagent
from importer.models import StorageNode
from tests.conftest import MiB, make_node, make_volume_session, wait_for, write_random

pytestmark = pytest.mark.django_db


@pytest.fixture
def this_node(settings, tmp_path):
    settings.FERRY_NODE_NAME = "node-x"
    settings.FERRY_NODE_QUEUE = "ferry.node.node-x"
    settings.FERRY_POOL_DIR = tmp_path / "pool"
    settings.FERRY_POOL_MIN_FREE_BYTES = 0
    return settings.FERRY_POOL_DIR


def test_a_worker_registers_its_node_with_its_pools_space(this_node):
    this_node.mkdir()
    write_random(this_node / "import-1-db.img.raw", 3 * MiB)
    (this_node / "notes.txt").write_text("not a destination")
    nodeagent.report()
    node = StorageNode.objects.get(name="node-x")
    stats = os.statvfs(this_node)
    assert node.queue == "ferry.node.node-x" and node.pool_path == str(this_node)
    assert node.capacity_bytes == stats.f_blocks * stats.f_frsize
    assert 0 < node.free_bytes <= node.capacity_bytes
    assert node.used_bytes == 3 * MiB  # the destination's allocated blocks, nothing else
    assert node.health == "Healthy" and node.status_message == ""
    assert node.hostname and node.version


def test_a_missing_pool_makes_the_node_unhealthy(this_node):
    nodeagent.report()
    node = StorageNode.objects.get(name="node-x")
    assert node.health == "Unhealthy"
    assert node.health_message == f"The pool folder {this_node} is missing."


def test_a_full_pool_makes_the_node_unhealthy(this_node, settings):
    this_node.mkdir()
    settings.FERRY_POOL_MIN_FREE_BYTES = 2**62
    nodeagent.report()
    message = StorageNode.objects.get(name="node-x").health_message
    assert message.startswith(f"The pool {this_node} is full: ")
    assert "FERRY_POOL_MIN_FREE_BYTES" in message


def test_a_pool_that_comes_back_makes_the_node_healthy_again(this_node):
    nodeagent.report()
    this_node.mkdir()
    nodeagent.report()
    assert StorageNode.objects.get(name="node-x").health == "Healthy"


def test_a_node_not_heard_from_is_offline(settings):
    settings.FERRY_NODE_OFFLINE_SECONDS = 30
    node = make_node("quiet", last_heartbeat=timezone.now() - timedelta(seconds=29))
    assert node.health == "Healthy"
    node.last_heartbeat = timezone.now() - timedelta(seconds=31)
    assert node.health == "Offline" and node.tone == "neutral"
    assert node.health_message.startswith("No heartbeat since ")
    assert not make_node("never", last_heartbeat=None).is_online


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_keeps_reporting_and_a_stopped_worker_is_offline_at_once(
        this_node, settings):
    settings.FERRY_NODE_HEARTBEAT_SECONDS = 0.2
    nodeagent.start()
    try:
        first = StorageNode.objects.get(name="node-x").last_heartbeat
        assert this_node.is_dir()  # the worker made its pool folder

        def beat_again():
            return StorageNode.objects.get(name="node-x").last_heartbeat > first
        wait_for(beat_again, 10, what="a heartbeat")
    finally:
        nodeagent.stop()
    node = StorageNode.objects.get(name="node-x")
    assert node.health == "Offline" and node.health_message == "Its worker stopped."
    stopped_at = node.last_heartbeat
    time.sleep(0.5)
    assert StorageNode.objects.get(name="node-x").last_heartbeat == stopped_at  # no more


def test_the_storage_nodes_page_shows_health_capacity_and_sessions(client, viewer, settings):
    settings.FERRY_POOL_MIN_FREE_BYTES = 0
    TiB = 1024**4
    busy = make_node("node-a", capacity_bytes=4 * TiB, free_bytes=1 * TiB, used_bytes=2 * TiB)
    make_node("node-b", status="Unhealthy", status_message="The pool folder /p is missing.")
    make_node("node-c", last_heartbeat=timezone.now() - timedelta(hours=2))
    make_volume_session("Copy_In_Progress", storage_node=busy, name="db")
    make_volume_session("Import_Completed", storage_node=busy, name="web")
    client.force_login(viewer)
    response = client.get(reverse("importer:node-list"))
    body = response.content.decode()
    assert response.status_code == 200
    assert 'hx-trigger="every 5s"' in body
    row = body.split(f'<tr id="node-{busy.pk}"', 1)[1].split("</tr>", 1)[0]
    assert 'tone-success">Healthy' in row and "75% used of 4.4 TB" in row
    assert '>2</a> <span class="small text-body-secondary">(1 unfinished)' in row
    assert "The pool folder /p is missing." in body and ">Unhealthy</span>" in body
    assert ">Offline</span>" in body and "No heartbeat since" in body
    partial = client.get(reverse("importer:node-list"), headers={"HX-Request": "true"})
    assert partial.content.decode().lstrip().startswith('<table id="node-table"')


def test_the_details_and_the_imports_list_show_the_node(client, viewer):
    node_b = make_node("node-b")
    on_b = make_volume_session("Copy_In_Progress", storage_node=node_b, name="on-b")
    make_volume_session("Copy_In_Progress", name="on-1",
                        storage_node=StorageNode.objects.get(name="node-1"))
    client.force_login(viewer)
    detail = client.get(reverse("importer:session-detail", args=[on_b.pk])).content.decode()
    assert "Storage node</dt>" in detail and ">node-b</a>" in detail
    listed = client.get(reverse("importer:session-list"), {"storage_node": node_b.pk})
    assert [session.name for session in listed.context["page"]] == ["on-b"]
    assert 'name="storage_node"' in listed.content.decode()
