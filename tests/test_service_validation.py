"""Bad input to every service: a clear error that names the problem, and nothing written."""

from datetime import timedelta

import pytest
from django.utils import timezone

from importer import services
from importer.errors import (
    ActionNotAllowed,
    InUse,
    NotFound,
    PermissionDenied,
    ValidationError,
)
from importer.models import ImportEvent, ImportSession
from tests.conftest import (
    HostFactory,
    SourceGroupFactory,
    SourceVolumeFactory,
    make_session,
)


def _nothing_written():
    return not ImportSession.objects.exists() and not ImportEvent.objects.exists()


@pytest.fixture
def volume(db):
    return SourceVolumeFactory()


def _create(actor, **overrides):
    arguments = {"name": "import-1", "actor": actor, **overrides}
    return services.create_import(**arguments)


@pytest.mark.django_db
def test_create_import_makes_a_queued_volume_session_with_an_event(volume, operator_actor,
                                                                   enqueued):
    host = HostFactory()
    session = _create(operator_actor, source_resource_id=volume.pk, host_ids=[host.pk])
    assert session.state == "Queued" and session.kind == "volume"
    assert session.total_bytes == volume.size
    assert list(session.hosts.all()) == [host]
    event = session.events.get()
    assert (event.action, event.from_state, event.to_state) == ("create", "", "Queued")
    volume.refresh_from_db()
    assert volume.importable_criteria == "In_Progress"


@pytest.mark.django_db
def test_create_import_of_a_group_makes_one_member_per_volume(operator_actor):
    group = SourceGroupFactory()
    volumes = [SourceVolumeFactory(remote_system=group.remote_system, group=group)
               for _ in range(3)]
    session = _create(operator_actor, source_resource_id=group.pk,
                      scheduled_timestamp=timezone.now() + timedelta(hours=1))
    assert session.state == "Scheduled" and session.kind == "group"
    assert session.destination_resource_type == "volume_group"
    assert sorted(m.source_volume_id for m in session.members.all()) == \
        sorted(v.pk for v in volumes)
    assert {m.state for m in session.members.all()} == {"Scheduled"}


@pytest.mark.django_db
@pytest.mark.parametrize(("overrides", "field", "words"), [
    ({"name": ""}, "name", "required"),
    ({"name": "x" * 300}, "name", "at most"),
    ({"source_resource_id": "not-a-uuid"}, "source_resource_id", "No source volume"),
    ({"source_resource_id": "00000000-0000-0000-0000-000000000000"}, "source_resource_id",
     "No source volume"),
    ({"scheduled_timestamp": "tomorrow"}, "scheduled_timestamp", "timezone"),
    ({"scheduled_timestamp": timezone.now() - timedelta(hours=1)}, "scheduled_timestamp",
     "in the past"),
    ({"throttle_bytes_per_second": 10}, "throttle_bytes_per_second", "at least"),
    ({"host_ids": [999999]}, "host_ids", "No host with id 999999"),
])
def test_create_import_rejects_bad_input(volume, operator_actor, overrides, field, words):
    overrides.setdefault("source_resource_id", volume.pk)
    with pytest.raises(ValidationError) as refused:
        _create(operator_actor, **overrides)
    assert words in " ".join(refused.value.field_errors[field])
    assert _nothing_written()


@pytest.mark.django_db
@pytest.mark.parametrize(("criteria", "words"), [
    ("Source_Volume_Offline", "Source Volume Offline"),
    ("Imported", "Imported"),
    ("In_Progress", "Import In Progress"),
])
def test_create_import_refuses_a_source_that_is_not_importable(operator_actor, criteria, words):
    volume = SourceVolumeFactory(importable_criteria=criteria)
    with pytest.raises(ValidationError) as refused:
        _create(operator_actor, source_resource_id=volume.pk)
    assert words in refused.value.field_errors["source_resource_id"][0]
    assert _nothing_written()


@pytest.mark.django_db
def test_create_import_refuses_a_source_already_being_imported(volume, operator_actor):
    _create(operator_actor, source_resource_id=volume.pk)
    volume.importable_criteria = "Ready_For_Agentless_Import"  # even if discovery said so
    volume.save()
    with pytest.raises(ValidationError) as refused:
        _create(operator_actor, name="import-2", source_resource_id=volume.pk)
    assert "already being imported by import-1" in refused.value.field_errors[
        "source_resource_id"][0]
    assert ImportSession.objects.count() == 1


