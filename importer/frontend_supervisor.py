"""The storage node's front ends: one nbdkit per destination that hosts may use, started,
watched and stopped by a thread in the worker's main process.

A thread of the main process, like the node's heartbeat: pool processes come and go, and
nbdkit runs with --exit-with-parent, so its parent must be the one process that lives as
long as the worker. Each tick compares what should be served (sessions on this node in a
state with a front end) with what runs: it starts what is missing, restarts a server that
died (and notes it on the session), stops what is no longer wanted, keeps each volume's
key file in step with its host mappings, and turns a failed forwarded write into
Cancel_Required.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time

from django.conf import settings
from django.db import connection

from importer.frontend.runtime import MODE_NAMES, VolumeRuntime
from importer.frontend.server import FrontEnd, free_port, write_psk_file
from importer.models import FrontEndState, ImportSession, Volume
from importer.services import frontends
from importer.services.common import SYSTEM
from importer.services.transitions import advance, record
from importer.states import Event, State

log = logging.getLogger(__name__)
TICK_SECONDS = 0.5
RETRY_START_SECONDS = 5.0
KEY_FILE = "hosts.psk"
RATE_SECONDS = 1.0


class FrontEndSupervisor:
    def __init__(self, interval: float = TICK_SECONDS):
        self.interval = interval
        self.servers: dict[int, FrontEnd] = {}  # by volume id
        self.failed_at: dict[int, float] = {}
        self.counters: dict[int, tuple[float, int, int]] = {}  # (when, read, written bytes)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="frontends", daemon=True)

    def start(self) -> FrontEndSupervisor:
        self._thread.start()
        return self

    def stop(self) -> None:
        """At worker shutdown: the servers go at once (SIGKILL). Safe: a host write they
        had not acknowledged is repaired from the source by the next front end, and the
        hosts reconnect to it."""
        self._stopped.set()
        self._thread.join(timeout=2)
        for volume_id in list(self.servers):
            self.servers.pop(volume_id).kill()

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                self.tick()
            except Exception:  # the database is away: try again next tick
                log.exception("Front-end supervision failed")
            finally:
                connection.close()

    # --- One tick ------------------------------------------------------------------------

    def tick(self) -> None:
        wanted = self._wanted()
        for volume_id in set(self.servers) - set(wanted):
            self._stop(volume_id)
        for session in wanted.values():
            self._supervise(session)

    def _wanted(self) -> dict[int, ImportSession]:
        sessions = (ImportSession.objects
                    .filter(destination_volume__storage_node__name=settings.FERRY_NODE_NAME,
                            state__in=frontends.SERVED)
                    .select_related("destination_volume"))
        return {session.destination_volume_id: session for session in sessions
                if _mode_of(frontends.runtime_folder(session.destination_volume))
                not in ("", "fenced")}

    def _supervise(self, session: ImportSession) -> None:
        volume = session.destination_volume
        self._write_keys(volume)
        server = self.servers.get(volume.pk)
        if server is not None and not server.alive():
            self._note_crash(session, server)
            server = None
        if server is None and self._may_start(volume.pk):
            self._start(session)
        runtime = frontends.open_runtime(volume)
        if runtime is None:
            return
        try:  # one look at the runtime files per tick
            self._report_failed_write(session, runtime.failure())
            self._report_host_rates(volume, runtime.stats())
        finally:
            runtime.close()

    def _may_start(self, volume_id: int) -> bool:
        return time.monotonic() - self.failed_at.get(volume_id, -RETRY_START_SECONDS) \
            >= RETRY_START_SECONDS

    def _start(self, session: ImportSession) -> None:
        volume = session.destination_volume
        folder = frontends.runtime_folder(volume)
        port = volume.frontend_port or free_port(*settings.FERRY_FRONTEND_PORTS,
                                                 settings.FERRY_FRONTEND_ADDRESS)
        params = ["nolock=1"] if settings.FERRY_FRONTEND_NOLOCK else []
        server = FrontEnd(folder, address=settings.FERRY_FRONTEND_ADDRESS, port=port,
                          psk_file=folder / KEY_FILE, params=params)
        try:
            server.start().wait_ready(10)
        except Exception as error:  # nbdkit refused to start: say why on the volume
            server.kill()
            self.failed_at[volume.pk] = time.monotonic()
            self.servers.pop(volume.pk, None)
            _report(volume, FrontEndState.FAILED, port=port, message=str(error)[:500])
            log.warning("%s: the front end did not start: %s", volume.name, error)
            return
        self.servers[volume.pk] = server
        self.failed_at.pop(volume.pk, None)
        _report(volume, FrontEndState.SERVING, port=port, mode=_mode_of(folder))
        log.info("%s: front end serving on %s:%s", volume.name,
                 settings.FERRY_FRONTEND_ADDRESS, port)

    def _note_crash(self, session: ImportSession, server: FrontEnd) -> None:
        volume = session.destination_volume
        self.servers.pop(volume.pk, None)
        code = server.process.returncode if server.process else None
        Volume.objects.filter(pk=volume.pk).update(
            frontend_restarts=volume.frontend_restarts + 1)
        record(session, "frontend_restarted", SYSTEM, session.state, session.state,
               details={"volume": volume.name, "exit_code": code,
                        "log": server.output()[-500:]})

    def _write_keys(self, volume: Volume) -> None:
        """The hosts mapped to the volume, one PSK identity each: only they connect."""
        keys = {mapping.host.name: mapping.access_key
                for mapping in volume.mappings.select_related("host")}
        path = frontends.runtime_folder(volume) / KEY_FILE
        text = "".join(f"{name}:{key}\n" for name, key in sorted(keys.items()))
        if not path.exists() or path.read_text() != text:
            write_psk_file(path, keys)

    def _report_failed_write(self, session: ImportSession, failure: str | None) -> None:
        """A forwarded write the source refused: the host got an error, and the session
        cannot go on (the source may miss what the destination has)."""
        if failure and session.state in frontends.FORWARDING \
                and session.state != State.CANCEL_REQUIRED:
            error = frontends.FrontEndError(
                f"{session.name}: a host write could not be forwarded to the source, so the "
                f"host was told it failed: {failure}", volume=session.destination_volume.name)
            error.code = "forward_failed"
            advance(session.pk, Event.IO_FAILED, expected=session.state, error=error)

    def _report_host_rates(self, volume: Volume, stats: dict[str, int]) -> None:
        """Host I/O rates (bytes/s over the last second or so), for the dashboard."""
        now = time.monotonic()
        last = self.counters.get(volume.pk)
        if last is not None and now - last[0] < RATE_SECONDS:
            return
        self.counters[volume.pk] = (now, stats["read_bytes"], stats["write_bytes"])
        if last is None:
            return
        seconds = now - last[0]
        rates = {"host_read_rate": int((stats["read_bytes"] - last[1]) / seconds),
                 "host_write_rate": int((stats["write_bytes"] - last[2]) / seconds)}
        if (rates["host_read_rate"], rates["host_write_rate"]) != (
                volume.host_read_rate, volume.host_write_rate):
            Volume.objects.filter(pk=volume.pk).update(**rates)

    def _stop(self, volume_id: int) -> None:
        server = self.servers.pop(volume_id)
        self.counters.pop(volume_id, None)
        server.stop()
        volume = Volume.objects.filter(pk=volume_id).first()
        if volume is not None:
            _report(volume, FrontEndState.STOPPED, mode=_mode_of(server.folder))
            Volume.objects.filter(pk=volume_id).update(host_read_rate=0, host_write_rate=0)
            frontends.discard(volume)
        else:
            shutil.rmtree(server.folder, ignore_errors=True)


def _mode_of(folder) -> str:
    try:
        with VolumeRuntime.open(folder) as runtime:
            return MODE_NAMES[runtime.mode]
    except (OSError, ValueError):
        return ""


def _report(volume: Volume, state: str, *, port=None, mode: str = "", message: str = ""):
    changes = {"frontend_state": state, "frontend_message": message}
    if port is not None:
        changes["frontend_port"] = port
    if mode:
        changes["frontend_mode"] = mode
    Volume.objects.filter(pk=volume.pk).update(**changes)


_supervisor: FrontEndSupervisor | None = None


def start() -> None:
    global _supervisor
    _supervisor = FrontEndSupervisor().start()


def stop() -> None:
    if _supervisor is not None:
        _supervisor.stop()
