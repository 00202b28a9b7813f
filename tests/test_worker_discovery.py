"""Discovery runs in a real worker, with a time limit: a source that never answers marks
the system unreachable instead of holding a web request (or a worker) forever."""

import pytest

from importer import services
from importer.models import RemoteSystem
from tests.conftest import MiB, wait_for, write_random

pytestmark = pytest.mark.integration


def _wait_until_discovered(system) -> RemoteSystem:
    wait_for(lambda: RemoteSystem.objects.get(pk=system.pk).status != "Discovering", 60,
             what="the discovery job to end")
    return RemoteSystem.objects.get(pk=system.pk)


def test_a_discovery_job_finds_the_volumes(source_root, live_worker, operator_actor):
    write_random(source_root / "array" / "db.img", MiB)
    system = services.create_remote_system(
        name="array", driver_settings={"path": str(source_root / "array")},
        actor=services.SYSTEM)
    assert services.request_discovery(system.pk, actor=operator_actor).status == "Discovering"
    system = _wait_until_discovered(system)
    assert system.status == "OK" and system.source_volumes.count() == 1


@pytest.mark.parametrize("live_worker", [{"FERRY_DISCOVERY_SECONDS": "2",
                                          "FERRY_FAILPOINTS": "discovery.listed"}],
                         indirect=True)
def test_a_discovery_that_hangs_is_stopped_by_its_time_limit(source_root, live_worker,
                                                             operator_actor, tmp_path):
    live_worker.kill_worker()  # a worker whose failpoint marker is this test's own
    live_worker.env["FERRY_FAILPOINT_DIR"] = str(tmp_path / "failpoints")
    live_worker.start_worker()
    write_random(source_root / "array" / "db.img", MiB)
    system = services.create_remote_system(
        name="array", driver_settings={"path": str(source_root / "array")},
        actor=services.SYSTEM)
    services.request_discovery(system.pk, actor=operator_actor)
    wait_for((tmp_path / "failpoints" / "discovery.listed").exists, 30,
             what="the discovery job to start")
    system = _wait_until_discovered(system)
    assert system.status == "Unreachable"
    assert "did not finish within 2 s" in system.status_message
