"""The role matrix: anonymous, viewer, operator and admin × every API operation.

Each operation names the least role that may run it. Below it the answer is 401
(anonymous) or 403, audited, and nothing changes; at or above it, the operation succeeds.
"""

from dataclasses import dataclass
from typing import Callable

import pytest

from importer.models import Host, ImportEvent, ImportSession, RemoteSystem, SourceVolume
from tests.api_helpers import API, client_for, session_url
from tests.conftest import (
    RemoteSystemFactory,
    SourceVolumeFactory,
    discovered_system,
    make_session,
)

ROLES = ["anonymous", "viewer", "operator", "admin"]


@dataclass(frozen=True)
class Operation:
    name: str
    least_role: str
    success: int
    prepare: Callable  # (folder) → what the call works on
    call: Callable  # (client, prepared) → response


def _nothing(_folder):
    return None


def _session(kind: str, state: str):
    return lambda _folder: make_session(kind, state)


def _action(state: str, action: str, least_role="operator", body=None) -> Operation:
    return Operation(f"{action} {state}", least_role, 202, _session("volume", state),
                     lambda c, s: c.post(session_url(s.pk, f"{action}/"), body or {},
                                         format="json"))


def _system_with_a_volume(folder):
    (folder / "lun.img").write_bytes(b"\0" * 4096)
    return discovered_system(folder, name="discoverable")


OPERATIONS = [
    *(Operation(f"list {resource}", "viewer", 200, _nothing,
                lambda c, _, r=resource: c.get(f"{API}/{r}/"))
      for resource in ("remote-systems", "source-volumes", "source-groups", "hosts",
                       "volumes", "volume-groups", "import-sessions", "events")),
    Operation("retrieve session", "viewer", 200, _session("group", "Paused"),
              lambda c, s: c.get(session_url(s.pk))),
    Operation("session events", "viewer", 200, _session("volume", "Paused"),
              lambda c, s: c.get(session_url(s.pk, "events/"))),
    Operation("schema", "viewer", 200, _nothing, lambda c, _: c.get(f"{API}/schema/")),
    Operation("create api token", "viewer", 200, _nothing,
              lambda c, _: c.post(f"{API}/auth/token/")),
    Operation("create import", "operator", 201, lambda _: SourceVolumeFactory(),
              lambda c, v: c.post(f"{API}/import-sessions/",
                                  {"name": "new", "source_resource_id": str(v.pk)},
                                  format="json")),
    Operation("patch session", "operator", 200, _session("volume", "Queued"),
              lambda c, s: c.patch(session_url(s.pk), {"description": "x"}, format="json")),
    Operation("delete session", "operator", 204, _session("volume", "Import_Completed"),
              lambda c, s: c.delete(session_url(s.pk))),
    _action("Mirror_Enabled", "enable-destination-volume"),
    _action("Ready_To_Start_Copy", "start-copy"),
    _action("Copy_In_Progress", "pause"),
    _action("Paused", "resume"),
    _action("Ready_For_Cutover", "cutover"),
    _action("Queued", "cancel"),
    _action("Paused", "cancel", least_role="admin", body={"force": True}),
    _action("Cleanup_Required", "cleanup"),
    Operation("discover", "operator", 202, _system_with_a_volume,
              lambda c, s: c.post(f"{API}/remote-systems/{s.pk}/discover/")),
    Operation("create remote system", "admin", 201, lambda folder: folder,
              lambda c, folder: c.post(f"{API}/remote-systems/", {
                  "name": "new", "driver_settings": {"path": str(folder)}}, format="json")),
    Operation("change remote system", "admin", 200, _system_with_a_volume,
              lambda c, s: c.patch(f"{API}/remote-systems/{s.pk}/", {"description": "x"},
                                   format="json")),
    Operation("delete remote system", "admin", 204, lambda _: RemoteSystemFactory(),
              lambda c, s: c.delete(f"{API}/remote-systems/{s.pk}/")),
    Operation("create host", "admin", 201, _nothing,
              lambda c, _: c.post(f"{API}/hosts/", {"name": "esx-9"}, format="json")),
    Operation("change host", "admin", 200, lambda _: Host.objects.create(name="h"),
              lambda c, h: c.patch(f"{API}/hosts/{h.pk}/", {"description": "x"},
                                   format="json")),
    Operation("delete host", "admin", 204, lambda _: Host.objects.create(name="h"),
              lambda c, h: c.delete(f"{API}/hosts/{h.pk}/")),
]


def _everything():
    """What an operation could change: sessions, systems, sources and hosts."""
    return (list(ImportSession.objects.order_by("pk").values()),
            list(RemoteSystem.objects.order_by("pk").values()),
            list(SourceVolume.objects.order_by("pk").values()),
            list(Host.objects.order_by("pk").values()))


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.name)
def test_role_matrix(operation, role, request, source_root, enqueued):
    user = None if role == "anonymous" else request.getfixturevalue(
        {"viewer": "viewer", "operator": "operator", "admin": "admin_user"}[role])
    prepared = operation.prepare(source_root)
    before = _everything()

    response = operation.call(client_for(user), prepared)

    if ROLES.index(role) >= ROLES.index(operation.least_role):
        assert response.status_code == operation.success, response.content
        return
    assert response.status_code == (401 if user is None else 403), response.content
    assert response["Content-Type"] == "application/problem+json"
    assert _everything() == before
    assert enqueued == []
    denial = ImportEvent.objects.get(action="access_denied")
    assert denial.actor_name == (user.username if user else "anonymous")
    assert denial.client_address == "127.0.0.1" and denial.outcome == "refused"
