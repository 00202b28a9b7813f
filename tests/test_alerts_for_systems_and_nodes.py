"""A remote system that becomes unreachable and a storage node that goes offline or
unhealthy raise a Major alert; it clears when the system answers or the node is back."""

from datetime import timedelta

import pytest
from django.utils import timezone

from importer import services
from importer.errors import SourceError
from importer.models import Alert, AlertState, NodeStatus
from importer.pool import PoolReport
from importer.services import alerts, nodes
from importer.services.inventory import _mark_unreachable
from tests.conftest import discovered_system, make_node, write_random

pytestmark = pytest.mark.django_db


def _active(kind):
    return list(Alert.objects.filter(resource_type=kind, state=AlertState.ACTIVE))


def test_an_unreachable_system_alerts_until_discovery_reaches_it(source_root):
    write_random(source_root / "array" / "a.img", 4096)
    system = discovered_system(source_root / "array")
    _mark_unreachable(system, SourceError("source_unreachable", "no route to the array."),
                      services.SYSTEM)
    _mark_unreachable(system, SourceError("source_unreachable", "still no route."),
                      services.SYSTEM)
    [alert] = _active("remote_system")
    assert alert.severity == "Major" and alert.resource_name == system.name
    assert "still no route." in alert.description_l10n  # one alert, kept up to date
    services.discover_remote_system(system.pk, actor=services.SYSTEM)
    assert _active("remote_system") == []


def test_a_node_whose_worker_stops_alerts_until_it_reports_healthy(tmp_path):
    node = make_node("node-z")
    nodes.mark_node_stopped("node-z")
    [alert] = _active("storage_node")
    assert alert.event_code == "storage_node_offline" and alert.resource_id == str(node.pk)
    nodes.report_node(PoolReport(path=str(tmp_path)), name="node-z", queue="q")
    assert _active("storage_node") == []


def test_an_unhealthy_pool_alerts(tmp_path):
    make_node("node-z")
    nodes.report_node(PoolReport(path=str(tmp_path), problem="the pool is full."),
                      name="node-z", queue="q")
    [alert] = _active("storage_node")
    assert alert.event_code == "storage_node_unhealthy" and "full" in alert.description_l10n


def test_a_node_gone_silent_is_found_by_the_scheduler(settings):
    silent = make_node("node-silent", last_heartbeat=timezone.now() - timedelta(hours=1))
    make_node("node-fine")
    assert alerts.check_silent_nodes(timezone.now()) == 1
    [alert] = _active("storage_node")
    assert alert.resource_id == str(silent.pk) and silent.status == NodeStatus.HEALTHY
    alerts.check_silent_nodes(timezone.now())  # every tick: still one alert
    assert len(_active("storage_node")) == 1
