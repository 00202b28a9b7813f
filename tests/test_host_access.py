"""What hosts need during an import, on the dashboard and in the API: the front end's state,
where each mapped host connects, and its key (only for roles that operate imports)."""

import pytest
from django.urls import reverse

from importer.models import Host, HostVolumeMapping, ImportEvent, Volume
from tests.api_helpers import API, client_for, session_url
from tests.conftest import make_group_session, make_volume_session

KEY = "ab" * 32


def serve(session, host_name: str = "web-01", *, key: str = KEY, **frontend) -> Volume:
    """Give ``session`` an enabled destination whose front end reports ``frontend``."""
    values = {"frontend_state": "serving", "frontend_port": 10809, "frontend_mode": "forward",
              "frontend_restarts": 2, "host_read_rate": 3_000_000,
              "host_write_rate": 1_500_000, **frontend}
    volume = Volume.objects.create(name=f"dest-{session.pk}", size=4 << 20,
                                   location=f"/pool/dest-{session.pk}", is_read_only=False,
                                   **values)
    host, _ = Host.objects.get_or_create(name=host_name)
    HostVolumeMapping.objects.create(host=host, volume=volume, access_key=key)
    session.destination_volume = volume
    session.save(update_fields=["destination_volume"])
    return volume


def _details(client, user, session) -> str:
    client.force_login(user)
    response = client.get(reverse("importer:session-detail", args=[session.pk]))
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.django_db
def test_the_details_show_the_front_end_and_the_key_only_to_operators(client, operator,
                                                                        viewer, settings):
    settings.FERRY_FRONTEND_HOST = "ferry-node-1.example"
    session = make_volume_session("Copy_In_Progress", current_transfer_rate=50_000_000)
    serve(session)
    html = _details(client, operator, session)
    assert "Host access" in html
    assert 'data-frontend-state="serving"' in html and ">Serving<" in html
    assert "Forwarding writes to the source" in html
    assert "<dt class=\"col-sm-3\">Restarts</dt><dd class=\"col-sm-9\">2</dd>" in html
    assert "3.0 MB/s read · 1.5 MB/s written" in html  # next to the copy rate, and per volume
    assert "ferry-node-1.example" in html and "10809" in html
    assert "Show key" in html and KEY in html and f"web-01:{KEY}" in html
    uri = "nbds://web-01@ferry-node-1.example:10809/?tls-psk-file=/etc/ferry/dest-"
    assert f"nbdinfo &#x27;{uri}" in html
    assert "nbdfuse -P" in html and "losetup --find --show" in html
    assert "tls-creds-psk,id=tls0,endpoint=client,dir=/etc/ferry/dest-" in html

    client.logout()
    html = _details(client, viewer, session)
    assert "web-01" in html and "ferry-node-1.example" in html and "nbdinfo" in html
    assert KEY not in html and "Show key" not in html
    assert "Hidden: your role can view imports but not operate them." in html


@pytest.mark.django_db
def test_a_failed_front_end_shows_its_message_and_a_cut_over_one_says_so(client, operator):
    failed = make_volume_session("Ready_To_Start_Copy")
    serve(failed, frontend_state="failed", frontend_message="nbdkit exited: port in use")
    html = _details(client, operator, failed)
    assert ">Failed<" in html and "nbdkit exited: port in use" in html
    completed = make_volume_session("Import_Completed")
    serve(completed, "web-02", frontend_mode="cut_over")
    assert "Serving from the destination only" in _details(client, operator, completed)


@pytest.mark.django_db
def test_an_enabled_import_whose_node_cannot_serve_says_so(client, operator):
    session = make_volume_session("Ready_To_Start_Copy")
    serve(session, frontend_state="", frontend_port=None, frontend_mode="")
    html = _details(client, operator, session)
    assert "No front end was started for" in html
    assert "nbdkit-plugin-python" in html and "runs offline" in html


@pytest.mark.django_db
def test_before_enable_there_is_no_host_access_panel(client, operator):
    session = make_volume_session("Mirror_Enabled")
    volume = serve(session, frontend_state="", frontend_port=None, frontend_mode="")
    Volume.objects.filter(pk=volume.pk).update(is_read_only=True)
    assert "Host access" not in _details(client, operator, session)


