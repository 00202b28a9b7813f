"""Only hosts mapped to a volume reach its front end: TLS PSK per host on TCP, and the
optional address allow-list."""

from __future__ import annotations

import pytest

from importer.frontend.runtime import MiB
from importer.frontend.server import FrontEnd, free_port, generate_psk, write_psk_file
from tests import nbd_servers
from tests.frontend_host import build_volume


@pytest.fixture(autouse=True)
def tools():
    nbd_servers.require_nbd_tools(frontend=True)


@pytest.fixture
def runtime(tmp_path):
    image = tmp_path / "source.img"
    runtime = build_volume(tmp_path / "volume", 2 * MiB, {"path": str(image)}, image)
    yield runtime
    runtime.close()


def connect(uri: str):
    import nbd

    handle = nbd.NBD()
    handle.set_uri_allow_local_file(True)  # ?tls-psk-file=
    handle.connect_uri(uri)
    return handle


def test_psk_files_are_private_and_in_psktools_format(tmp_path):
    key = generate_psk()
    assert len(bytes.fromhex(key)) == 32
    path = write_psk_file(tmp_path / "keys.psk", {"host-a": key, "host-b": generate_psk()})
    assert path.read_text().splitlines()[0] == f"host-a:{key}"
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ValueError):
        write_psk_file(tmp_path / "bad.psk", {"a:b": key})


def test_free_port_skips_a_port_in_use():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert free_port(port, port + 50) != port


def test_only_a_mapped_host_with_its_own_key_connects(tmp_path, runtime):
    import nbd

    host_key = generate_psk()
    server_keys = write_psk_file(tmp_path / "volume.psk", {"host-a": host_key})
    port = free_port(20000, 30000)
    with FrontEnd(runtime.folder, port=port, psk_file=server_keys) as front_end:
        mapped = write_psk_file(tmp_path / "host-a.psk", {"host-a": host_key})
        assert connect(front_end.uri("host-a", mapped)).get_size() == 2 * MiB

        wrong_key = write_psk_file(tmp_path / "wrong.psk", {"host-a": generate_psk()})
        unmapped = write_psk_file(tmp_path / "host-b.psk", {"host-b": generate_psk()})
        for identity, keys in (("host-a", wrong_key), ("host-b", unmapped)):
            with pytest.raises(nbd.Error):
                connect(front_end.uri(identity, keys))
        with pytest.raises(nbd.Error):  # and no way around TLS
            connect(f"nbd://127.0.0.1:{port}/")
