"""The dashboard's other pages: the create-import wizard, remote systems, hosts, events."""

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from importer.models import ImportEvent, ImportSession, RemoteSystem
from tests.conftest import (
    HostFactory,
    MiB,
    discovered_system,
    make_session,
    run_jobs,
    write_random,
)

WIZARD = reverse("importer:import-create")


@pytest.fixture
def demo(source_root):
    write_random(source_root / "array" / "db.img", MiB)
    write_random(source_root / "array" / "web.img", MiB)
    write_random(source_root / "array" / "cg" / "a.img", MiB)
    (source_root / "array" / "gone.img").symlink_to(source_root / "array" / "deleted.img")
    return discovered_system(source_root / "array")


def _step(client, data, go="next"):
    return client.post(WIZARD, {**data, "go": go})


def _walk(client, system, resources, **options):
    answers = {"remote_system": system.pk}
    response = _step(client, {**answers, "step": "system"})
    assert 'value="resources"' in response.content.decode()
    answers["resources"] = resources
    response = _step(client, {**answers, "step": "resources"})
    assert 'value="hosts"' in response.content.decode()
    answers["hosts"] = options.pop("hosts", [])
    _step(client, {**answers, "step": "hosts"})
    answers.update({"name": "nightly", "schedule": "now", **options})
    response = _step(client, {**answers, "step": "options"})
    if 'value="review"' not in response.content.decode():
        return response
    return _step(client, {**answers, "step": "review"})


@pytest.mark.django_db(transaction=True)
def test_the_wizard_creates_an_import_per_resource(client, operator, demo, enqueued):
    client.force_login(operator)
    host = HostFactory()
    volume = demo.source_volumes.get(identifier="db.img")
    group = demo.source_groups.get()
    response = _walk(client, demo, [str(volume.pk), str(group.pk)], hosts=[host.pk],
                     automatic_cutover="on", throttle_mbps="50",
                     **{f"volume_group_name_{group.pk}": "cg"})
    assert response.status_code == 302 and response["Location"] == "/"
    sessions = ImportSession.objects.filter(parent_session__isnull=True).order_by("name")
    assert [s.name for s in sessions] == ["nightly cg", "nightly db.img"]
    assert all(s.automatic_cutover and s.throttle_bytes_per_second == 50_000_000
               for s in sessions)
    assert list(sessions[1].hosts.all()) == [host]
    assert sessions[1].events.get().actor_name == operator.username


@pytest.mark.django_db
def test_the_wizard_lists_what_cannot_be_imported_with_the_reason(client, operator, demo):
    client.force_login(operator)
    body = _step(client, {"remote_system": demo.pk, "step": "system"}).content.decode()
    gone = demo.source_volumes.get(identifier="gone.img")
    assert f'value="{gone.pk}" id="resource-{gone.pk}" disabled' in body
    assert "Source Volume Offline" in body and "No such file" in body


@pytest.mark.django_db
@pytest.mark.parametrize(("step", "data", "words"), [
    ("system", {}, "This field is required"),
    ("resources", {"resources": []}, "This field is required"),
    ("options", {"name": "", "schedule": "now"}, "This field is required"),
    ("options", {"name": "x", "schedule": "later", "scheduled_at": ""}, "Choose when"),
    ("options", {"name": "x", "schedule": "now", "throttle_mbps": "0"}, "greater than or"),
])
def test_each_wizard_step_is_validated_on_the_server(client, operator, demo, step, data, words):
    client.force_login(operator)
    volume = demo.source_volumes.get(identifier="db.img")
    answers = {"remote_system": demo.pk, "resources": [str(volume.pk)], **data, "step": step}
    if step == "system":
        answers.pop("remote_system")
    body = _step(client, answers).content.decode()
    assert words in body and 'class="invalid-feedback' in body
    assert not ImportSession.objects.exists()


