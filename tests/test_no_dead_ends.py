"""No dead ends: a source that is gone for good can still be let go of (an admin's forced
cleanup), and a consistency group comes back online once its members do."""

import os

import pytest

from importer import services, states
from importer.errors import PermissionDenied
from importer.models import ImportSession
from tests.conftest import MiB, discovered_system, run_jobs, write_random

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("small_chunks")]


def _session_whose_source_is_gone(source_root, operator_actor, enqueued):
    source = write_random(source_root / "array" / "db.img", 6 * MiB)
    system = discovered_system(source_root / "array")
    session = services.create_import(name="db", source_resource_id=system.source_volumes.get().pk,
                                     actor=operator_actor)
    run_jobs(enqueued)
    for action in ("enable_destination_volume", "start_copy"):
        services.perform_action(session.pk, action, actor=operator_actor)
        run_jobs(enqueued)
    os.remove(source)  # the source array lost the volume
    services.perform_action(session.pk, "cancel", actor=operator_actor)
    run_jobs(enqueued)
    services.perform_action(session.pk, "cleanup", actor=operator_actor)
    run_jobs(enqueued)
    session.refresh_from_db()
    return session


def test_a_gone_source_leads_to_cleanup_failed_which_only_cleanup_may_leave(
        source_root, operator_actor, enqueued):
    session = _session_whose_source_is_gone(source_root, operator_actor, enqueued)
    assert session.state == "Cleanup_Failed"
    assert "restore write access" in session.error_message
    assert session.allowed_actions == {"cleanup"}  # the spec's table, for operators


def test_an_operator_cannot_force_the_cleanup(source_root, operator_actor, enqueued):
    session = _session_whose_source_is_gone(source_root, operator_actor, enqueued)
    with pytest.raises(PermissionDenied):
        services.perform_action(session.pk, "cleanup", actor=operator_actor, force=True)
    session.refresh_from_db()
    assert session.state == "Cleanup_Failed"


def test_an_admins_forced_cleanup_records_what_it_skipped_and_frees_the_slot(
        source_root, operator_actor, admin_user, enqueued):
    session = _session_whose_source_is_gone(source_root, operator_actor, enqueued)
    admin = services.Actor(admin_user, "192.0.2.1")
    services.perform_action(session.pk, "cleanup", actor=admin, force=True)
    run_jobs(enqueued)
    session.refresh_from_db()
    assert session.state == "Cancelled"
    assert session.error_code == "forced_cleanup"
    assert "not restored" in session.error_message
    finished = session.events.get(action="cleanup_succeeded")
    assert finished.details == {"forced": True,
                                "skipped": ["restore the source's host access"]}
    assert session.events.filter(action="cleanup").latest("id").details == {"forced": True}
    holding = ImportSession.objects.filter(admitted_timestamp__isnull=False).exclude(
        state__in=states.RELEASES_SLOT)
    assert not holding.exists()
    services.perform_action(session.pk, "delete", actor=admin)
    assert not ImportSession.objects.filter(pk=session.pk).exists()


def test_the_api_forces_a_cleanup_for_an_admin_only(source_root, operator_actor, admin_user,
                                                     operator, enqueued, client):
    session = _session_whose_source_is_gone(source_root, operator_actor, enqueued)
    url = f"/api/v1/import-sessions/{session.pk}/cleanup/"
    client.force_login(operator)
    refused = client.post(url, {"force": True}, content_type="application/json")
    assert refused.status_code == 403
    client.force_login(admin_user)
    answer = client.post(url, {"force": True}, content_type="application/json")
    assert answer.status_code == 202, answer.content
    run_jobs(enqueued)
    assert client.get(f"/api/v1/import-sessions/{session.pk}/").json()["state"] == "Cancelled"
    assert client.delete(f"/api/v1/import-sessions/{session.pk}/").status_code == 204


