"""The admin site through the test client: every page renders, actions go through the
services and report each row, and what the services own stays read-only."""

import pytest
from django.contrib import admin, messages
from django.contrib.messages import get_messages
from django.contrib.messages.storage.cookie import CookieStorage
from django.test import RequestFactory
from django.urls import reverse

from importer import services
from importer.admin import RemoteSystemAdmin, force_cancel_sessions
from importer.errors import ValidationError
from importer.models import (
    CopiedExtent,
    Host,
    HostVolumeMapping,
    IdempotencyRecord,
    ImportEvent,
    ImportSession,
    RemoteSystem,
    Volume,
    VolumeGroup,
)
from importer.services import alerts, job_records, samples
from tests.conftest import (
    RemoteSystemFactory,
    discovered_system,
    make_group_session,
    make_session,
    run_jobs,
    write_random,
)

MODELS = [model for model in admin.site._registry if model._meta.app_label == "importer"]
CHANGELIST = reverse("admin:importer_importsession_changelist")


def _staff(user):
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    return user


@pytest.fixture
def staff_admin(admin_user):
    return _staff(admin_user)


@pytest.fixture
def staff_operator(operator):
    return _staff(operator)


@pytest.fixture
def superuser(db):
    from django.contrib.auth.models import User

    return User.objects.create_superuser("sam-super", password="correct horse battery staple")


@pytest.fixture
def one_of_each(operator_actor):
    """A row of every model, written the way Ferry writes them where a service exists."""
    session = make_session("volume", "Copy_In_Progress", name="vol-1")
    services.perform_action(session.pk, "pause", actor=operator_actor)
    make_group_session("Paused", ["Paused", "Paused"], name="cg-1")
    CopiedExtent.objects.create(session=session, start=0, end=1024, chunk_size=1024,
                                digests=[""])
    samples.record_transfer_sample(session.pk, bytes_per_second=1024, copied_bytes=1024)
    group = VolumeGroup.objects.create(name="dest-cg-1")
    volume = Volume.objects.create(name="dest-vol-1", size=1024, location="/pool/dest-vol-1",
                                   volume_group=group)
    host = Host.objects.create(name="esx-01")
    HostVolumeMapping.objects.create(host=host, volume=volume)
    IdempotencyRecord.objects.create(user=operator_actor.user, key="k-1", method="POST",
                                     path="/api/v1/import_session", request_hash="0" * 64,
                                     status_code=201, response_body={"id": session.pk})
    failed = make_session("volume", "Failed", name="vol-failed")
    alerts.session_entered(failed, "Failed")
    job_records.session_job_queued(session, "copy")
    return session


def _url(model, view, *args):
    return reverse(f"admin:importer_{model._meta.model_name}_{view}", args=args)


def _act(client, action, *sessions, url=CHANGELIST):
    response = client.post(url, {"action": action,
                                 "_selected_action": [s.pk for s in sessions]})
    return response, [(m.level, str(m)) for m in get_messages(response.wsgi_request)]


def _state(session) -> str:
    return ImportSession.objects.get(pk=session.pk).state


# --- Pages ------------------------------------------------------------------------------------

def test_every_model_is_registered():
    from django.apps import apps

    assert set(MODELS) == set(apps.get_app_config("importer").get_models())


@pytest.mark.django_db
@pytest.mark.parametrize("model", [m for m in MODELS if m is not IdempotencyRecord],
                         ids=lambda m: m.__name__)
def test_every_changelist_and_change_page_renders_for_a_staff_admin(client, staff_admin,
                                                                     one_of_each, model):
    client.force_login(staff_admin)
    assert client.get(_url(model, "changelist")).status_code == 200
    obj = model.objects.first()
    assert client.get(_url(model, "change", obj.pk)).status_code == 200


@pytest.mark.django_db
def test_the_index_lists_the_models_a_staff_admin_may_see(client, staff_admin):
    client.force_login(staff_admin)
    page = client.get(reverse("admin:index")).content.decode()
    assert "Import sessions" in page and "Copied extents" in page and "Import events" in page
    assert "Idempotency records" not in page


@pytest.mark.django_db
def test_idempotency_records_are_shown_to_superusers_only(client, staff_admin, superuser,
                                                         one_of_each):
    record = IdempotencyRecord.objects.get()
    client.force_login(staff_admin)
    assert client.get(_url(IdempotencyRecord, "changelist")).status_code == 403
    client.force_login(superuser)
    assert client.get(_url(IdempotencyRecord, "changelist")).status_code == 200
    assert client.get(_url(IdempotencyRecord, "change", record.pk)).status_code == 200


