"""Shared fixtures: users for each role, factories, real folders for sources and the pool."""

from __future__ import annotations

import os
from pathlib import Path

import factory
import pytest
from django.contrib.auth.models import Group, User

from importer import roles, services
from importer.models import (
    DestinationType,
    Host,
    ImportSession,
    RemoteSystem,
    SourceGroup,
    SourceVolume,
    StorageNode,
)
from importer.services import dispatch
from importer.states import State
from tests import nbd_servers

MiB = 1024 * 1024


# --- Folders -------------------------------------------------------------------------------

@pytest.fixture
def source_root(tmp_path, settings) -> Path:
    """An allowed source root and an empty pool, both real folders."""
    root = tmp_path / "sources"
    root.mkdir()
    settings.FERRY_SOURCE_ROOTS = [root]
    settings.FERRY_POOL_DIR = tmp_path / "pool"
    return root


def write_random(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        for offset in range(0, size, 4 * MiB):
            handle.write(os.urandom(min(4 * MiB, size - offset)))
    return path


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """PBKDF2 is slow on purpose; tests make hundreds of users."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def own_runtime_folder(settings, tmp_path):
    """Front-end runtime files are named after their volume (import-1-db...): each test
    keeps its own, or one test's would be found by the next."""
    settings.FERRY_RUNTIME_DIR = tmp_path / "run"


def pytest_collection_modifyitems(config, items):
    """Tests marked ``postgres`` exercise PostgreSQL itself: on another database they are
    deselected, not skipped (.ci/run's second pass, on PostgreSQL, runs them)."""
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        return
    kept = [item for item in items if "postgres" not in item.keywords]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if "postgres" in i.keywords])
        items[:] = kept


# --- Jobs ----------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def enqueued(request, monkeypatch) -> list[tuple]:
    """Jobs services enqueue on commit, recorded instead of sent (unit tests only)."""
    jobs: list[tuple] = []
    if "integration" not in request.keywords:
        monkeypatch.setattr(dispatch, "send",
                            lambda name, *args, **_options: jobs.append((name, *args)) or True)
    return jobs


# --- Storage nodes -------------------------------------------------------------------------

_DATABASE_FIXTURES = {"db", "transactional_db", "live_server", "django_db_reset_sequences",
                      "django_db_serialized_rollback"}
TiB = 1024 ** 4


@pytest.fixture(autouse=True)
def storage_node(request, settings):
    """This process's storage node, healthy and just heard from, as its worker registers it
    at start: every import needs a node. Only for tests that use the database."""
    uses_database = (request.node.get_closest_marker("django_db")
                     or _DATABASE_FIXTURES & set(request.fixturenames))
    if not uses_database:
        return None
    request.getfixturevalue("_django_db_helper")  # the test's own database setup, first
    return make_node(settings.FERRY_NODE_NAME)


def make_node(name: str, *, free_bytes: int = TiB, **fields) -> StorageNode:
    from django.utils import timezone

    values = {"queue": f"ferry.node.{name}", "pool_path": f"/pools/{name}",
              "capacity_bytes": 2 * TiB, "free_bytes": free_bytes, "status": "Healthy",
              "last_heartbeat": timezone.now(), **fields}
    return StorageNode.objects.update_or_create(name=name, defaults=values)[0]


# --- Users ---------------------------------------------------------------------------------

def _user(username: str, role: str) -> User:
    user = User.objects.create_user(username, password="correct horse battery staple")
    user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def viewer(db):
    return _user("vera-viewer", roles.VIEWER)


@pytest.fixture
def operator(db):
    return _user("otto-operator", roles.OPERATOR)


@pytest.fixture
def admin_user(db):
    return _user("ada-admin", roles.ADMIN)


@pytest.fixture
def operator_actor(operator):
    return services.Actor(operator, "192.0.2.10")


# --- Factories -----------------------------------------------------------------------------

class RemoteSystemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RemoteSystem

    name = factory.Sequence(lambda n: f"array-{n}")
    driver_settings = factory.LazyFunction(lambda: {"path": "/nonexistent"})


class SourceVolumeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SourceVolume

    remote_system = factory.SubFactory(RemoteSystemFactory)
    identifier = factory.Sequence(lambda n: f"vol-{n}.img")
    name = factory.LazyAttribute(lambda o: o.identifier)
    size = 4 * MiB


class SourceGroupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SourceGroup

    remote_system = factory.SubFactory(RemoteSystemFactory)
    identifier = factory.Sequence(lambda n: f"cg-{n}")
    name = factory.LazyAttribute(lambda o: o.identifier)


class HostFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Host

    name = factory.Sequence(lambda n: f"host-{n}")


def make_volume_session(state: str, **fields) -> ImportSession:
    """A volume session sitting in ``state``: a fixture, so it is written directly."""
    source = fields.pop("source_volume", None) or SourceVolumeFactory()
    return ImportSession.objects.create(
        name=fields.pop("name", f"session-{source.identifier}"), source_volume=source,
        remote_system=source.remote_system, state=state, total_bytes=source.size,
        destination_resource_type=DestinationType.VOLUME, **fields)


def make_group_session(state: str, member_states: list[str], **fields) -> ImportSession:
    group_source = SourceGroupFactory()
    group = ImportSession.objects.create(
        name=fields.pop("name", f"group-{group_source.identifier}"), source_group=group_source,
        remote_system=group_source.remote_system, state=state,
        destination_resource_type=DestinationType.VOLUME_GROUP, **fields)
    for index, member_state in enumerate(member_states):
        volume = SourceVolumeFactory(remote_system=group_source.remote_system,
                                     group=group_source)
        make_volume_session(member_state, source_volume=volume, parent_session=group,
                            name=f"{group.name} / m{index}", **fields)
    return group


# Member states that make a group show each state (the spec's aggregation, backwards).
GROUP_MEMBERS = {
    State.SCHEDULED: [State.SCHEDULED] * 2,
    State.QUEUED: [State.QUEUED] * 2,
    State.IN_PROGRESS: [State.COPY_IN_PROGRESS] * 2,
    State.MIRROR_ENABLED: [State.MIRROR_ENABLED] * 2,
    State.READY_TO_START_COPY: [State.READY_TO_START_COPY] * 2,
    State.COPY_IN_PROGRESS: [State.COPY_IN_PROGRESS] * 2,
    State.PAUSED: [State.PAUSED] * 2,
    State.READY_FOR_CUTOVER: [State.READY_FOR_CUTOVER] * 2,
    State.CUTOVER_IN_PROGRESS: [State.CUTOVER_IN_PROGRESS] * 2,
    State.IMPORT_COMPLETED: [State.IMPORT_COMPLETED] * 2,
    State.IMPORT_COMPLETED_WITH_ERRORS: [State.IMPORT_COMPLETED, State.CANCELLED],
    State.IMPORT_CUTOVER_INCOMPLETE: [State.IMPORT_COMPLETED, State.READY_FOR_CUTOVER],
    State.CANCEL_REQUIRED: [State.CANCEL_REQUIRED, State.PAUSED],
    State.CANCEL_IN_PROGRESS: [State.CANCEL_IN_PROGRESS] * 2,
    State.CANCEL_FAILED: [State.CANCEL_FAILED, State.CANCELLED],
    State.CANCELLED: [State.CANCELLED] * 2,
    State.CLEANUP_REQUIRED: [State.CLEANUP_REQUIRED, State.CANCELLED],
    State.CLEANUP_IN_PROGRESS: [State.CLEANUP_IN_PROGRESS] * 2,
    State.CLEANUP_FAILED: [State.CLEANUP_FAILED, State.CANCELLED],
    State.FAILED: [State.FAILED, State.QUEUED],
}


def make_session(kind: str, state: str, **fields) -> ImportSession:
    if kind == "group":
        return make_group_session(state, GROUP_MEMBERS[State(state)], **fields)
    return make_volume_session(state, **fields)


# --- Running jobs in-process (unit tests; the integration suite uses a real worker) --------

def run_jobs(jobs: list[tuple], limit: int = 500) -> None:
    """Run recorded jobs, and the jobs they enqueue, until none is left."""
    from importer import tasks

    for _ in range(limit):
        if not jobs:
            return
        name, *args = jobs.pop(0)
        getattr(tasks, name).run(*args)
    raise AssertionError(f"jobs still pending after {limit}: {jobs[:5]}")


@pytest.fixture
def small_chunks(settings):
    """Many chunks and checkpoints even on small test volumes."""
    settings.FERRY_CHUNK_BYTES = 1 * MiB
    settings.FERRY_CHECKPOINT_BYTES = 4 * MiB
    settings.FERRY_COPY_SLICE_SECONDS = 60


def sha256_of(path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(4 * MiB), b""):
            digest.update(block)
    return digest.hexdigest()


def discovered_system(folder, name="array"):
    system = services.create_remote_system(name=name, driver_settings={"path": str(folder)},
                                           actor=services.SYSTEM)
    return services.discover_remote_system(system.pk, actor=services.SYSTEM)


# --- The integration suite: a real worker process and a real broker ------------------------

