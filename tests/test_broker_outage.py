"""A broker outage mid-copy: Redis stops, comes back empty, and the worker carries on.

The worker runs with the options runferry and docker-compose give it (a test below keeps
them in step). It must not exit while Redis is away; it reconnects, and the copy finishes
with the source's bytes. Redis here keeps nothing on disk, so the restarted one has lost
every queued message: the scheduler's reaper re-sends the copy whose lease expired.
"""

import inspect
import os
import signal
import socket
import subprocess
import time

import kombu.pools
import pytest
import yaml

from importer.models import ImportSession
from tests.conftest import (
    MiB,
    discovered_system,
    sha256_of,
    start_copying,
    wait_for,
    wait_for_state,
    write_random,
)
from tests.live_worker import ROOT, LiveWorker

pytestmark = pytest.mark.integration
REDIS_SERVER = "/usr/bin/redis-server"
OUTAGE_SECONDS = 30  # as long as the outage that killed the worker before


class Redis:
    """A throwaway redis-server on a free port, which the test stops and starts again."""

    def __init__(self, folder):
        self.folder = folder
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = open(self.folder / f"redis-{self.starts}.log", "w")
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self._answers, 10, what=f"redis on port {self.port}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as client:
                client.sendall(b"PING\r\n")
                return client.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)


@pytest.fixture
def redis(tmp_path):
    if not os.path.exists(REDIS_SERVER):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs {REDIS_SERVER} (apt-get install redis-server)")
        pytest.skip(f"{REDIS_SERVER} is not installed")
    server = Redis(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def worker_on_redis(redis, worker_settings, transactional_db, tmp_path, settings, request):
    """A real worker and beat on the test's own Redis; this process enqueues there too."""
    from config.celery import app

    def use_broker(url, transport_options):
        # kombu keeps connection and producer pools in global registries, keyed by broker:
        # empty them (closing a pool in place would leave it cached, closed, for later tests)
        # and drop the app's references, so the next send connects to `url`.
        kombu.pools.reset()
        app._pool = app.amqp._producer_pool = None
        app.conf.broker_url, app.conf.broker_transport_options = url, transport_options

    previous = app.conf.broker_url, app.conf.broker_transport_options
    settings.CELERY_BROKER_URL = redis.url
    use_broker(redis.url, {"visibility_timeout": 3600})
    worker = LiveWorker(tmp_path, {**worker_settings, "CELERY_BROKER_URL": redis.url})
    worker.start()
    yield worker
    worker.stop()
    use_broker(*previous)
    if getattr(request.node, "rep_call", None) and request.node.rep_call.failed:
        print(worker.logs())


def _copied(session: ImportSession) -> int:
    session.refresh_from_db()
    return session.copied_bytes


def test_the_worker_rides_out_a_redis_outage_mid_copy_and_the_copy_finishes(
        source_root, redis, worker_on_redis, operator_actor):
    source = write_random(source_root / "array" / "db.img", 96 * MiB)
    system = discovered_system(source_root / "array")
    session = start_copying(system.source_volumes.get(), operator_actor, "db",
                            throttle_bytes_per_second=4 * MiB)
    wait_for(lambda: _copied(session) >= 12 * MiB, 90, what="the copy to be under way")

    redis.stop()
    stopped = time.monotonic()
    while time.monotonic() - stopped < OUTAGE_SECONDS:
        assert worker_on_redis.worker.poll() is None, (
            f"the worker exited while Redis was away:\n{worker_on_redis.logs()}")
        time.sleep(0.5)
    redis.start()
    session.refresh_from_db()
    assert session.state == "Copy_In_Progress", "the copy finished before Redis came back"

    wait_for_state(session, "Ready_For_Cutover", 180)
    assert worker_on_redis.worker.poll() is None, "the worker exited"
    log = (worker_on_redis.log_dir / "worker-1.log").read_text()
    assert "Connection to broker lost" in log  # the outage really reached the worker
    assert "Connected to " in log.split("Connection to broker lost", 1)[1]  # reconnected
    for unwanted in ("AttributeError", "Unrecoverable error", "CPendingDeprecationWarning"):
        assert unwanted not in log, log[-6000:]
    assert sha256_of(session.destination_volume.location) == sha256_of(source)


# Celery features Ferry does not use; with Redis, restarting them after a lost connection
# logs errors (gossip: "AttributeError: 'NoneType' object has no attribute
# 'connection_errors'"), and mingle adds a second to every start.
WORKER_OPTIONS = ("--without-heartbeat", "--without-gossip", "--without-mingle")


def test_runferry_docker_compose_and_this_test_run_the_worker_with_the_same_options():
    from importer.management.commands import runferry

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    workers = {name: service["command"] for name, service in services.items()
               if name.startswith("worker")}
    assert len(workers) == 2  # two storage nodes
    for option in WORKER_OPTIONS:
        for name, command in workers.items():
            assert option in command, f"docker-compose's {name} lacks {option}"
        assert option in runferry.WORKER_OPTIONS
        assert f'"{option}"' in inspect.getsource(LiveWorker.start_worker)
