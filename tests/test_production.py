"""The production path as docker-compose runs it: collectstatic with debug off, migrate,
ensure_admin, gunicorn with config/gunicorn.py; then every page and its static files answer.

Each test runs Ferry in its own processes on its own SQLite file and var folder, with none
of this test run's settings (no test database, no test secret key, no DJANGO_DEBUG).
"""

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

import pytest

pytestmark = pytest.mark.production

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
ADMIN, PASSWORD = "ops-admin", "a long production password"


def _clean_env(var_dir: Path, **variables) -> dict[str, str]:
    """A shell with none of Ferry's variables set, as a fresh server or terminal has."""
    ours = ("DJANGO_", "FERRY_", "DATABASE_", "CELERY_", "REDIS_", "GUNICORN_")
    env = {name: value for name, value in os.environ.items() if not name.startswith(ours)}
    env.update(FERRY_VAR_DIR=str(var_dir), **variables)
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}{result.stderr}"
    return result


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return _run([sys.executable, "manage.py", *args], env)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def production(tmp_path_factory):
    """What docker-compose's web service does, with debug off and a generated secret key."""
    base = tmp_path_factory.mktemp("production")
    env = _clean_env(base / "var", DJANGO_DEBUG="false",
                     DJANGO_SECRET_KEY="production-smoke-test-" + os.urandom(16).hex(),
                     DJANGO_STATIC_ROOT=str(base / "static"),
                     DATABASE_URL=f"sqlite:///{base / 'ferry.sqlite3'}",
                     # Plain HTTP on 127.0.0.1: the TLS proxy of a real deployment is absent.
                     FERRY_HTTPS="false")
    _manage("collectstatic", "--noinput", env=env)
    assert (base / "static" / "staticfiles.json").exists(), "collectstatic wrote no manifest"
    _manage("migrate", "--noinput", env=env)
    _manage("ensure_admin", env={**env, "FERRY_ADMIN_USER": ADMIN,
                                 "FERRY_ADMIN_PASSWORD": PASSWORD})
    port = _free_port()
    log = open(base / "gunicorn.log", "w+")
    server = subprocess.Popen(
        [str(BIN / "gunicorn"), "-c", "config/gunicorn.py", "config.wsgi"], cwd=ROOT,
        env={**env, "GUNICORN_BIND": f"127.0.0.1:{port}", "GUNICORN_WORKERS": "2"},
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=5) as answer:
                    assert answer.status == 200
                    break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, f"gunicorn exited:\n{log_text(log)}"
                assert time.monotonic() < deadline, f"gunicorn never answered:\n{log_text(log)}"
                time.sleep(0.2)
        yield url, env
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def log_text(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()[-4000:]


class Browser:
    """Just enough of one: cookies, and every static file a page or a stylesheet names."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(CookieJar()))

    def get(self, path: str, data: dict | None = None) -> tuple[int, str, str]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        try:
            with self.opener.open(urllib.parse.urljoin(self.base_url, path), body,
                                  timeout=30) as answer:
                return answer.status, answer.geturl(), answer.read().decode(errors="replace")
        except urllib.error.HTTPError as error:
            return error.code, error.geturl(), error.read().decode(errors="replace")

    def log_in(self, username: str, password: str) -> None:
        status, _, page = self.get("/accounts/login/")
        assert status == 200, page
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        status, landed, page = self.get("/accounts/login/", {
            "csrfmiddlewaretoken": token, "username": username, "password": password})
        assert status == 200 and "/accounts/login/" not in landed, page[:2000]

    def static_files(self, page_url: str, page: str) -> set[str]:
        """The /static/ URLs a page names, and those its stylesheets name (fonts, images)."""
        found = {urllib.parse.urljoin(page_url, ref)
                 for ref in re.findall(r'(?:src|href)=["\']([^"\']+)["\']', page)}
        found = {url for url in found if urllib.parse.urlparse(url).path.startswith("/static/")}
        for stylesheet in [url for url in found if url.split("?")[0].endswith(".css")]:
            status, _, css = self.get(stylesheet)
            for ref in re.findall(r'url\(\s*["\']?([^"\')]+)["\']?\s*\)', css):
                if not ref.startswith(("data:", "#")):
                    found.add(urllib.parse.urljoin(stylesheet, ref).split("#")[0])
        return found


@pytest.mark.parametrize("path, marker", [
    ("/accounts/login/", 'name="csrfmiddlewaretoken"'),
    ("/", "Imports"),
    ("/remote-systems/", "Remote"),
    ("/admin/", "Site administration"),
    ("/api/v1/docs/", "swagger"),
])
def test_each_page_and_every_static_file_it_names_answer_200_under_gunicorn(
        production, path, marker):
    url, _env = production
    browser = Browser(url)
    if path != "/accounts/login/":
        browser.log_in(ADMIN, PASSWORD)
    status, landed, page = browser.get(path)
    assert status == 200, page[:2000]
    assert urllib.parse.urlparse(landed).path == path, f"redirected to {landed}"
    assert marker in page
    assets = browser.static_files(landed, page)
    assert assets, f"{path} names no static file"
    missing = {}
    for asset in sorted(assets):
        asset_status, _, _ = browser.get(asset)
        if asset_status != 200:
            missing[asset] = asset_status
    assert not missing, f"{path}: static files that do not answer 200: {missing}"
    # Served from the manifest: names carry their content hash, so browsers may cache them.
    ours = [a for a in assets if "/static/importer/" in a or "/static/admin/" in a]
    assert all(re.search(r"\.[0-9a-f]{12}\.", a) for a in ours), ours


def test_readme_manage_commands_work_as_written_without_make(tmp_path):
    """README's `manage.py create_api_token alice` and `manage.py axes_reset`, typed in a
    terminal with no DJANGO_SECRET_KEY and no DJANGO_DEBUG: Ferry keeps its own key."""
    env = _clean_env(tmp_path / "var")
    _manage("migrate", "--noinput", env=env)
    _manage("ensure_admin", env={**env, "FERRY_ADMIN_USER": "alice",
                                 "FERRY_ADMIN_PASSWORD": PASSWORD})
    token = _manage("create_api_token", "alice", env=env).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", token), token
    _manage("axes_reset", env=env)
    _manage("check", "--deploy", env=env)
    assert (tmp_path / "var" / "secret_key").stat().st_mode & 0o777 == 0o600