def test_the_dashboard_offers_force_cleanup_to_admins_with_what_it_skips(
        source_root, operator_actor, admin_user, operator, enqueued, client):
    session = _session_whose_source_is_gone(source_root, operator_actor, enqueued)
    client.force_login(operator)
    assert "Force Cleanup" not in client.get(f"/imports/{session.pk}/").content.decode()
    client.force_login(admin_user)
    page = client.get(f"/imports/{session.pk}/").content.decode()
    assert "Force Cleanup" in page
    assert "does NOT restore the source" in page
    wrong_name = client.post(f"/imports/{session.pk}/actions/cleanup/",
                             {"force": "true", "confirm_name": "nope"})
    assert "typed exactly" in wrong_name["HX-Trigger"]
    client.post(f"/imports/{session.pk}/actions/cleanup/",
                {"force": "true", "confirm_name": session.name})
    run_jobs(enqueued)
    session.refresh_from_db()
    assert session.state == "Cancelled"


def test_a_group_is_back_online_once_its_members_are(source_root):
    write_random(source_root / "array" / "finance" / "journal.img", MiB)
    target = source_root / "array" / ".store" / "ledger.raw"  # hidden: not a volume
    os.symlink(target, source_root / "array" / "finance" / "ledger.img")  # not there yet
    system = discovered_system(source_root / "array")
    group = system.source_groups.get()
    assert group.importable_criteria == "Source_Volume_Offline"
    assert "ledger.img" in group.importable_reason
    write_random(target, MiB)  # the cause is fixed
    services.discover_remote_system(system.pk, actor=services.SYSTEM)
    group.refresh_from_db()
    assert (group.importable_criteria, group.importable_reason) == (
        "Ready_For_Agentless_Import", "")
    assert group.size == 2 * MiB


def test_a_group_is_back_online_once_a_bad_member_is_removed_for_good(source_root, tmp_path):
    write_random(source_root / "array" / "finance" / "ledger.img", MiB)
    outside = write_random(tmp_path / "elsewhere.img", MiB)
    os.symlink(outside, source_root / "array" / "finance" / "escape.img")  # never read
    system = discovered_system(source_root / "array")
    group = system.source_groups.get()
    assert group.importable_criteria == "Source_Volume_Offline"
    os.remove(source_root / "array" / "finance" / "escape.img")  # the cause is fixed
    services.discover_remote_system(system.pk, actor=services.SYSTEM)
    group.refresh_from_db()
    assert (group.importable_criteria, group.importable_reason) == (
        "Ready_For_Agentless_Import", "")
    assert group.size == MiB
    assert [v.name for v in group.volumes.all()] == ["ledger.img"]


def test_a_discovery_that_runs_too_long_marks_the_system_unreachable(source_root, settings):

    system = discovered_system(source_root)
    services.discovery_timed_out(system.pk)
    system.refresh_from_db()
    assert system.status == "Unreachable"
    assert f"within {settings.FERRY_DISCOVERY_SECONDS} s" in system.status_message


def test_a_discovery_whose_worker_died_is_reported_lost(source_root, operator_actor, enqueued):
    from datetime import timedelta

    from django.utils import timezone

    from importer.models import RemoteSystem

    system = discovered_system(source_root)
    services.request_discovery(system.pk, actor=operator_actor)
    enqueued.clear()  # the worker died with the job
    RemoteSystem.objects.filter(pk=system.pk).update(
        discovery_requested_at=timezone.now() - timedelta(hours=1))
    services.scheduler_tick()
    system.refresh_from_db()
    assert system.status == "Unreachable" and "run it again" in system.status_message


def test_a_forced_end_keeps_the_source_out_of_new_imports_until_rediscovered(
        source_root, operator_actor, admin_user, enqueued):
    session = _session_whose_source_is_gone(source_root, operator_actor, enqueued)
    services.perform_action(session.pk, "cleanup", actor=services.Actor(admin_user), force=True)
    run_jobs(enqueued)
    volume = session.source_volume
    volume.refresh_from_db()
    assert volume.importable_criteria == "Source_Volume_Offline"
    assert "forced to end without restoring" in volume.importable_reason


