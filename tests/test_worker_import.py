"""A real worker process imports a 256 MiB volume: pause, resume from the checkpoint, cutover."""

import threading
import time

import pytest

from importer import services
from tests.conftest import (
    MiB,
    discovered_system,
    sha256_of,
    wait_for,
    wait_for_state,
    write_random,
)

pytestmark = pytest.mark.integration


class ProgressWatcher(threading.Thread):
    """Samples copied_bytes the whole time, to prove progress never goes backwards."""

    def __init__(self, session_id):
        super().__init__(daemon=True)
        self.session_id, self.samples, self.running = session_id, [], True

    def run(self):
        from django.db import connection

        from importer.models import ImportSession
        try:
            while self.running:
                row = ImportSession.objects.filter(pk=self.session_id).values(
                    "copied_bytes", "progress_percentage").first()
                self.samples.append((row["copied_bytes"], row["progress_percentage"]))
                time.sleep(0.05)
        finally:
            connection.close()

    def stop(self):
        self.running = False
        self.join()


def test_a_volume_is_imported_with_a_pause_and_a_resume(source_root, live_worker,
                                                        operator_actor):
    source = write_random(source_root / "array" / "db.img", 256 * MiB)
    system = discovered_system(source_root / "array")
    session = services.create_import(
        name="db", source_resource_id=system.source_volumes.get().pk, actor=operator_actor,
        throttle_bytes_per_second=64 * MiB)  # about 4 s of copying: time to pause it
    wait_for_state(session, "Mirror_Enabled")
    services.perform_action(session.pk, "enable_destination_volume", actor=operator_actor)
    wait_for(lambda: not (source.stat().st_mode & 0o222), 30, what="the source to go read-only")
    wait_for_state(session, "Ready_To_Start_Copy")
    watcher = ProgressWatcher(session.pk)
    watcher.start()
    services.perform_action(session.pk, "start_copy", actor=operator_actor)

    def copied():
        session.refresh_from_db()
        return session.copied_bytes >= 64 * MiB
    wait_for(copied, 60, what="a quarter of the copy")
    services.perform_action(session.pk, "pause", actor=operator_actor)
    wait_for(lambda: _lease_released(session), 5, what="the copier to let go")
    session.refresh_from_db()
    paused_at = session.copied_bytes
    time.sleep(1.5)
    session.refresh_from_db()
    assert session.state == "Paused" and session.copied_bytes == paused_at, \
        "progress moved while paused"
    assert 0 < paused_at < session.total_bytes
    extents_before = session.copied_extents.count()

    services.perform_action(session.pk, "resume", actor=operator_actor)
    wait_for_state(session, "Ready_For_Cutover", 120)
    watcher.stop()
    resumed = list(session.copied_extents.order_by("start"))[extents_before]
    assert resumed.start == paused_at, "the resumed copy did not continue from the checkpoint"
    copied_bytes = [sample[0] for sample in watcher.samples]
    assert copied_bytes == sorted(copied_bytes), "progress went backwards"
    assert session.average_transfer_rate > 0

    services.perform_action(session.pk, "cutover", actor=operator_actor)
    wait_for_state(session, "Import_Completed")
    assert sha256_of(session.destination_volume.location) == sha256_of(source)
    story = [(e.action, e.to_state) for e in session.events.order_by("id")]
    assert story == [
        ("create", "Queued"), ("setup_succeeded", "Mirror_Enabled"),
        ("enable_destination_volume", "Ready_To_Start_Copy"),
        ("start_copy", "Copy_In_Progress"), ("pause", "Paused"),
        ("resume", "Copy_In_Progress"), ("copy_completed", "Ready_For_Cutover"),
        ("cutover", "Cutover_In_Progress"), ("cutover_succeeded", "Import_Completed")]
    assert session.events.get(action="pause").actor_name == "otto-operator"


def _lease_released(session) -> bool:
    session.refresh_from_db()
    return session.lease_owner == ""
