"""The REST API's resources: what they show, what they accept, and how they refuse."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from knox.models import AuthToken

from importer.models import Host, ImportEvent, ImportSession, RemoteSystem, Volume
from tests.api_helpers import API, client_for, session_url
from tests.conftest import (
    SourceGroupFactory,
    SourceVolumeFactory,
    discovered_system,
    make_session,
    make_volume_session,
    run_jobs,
    write_random,
)

pytestmark = pytest.mark.django_db
MiB = 1024 * 1024


def _problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["code"] == code
    assert body["type"] == f"urn:ferry:problem:{code}" and body["title"] and body["detail"]
    return body


# --- Import sessions --------------------------------------------------------------------------

def test_creating_a_volume_import_returns_201_with_the_session(operator, enqueued):
    source = SourceVolumeFactory()
    host = Host.objects.create(name="esx-01")
    response = client_for(operator).post(f"{API}/import-sessions/", {
        "name": "db-lun", "description": "orders database", "source_resource_id":
        str(source.pk), "host_ids": [host.pk], "automatic_cutover": True,
        "throttle_bytes_per_second": 64 * MiB}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "db-lun" and body["state"] == "Queued"
    assert body["state_label"] == "Queued"
    assert body["source_resource_id"] == str(source.pk)
    assert body["source_resource_type"] == "volume"
    assert body["destination_resource_type"] == "volume"
    assert body["remote_system"] == source.remote_system_id
    assert body["host_ids"] == [host.pk] and body["members"] == []
    assert body["automatic_cutover"] is True
    assert body["throttle_bytes_per_second"] == 64 * MiB
    assert body["allowed_actions"] == ["cancel"]
    assert body["error"] is None
    assert ImportEvent.objects.filter(session_id=body["id"], action="create").exists()


def test_creating_a_group_import_returns_the_group_with_its_members(operator, enqueued):
    group = SourceGroupFactory()
    for _ in range(3):
        SourceVolumeFactory(remote_system=group.remote_system, group=group)
    response = client_for(operator).post(f"{API}/import-sessions/", {
        "name": "cg", "source_resource_id": str(group.pk)}, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["source_resource_type"] == "volume_group"
    assert body["destination_resource_type"] == "volume_group"
    assert len(body["members"]) == 3
    assert {m["parent_session"] for m in body["members"]} == {body["id"]}
    assert all(m["allowed_actions"] == [] for m in body["members"])


def test_invalid_input_is_a_400_problem_naming_each_field(operator):
    response = client_for(operator).post(f"{API}/import-sessions/", {
        "name": "", "source_resource_id": "not-a-uuid", "throttle_bytes_per_second": -1,
        "host_ids": ["x"]}, format="json")
    problem = _problem(response, 400, "validation_error")
    assert set(problem["errors"]) >= {"name", "source_resource_id",
                                      "throttle_bytes_per_second", "host_ids.0"}


def test_business_rules_are_400_problems_from_the_service(operator):
    source = SourceVolumeFactory()
    make_volume_session("Queued", source_volume=source, name="taken")
    response = client_for(operator).post(f"{API}/import-sessions/", {
        "name": "taken", "source_resource_id": str(source.pk),
        "scheduled_timestamp": "2001-01-01T00:00:00Z"}, format="json")
    problem = _problem(response, 400, "validation_error")
    assert "scheduled_timestamp" in problem["errors"]
    assert "source_resource_id" in problem["errors"] or "name" in problem["errors"]


def test_malformed_json_is_a_400_problem(operator):
    response = client_for(operator).post(f"{API}/import-sessions/", "{not json",
                                         content_type="application/json")
    _problem(response, 400, "malformed_request")


def test_a_body_that_is_not_json_is_a_415_problem(operator):
    response = client_for(operator).post(f"{API}/import-sessions/", "name=x",
                                         content_type="application/x-www-form-urlencoded")
    _problem(response, 415, "unsupported_media_type")


def test_an_unknown_id_is_a_404_problem(viewer, operator):
    _problem(client_for(viewer).get(session_url(987654)), 404, "not_found")
    _problem(client_for(operator).post(session_url(987654, "pause/")), 404, "not_found")
    _problem(client_for(viewer).get(session_url("abc")), 404, "not_found")
    # A newline in the path (found by fuzzing): the catch-all route must match it too.
    _problem(client_for(operator).post(session_url("a%0Ab", "start-copy/")), 404, "not_found")
    _problem(client_for(viewer).get(f"{API}/no%0Asuch/"), 404, "not_found")


def test_a_refused_action_is_a_409_with_the_state_and_allowed_actions(operator):
    session = make_session("volume", "Ready_For_Cutover")
    problem = _problem(client_for(operator).post(session_url(session.pk, "pause/")), 409,
                       "action_not_allowed")
    assert problem["state"] == "Ready_For_Cutover"
    assert problem["allowed_actions"] == ["cancel", "cutover"]
    assert "Pause" in problem["detail"] or "pause" in problem["detail"]


def test_a_member_session_acts_only_through_its_group(operator):
    group = make_session("group", "Copy_In_Progress")
    member = group.members.first()
    problem = _problem(client_for(operator).post(session_url(member.pk, "pause/")), 409,
                       "action_not_allowed")
    assert group.name in problem["detail"]


def test_force_cancel_needs_the_admin_role(operator, admin_user):
    session = make_session("volume", "Paused")
    _problem(client_for(operator).post(session_url(session.pk, "cancel/"), {"force": True},
                                       format="json"), 403, "permission_denied")
    session.refresh_from_db()
    assert session.state == "Paused"
    response = client_for(admin_user).post(session_url(session.pk, "cancel/"),
                                           {"force": True}, format="json")
    assert response.status_code == 202 and response.json()["state"] == "Cancel_In_Progress"
    session.refresh_from_db()
    assert session.force_cancel is True


def test_patch_changes_the_description_and_the_schedule_only(operator):
    session = make_session("volume", "Scheduled",
                           scheduled_timestamp=timezone.now() + timedelta(hours=1))
    later = timezone.now() + timedelta(hours=5)
    response = client_for(operator).patch(session_url(session.pk), {
        "description": "moved to the weekend", "scheduled_timestamp": later.isoformat(),
        "name": "renamed", "state": "Import_Completed"}, format="json")
    assert response.status_code == 200, response.content
    session.refresh_from_db()
    assert session.description == "moved to the weekend"
    assert abs((session.scheduled_timestamp - later).total_seconds()) < 1
    assert session.name != "renamed" and session.state == "Scheduled"


def test_patching_the_schedule_outside_scheduled_is_a_409(operator):
    session = make_session("volume", "Copy_In_Progress")
    response = client_for(operator).patch(session_url(session.pk), {
        "scheduled_timestamp": (timezone.now() + timedelta(hours=5)).isoformat()},
        format="json")
    _problem(response, 409, "action_not_allowed")


def test_put_is_not_offered_on_sessions(operator):
    session = make_session("volume", "Queued")
    _problem(client_for(operator).put(session_url(session.pk), {}, format="json"), 405,
             "method_not_allowed")


def test_delete_only_in_the_states_the_spec_allows(operator):
    running = make_session("volume", "Copy_In_Progress")
    done = make_session("volume", "Import_Completed")
    _problem(client_for(operator).delete(session_url(running.pk)), 409, "action_not_allowed")
    assert client_for(operator).delete(session_url(done.pk)).status_code == 204
    assert not ImportSession.objects.filter(pk=done.pk).exists()
    assert ImportEvent.objects.filter(session_name=done.name, action="delete").exists()


def test_the_list_filters_by_several_states_and_by_name(viewer):
    make_session("volume", "Queued", name="alpha-1")
    make_session("volume", "Paused", name="alpha-2")
    make_session("volume", "Cancelled", name="beta-1")
    client = client_for(viewer)
    body = client.get(f"{API}/import-sessions/?state=Queued&state=Paused").json()
    assert sorted(s["name"] for s in body["results"]) == ["alpha-1", "alpha-2"]
    body = client.get(f"{API}/import-sessions/?name=BETA").json()
    assert [s["name"] for s in body["results"]] == ["beta-1"]
    _problem(client.get(f"{API}/import-sessions/?state=Bogus"), 400, "validation_error")


def test_the_list_filters_groups_and_their_members(viewer):
    group = make_session("group", "Copy_In_Progress", name="cg")
    make_session("volume", "Queued", name="lone")
    client = client_for(viewer)
    members = client.get(f"{API}/import-sessions/?parent_session={group.pk}").json()
    assert members["count"] == 2
    top = client.get(f"{API}/import-sessions/?top_level=true").json()
    assert sorted(s["name"] for s in top["results"]) == ["cg", "lone"]
    groups = client.get(f"{API}/import-sessions/?destination_resource_type=volume_group")
    assert [s["name"] for s in groups.json()["results"]] == ["cg"]


def test_the_list_pages_with_limit_offset_and_a_total_and_orders(viewer):
    for index in range(7):
        make_session("volume", "Queued", name=f"s-{index}")
    client = client_for(viewer)
    body = client.get(f"{API}/import-sessions/?limit=3&offset=3&ordering=name").json()
    assert body["count"] == 7
    assert [s["name"] for s in body["results"]] == ["s-3", "s-4", "s-5"]
    assert "offset=6" in body["next"] and "offset" not in body["previous"]
    body = client.get(f"{API}/import-sessions/?ordering=-name&limit=1").json()
    assert body["results"][0]["name"] == "s-6"


def test_the_list_of_100_sessions_takes_a_constant_number_of_queries(viewer):
    def count_queries() -> int:
        client = client_for(viewer)
        client.get(f"{API}/import-sessions/?limit=100")  # warm the session and permissions
        with CaptureQueriesContext(connection) as queries:
            response = client.get(f"{API}/import-sessions/?limit=100")
        assert response.status_code == 200
        return len(queries)

    make_session("group", "Copy_In_Progress")
    few = count_queries()
    for _ in range(60):
        make_session("volume", "Queued")
    for _ in range(20):
        make_session("group", "Paused")
    assert ImportSession.objects.count() >= 100
    assert count_queries() == few


def test_session_events_include_a_groups_members(operator, enqueued):
    group = make_session("group", "In_Progress")
    assert client_for(operator).post(session_url(group.pk, "pause/")).status_code == 202
    body = client_for(operator).get(session_url(group.pk, "events/")).json()
    names = {event["session_name"] for event in body["results"]}
    assert group.name in names and len(names) == 3
    assert all(event["client_address"] == "127.0.0.1" for event in body["results"])


def test_the_event_log_filters_by_session_actor_action_and_time(operator, viewer):
    session = make_session("volume", "Copy_In_Progress")
    client_for(operator).post(session_url(session.pk, "pause/"))
    client = client_for(viewer)
    body = client.get(f"{API}/events/?actor={operator.username}&action=pause").json()
    assert body["count"] == 1 and body["results"][0]["session"] == session.pk
    assert client.get(f"{API}/events/?session={session.pk}").json()["count"] == 1
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    assert client.get(f"{API}/events/", {"since": future}).json()["count"] == 0
    _problem(client.get(f"{API}/events/?since=yesterday"), 400, "validation_error")


# --- Remote systems, sources, hosts, volumes ------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_remote_systems_are_created_discovered_and_their_sources_listed(admin_user, operator,
                                                                         source_root, enqueued):
    write_random(source_root / "array" / "lun-a.img", 2 * MiB)
    write_random(source_root / "array" / "cg1" / "log.img", MiB)
    response = client_for(admin_user).post(f"{API}/remote-systems/", {
        "name": "old-array", "driver_settings": {"path": str(source_root / "array")}},
        format="json")
    assert response.status_code == 201, response.content
    system_id = response.json()["id"]

    response = client_for(operator).post(f"{API}/remote-systems/{system_id}/discover/")
    assert response.status_code == 202 and response.json()["status"] == "Discovering"
    run_jobs(enqueued)  # the discovery job, as a worker runs it
    assert client_for(operator).get(f"{API}/remote-systems/{system_id}/").json()[
        "status"] == "OK"
    volumes = client_for(operator).get(
        f"{API}/source-volumes/?remote_system={system_id}"
        "&importable_criteria=Ready_For_Agentless_Import").json()
    assert sorted(v["name"] for v in volumes["results"]) == ["log.img", "lun-a.img"]
    groups = client_for(operator).get(f"{API}/source-groups/?remote_system={system_id}")
    assert [g["name"] for g in groups.json()["results"]] == ["cg1"]
    assert ImportEvent.objects.filter(action="discover_requested",
                                      subject="remote system old-array",
                                      actor_name=operator.username).exists()
    assert ImportEvent.objects.filter(action="discover", subject="remote system old-array",
                                      outcome="succeeded").exists()


def test_a_remote_system_outside_the_source_roots_is_refused(admin_user, source_root):
    response = client_for(admin_user).post(f"{API}/remote-systems/", {
        "name": "escape", "driver_settings": {"path": "/etc"}}, format="json")
    assert "driver_settings" in _problem(response, 400, "validation_error")["errors"]
    assert not RemoteSystem.objects.filter(name="escape").exists()


@pytest.mark.django_db(transaction=True)
def test_discovering_an_unreachable_system_marks_it_unreachable_with_the_reason(
        admin_user, source_root, enqueued):
    folder = source_root / "gone"
    folder.mkdir()
    system = discovered_system(folder)
    folder.rmdir()
    answer = client_for(admin_user).post(f"{API}/remote-systems/{system.pk}/discover/")
    assert answer.status_code == 202
    run_jobs(enqueued)
    shown = client_for(admin_user).get(f"{API}/remote-systems/{system.pk}/").json()
    assert shown["status"] == "Unreachable" and "gone" in shown["status_message"]


def problem_code(system) -> str:
    from importer.drivers import get_driver
    from importer.errors import SourceError

    try:
        get_driver(system).discover()
    except SourceError as error:
        return error.code
    raise AssertionError("the system should be unreachable")


def test_a_remote_system_in_use_cannot_be_deleted(admin_user):
    session = make_session("volume", "Queued")
    url = f"{API}/remote-systems/{session.remote_system_id}/"
    problem = _problem(client_for(admin_user).delete(url), 409, "in_use")
    assert "1 import session" in problem["detail"]
    assert RemoteSystem.objects.filter(pk=session.remote_system_id).exists()


def test_hosts_are_created_changed_and_deleted(admin_user):
    client = client_for(admin_user)
    response = client.post(f"{API}/hosts/", {"name": "esx-01", "os_type": "ESXi",
                                             "initiators": ["iqn.1998-01.com.vmware:esx01"]},
                           format="json")
    assert response.status_code == 201, response.content
    host_id = response.json()["id"]
    response = client.patch(f"{API}/hosts/{host_id}/", {"description": "rack 4"},
                            format="json")
    assert response.status_code == 200 and response.json()["os_type"] == "ESXi"
    assert response.json()["initiators"] == ["iqn.1998-01.com.vmware:esx01"]
    _problem(client.post(f"{API}/hosts/", {"name": "esx-01"}, format="json"), 400,
             "validation_error")
    assert client.delete(f"{API}/hosts/{host_id}/").status_code == 204
    assert not Host.objects.filter(pk=host_id).exists()
    assert ImportEvent.objects.filter(action="delete_host", subject="host esx-01").exists()


def test_a_host_an_unfinished_import_will_map_cannot_be_deleted(admin_user):
    host = Host.objects.create(name="esx-02")
    make_session("volume", "Queued").hosts.add(host)
    _problem(client_for(admin_user).delete(f"{API}/hosts/{host.pk}/"), 409, "in_use")


def test_a_volume_shows_its_location_and_whether_it_is_enabled(viewer):
    Volume.objects.create(name="dest", size=MiB, location="/pool/dest.img",
                          is_read_only=False)
    body = client_for(viewer).get(f"{API}/volumes/").json()["results"][0]
    assert body["location"] == "/pool/dest.img"
    assert body["is_read_only"] is False and body["is_enabled"] is True


# --- Authentication -------------------------------------------------------------------------

def test_anonymous_is_a_401_problem_with_a_challenge_and_is_audited():
    response = client_for().get(f"{API}/import-sessions/")
    _problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"
    event = ImportEvent.objects.get(action="access_denied")
    assert event.actor_name == "anonymous" and event.client_address == "127.0.0.1"
    assert event.subject == f"{API}/import-sessions/" and event.outcome == "refused"


def test_http_basic_works_for_simple_scripts(operator):
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION=_basic(operator.username,
                                                 "correct horse battery staple"))
    assert client.get(f"{API}/import-sessions/").status_code == 200
    client.credentials(HTTP_AUTHORIZATION=_basic(operator.username, "wrong"))
    _problem(client.get(f"{API}/import-sessions/"), 401, "authentication_failed")
    event = ImportEvent.objects.get(action="login_failed")
    assert event.actor_name == operator.username and event.client_address == "127.0.0.1"


def test_an_api_token_is_issued_used_stored_hashed_and_revoked(operator):
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION=_basic(operator.username,
                                                 "correct horse battery staple"))
    response = client.post(f"{API}/auth/token/")
    assert response.status_code == 200, response.content
    token = response.json()["token"]
    assert response.json()["expiry"]
    stored = AuthToken.objects.get(user=operator)
    assert token not in (stored.digest, stored.token_key) and len(stored.digest) == 128

    with_token = client_for()
    with_token.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert with_token.get(f"{API}/import-sessions/").status_code == 200
    assert with_token.post(f"{API}/auth/logout/").status_code == 204
    _problem(with_token.get(f"{API}/import-sessions/"), 401, "authentication_failed")


def test_an_expired_token_is_refused(operator):
    _, token = AuthToken.objects.create(operator, expiry=timedelta(seconds=-1))
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    _problem(client.get(f"{API}/import-sessions/"), 401, "authentication_failed")


def test_the_schema_and_its_swagger_ui_are_served_offline(viewer):
    client = client_for(viewer)
    schema = client.get(f"{API}/schema/?format=json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/api/v1/import-sessions/{id}/cutover/" in paths
    docs = client.get(f"{API}/docs/")
    assert docs.status_code == 200
    assert b"cdn" not in docs.content.lower() and b"/static/drf_spectacular_sidecar/" in \
        docs.content
    assert client_for().get(f"{API}/schema/").status_code == 401


def _basic(username: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def test_the_schema_generates_without_warnings(tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file",
                 str(tmp_path / "schema.yaml"))
    assert "host_ids" in (tmp_path / "schema.yaml").read_text()


def test_a_session_lists_its_hosts_ids(viewer):
    session = make_session("volume", "Queued")
    hosts = [Host.objects.create(name=f"esx-{n}") for n in range(2)]
    session.hosts.set(hosts)
    body = client_for(viewer).get(session_url(session.pk)).json()
    assert sorted(body["host_ids"]) == sorted(h.pk for h in hosts)


def test_a_client_locked_out_over_http_basic_is_told_so(operator, settings):
    client = client_for()
    client.credentials(HTTP_AUTHORIZATION=_basic(operator.username, "wrong"))
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _problem(client.get(f"{API}/import-sessions/"), 401, "authentication_failed")
    _problem(client.get(f"{API}/import-sessions/"), 429, "locked_out")  # the last straw
    client.credentials(HTTP_AUTHORIZATION=_basic(operator.username,
                                                 "correct horse battery staple"))
    response = client.get(f"{API}/import-sessions/")  # the right password, too late
    problem = _problem(response, 429, "locked_out")
    assert "locked out" in problem["detail"] and operator.username in problem["detail"]
    assert int(response["Retry-After"]) == round(settings.AXES_COOLOFF_TIME * 3600)
    assert ImportEvent.objects.filter(action="login_locked_out",
                                      actor_name=operator.username).exists()