@pytest.fixture
def worker_settings(source_root, settings, tmp_path) -> dict[str, str]:
    """Settings shared by this test process and its worker (which sees them as env vars)."""
    values = {
        "FERRY_SOURCE_ROOTS": str(source_root),
        "FERRY_POOL_DIR": str(tmp_path / "pool"),
        # Volume names repeat from run to run (import-1-...): a runtime left in a shared
        # FERRY_VAR_DIR/run by an earlier run would be taken for this one's.
        "FERRY_RUNTIME_DIR": str(tmp_path / "run"),
        "FERRY_CHUNK_BYTES": str(4 * MiB),
        "FERRY_CHECKPOINT_BYTES": str(16 * MiB),
        "FERRY_CHECKPOINT_SECONDS": "0.5",
        "FERRY_COPY_SLICE_SECONDS": "3",
        "FERRY_LEASE_SECONDS": "3",
        "FERRY_TICK_SECONDS": "1",
        "FERRY_MAX_ACTIVE_IMPORTS": "8",
        "FERRY_NBD_RETRY_SECONDS": "2",
        "FERRY_NBD_CONNECT_TIMEOUT": "3",
    }
    _apply(settings, values)
    return values


def _apply(settings, values: dict[str, str]) -> None:
    for name, value in values.items():
        current = getattr(settings, name, None)
        if isinstance(current, list):
            setattr(settings, name, [Path(v) for v in value.split(",")])
        elif isinstance(current, (int, float)) and not isinstance(current, bool):
            setattr(settings, name, type(current)(value))
        else:
            setattr(settings, name, Path(value) if isinstance(current, Path) else value)


@pytest.fixture
def live_worker(worker_settings, transactional_db, tmp_path, request, settings):
    """A real Celery worker and beat, started after the test's settings are in place."""
    from tests.live_worker import LiveWorker, purge_broker

    purge_broker()
    overrides = getattr(request, "param", {}) or {}  # indirect parametrization
    _apply(settings, overrides)
    worker = LiveWorker(tmp_path, {**worker_settings, **overrides})
    worker.start()
    yield worker
    worker.stop()
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        print(worker.logs())


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def wait_for(predicate, timeout: float = 60, interval: float = 0.1, what: str = "condition"):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_for_state(session, state: str, timeout: float = 60) -> ImportSession:
    def reached():
        session.refresh_from_db()
        return session.state == state
    try:
        wait_for(reached, timeout, what=f"{session.name} to reach {state}")
    except AssertionError as error:
        raise AssertionError(f"{error}; it is {session.state} {session.error or ''}") from None
    return session


# --- Browser tests: Playwright on Debian's Chromium ------------------------------------------

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs Chromium at {CHROMIUM} (apt-get install chromium)")
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium to run browser tests")
    return {**browser_type_launch_args, "executable_path": CHROMIUM,
            "args": ["--no-sandbox", "--disable-gpu"]}


def log_in(page, live_server, user):
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "correct horse battery staple")
    page.click("button:has-text('Log in')")
    page.wait_for_selector("#session-table")


def start_copying(source, actor, name: str, **options) -> ImportSession:
    """Create an import and take it, through the real worker, into its copy."""
    session = services.create_import(name=name, source_resource_id=source.pk, actor=actor,
                                     **options)
    wait_for_state(session, "Mirror_Enabled")
    # The confirmation of the manual unmap matters only where Ferry cannot revoke (NBD).
    services.perform_action(session.pk, "enable_destination_volume", actor=actor,
                            source_unmapped_confirmed=True)
    wait_for_state(session, "Ready_To_Start_Copy")
    services.perform_action(session.pk, "start_copy", actor=actor)
    return session


# --- Front ends (hosts during an import) ---------------------------------------------------

@pytest.fixture
def writable_exports(tmp_path):
    nbd_servers.require_nbd_tools(frontend=True)
    folder = tmp_path / "exports"
    folder.mkdir()
    return folder


@pytest.fixture
def writable_nbd_server(writable_exports, tmp_path):
    """nbdkit serving the folder's files read-write: a source hosts write through Ferry."""
    server = nbd_servers.nbdkit_file_server(writable_exports, socket=tmp_path / "nbd.sock",
                                            read_only=False)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def frontend_settings(tmp_path, worker_settings, settings):
    """Front ends keep their runtime files in the test's own folder."""
    runtime = str(tmp_path / "run")
    worker_settings["FERRY_RUNTIME_DIR"] = runtime
    settings.FERRY_RUNTIME_DIR = tmp_path / "run"
    return worker_settings
