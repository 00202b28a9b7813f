"""`make run`: it installs without warnings, and `manage.py runferry` supervises web,
worker and beat, restarts a child that died, and stops quietly and quickly on Ctrl-C."""

import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent


def _children(pid: int) -> dict[int, str]:
    """The direct children of ``pid``, with their command lines."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        for child in children:
            try:
                found[int(child)] = Path(f"/proc/{child}/cmdline").read_text().replace("\0", " ")
            except FileNotFoundError:
                pass
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def _worker(pid: int) -> int | None:
    """runferry's worker child, once it has its pool processes (so it is up)."""
    workers = [child for child, command in _children(pid).items() if " worker " in command]
    return workers[0] if workers and len(_children(workers[0])) >= 2 else None


@pytest.fixture
def runferry(tmp_path):
    """runferry on a free port, alone in its process group as in a terminal, on its own
    embedded database and broker under a temporary FERRY_VAR_DIR."""
    ours = ("DATABASE_", "CELERY_", "REDIS_", "FERRY_")
    env = {name: value for name, value in os.environ.items() if not name.startswith(ours)}
    env.update(DJANGO_DEBUG="true", FERRY_VAR_DIR=str(tmp_path / "var"), PYTHONUNBUFFERED="1",
               FERRY_SOURCE_ROOTS=str(tmp_path), FERRY_TICK_SECONDS="1")
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=120)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = open(tmp_path / "runferry.log", "w+")
    process = subprocess.Popen([sys.executable, "manage.py", "runferry", "--port", str(port)],
                               cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)

    def healthy():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    def output():
        log.flush()
        return (tmp_path / "runferry.log").read_text(errors="replace")

    try:
        wait_for(healthy, 60, 0.2, what="runferry's /healthz")
        yield process, output, env
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        for child in _children(process.pid) if _alive(process.pid) else {}:
            os.killpg(child, signal.SIGKILL)
        log.close()


def test_runferry_restarts_a_dead_worker_and_stops_within_3_seconds_on_ctrl_c(runferry):
    process, output, _env = runferry
    worker = wait_for(lambda: _worker(process.pid), 60, 0.2, what="the worker's pool")
    pool = list(_children(worker))

    os.kill(worker, signal.SIGKILL)  # the worker dies; its pool processes are orphaned

    def new_worker():
        assert process.poll() is None, f"runferry stopped instead of restarting:\n{output()}"
        current = _worker(process.pid)
        return current if current not in (None, worker) else None

    restarted = wait_for(new_worker, 60, 0.2, what="a new worker")
    assert f"runferry: worker (pid {worker}) exited, killed by SIGKILL; restarting it" in output()
    assert f"runferry: worker restarted (pid {restarted})" in output()
    assert not [pid for pid in pool if _alive(pid)], "the dead worker's pool was left running"
    wait_for(lambda: "ready." in output().split("restarted", 1)[1], 60, what="worker ready")

    children = list(_children(process.pid))
    grandchildren = [pid for child in children for pid in _children(child)]
    time.sleep(2)  # idle
    started = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the terminal signals runferry's group
    process.wait(timeout=30)
    took = time.monotonic() - started
    text = output()
    assert took < 3, f"runferry took {took:.1f} s to stop:\n{text[-3000:]}"
    assert process.returncode == 0, text[-3000:]
    assert "Ferry stopped." in text
    for scary in ("signal 15", "SIGTERM", "Traceback", "superuser"):
        assert scary not in text, f"{scary!r} in runferry's output:\n{text[-3000:]}"
    assert not [pid for pid in children + grandchildren if _alive(pid)], "a child outlived it"


def test_the_package_metadata_builds_without_the_license_table_deprecation():
    """setuptools warns on every install while `license` is a table (deprecated by PEP 639),
    and an SPDX string needs setuptools 77 or later to build."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["license"] == "Apache-2.0"
    assert project["build-system"]["requires"] == ["setuptools>=77"]
