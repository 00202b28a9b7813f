"""The operator dashboard through the test client: what each role sees and may do."""

import json
import re

import pytest
from django.urls import reverse

from importer import states
from importer.models import ImportSession
from importer.states import MENU_ACTIONS
from tests.conftest import make_session

ENABLED = re.compile(r'data-action="(\w+)"\s+data-url=')
HTMX = {"HTTP_HX_REQUEST": "true"}


def _enabled(html: str) -> set[str]:
    return set(ENABLED.findall(html))


def _expected(kind, state, role) -> set[str]:
    if role == "viewer":
        return set()
    menu = {action.value for action in MENU_ACTIONS}
    return set(states.allowed_actions(kind, state)) & menu


@pytest.mark.django_db
def test_every_page_requires_a_login(client):
    session = make_session("volume", "Queued")
    for url in (reverse("importer:session-list"),
                reverse("importer:session-detail", args=[session.pk]),
                reverse("importer:session-row", args=[session.pk])):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["viewer", "operator", "admin_user"])
@pytest.mark.parametrize("kind", states.KINDS)
@pytest.mark.parametrize("state", [s.value for s in states.State])
def test_only_the_allowed_actions_are_enabled(client, request, role, kind, state):
    client.force_login(request.getfixturevalue(role))
    session = make_session(kind, state)
    expected = _expected(kind, state, "viewer" if role == "viewer" else "operator")
    row = client.get(reverse("importer:session-row", args=[session.pk]), **HTMX)
    panel = client.get(reverse("importer:session-detail", args=[session.pk]), **HTMX)
    assert row.status_code == panel.status_code == 200
    assert _enabled(row.content.decode()) == expected
    assert _enabled(panel.content.decode()) == expected
    label = states.info(state).label
    disabled = {a.value for a in MENU_ACTIONS} - expected
    if role != "viewer" and disabled:
        assert f"Not allowed while {label}." in row.content.decode()
    assert ("Force Cancel" in row.content.decode()) == (
        role == "admin_user" and "cancel" in expected)
    assert 'data-action="delete"' not in row.content.decode()  # delete is REST-only


@pytest.mark.django_db
def test_the_page_renders_whole_and_htmx_gets_the_partial(client, operator):
    client.force_login(operator)
    make_session("volume", "Copy_In_Progress", name="db-copy")
    page = client.get(reverse("importer:session-list"))
    assert page.status_code == 200 and b"<html" in page.content and b"db-copy" in page.content
    partial = client.get(reverse("importer:session-list"), **HTMX)
    assert b"<html" not in partial.content and b'id="session-table"' in partial.content
    assert "HX-Request" in partial["Vary"]


@pytest.mark.django_db
def test_active_rows_poll_and_terminal_rows_do_not(client, operator):
    client.force_login(operator)
    copying = make_session("volume", "Copy_In_Progress", name="copying")
    done = make_session("volume", "Import_Completed", name="done")
    copying_row = client.get(reverse("importer:session-row", args=[copying.pk]), **HTMX)
    done_row = client.get(reverse("importer:session-row", args=[done.pk]), **HTMX)
    assert b'hx-trigger="every 2s' in copying_row.content
    assert b"hx-trigger" not in done_row.content


@pytest.mark.django_db
def test_filters_search_and_sorting_live_in_the_url(client, operator):
    client.force_login(operator)
    make_session("volume", "Paused", name="alpha")
    make_session("volume", "Cancelled", name="beta")
    make_session("volume", "Queued", name="gamma")
    url = reverse("importer:session-list")
    response = client.get(url, {"state": ["Paused", "Queued"], "sort": "name"}, **HTMX)
    body = response.content.decode()
    assert "alpha" in body and "gamma" in body and "beta" not in body
    assert body.index("alpha") < body.index("gamma")
    assert "gamma" in client.get(url, {"q": "gam"}, **HTMX).content.decode()
    assert "alpha" not in client.get(url, {"q": "gam"}, **HTMX).content.decode()


@pytest.mark.django_db(transaction=True)
def test_an_action_re_renders_the_row_and_reports_in_a_toast(client, operator, enqueued):
    client.force_login(operator)
    session = make_session("volume", "Copy_In_Progress", name="db")
    url = reverse("importer:session-action", args=[session.pk, "pause"])
    response = client.post(url, **HTMX)
    assert response.status_code == 200
    toast = json.loads(response["HX-Trigger"])["ferry:toast"]
    assert toast["level"] == "success" and "Paused" in toast["message"]
    assert b'data-state="Paused"' in response.content
    event = session.events.get()
    assert event.actor_name == operator.username and event.client_address == "127.0.0.1"


@pytest.mark.django_db(transaction=True)
def test_a_refused_action_says_someone_changed_it_and_refreshes_the_menu(client, operator):
    client.force_login(operator)
    session = make_session("volume", "Ready_For_Cutover", name="db")
    ImportSession.objects.filter(pk=session.pk).update(state="Cancel_In_Progress")  # elsewhere
    response = client.post(reverse("importer:session-action", args=[session.pk, "cutover"]),
                           **HTMX)
    toast = json.loads(response["HX-Trigger"])["ferry:toast"]
    assert response.status_code == 200 and toast["level"] == "warning"
    assert "Cancel In Progress now" in toast["message"]
    assert _enabled(response.content.decode()) == set()  # the fresh menu
    assert not session.events.exists()