@pytest.mark.django_db
def test_the_session_changelist_costs_the_same_queries_for_5_or_30_sessions(
        client, staff_admin, django_assert_max_num_queries):
    client.force_login(staff_admin)
    make_group_session("Paused", ["Paused", "Paused"])
    for _ in range(2):
        make_session("volume", "Copy_In_Progress")
    assert ImportSession.objects.count() == 5
    with django_assert_max_num_queries(20) as few:
        assert client.get(CHANGELIST).status_code == 200
    for _ in range(25):
        make_session("volume", "Ready_For_Cutover")
    assert ImportSession.objects.count() == 30
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get(CHANGELIST).status_code == 200


@pytest.mark.django_db
def test_the_session_page_shows_its_events_newest_first_and_read_only(client, staff_admin,
                                                                      operator_actor):
    session = make_session("volume", "Copy_In_Progress", name="vol-1")
    services.perform_action(session.pk, "pause", actor=operator_actor)
    services.perform_action(session.pk, "resume", actor=operator_actor)
    client.force_login(staff_admin)
    page = client.get(_url(ImportSession, "change", session.pk)).content.decode()
    assert page.index("resume") < page.index("pause")
    assert 'name="events-0-action"' not in page  # shown as text, not as inputs


# --- Actions go through the services ------------------------------------------------------------

@pytest.mark.django_db
def test_pausing_a_copy_from_the_changelist_pauses_it_and_records_an_event(client,
                                                                          staff_admin):
    session = make_session("volume", "Copy_In_Progress", name="vol-1")
    client.force_login(staff_admin)
    response, said = _act(client, "pause_sessions", session)
    assert response.status_code == 302
    assert _state(session) == "Paused"
    event = ImportEvent.objects.get(session=session)
    assert (event.action, event.actor_name, event.from_state, event.to_state) == (
        "pause", "ada-admin", "Copy_In_Progress", "Paused")
    assert event.client_address == "127.0.0.1"
    assert said == [(messages.SUCCESS, "vol-1: paused (now Paused)")]


@pytest.mark.django_db
def test_a_refused_pause_is_reported_and_changes_nothing(client, staff_admin):
    session = make_session("volume", "Ready_For_Cutover", name="vol-2")
    client.force_login(staff_admin)
    response, said = _act(client, "pause_sessions", session)
    assert response.status_code == 302
    assert _state(session) == "Ready_For_Cutover"
    assert not ImportEvent.objects.filter(session=session).exists()
    assert said == [(messages.WARNING, "vol-2: refused: pause is not allowed while vol-2 is "
                                       "Ready For Cutover. Allowed: cancel, cutover.")]


@pytest.mark.django_db
def test_a_mixed_selection_reports_every_row(client, staff_admin):
    copying = make_session("volume", "Copy_In_Progress", name="a-copying")
    ready = make_session("volume", "Ready_For_Cutover", name="b-ready")
    group = make_group_session("In_Progress", ["Copy_In_Progress", "Copy_In_Progress"],
                               name="c-group")
    member = group.members.order_by("name").first()
    client.force_login(staff_admin)
    _, said = _act(client, "pause_sessions", copying, ready, group, member)
    assert [level for level, _ in said] == [messages.SUCCESS, messages.WARNING,
                                            messages.SUCCESS, messages.WARNING]
    assert said[2] == (messages.SUCCESS, "c-group: paused (now Paused)")
    assert said[3] == (messages.WARNING, f"{member.name}: refused: {member.name} is a member "
                                         f"of c-group; run pause on the group session.")
    assert (_state(copying), _state(ready)) == ("Paused", "Ready_For_Cutover")


@pytest.mark.django_db
@pytest.mark.parametrize(("action", "state", "after"), [
    ("resume_sessions", "Paused", "Copy_In_Progress"),
    ("cancel_sessions", "Copy_In_Progress", "Cancel_In_Progress"),
    ("force_cancel_sessions", "Copy_In_Progress", "Cancel_In_Progress"),
    ("cleanup_sessions", "Cleanup_Required", "Cleanup_In_Progress"),
])
def test_each_session_action_moves_the_session_through_the_service(client, staff_admin,
                                                                  action, state, after):
    session = make_session("volume", state)
    client.force_login(staff_admin)
    _, said = _act(client, action, session)
    assert [level for level, _ in said] == [messages.SUCCESS]
    session.refresh_from_db()
    assert session.state == after
    assert session.force_cancel == (action == "force_cancel_sessions")
    assert ImportEvent.objects.filter(session=session, to_state=after).exists()