@pytest.mark.django_db
def test_a_cancelled_import_tells_the_operator_to_re_point_the_hosts(client, viewer):
    session = make_volume_session("Cancelled")
    serve(session, frontend_state="stopped", frontend_mode="fenced")
    step = "Re-point web-01 at the source db: it holds every write they made through Ferry."
    ImportEvent.objects.create(session=session, session_name=session.name, action="cancel",
                               from_state="Cancel_In_Progress", to_state="Cancelled",
                               details={"host_step": step})
    html = _details(client, viewer, session)
    assert "ferry-host-step" in html and step in html
    assert ">Stopped<" in html and "Fenced: no host I/O" in html


@pytest.mark.django_db
def test_the_row_shows_host_io_next_to_the_copy_rate(client, viewer):
    session = make_volume_session("Copy_In_Progress", current_transfer_rate=50_000_000)
    serve(session)
    client.force_login(viewer)
    html = client.get(reverse("importer:session-row", args=[session.pk]),
                      HTTP_HX_REQUEST="true").content.decode()
    assert "50.0 MB/s" in html and "hosts ↓3.0 MB/s ↑1.5 MB/s" in html


# --- The API ---------------------------------------------------------------------------------

@pytest.mark.django_db
def test_the_api_gives_the_key_only_to_roles_that_operate(operator, viewer, settings):
    settings.FERRY_FRONTEND_HOST = "ferry-node-1.example"
    session = make_volume_session("Copy_In_Progress")
    serve(session)
    mine = client_for(operator).get(session_url(session.pk)).json()
    assert mine["host_access"] == [{
        "host": "web-01", "volume": f"dest-{session.pk}", "state": "serving",
        "mode": "forward", "uri": "nbds://ferry-node-1.example:10809/",
        "address": "ferry-node-1.example", "port": 10809, "tls_psk_identity": "web-01",
        "tls_psk_key": KEY, "psk_file_line": f"web-01:{KEY}"}]
    assert (mine["host_read_rate"], mine["host_write_rate"]) == (3_000_000, 1_500_000)
    theirs = client_for(viewer).get(session_url(session.pk)).json()
    assert len(theirs["host_access"]) == 1
    assert "tls_psk_key" not in theirs["host_access"][0]
    assert "psk_file_line" not in theirs["host_access"][0]
    assert KEY not in str(theirs)
    assert theirs["host_access"][0]["port"] == 10809


@pytest.mark.django_db
def test_a_groups_host_rates_are_its_members_sum_and_its_access_lists_each(operator):
    group = make_group_session("Copy_In_Progress", ["Copy_In_Progress"] * 2)
    members = list(group.members.order_by("name"))
    serve(members[0], "web-01", host_read_rate=1000, host_write_rate=10)
    serve(members[1], "web-02", key="cd" * 32, host_read_rate=2000, host_write_rate=20)
    client = client_for(operator)
    detail = client.get(session_url(group.pk)).json()
    assert (detail["host_read_rate"], detail["host_write_rate"]) == (3000, 30)
    assert [m["host_read_rate"] for m in detail["members"]] == [1000, 2000]
    assert sorted(a["host"] for a in detail["host_access"]) == ["web-01", "web-02"]
    listed = client.get(f"{API}/import-sessions/?parent_session__isnull=true").json()
    row = next(r for r in listed["results"] if r["id"] == group.pk)
    assert (row["host_read_rate"], row["host_write_rate"]) == (3000, 30)
    assert "host_access" not in row  # reads every destination's mappings: detail only
    volume = client.get(f"{API}/volumes/{members[1].destination_volume_id}/").json()
    assert (volume["host_read_rate"], volume["frontend_state"]) == (2000, "serving")


@pytest.mark.django_db
def test_a_session_without_a_destination_reports_no_host_io(viewer):
    session = make_volume_session("Queued")
    body = client_for(viewer).get(session_url(session.pk)).json()
    assert (body["host_read_rate"], body["host_write_rate"], body["host_access"]) == (0, 0, [])


