"""NBD remote systems through the service layer, the API and the dashboard: settings
errors, health checks (latency, unreachable → volumes offline, recovery), and the manual
unmap step that Enable Destination Volume needs where Ferry cannot revoke host access."""

import pytest
from django.urls import reverse

from importer import services
from importer.models import ImportableCriteria, RemoteSystem, SystemStatus
from importer.services.inventory import HEALTH_TASK, request_health_checks
from tests import nbd_servers
from tests.api_helpers import client_for
from tests.conftest import (
    HostFactory,
    MiB,
    RemoteSystemFactory,
    SourceVolumeFactory,
    make_group_session,
    make_volume_session,
    write_random,
)

pytestmark = pytest.mark.django_db


def _nbd_system(uri="nbd://array.example:10809"):
    return RemoteSystemFactory(driver_type="nbd", driver_settings={"uri": uri})


# --- Settings through the API and the dashboard --------------------------------------------

def test_the_api_adds_an_nbd_system_and_names_a_bad_uri(admin_user, enqueued):
    api = client_for(admin_user)
    bad = api.post("/api/v1/remote-systems/", {
        "name": "old", "driver_type": "nbd", "driver_settings": {"uri": "nbd://old:99999"}},
        format="json")
    assert bad.status_code == 400 and "invalid port" in bad.json()["detail"]
    good = api.post("/api/v1/remote-systems/", {
        "name": "old", "driver_type": "nbd",
        "driver_settings": {"uri": "nbd://old.example", "groups": {"db": ["data", "log"]}}},
        format="json")
    assert good.status_code == 201, good.json()
    assert good.json()["driver_type"] == "nbd" and good.json()["latency_ms"] is None
    changed = api.patch(f"/api/v1/remote-systems/{good.json()['id']}/",
                        {"driver_type": "directory"}, format="json")
    assert changed.status_code == 400 and "cannot change" in changed.json()["detail"]


def test_the_dashboard_adds_an_nbd_system(client, admin_user, enqueued):
    client.force_login(admin_user)
    page = client.post(reverse("importer:system-create"), {
        "name": "old", "driver_type": "nbd", "uri": "https://old",
        "groups": "finance: ledger, journal"})
    assert "is not an NBD URI" in page.content.decode()
    created = client.post(reverse("importer:system-create"), {
        "name": "old", "driver_type": "nbd", "uri": "nbd://old.example",
        "groups": "finance: ledger, journal"})
    assert created.status_code == 302
    system = RemoteSystem.objects.get(name="old")
    assert system.driver_settings == {"uri": "nbd://old.example",
                                      "groups": {"finance": ["ledger", "journal"]}}
    edit = client.get(reverse("importer:system-edit", args=[system.pk])).content.decode()
    assert "finance: ledger, journal" in edit and "nbd://old.example" in edit


# --- Health ----------------------------------------------------------------------------------

def test_an_unreachable_server_marks_the_system_and_its_volumes_offline(tmp_path):
    nbd_servers.require_nbd_tools()
    system = _nbd_system(f"nbd+unix:///?socket={tmp_path}/gone.sock")
    system.status = SystemStatus.OK
    system.save()
    ready = SourceVolumeFactory(remote_system=system)
    services.check_health(system.pk)
    system.refresh_from_db()
    ready.refresh_from_db()
    assert system.status == SystemStatus.UNREACHABLE and "gone.sock" in system.status_message
    assert ready.importable_criteria == ImportableCriteria.OFFLINE
    assert "unreachable" in ready.importable_reason and "gone.sock" in ready.importable_reason


def test_a_server_that_answers_again_has_its_latency_and_is_rediscovered(tmp_path, enqueued):
    nbd_servers.require_nbd_tools()
    write_random(tmp_path / "exports" / "lun0", MiB)
    with nbd_servers.nbdkit_file(tmp_path / "exports", socket=tmp_path / "n.sock") as uri:
        system = _nbd_system(uri)
        RemoteSystem.objects.filter(pk=system.pk).update(status=SystemStatus.UNREACHABLE)
        services.check_health(system.pk)
    system.refresh_from_db()
    assert 0 < system.latency_ms < 1000 and system.last_health_check
    assert system.status == SystemStatus.DISCOVERING  # its volumes come back with it


def test_the_scheduler_asks_for_each_stale_health_check_once(enqueued):
    from django.utils import timezone

    system = _nbd_system()
    now = timezone.now()
    assert request_health_checks(now) == 1
    assert request_health_checks(now) == 0  # noted: not sent again until it is stale
    assert enqueued.count((HEALTH_TASK, system.pk)) == 1


# --- The manual unmap step ------------------------------------------------------------------

def test_enable_needs_the_confirmed_manual_step_and_audits_it(operator, enqueued):
    source = SourceVolumeFactory(remote_system=_nbd_system(), name="lun0")
    session = make_volume_session("Mirror_Enabled", source_volume=source)
    session.hosts.add(HostFactory(name="esx-01"))
    api = client_for(operator)
    url = f"/api/v1/import-sessions/{session.pk}/enable-destination-volume/"
    refused = api.post(url, {}, format="json")
    assert refused.status_code == 409
    problem = refused.json()
    assert problem["code"] == "source_unmap_required"
    assert "Unmap host esx-01 from source volume lun0" in problem["arguments"]["manual_step"]
    assert api.get(f"/api/v1/import-sessions/{session.pk}/").json()["manual_step"] == \
        problem["arguments"]["manual_step"]
    session.refresh_from_db()
    assert session.state == "Mirror_Enabled"  # nothing happened

    done = api.post(url, {"source_unmapped_confirmed": True}, format="json")
    assert done.status_code == 202, done.json()
    assert done.json()["source_unmap_confirmed_by"] == operator.username
    event = session.events.get(action="enable_destination_volume")
    assert event.details["source_unmapped_confirmed"] is True
    assert "esx-01" in event.details["manual_step"]


def test_a_directory_source_needs_no_manual_step(operator_actor, enqueued):
    session = make_volume_session("Mirror_Enabled")
    moved = services.perform_action(session.pk, "enable_destination_volume",
                                    actor=operator_actor)
    assert moved.state == "Ready_To_Start_Copy" and not moved.source_unmap_confirmed_by


def test_a_group_confirms_once_for_all_its_members(operator_actor, enqueued):
    group = make_group_session("Mirror_Enabled", ["Mirror_Enabled"] * 2)
    RemoteSystem.objects.filter(pk=group.remote_system_id).update(
        driver_type="nbd", driver_settings={"uri": "nbd://array"})
    with pytest.raises(Exception) as refused:
        services.perform_action(group.pk, "enable_destination_volume", actor=operator_actor)
    assert getattr(refused.value, "code", "") == "source_unmap_required"
    services.perform_action(group.pk, "enable_destination_volume", actor=operator_actor,
                            source_unmapped_confirmed=True)
    assert all(member.source_unmap_confirmed_at for member in group.members.all())


def test_the_details_page_tells_the_truth_about_host_access(client, operator, enqueued):
    source = SourceVolumeFactory(remote_system=_nbd_system(), name="lun0")
    session = make_volume_session("Mirror_Enabled", source_volume=source)
    client.force_login(operator)
    page = client.get(reverse("importer:session-detail", args=[session.pk])).content.decode()
    assert "Not controlled by Ferry" in page and "Unmap every host" in page
    assert "data-manual-step=" in page  # the enable dialog asks for the confirmation
    assert "Ferry removes the source" not in page  # no claim of a protection not applied
