"""Storage nodes: what their workers report about their pools, and which node a new import
goes to (the one with the most room, or the operator's choice if it can take it)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db.models import F, Sum
from django.utils import timezone

from importer.models import ImportSession, NodeStatus, StorageNode
from importer.pool import PoolReport
from importer.services import alerts
from importer.states import UNFINISHED
from importer.ui import human_bytes

log = logging.getLogger(__name__)


def report_node(report: PoolReport, *, name: str, queue: str, hostname: str = "",
                version: str = "") -> StorageNode:
    """A worker's heartbeat: register its node, or bring it up to date. Its pool decides
    its health: a missing, unwritable or full pool makes it Unhealthy, with the reason."""
    status = NodeStatus.UNHEALTHY if report.problem else NodeStatus.HEALTHY
    before = StorageNode.objects.filter(name=name).values_list("status", flat=True).first()
    node, _ = StorageNode.objects.update_or_create(name=name, defaults={
        "queue": queue, "hostname": hostname, "version": version,
        "pool_path": report.path, "capacity_bytes": report.capacity_bytes,
        "free_bytes": report.free_bytes, "used_bytes": report.used_bytes,
        "status": status, "status_message": report.problem[:500],
        "last_heartbeat": timezone.now()})
    if before != status or status == NodeStatus.HEALTHY:
        # Healthy clears too: a node found silent (scheduler) comes back with its status.
        alerts.node_status_changed(node, status, report.problem)
    if before != status:
        log.log(logging.WARNING if report.problem else logging.INFO,
                "Storage node %s is %s%s", name, status,
                f": {report.problem}" if report.problem else f" (pool {report.path})")
    return node


def mark_node_stopped(name: str) -> None:
    """A worker that stops says so: its node is Offline at once, not after the threshold."""
    StorageNode.objects.filter(name=name).update(
        status=NodeStatus.OFFLINE, status_message="Its worker stopped.")
    for node in StorageNode.objects.filter(name=name):
        alerts.node_status_changed(node, NodeStatus.OFFLINE, node.status_message)


def reserved_bytes() -> dict[int, int]:
    """What each node's unfinished imports may still write: free space already promised."""
    rows = (ImportSession.objects.filter(storage_node__isnull=False, state__in=UNFINISHED,
                                         source_volume__isnull=False)
            .order_by().values("storage_node")
            .annotate(left=Sum(F("total_bytes") - F("copied_bytes"))))
    return {row["storage_node"]: max(0, row["left"] or 0) for row in rows}


def available_bytes(node: StorageNode, reserved: dict[int, int]) -> int:
    """Room for new destinations: free space, less what is promised and what is kept free."""
    left = node.free_bytes - reserved.get(node.pk, 0) - settings.FERRY_POOL_MIN_FREE_BYTES
    return max(0, left)


def choose_node(requested_id, size: int, errors: dict) -> StorageNode | None:
    """The node for a new import of ``size`` bytes: ``requested_id`` if it can take it, or
    the online, healthy node with the most room. What is wrong goes into ``errors``."""
    nodes = list(StorageNode.objects.all())
    reserved = reserved_bytes()
    if requested_id is not None:
        return _requested(nodes, requested_id, size, reserved, errors)
    usable = [node for node in nodes if not refusal(node, size, reserved)]
    if not usable:
        errors["storage_node"] = [_nowhere(nodes, size, reserved)]
        return None
    return min(usable, key=lambda node: (-available_bytes(node, reserved), node.name))


def _requested(nodes, requested_id, size, reserved, errors) -> StorageNode | None:
    node = next((node for node in nodes if str(node.pk) == str(requested_id)), None)
    if node is None:
        errors["storage_node"] = [f"No storage node with id {requested_id}."]
        return None
    if problem := refusal(node, size, reserved):
        errors["storage_node"] = [f"{problem} Choose another node, or none to let Ferry "
                                  "choose."]
        return None
    return node


def refusal(node: StorageNode, size: int, reserved: dict[int, int]) -> str:
    """Why ``node`` cannot take ``size`` more bytes now, or "" if it can."""
    if not node.is_online:
        return f"Storage node {node.name} is Offline ({node.health_message})."
    if node.status == NodeStatus.UNHEALTHY:
        return f"Storage node {node.name} is Unhealthy ({node.status_message})."
    room = available_bytes(node, reserved)
    if room < size:
        return (f"Storage node {node.name} is too full: it has room for {human_bytes(room)} "
                f"and this import needs {human_bytes(size)}.")
    return ""


def _nowhere(nodes, size, reserved) -> str:
    if not nodes:
        return ("No storage node has registered yet: start a worker (each worker is a node; "
                "make run starts one), then try again.")
    reasons = " ".join(refusal(node, size, reserved) for node in nodes)
    return f"No storage node can take this import. {reasons}"