# --- The commands, for real -----------------------------------------------------------------

def test_the_host_commands_connect_to_a_running_front_end(tmp_path):
    """nbdinfo, nbdsh and qemu-img, exactly as the panel prints them (with the key folder
    under tmp_path instead of /etc/ferry), against a real front end with TLS PSK."""
    import os
    import shlex
    import shutil
    import subprocess

    from importer import ui
    from importer.frontend.runtime import MiB
    from importer.frontend.server import FrontEnd, free_port, generate_psk, write_psk_file
    from tests import nbd_servers
    from tests.frontend_host import build_volume

    nbd_servers.require_nbd_tools(frontend=True)
    image = tmp_path / "source.img"
    runtime = build_volume(tmp_path / "volume", 2 * MiB, {"path": str(image)}, image)
    key = generate_psk()
    port = free_port(20000, 30000)
    entry = {"host": "web-01", "volume": "db", "address": "127.0.0.1", "port": port,
             "tls_psk_identity": "web-01", "tls_psk_key": key,
             "psk_file_line": f"web-01:{key}"}
    commands = ui.host_commands(entry, key_folder=str(tmp_path / "keys"))
    (tmp_path / "keys" / "db").mkdir(parents=True)
    write_psk_file(commands["psk_file"], {"web-01": key})  # what the save_key line writes
    server_keys = write_psk_file(tmp_path / "server.psk", {"web-01": key})

    # As on a Debian host: nbdsh runs the system python3 (python3-libnbd), not a venv's.
    debian = {**os.environ, "PATH": f"/usr/bin:/bin:{os.environ.get('PATH', '')}"}

    def run(command: str) -> str:
        done = subprocess.run(shlex.split(command), capture_output=True, text=True,
                              timeout=30, env=debian)
        assert done.returncode == 0, f"{command}: {done.stderr}"
        return done.stdout

    try:
        with FrontEnd(runtime.folder, port=port, psk_file=server_keys):
            assert "export-size: 2097152" in run(commands["check"])
            assert run(commands["nbdsh"]).strip() == str(2 * MiB)
            if shutil.which("qemu-img"):
                assert "virtual size: 2 MiB" in run(commands["qemu_img"])
            if os.access("/dev/fuse", os.R_OK | os.W_OK) and shutil.which("nbdfuse"):
                _mount_with_nbdfuse(commands, tmp_path, debian)
            wrong = ui.host_commands({**entry, "tls_psk_identity": "intruder"},
                                     key_folder=str(tmp_path / "keys"))
            refused = subprocess.run(shlex.split(wrong["check"]), capture_output=True,
                                     timeout=30)
            assert refused.returncode != 0  # an identity the file does not hold
    finally:
        runtime.close()


def _mount_with_nbdfuse(commands: dict, tmp_path, env) -> None:
    """The panel's nbdfuse line (its first line, without the trailing &), mounted under
    tmp_path: the volume appears as a file of its size."""
    import shlex
    import subprocess
    import time

    line = commands["nbdfuse"].splitlines()[0].split(" && ", 1)[1].rstrip(" &")
    mount = tmp_path / "mnt"
    mount.mkdir()
    argv = shlex.split(line.replace(commands["mount_dir"], str(mount)).replace(
        "/run/", f"{tmp_path}/"))
    fuse = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while not (mount / "disk").exists() and time.monotonic() < deadline:
            if fuse.poll() is not None:
                output = fuse.stdout.read().decode()
                if "fuse" in output.lower() and "permi" in output.lower():
                    pytest.skip(f"FUSE mounts are not permitted here: {output}")
                raise AssertionError(f"nbdfuse exited: {output}")
            time.sleep(0.1)
        assert (mount / "disk").stat().st_size == 2 << 20
        with open(mount / "disk", "rb") as disk:
            assert len(disk.read(65536)) == 65536
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
        try:
            fuse.wait(timeout=10)
        except subprocess.TimeoutExpired:
            fuse.kill()