@pytest.mark.django_db(transaction=True)
def test_force_cancel_needs_the_name_typed(client, admin_user, enqueued):
    client.force_login(admin_user)
    session = make_session("volume", "Cancel_Required", name="db")
    url = reverse("importer:session-action", args=[session.pk, "cancel"])
    response = client.post(url, {"force": "true", "confirm_name": "wrong"}, **HTMX)
    assert "typed exactly" in json.loads(response["HX-Trigger"])["ferry:toast"]["message"]
    session.refresh_from_db()
    assert session.state == "Cancel_Required"
    client.post(url, {"force": "true", "confirm_name": "db"}, **HTMX)
    session.refresh_from_db()
    assert session.state == "Cancel_In_Progress" and session.force_cancel


@pytest.mark.django_db
def test_a_viewer_cannot_run_actions(client, viewer):
    client.force_login(viewer)
    session = make_session("volume", "Copy_In_Progress")
    response = client.post(reverse("importer:session-action", args=[session.pk, "pause"]),
                           **HTMX)
    assert json.loads(response["HX-Trigger"])["ferry:toast"]["level"] == "danger"
    session.refresh_from_db()
    assert session.state == "Copy_In_Progress"


@pytest.mark.django_db
def test_the_imports_page_query_count_does_not_grow_with_rows(client, operator,
                                                              django_assert_max_num_queries):
    client.force_login(operator)
    for index in range(3):
        make_session("group", "In_Progress", name=f"group-{index}")
        make_session("volume", "Copy_In_Progress", name=f"volume-{index}")
    with django_assert_max_num_queries(12) as few:
        client.get(reverse("importer:session-list"))
    for index in range(3, 25):
        make_session("group", "In_Progress", name=f"group-{index}")
        make_session("volume", "Copy_In_Progress", name=f"volume-{index}")
    with django_assert_max_num_queries(len(few.captured_queries)):
        client.get(reverse("importer:session-list"))


@pytest.mark.django_db
def test_a_row_poll_costs_a_fixed_few_queries(client, operator, django_assert_max_num_queries):
    client.force_login(operator)
    group = make_session("group", "In_Progress")
    with django_assert_max_num_queries(6):
        client.get(reverse("importer:session-row", args=[group.pk]), **HTMX)


@pytest.mark.django_db
def test_the_details_show_the_error_the_timeline_and_the_next_step(client, operator):
    client.force_login(operator)
    session = make_session("volume", "Cancel_Required", error_code="source_truncated",
                           error_message="Copy of db.img failed at offset 4096.")
    body = client.get(reverse("importer:session-detail", args=[session.pk])).content.decode()
    assert "source_truncated" in body and "offset 4096" in body
    assert "Next step: cancel the import" in body


@pytest.mark.django_db
def test_group_members_are_rendered_only_when_the_group_is_expanded(
        client, operator, django_assert_max_num_queries):
    client.force_login(operator)
    group = make_session("group", "In_Progress", name="cg")
    url = reverse("importer:session-row", args=[group.pk])
    collapsed = client.get(url, **HTMX).content.decode()
    assert "ferry-member" not in collapsed and 'hx-vals=' in collapsed
    with django_assert_max_num_queries(7):
        expanded = client.get(url, {"members": "true"}, **HTMX).content.decode()
    assert expanded.count('class="ferry-member"') == 2 and "expanded" in expanded


@pytest.mark.django_db(transaction=True)
def test_bulk_actions_check_each_row_and_report_row_by_row(client, operator, enqueued):
    client.force_login(operator)
    first = make_session("volume", "Copy_In_Progress", name="first")
    second = make_session("volume", "Copy_In_Progress", name="second")
    done = make_session("volume", "Import_Completed", name="done")
    response = client.post(reverse("importer:bulk-action", args=["pause"]),
                           {"ids": f"{first.pk},{second.pk},{done.pk},oops"}, **HTMX)
    body = response.content.decode()
    toast = json.loads(response["HX-Trigger"])["ferry:toast"]
    assert toast == {"level": "warning", "message": "Pause: 2 of 3 succeeded."}
    assert "<strong>first</strong>: Pause: first is Paused." in body
    assert "<strong>done</strong>: Pause was refused" in body
    assert set(ImportSession.objects.values_list("name", "state")) == {
        ("first", "Paused"), ("second", "Paused"), ("done", "Import_Completed")}


@pytest.mark.django_db
def test_a_bulk_action_with_nothing_selected_says_so(client, operator):
    client.force_login(operator)
    response = client.post(reverse("importer:bulk-action", args=["pause"]), {"ids": ""},
                           **HTMX)
    assert "Select at least one" in json.loads(response["HX-Trigger"])["ferry:toast"]["message"]


@pytest.mark.django_db
def test_the_top_bar_counts_follow_the_imports(client, operator):
    client.force_login(operator)
    make_session("volume", "Copy_In_Progress", name="a")
    make_session("volume", "Ready_For_Cutover", name="b")
    make_session("volume", "Cancel_Required", name="c")
    body = client.get(reverse("importer:import-counts"), **HTMX).content.decode()
    assert "1 active" in body and "1 ready for cutover" in body and "1 need attention" in body
    assert 'hx-trigger="every 5s' in body