@pytest.mark.django_db
def test_create_import_refuses_a_taken_name(operator_actor):
    _create(operator_actor, source_resource_id=SourceVolumeFactory().pk)
    with pytest.raises(ValidationError) as refused:
        _create(operator_actor, source_resource_id=SourceVolumeFactory().pk)
    assert "already exists" in refused.value.field_errors["name"][0]
    assert ImportSession.objects.count() == 1


@pytest.mark.django_db
def test_create_import_refuses_an_empty_group(operator_actor):
    with pytest.raises(ValidationError) as refused:
        _create(operator_actor, source_resource_id=SourceGroupFactory().pk)
    assert "is empty" in refused.value.field_errors["source_resource_id"][0]
    assert _nothing_written()


@pytest.mark.django_db
def test_a_group_member_cannot_be_imported_alone(operator_actor):
    group = SourceGroupFactory()
    member = SourceVolumeFactory(remote_system=group.remote_system, group=group)
    with pytest.raises(ValidationError) as refused:
        _create(operator_actor, source_resource_id=member.pk)
    assert "import the group" in refused.value.field_errors["source_resource_id"][0]


@pytest.mark.django_db
def test_a_viewer_cannot_create_or_act(viewer, volume):
    actor = services.Actor(viewer)
    with pytest.raises(PermissionDenied):
        _create(actor, source_resource_id=volume.pk)
    session = make_session("volume", "Mirror_Enabled")
    with pytest.raises(PermissionDenied, match="vera-viewer is not allowed"):
        services.perform_action(session.pk, "cancel", actor=actor)
    session.refresh_from_db()
    assert session.state == "Mirror_Enabled"


@pytest.mark.django_db
def test_force_cancel_needs_the_admin_role(operator_actor, admin_user):
    session = make_session("volume", "Cancel_Required")
    with pytest.raises(PermissionDenied):
        services.perform_action(session.pk, "cancel", actor=operator_actor, force=True)
    services.perform_action(session.pk, "cancel", actor=services.Actor(admin_user), force=True)
    session.refresh_from_db()
    assert session.state == "Cancel_In_Progress" and session.force_cancel


@pytest.mark.django_db
def test_perform_action_rejects_unknown_actions_sessions_and_misplaced_force(operator_actor):
    session = make_session("volume", "Copy_In_Progress")
    with pytest.raises(ValidationError, match="Unknown action 'explode'"):
        services.perform_action(session.pk, "explode", actor=operator_actor)
    with pytest.raises(ValidationError, match="force applies to cancel and cleanup only"):
        services.perform_action(session.pk, "pause", actor=operator_actor, force=True)
    with pytest.raises(NotFound, match="Import session 424242 does not exist"):
        services.perform_action(424242, "pause", actor=operator_actor)
    session.refresh_from_db()
    assert session.state == "Copy_In_Progress" and not session.events.exists()


@pytest.mark.django_db
def test_modify_schedule_rejects_the_past_and_other_states(operator_actor):
    scheduled = make_session("volume", "Scheduled",
                             scheduled_timestamp=timezone.now() + timedelta(hours=1))
    with pytest.raises(ValidationError, match="in the past"):
        services.modify_schedule(scheduled.pk, timezone.now() - timedelta(days=1),
                                 actor=operator_actor)
    queued = make_session("volume", "Queued")
    with pytest.raises(ActionNotAllowed):
        services.modify_schedule(queued.pk, timezone.now() + timedelta(hours=1),
                                 actor=operator_actor)
    assert not ImportEvent.objects.exists()


@pytest.mark.django_db
def test_deleting_a_session_keeps_its_audit_trail(operator_actor):
    session = make_session("volume", "Cancelled")
    services.perform_action(session.pk, "delete", actor=operator_actor)
    event = ImportEvent.objects.get()
    assert event.session is None and event.session_name == session.name
    assert event.action == "delete" and event.from_state == "Cancelled"


@pytest.mark.django_db
def test_a_remote_system_in_use_cannot_be_deleted(admin_user):
    session = make_session("volume", "Queued")
    with pytest.raises(InUse, match="used by 1 import session"):
        services.delete_remote_system(session.remote_system_id,
                                      actor=services.Actor(admin_user))
    with pytest.raises(NotFound):
        services.delete_remote_system(987654, actor=services.Actor(admin_user))
