"""The open import list notices imports created or deleted elsewhere, and refreshes."""

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from importer import services
from importer.models import ImportSession
from tests.conftest import MiB, discovered_system, log_in, make_session, write_random

WATCH = reverse("importer:session-changes")


def _token(client) -> str:
    page = client.get(reverse("importer:session-list")).content.decode()
    return re.search(r'id="session-watch".*?"token": "([^"]+)"', page)[1]


@pytest.mark.django_db
def test_the_watcher_is_quiet_while_the_set_of_imports_is_unchanged(client, operator):
    make_session("volume", "Copy_In_Progress", name="one")
    client.force_login(operator)
    response = client.get(WATCH, {"token": _token(client)}, HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    assert "HX-Trigger" not in response


@pytest.mark.django_db
@pytest.mark.parametrize("change", ["created", "deleted"])
def test_the_watcher_asks_for_a_refresh_when_imports_come_or_go(client, operator, change):
    first = make_session("volume", "Cancelled", name="one")
    client.force_login(operator)
    token = _token(client)
    if change == "created":
        make_session("volume", "Queued", name="two")
    else:
        first.delete()
    response = client.get(WATCH, {"token": token}, HTTP_HX_REQUEST="true")
    assert "ferry:refresh-table" in response["HX-Trigger"]


@pytest.mark.integration
def test_an_import_created_elsewhere_appears_in_an_open_list(page, live_server, operator,
                                                             operator_actor, source_root):
    write_random(source_root / "array" / "db.img", MiB)
    system = discovered_system(source_root / "array")
    make_session("volume", "Copy_In_Progress", name="already-here")
    log_in(page, live_server, operator)
    # Another operator, or a script through the API: the same service.
    created = services.create_import(name="made-elsewhere", actor=operator_actor,
                                     source_resource_id=system.source_volumes.get().pk)
    row = page.locator(f"#session-{created.pk}")
    expect(row).to_contain_text("made-elsewhere", timeout=12000)  # within a 5 s watch
    ImportSession.objects.filter(pk=created.pk).delete()
    expect(row).to_have_count(0, timeout=12000)