@pytest.mark.django_db
def test_force_cancel_is_not_offered_to_an_operator(client, staff_operator):
    client.force_login(staff_operator)
    offered = dict(client.get(CHANGELIST).context["action_form"].fields["action"].choices)
    assert "cancel_sessions" in offered and "force_cancel_sessions" not in offered


@pytest.mark.django_db
def test_a_posted_force_cancel_from_an_operator_changes_nothing(client, staff_operator):
    session = make_session("volume", "Copy_In_Progress")
    client.force_login(staff_operator)
    _act(client, "force_cancel_sessions", session)
    assert _state(session) == "Copy_In_Progress"
    assert not ImportEvent.objects.filter(session=session).exists()


@pytest.mark.django_db
def test_the_service_refuses_an_operators_force_cancel_even_if_the_action_runs(operator):
    session = make_session("volume", "Copy_In_Progress", name="vol-3")
    request = RequestFactory().post(CHANGELIST, REMOTE_ADDR="192.0.2.7")
    request.user, request._messages = operator, CookieStorage(request)
    model_admin = admin.site._registry[ImportSession]
    force_cancel_sessions(model_admin, request, ImportSession.objects.filter(pk=session.pk))
    assert [(m.level, str(m)) for m in request._messages] == [
        (messages.ERROR, "vol-3: refused: otto-operator is not allowed to force-cancel "
                         "imports.")]
    assert _state(session) == "Copy_In_Progress"


# --- What the admin may not change ---------------------------------------------------------------

@pytest.mark.django_db
def test_sessions_cannot_be_added_or_deleted_in_the_admin(client, staff_admin):
    session = make_session("volume", "Cancelled")
    client.force_login(staff_admin)
    offered = dict(client.get(CHANGELIST).context["action_form"].fields["action"].choices)
    assert "delete_selected" not in offered
    assert client.get(_url(ImportSession, "add")).status_code == 403
    assert client.post(_url(ImportSession, "delete", session.pk),
                       {"post": "yes"}).status_code == 403
    assert ImportSession.objects.filter(pk=session.pk).exists()


@pytest.mark.django_db
def test_posting_a_state_on_the_change_form_changes_only_the_description(client,
                                                                        staff_admin):
    session = make_session("volume", "Copy_In_Progress", name="vol-1")
    client.force_login(staff_admin)
    response = client.post(_url(ImportSession, "change", session.pk), {
        "state": "Import_Completed", "progress_percentage": "100", "name": "renamed",
        "description": "watched by support", "events-TOTAL_FORMS": "0",
        "events-INITIAL_FORMS": "0"})
    assert response.status_code == 302
    session.refresh_from_db()
    assert (session.state, session.progress_percentage, session.name) == (
        "Copy_In_Progress", 0, "vol-1")
    assert session.description == "watched by support"
    assert ImportEvent.objects.filter(session=session, action="describe").exists()


@pytest.mark.django_db
def test_every_session_field_but_the_description_is_read_only(rf, staff_admin):
    request = rf.get("/")
    request.user = staff_admin
    read_only = set(admin.site._registry[ImportSession].get_readonly_fields(request))
    fields = {f.name for f in ImportSession._meta.get_fields() if f.concrete} - {"id"}
    assert fields - read_only == {"description"}


@pytest.mark.django_db
@pytest.mark.parametrize("model", [ImportEvent, CopiedExtent, IdempotencyRecord],
                         ids=lambda m: m.__name__)
def test_the_audit_trail_and_records_cannot_be_changed(client, superuser, one_of_each,
                                                       model):
    obj = model.objects.first()
    client.force_login(superuser)
    assert client.get(_url(model, "add")).status_code == 403
    assert client.post(_url(model, "change", obj.pk), {}).status_code == 403
    assert client.post(_url(model, "delete", obj.pk), {"post": "yes"}).status_code == 403
    assert model.objects.filter(pk=obj.pk).exists()


# --- Remote systems -------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_rediscover_starts_a_discovery_job_per_system(client, staff_admin, source_root,
                                                      enqueued):
    write_random(source_root / "array" / "db.img", 4096)
    system = discovered_system(source_root / "array", name="array")
    write_random(source_root / "array" / "logs.img", 4096)
    broken = RemoteSystemFactory(name="broken")
    client.force_login(staff_admin)
    _, said = _act(client, "rediscover", system, broken,
                   url=_url(RemoteSystem, "changelist"))
    assert said[0] == (messages.SUCCESS, "array: discovery started (the Status column shows "
                                         "its outcome)")
    assert RemoteSystem.objects.get(pk=system.pk).status == "Discovering"
    run_jobs(enqueued)
    assert RemoteSystem.objects.get(pk=system.pk).source_volumes.count() == 2
    assert RemoteSystem.objects.get(pk=broken.pk).status == "Unreachable"


