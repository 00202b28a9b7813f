"""Hosts keep running during the import: a real worker serves the destination over NBD
(TLS PSK, one key per mapped host) from Enable Destination Volume on, forwards every host
write to a real NBD source, copies underneath, and cuts over or cancels. Bytes are checked
against what the host wrote (its expected image) and the source."""

import os
import signal

import pytest

from importer import services
from importer.models import Host
from importer.services import frontends
from tests.conftest import MiB, wait_for, wait_for_state, write_random
from tests.frontend_host import ResilientHost

pytestmark = pytest.mark.integration


def _nbd_system(server):
    system = services.create_remote_system(
        name="nbd-array", driver_type="nbd", actor=services.SYSTEM,
        driver_settings={"uri": server.uri})
    return services.discover_remote_system(system.pk, actor=services.SYSTEM)


def enabled_import(system, export: str, actor, host_name: str = "web-01", **options):
    """An import of ``export`` mapped to a new host, enabled: its front end serving."""
    host = Host.objects.create(name=host_name)
    volume = system.source_volumes.get(identifier=export)
    session = services.create_import(name=export, source_resource_id=volume.pk, actor=actor,
                                     host_ids=[host.pk], **options)
    wait_for_state(session, "Mirror_Enabled")
    services.perform_action(session.pk, "enable_destination_volume", actor=actor,
                            source_unmapped_confirmed=True)
    wait_for_state(session, "Ready_To_Start_Copy")
    wait_for(lambda: _serving(session), 30, what="the front end to serve")
    return session


def _serving(session) -> bool:
    session.refresh_from_db()
    volume = session.destination_volume
    volume.refresh_from_db()
    return volume.frontend_state == "serving"


def host_for(session, initial: bytes, seed: int = 1, **options) -> ResilientHost:
    access = frontends.host_access(session)[0]
    host = ResilientHost(access["uri"], access["tls_psk_identity"], access["tls_psk_key"],
                         initial, seed=seed, **options)
    host.connect()
    return host


def test_a_host_reads_through_writes_to_both_sides_and_keeps_its_data_at_cutover(
        writable_exports, writable_nbd_server, frontend_settings, live_worker, operator_actor):
    source = write_random(writable_exports / "db", 32 * MiB)
    original = source.read_bytes()
    system = _nbd_system(writable_nbd_server)
    session = enabled_import(system, "db", operator_actor, throttle_bytes_per_second=8 * MiB)
    host = host_for(session, original)
    assert host.read(len(original), 0) == original, "read-through of an uncopied volume"
    host.write(b"written before the copy" * 1000, 5 * MiB + 17)
    host.flush()
    assert source.read_bytes() == bytes(host.expected), "the write reached the source"
    services.perform_action(session.pk, "start_copy", actor=operator_actor)
    host.start()
    wait_for_state(session, "Ready_For_Cutover", 60)
    services.perform_action(session.pk, "cutover", actor=operator_actor)
    wait_for_state(session, "Import_Completed", 60)
    expected = host.stop()
    assert host.writes > 20
    destination = session.destination_volume.location
    assert open(destination, "rb").read() == expected
    # After cutover the destination alone serves the host: the source is released.
    source_at_cutover = source.read_bytes()
    host.write(b"after cutover" * 100, MiB)
    host.flush()
    assert open(destination, "rb").read() == bytes(host.expected)
    assert source.read_bytes() == source_at_cutover
    host.close()


def test_a_cancel_leaves_every_host_write_on_the_source(
        writable_exports, writable_nbd_server, frontend_settings, live_worker, operator_actor):
    source = write_random(writable_exports / "db", 24 * MiB)
    system = _nbd_system(writable_nbd_server)
    session = enabled_import(system, "db", operator_actor, throttle_bytes_per_second=4 * MiB)
    host = host_for(session, source.read_bytes(), seed=2)
    services.perform_action(session.pk, "start_copy", actor=operator_actor)
    host.start()
    wait_for(lambda: session.refresh_from_db() or session.copied_bytes >= 8 * MiB, 60,
             what="a third of the copy")
    expected = host.stop()
    services.perform_action(session.pk, "cancel", actor=operator_actor)
    wait_for_state(session, "Cancelled", 60)
    assert source.read_bytes() == expected
    cancelled = session.events.get(to_state="Cancelled")
    assert "web-01" in cancelled.details["host_step"]
    host.close()


def test_only_the_mapped_host_with_its_key_connects(
        writable_exports, writable_nbd_server, frontend_settings, live_worker, operator_actor):
    import nbd

    write_random(writable_exports / "db", 8 * MiB)
    write_random(writable_exports / "logs", 8 * MiB)
    system = _nbd_system(writable_nbd_server)
    session = enabled_import(system, "db", operator_actor)
    other = enabled_import(system, "logs", operator_actor, host_name="web-02")
    access = frontends.host_access(session)[0]
    other_access = frontends.host_access(other)[0]
    refused = [
        ("a wrong key", access["tls_psk_identity"], "00" * 32),
        ("an unmapped host", "intruder", access["tls_psk_key"]),
        ("the host of another import", other_access["tls_psk_identity"],
         other_access["tls_psk_key"]),
    ]
    for what, identity, key in refused:
        host = ResilientHost(access["uri"], identity, key, b"\0" * 8 * MiB, seed=3)
        with pytest.raises(nbd.Error, match="handshake|TLS|tls"):
            host.connect(timeout=0)
            pytest.fail(f"{what} was let in")
        host.close()
    plain = nbd.NBD()
    with pytest.raises(nbd.Error):  # no TLS at all
        plain.connect_uri(access["uri"].replace("nbds://", "nbd://"))


def kill_frontend(session) -> None:
    pid_file = frontends.runtime_folder(session.destination_volume) / "frontend.pid"
    os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_a_write_the_source_cannot_take_fails_to_the_host_and_stops_the_import(
        writable_exports, writable_nbd_server, frontend_settings, live_worker, operator_actor):
    import nbd

    write_random(writable_exports / "db", 8 * MiB)
    system = _nbd_system(writable_nbd_server)
    session = enabled_import(system, "db", operator_actor)
    host = host_for(session, (writable_exports / "db").read_bytes())
    host.write(b"reached both sides", 4096)
    writable_nbd_server.kill()  # the source array goes away
    with pytest.raises(nbd.Error):
        host.handle.pwrite(b"never acknowledged", 8192)
    wait_for_state(session, "Cancel_Required", 30)
    session.refresh_from_db()
    assert session.error_code == "forward_failed"
    assert "could not be forwarded to the source" in session.error_message
    host.close()
