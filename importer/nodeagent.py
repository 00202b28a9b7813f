"""This worker as a storage node: it reports its pool (health, free space) when it is ready
and then every FERRY_NODE_HEARTBEAT_SECONDS, and says it stopped when it shuts down.

The heartbeat is a thread in the worker's main process, not a periodic task: a task would
wait behind copies in a busy node's queue (and beat would have to know every node), while
the main process stays free whatever its pool processes run. A killed worker's thread dies
with it, so its node goes Offline after FERRY_NODE_OFFLINE_SECONDS.
"""

from __future__ import annotations

import logging
import socket
import threading
from importlib.metadata import PackageNotFoundError, version

from django.conf import settings
from django.db import connection

from importer import frontend_supervisor, pool
from importer.frontend.server import plugin_available
from importer.services import nodes

log = logging.getLogger(__name__)
_heartbeat: NodeHeartbeat | None = None


def ferry_version() -> str:
    try:
        return version("ferry")
    except PackageNotFoundError:
        return ""


def report() -> None:
    """Measure the pool and report this node once."""
    nodes.report_node(pool.measure_pool(), name=settings.FERRY_NODE_NAME,
                      queue=settings.FERRY_NODE_QUEUE, hostname=socket.gethostname(),
                      version=ferry_version())


class NodeHeartbeat:
    def __init__(self, interval: float):
        self.interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="node-heartbeat", daemon=True)

    def start(self) -> NodeHeartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)  # a report stuck on the database must not hold shutdown

    def _beat(self) -> None:
        try:
            while not self._stopped.wait(self.interval):
                try:
                    report()
                except Exception:  # the database is away: the node may look Offline, no worse
                    log.warning("Could not report storage node %s", settings.FERRY_NODE_NAME)
                finally:
                    connection.close()  # a fresh one each time: a restarted database is fine
        finally:
            connection.close()


def start() -> None:
    """Register now (so the node can take imports as soon as the worker is ready), then
    beat. Called on Celery's worker_ready."""
    global _heartbeat
    pool.prepare_pool()
    try:
        report()
    except Exception:
        log.exception("Could not register storage node %s", settings.FERRY_NODE_NAME)
    finally:
        connection.close()  # the main process's own: its pool processes make their own
    _heartbeat = NodeHeartbeat(settings.FERRY_NODE_HEARTBEAT_SECONDS).start()
    if plugin_available():
        frontend_supervisor.start()
    else:
        log.warning("Storage node %s cannot serve destinations to hosts during imports: "
                    "install Debian's nbdkit and nbdkit-plugin-python. Imports run offline.",
                    settings.FERRY_NODE_NAME)


def stop() -> None:
    """Called on Celery's worker_shutdown: the node is Offline at once."""
    global _heartbeat
    frontend_supervisor.stop()
    if _heartbeat is not None:
        _heartbeat.stop()
        _heartbeat = None
    try:
        nodes.mark_node_stopped(settings.FERRY_NODE_NAME)
    except Exception:
        log.warning("Could not mark storage node %s stopped", settings.FERRY_NODE_NAME)
    finally:
        connection.close()
