"""The nbd driver against real servers (nbdkit, qemu-nbd): settings, listing, TLS, failures."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from importer.drivers.nbd import NbdDriver, parse_uri
from importer.errors import SourceError
from tests import nbd_servers
from tests.nbd_servers import nbdkit_file, qemu_nbd, tls_args, with_tls, write_psk

MiB = 1024 * 1024


@pytest.fixture(autouse=True)
def _tools():
    nbd_servers.require_nbd_tools()


@pytest.fixture
def exports(tmp_path):
    folder = tmp_path / "exports"
    folder.mkdir()
    for name, size in (("finance-db", 3 * MiB), ("finance-log", MiB), ("web", 2 * MiB)):
        with open(folder / name, "wb") as image:
            image.truncate(size)
            image.write(os.urandom(4096))
    return folder


def _code(settings: dict) -> str:
    with pytest.raises(SourceError) as refused:
        NbdDriver.validate_settings(settings)
    return refused.value.code


# --- Settings ----------------------------------------------------------------------------------

@pytest.mark.parametrize("uri, code", [
    (None, "uri_required"),
    ("", "uri_required"),
    (42, "uri_required"),
    ("http://array:10809", "uri_scheme"),
    ("array:10809", "uri_scheme"),
    ("nbd://", "uri_host"),
    ("nbd://array:0", "uri_port"),
    ("nbd://array:70000", "uri_port"),
    ("nbd://array:port", "uri_port"),
    ("nbd://user:secret@array", "uri_credentials"),
    ("nbd://array/vol1", "uri_names_export"),
    ("nbd://array?tls-psk-file=/x", "uri_query"),
    ("nbd+unix:///?socket=relative.sock", "uri_socket"),
    ("nbd+unix:///", "uri_socket"),
    ("nbd+unix://host/?socket=/run/a.sock", "uri_host"),
])
def test_each_way_a_uri_is_wrong_has_its_code(uri, code):
    assert _code({"uri": uri}) == code


def test_good_uris_parse():
    assert parse_uri("nbd://Array.example").port == 10809
    assert parse_uri("nbd://[::1]:10900").host == "::1"
    assert parse_uri("nbds+unix:///?socket=/run/nbd.sock").socket == "/run/nbd.sock"
    assert parse_uri("nbds://array:10900").tls


def test_tls_settings_are_checked(tmp_path):
    psk = write_psk(tmp_path / "keys.psk")
    assert _code({"uri": "nbd://array", "tls_psk_file": str(psk)}) == "tls_needs_nbds"
    assert _code({"uri": "nbds://array"}) == "tls_credentials_required"
    assert _code({"uri": "nbds://array", "tls_psk_file": "keys.psk"}) == "tls_psk_file_invalid"
    assert _code({"uri": "nbds://array", "tls_psk_file": str(tmp_path / "none")}) \
        == "tls_psk_file_missing"
    assert _code({"uri": "nbds://array", "tls_certificates": str(psk)}) \
        == "tls_certificates_missing"  # a file, not a folder
    assert NbdDriver.validate_settings({"uri": "nbds://array", "tls_psk_file": str(psk)}) \
        == {"uri": "nbds://array", "tls_psk_file": str(psk)}


def test_groups_and_unknown_settings_are_checked():
    assert _code({"uri": "nbd://a", "groups": ["x"]}) == "groups_invalid"
    assert _code({"uri": "nbd://a", "groups": {"g": []}}) == "groups_invalid"
    assert _code({"uri": "nbd://a", "groups": {"g": ["v"], "h": ["v"]}}) == "groups_overlap"
    assert _code({"uri": "nbd://a", "path": "/x"}) == "unknown_settings"


# --- Discovery -------------------------------------------------------------------------------

def test_lists_exports_sizes_and_declared_groups_over_a_unix_socket(exports, tmp_path):
    with nbdkit_file(exports, socket=tmp_path / "nbd.sock") as uri:
        driver = NbdDriver({"uri": uri, "groups": {"finance": ["finance-db", "finance-log"]}})
        found = driver.discover()
        assert driver.check_health() < 1
    volumes = {v.identifier: v for v in found.volumes}
    assert {name: v.size for name, v in volumes.items()} == {
        "finance-db": 3 * MiB, "finance-log": MiB, "web": 2 * MiB}
    assert [g.identifier for g in found.groups] == ["finance"]
    assert volumes["finance-db"].group_identifier == "finance"
    assert volumes["web"].group_identifier is None
    assert all(v.readable for v in volumes.values())
    assert volumes["web"].physical_id == f"nbd:unix:{tmp_path / 'nbd.sock'}/web"


def test_lists_over_tcp_with_the_group_convention_read_only_and_description(tmp_path):
    image = tmp_path / "data.img"
    image.write_bytes(os.urandom(MiB))
    port = nbd_servers.free_port()
    with qemu_nbd(image, port=port,
                  extra_args=["--export-name=db/data", "--description=orders database"]):
        found = NbdDriver({"uri": f"nbd://127.0.0.1:{port}"}).discover()
    [volume] = found.volumes
    assert (volume.identifier, volume.name, volume.group_identifier) == ("db/data", "data", "db")
    assert (volume.size, volume.read_only, volume.description) == (MiB, True, "orders database")
    assert [g.name for g in found.groups] == ["db"]


def test_size_of_one_export(exports, tmp_path):
    with nbdkit_file(exports, socket=tmp_path / "nbd.sock") as uri:
        driver = NbdDriver({"uri": uri})
        assert driver.size("finance-log") == MiB
        with pytest.raises(SourceError) as missing:
            driver.size("nope")
    assert missing.value.code == "source_volume_missing"
    assert "nope" in missing.value.message


# --- TLS ---------------------------------------------------------------------------------------

def test_tls_with_the_right_psk_lists_exports(exports, tmp_path):
    psk = write_psk(tmp_path / "keys.psk")
    with nbdkit_file(exports, socket=tmp_path / "nbd.sock", extra_args=tls_args(psk)) as plain:
        uri = with_tls(plain)
        driver = NbdDriver({"uri": uri, "tls_psk_file": str(psk), "tls_username": "ferry"})
        assert len(driver.discover().volumes) == 3


def test_a_wrong_psk_is_a_tls_failure_that_names_the_server(exports, tmp_path):
    psk = write_psk(tmp_path / "server.psk")
    wrong = write_psk(tmp_path / "client.psk")
    with nbdkit_file(exports, socket=tmp_path / "nbd.sock", extra_args=tls_args(psk)) as plain:
        uri = with_tls(plain)
        with pytest.raises(SourceError) as refused:
            NbdDriver({"uri": uri, "tls_psk_file": str(wrong)}).discover()
    assert refused.value.code == "nbd_tls_failed"
    assert uri in refused.value.message


def test_plain_nbd_to_a_tls_only_server_is_refused(exports, tmp_path):
    psk = write_psk(tmp_path / "server.psk")
    with nbdkit_file(exports, socket=tmp_path / "nbd.sock", extra_args=tls_args(psk)) as plain:
        with pytest.raises(SourceError) as refused:
            NbdDriver({"uri": plain}).discover()
    assert refused.value.code == "nbd_listing_refused"
    assert plain in refused.value.message and "nbds://" in refused.value.message


# --- Failures ------------------------------------------------------------------------------

def test_a_refused_connection_names_the_server(tmp_path):
    port = nbd_servers.free_port()
    for uri in (f"nbd://127.0.0.1:{port}", f"nbd+unix:///?socket={tmp_path}/none.sock"):
        with pytest.raises(SourceError) as refused:
            NbdDriver({"uri": uri}).discover()
        assert refused.value.code == "source_unreachable"
        assert uri in refused.value.message


def test_a_server_that_never_answers_times_out(settings):
    settings.FERRY_NBD_CONNECT_TIMEOUT = 1
    silent = socket.create_server(("127.0.0.1", 0))
    accepted = []
    threading.Thread(target=lambda: accepted.append(silent.accept()), daemon=True).start()
    try:
        with pytest.raises(SourceError) as timed_out:
            NbdDriver({"uri": f"nbd://127.0.0.1:{silent.getsockname()[1]}"}).discover()
    finally:
        silent.close()
    assert timed_out.value.code == "nbd_timeout"
    assert "1 s" in timed_out.value.message


@pytest.mark.parametrize("given", [
    {"uri": "nbd://array\x00"},
    {"uri": "nbd://array", "groups": {"g\x00": ["v"]}},
    {"uri": "nbd://array", "groups": {"g": ["v\ud800"]}},
    {"uri": "nbds://array", "tls_psk_file": "/keys\n.psk"},
])
def test_control_characters_in_any_setting_are_refused(given):
    assert _code(given) == "settings_invalid_characters"


def test_unknown_settings_are_named_escaped():
    with pytest.raises(SourceError) as refused:
        NbdDriver.validate_settings({"uri": "nbd://a", "x\x00y": 1})
    assert "\x00" not in refused.value.message and "'x\\x00y'" in refused.value.message