@pytest.mark.django_db
def test_a_past_schedule_is_refused_next_to_its_field(client, operator, demo):
    client.force_login(operator)
    volume = demo.source_volumes.get(identifier="db.img")
    past = (timezone.now() - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    response = _walk(client, demo, [str(volume.pk)], schedule="later", scheduled_at=past)
    body = response.content.decode()
    assert "is in the past" in body and 'value="options"' in body
    assert not ImportSession.objects.exists()


@pytest.mark.django_db
def test_a_viewer_cannot_open_the_wizard(client, viewer):
    client.force_login(viewer)
    assert client.get(WIZARD).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_an_admin_adds_discovers_and_deletes_a_remote_system(client, admin_user, source_root,
                                                             enqueued):
    client.force_login(admin_user)
    write_random(source_root / "new" / "v.img", MiB)
    response = client.post(reverse("importer:system-create"),
                           {"name": "array-2", "path": str(source_root / "new")})
    assert response.status_code == 302
    system = RemoteSystem.objects.get(name="array-2")
    assert system.status == "Discovering"  # a job, not the web request, reads the source
    page = client.get(reverse("importer:system-list")).content.decode()
    assert 'hx-trigger="every 2s"' in page  # the list follows the discovery
    run_jobs(enqueued)
    system.refresh_from_db()
    assert system.source_volumes.count() == 1 and system.status == "OK"
    bad = client.post(reverse("importer:system-create"), {"name": "x", "path": "/etc"})
    assert "outside the allowed source folders" in bad.content.decode()
    client.post(reverse("importer:system-delete", args=[system.pk]))
    assert not RemoteSystem.objects.filter(name="array-2").exists()


@pytest.mark.django_db
def test_a_remote_system_in_use_is_not_deleted(client, admin_user):
    client.force_login(admin_user)
    session = make_session("volume", "Copy_In_Progress")
    response = client.post(reverse("importer:system-delete", args=[session.remote_system_id]),
                           follow=True)
    assert "used by 1 import session" in response.content.decode()
    assert RemoteSystem.objects.filter(pk=session.remote_system_id).exists()


@pytest.mark.django_db
def test_an_operator_may_discover_but_not_change_systems(client, operator, demo):
    client.force_login(operator)
    assert client.get(reverse("importer:system-create")).status_code == 403
    response = client.post(reverse("importer:system-discover", args=[demo.pk]), follow=True)
    assert "Discovery of" in response.content.decode() and "started" in \
        response.content.decode()


@pytest.mark.django_db
def test_an_admin_adds_and_edits_a_host(client, admin_user):
    client.force_login(admin_user)
    client.post(reverse("importer:host-create"), {
        "name": "esx-01", "os_type": "ESXi",
        "initiators_text": "iqn.2001-04.com.example:a\n\nIQN.2001-04.COM.EXAMPLE:b "})
    response = client.get(reverse("importer:host-list"))
    page = response.content.decode()
    assert "esx-01" in page and "iqn.2001-04.com.example:a, iqn.2001-04.com.example:b" in page
    event = ImportEvent.objects.get(action="save_host")  # through the service, audited
    assert event.subject == "host esx-01" and event.actor_name == admin_user.username


@pytest.mark.django_db
def test_events_are_filtered_and_exported_as_csv(client, operator):
    client.force_login(operator)
    from importer import services
    session = make_session("volume", "Copy_In_Progress", name="db")
    services.perform_action(session.pk, "pause", actor=services.Actor(operator, "10.0.0.9"))
    make_session("volume", "Queued", name="other")
    page = client.get(reverse("importer:event-list"), {"q": "db"}).content.decode()
    assert "pause" in page and "Copy In Progress" in page
    export = client.get(reverse("importer:event-export"), {"action": "pause"})
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert rows[0][:4] == ["timestamp", "session_name", "actor_name", "action"]
    assert [row[1:4] for row in rows[1:]] == [["db", operator.username, "pause"]]
    assert rows[1][-1] == "10.0.0.9"


@pytest.mark.django_db
def test_the_events_page_shows_refusals_by_their_subject(client, viewer, admin_user):
    client.force_login(viewer)
    client.get(reverse("importer:host-create"))  # refused: viewers do not manage hosts
    client.force_login(admin_user)
    page = client.get(reverse("importer:event-list"), {"q": "hosts"}).content.decode()
    assert "access_denied" in page and "/hosts/" in page and viewer.username in page