def test_a_job_that_keeps_failing_gives_up_with_the_error(source_root, operator_actor,
                                                          enqueued, monkeypatch):
    from importer.services import jobs

    write_random(source_root / "array" / "db.img", MiB)
    system = discovered_system(source_root / "array")
    session = services.create_import(name="db", actor=operator_actor,
                                     source_resource_id=system.source_volumes.get().pk)
    run_jobs(enqueued)
    services.perform_action(session.pk, "cancel", actor=operator_actor)
    enqueued.clear()

    def bug(volume):
        raise RuntimeError("a bug, not the source")
    monkeypatch.setattr(jobs, "_discard_destination", bug)
    for attempt in range(jobs.JOB_ATTEMPTS):
        session.refresh_from_db()
        assert session.state == "Cancel_In_Progress", f"gave up after {attempt} attempts"
        with pytest.raises(RuntimeError):
            services.run_cancel(session.pk)
    session.refresh_from_db()
    assert session.state == "Cancel_Failed" and session.pending_job == ""
    assert session.error_code == "job_failed" and "a bug, not the source" in session.error_message
    assert session.allowed_actions == {"cancel"}  # the operator can try again


def test_a_cancel_after_a_setup_that_died_removes_what_the_setup_made(source_root,
                                                                      operator_actor, enqueued):
    from importer.models import Volume
    from importer.services import jobs

    write_random(source_root / "array" / "db.img", MiB)
    system = discovered_system(source_root / "array")
    session = services.create_import(name="db", actor=operator_actor,
                                     source_resource_id=system.source_volumes.get().pk)
    services.scheduler_tick()
    enqueued.clear()  # the setup job's worker dies after creating the destination:
    jobs._create_destination(ImportSession.objects.get(pk=session.pk), MiB)
    assert Volume.objects.count() == 1
    services.perform_action(session.pk, "cancel", actor=operator_actor)
    run_jobs(enqueued)
    session.refresh_from_db()
    assert session.state == "Cancelled"
    assert not Volume.objects.exists()
    assert not os.listdir(source_root.parent / "pool")


def test_only_one_discovery_of_a_system_runs_at_a_time(source_root, operator_actor, enqueued,
                                                       client, operator):
    system = discovered_system(source_root)
    services.request_discovery(system.pk, actor=operator_actor)
    client.force_login(operator)
    answer = client.post(f"/api/v1/remote-systems/{system.pk}/discover/")
    assert answer.status_code == 409 and "already running" in answer.json()["detail"]
    run_jobs(enqueued)
    assert client.post(f"/api/v1/remote-systems/{system.pk}/discover/").status_code == 202


def test_a_group_back_online_under_import_stays_in_progress(source_root, operator_actor,
                                                           enqueued):
    write_random(source_root / "array" / "cg" / "a.img", MiB)
    link = source_root / "array" / "cg" / "b.img"
    write_random(source_root / "array" / ".store" / "b.raw", MiB)
    os.symlink(source_root / "array" / ".store" / "b.raw", link)
    system = discovered_system(source_root / "array")
    group = system.source_groups.get()
    services.create_import(name="cg", source_resource_id=group.pk, actor=operator_actor)
    os.rename(source_root / "array" / ".store" / "b.raw", source_root / "array" / ".b.raw")
    services.discover_remote_system(system.pk, actor=services.SYSTEM)
    group.refresh_from_db()
    assert group.importable_criteria == "Source_Volume_Offline"
    os.rename(source_root / "array" / ".b.raw", source_root / "array" / ".store" / "b.raw")
    services.discover_remote_system(system.pk, actor=services.SYSTEM)
    group.refresh_from_db()
    assert group.importable_criteria == "In_Progress"


def test_a_duplicate_setup_that_lost_the_race_keeps_the_winners_destination(
        source_root, operator_actor, enqueued):
    from importer.services import jobs

    write_random(source_root / "array" / "db.img", MiB)
    system = discovered_system(source_root / "array")
    session = services.create_import(name="db", actor=operator_actor,
                                     source_resource_id=system.source_volumes.get().pk)
    services.scheduler_tick()
    stale = ImportSession.objects.select_related("remote_system", "source_volume").get(
        pk=session.pk)  # what a second, slower setup of the same session loaded
    run_jobs(enqueued)  # the first setup wins
    session.refresh_from_db()
    assert session.state == "Mirror_Enabled"
    jobs.run_setup.__wrapped__(stale, "slow-duplicate")  # finds the session moved on
    session.refresh_from_db()
    assert os.path.exists(session.destination_volume.location)