@pytest.mark.django_db
def test_deleting_an_unused_remote_system_goes_through_the_service(client, staff_admin):
    system = RemoteSystemFactory(name="spare")
    client.force_login(staff_admin)
    response = client.post(_url(RemoteSystem, "delete", system.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not RemoteSystem.objects.filter(pk=system.pk).exists()
    assert ImportEvent.objects.filter(action="delete_remote_system",
                                      subject="remote system spare").exists()


@pytest.mark.django_db
def test_the_delete_page_of_a_system_in_use_refuses_without_an_error(client, staff_admin):
    session = make_session("volume", "Copy_In_Progress")
    client.force_login(staff_admin)
    response = client.post(_url(RemoteSystem, "delete", session.remote_system_id),
                           {"post": "yes"})
    assert response.status_code == 200 and b"Cannot delete" in response.content
    assert RemoteSystem.objects.filter(pk=session.remote_system_id).exists()


@pytest.mark.django_db
def test_a_refusal_from_the_service_on_the_delete_page_is_a_message(client, staff_admin,
                                                                    monkeypatch):
    system = RemoteSystemFactory(name="spare")

    def refuse(system_id, *, actor):
        raise ValidationError({"remote_system": ["spare is used by 1 session."]})
    monkeypatch.setattr(RemoteSystemAdmin, "delete_through_service", refuse)
    client.force_login(staff_admin)
    response = client.post(_url(RemoteSystem, "delete", system.pk), {"post": "yes"})
    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Not deleted: spare is used by 1 session."]
    assert RemoteSystem.objects.filter(pk=system.pk).exists()


@pytest.mark.django_db
def test_deleting_selected_systems_reports_each_row(client, staff_admin):
    spare = RemoteSystemFactory(name="a-spare")
    used = make_session("volume", "Copy_In_Progress").remote_system
    client.force_login(staff_admin)
    confirm = client.post(_url(RemoteSystem, "changelist"), {
        "action": "delete_selected", "_selected_action": [spare.pk]})
    assert confirm.status_code == 200 and b"Delete multiple objects" in confirm.content
    response = client.post(_url(RemoteSystem, "changelist"), {
        "action": "delete_selected", "_selected_action": [spare.pk, used.pk], "post": "yes"})
    said = [(m.level, str(m)) for m in get_messages(response.wsgi_request)]
    assert said == [
        (messages.SUCCESS, "a-spare: deleted"),
        (messages.WARNING, f"{used.name}: refused: {used.name} is used by 1 import "
                           f"session(s); delete them first.")]
    assert not RemoteSystem.objects.filter(pk=spare.pk).exists()
    assert RemoteSystem.objects.filter(pk=used.pk).exists()


@pytest.mark.django_db
def test_remote_systems_are_not_edited_in_the_admin(client, staff_admin):
    system = RemoteSystemFactory(name="array", driver_settings={"path": "/srv/a"})
    client.force_login(staff_admin)
    assert client.get(_url(RemoteSystem, "add")).status_code == 403
    response = client.post(_url(RemoteSystem, "change", system.pk),
                           {"name": "array", "driver_type": "directory",
                            "driver_settings": '{"path": "/etc"}'})
    assert response.status_code == 403
    assert RemoteSystem.objects.get(pk=system.pk).driver_settings == {"path": "/srv/a"}


@pytest.mark.django_db
def test_a_host_saved_in_the_admin_goes_through_the_service_and_is_audited(client,
                                                                             staff_admin):
    client.force_login(staff_admin)
    response = client.post(_url(Host, "add"), {"name": "esx-07", "os_type": "ESXi",
                                               "description": "", "initiators": "[]"})
    assert response.status_code == 302, response.content
    assert Host.objects.filter(name="esx-07").exists()
    event = ImportEvent.objects.get(action="save_host")
    assert event.subject == "host esx-07" and event.actor_name == staff_admin.username


@pytest.mark.django_db
def test_a_host_in_use_is_not_deleted_from_the_admin(client, staff_admin):
    host = Host.objects.create(name="esx-08")
    make_session("volume", "Queued").hosts.add(host)
    client.force_login(staff_admin)
    response = client.post(_url(Host, "delete", host.pk), {"post": "yes"}, follow=True)
    assert response.status_code == 200
    assert Host.objects.filter(pk=host.pk).exists()
    assert "Not deleted" in response.content.decode()
