"""Ferry's defences: production settings, security headers, a login on every page, the
brute-force lockout, and a Content Security Policy the dashboard really runs under."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.core.management.utils import get_random_secret_key
from django.urls import URLResolver, get_resolver, reverse
from playwright.sync_api import expect

from importer.models import ImportEvent
from tests.conftest import SCREENSHOTS, log_in, make_session

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"


# --- Production settings -------------------------------------------------------------------

def _production_env(tmp_path, **variables) -> dict[str, str]:
    """What a production start sees: the variables given here and no others of Ferry's,
    so nothing from a development shell or this test run (FERRY_HTTPS=false, the test
    secret key, a DATABASE_URL) changes the defaults being checked. ``check`` opens no
    database or broker connection, so dropping their URLs loses nothing."""
    ours = ("DJANGO_", "FERRY_", "DATABASE_", "CELERY_", "REDIS_")
    env = {name: value for name, value in os.environ.items() if not name.startswith(ours)}
    env.update(DJANGO_DEBUG="false", DJANGO_ALLOWED_HOSTS="ferry.example.com",
               FERRY_VAR_DIR=str(tmp_path), **variables)
    return env


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_deployment_check_passes_with_production_settings(tmp_path):
    env = _production_env(tmp_path, DJANGO_SECRET_KEY=get_random_secret_key())
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNINGS" not in output and "no issues" in output


def _secret_key(env: dict[str, str]) -> str:
    result = _manage("shell", "--no-imports", "-c",
                     "from django.conf import settings; print(settings.SECRET_KEY)", env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_without_a_secret_key_each_installation_generates_its_own_once(tmp_path):
    """No fixed, known key in any mode: a key made with `secrets`, kept 0600 and reused."""
    first, second = tmp_path / "one", tmp_path / "two"
    key = _secret_key(_production_env(first))
    assert len(key) >= 50 and "insecure" not in key
    assert (first / "secret_key").read_text().strip() == key
    assert (first / "secret_key").stat().st_mode & 0o777 == 0o600
    assert _secret_key(_production_env(first)) == key  # the same key on every start
    assert _secret_key(_production_env(second)) != key  # another installation, another key
    assert _secret_key({**_production_env(first), "DJANGO_DEBUG": "true"}) == key


def test_an_unwritable_var_dir_without_a_secret_key_is_refused_with_the_fix(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    result = _manage("check", env=_production_env(blocked))
    assert result.returncode != 0
    assert "Set DJANGO_SECRET_KEY, or let Ferry keep its own key in" in result.stderr


def test_the_secret_key_can_come_from_a_file(tmp_path):
    key = get_random_secret_key()
    secret = tmp_path / "secret_key"
    secret.write_text(f"{key}\n")
    env = _production_env(tmp_path, DJANGO_SECRET_KEY_FILE=str(secret))
    result = _manage("shell", "--no-imports", "-c",
                     "from django.conf import settings; print(settings.SECRET_KEY)", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == key


# --- Headers -------------------------------------------------------------------------------

def _directives(policy: str) -> dict[str, str]:
    return dict((part.strip().split(" ", 1) + [""])[:2] for part in policy.split(";")
                if part.strip())


@pytest.mark.django_db
def test_the_login_page_and_the_dashboard_send_the_security_headers(client, viewer):
    login = client.get(reverse("login"))
    client.force_login(viewer)
    dashboard = client.get(reverse("importer:session-list"))
    for response in (login, dashboard):
        assert response.status_code == 200
        policy = _directives(response["Content-Security-Policy"])
        assert policy["script-src"] == "'self'"  # no inline script, no eval
        assert policy["style-src"] == "'self'"
        assert policy["frame-ancestors"] == "'none'"
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"
        assert response["X-Frame-Options"] == "DENY"
        assert "Strict-Transport-Security" not in response  # plain HTTP: no HSTS


@pytest.mark.django_db
def test_a_secure_request_gets_hsts(client, settings):
    settings.SECURE_HSTS_SECONDS = 31_536_000
    response = client.get(reverse("login"), secure=True)
    hsts = [part.strip() for part in response["Strict-Transport-Security"].split(";")]
    assert "max-age=31536000" in hsts and "includeSubDomains" in hsts and "preload" in hsts


# --- Logins --------------------------------------------------------------------------------

def _dashboard_paths() -> list[str]:
    """Every URL in the ``importer`` namespace, with made-up arguments (pk 1, action pause)."""
    root = next(p for p in get_resolver().url_patterns
                if isinstance(p, URLResolver) and p.namespace == "importer")
    return list(_paths(root.url_patterns, "importer"))


def _paths(patterns, namespace):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}:{pattern.namespace}" if pattern.namespace else namespace
            yield from _paths(pattern.url_patterns, inner)
        elif pattern.name:
            arguments = {name: 1 if type(converter).__name__ == "IntConverter" else "pause"
                         for name, converter in pattern.pattern.converters.items()}
            yield reverse(f"{namespace}:{pattern.name}", kwargs=arguments)


@pytest.mark.django_db
def test_every_dashboard_url_needs_a_login(client):
    make_session("volume", "Copy_In_Progress")  # so pk 1 may exist: a login is still needed
    login = reverse("login")
    paths = [p for p in _dashboard_paths() if not p.startswith("/api/")]  # the API's own tests
    assert "/" in paths and "/imports/1/" in paths and len(paths) >= 15
    let_in = {}
    for path in paths:
        response = client.get(path)
        refused = response.status_code in (401, 403) or (
            response.status_code == 302 and response["Location"].startswith(f"{login}?next="))
        if not refused:
            let_in[path] = response.status_code
    assert let_in == {}


@pytest.mark.django_db
def test_healthz_answers_anonymously_with_its_status_only(client):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": True, "broker": True}
    assert not response.cookies  # no session or CSRF cookie for a probe


# --- Brute force ---------------------------------------------------------------------------

@pytest.fixture
def no_lockouts(db):
    """Lockouts live in the database (axes' AccessAttempt), rolled back after each test:
    none may be left over from another test, or these would pass or fail by order."""
    assert not AccessAttempt.objects.exists()


def _log_in(client, username, password, **extra):
    return client.post(reverse("login"), {"username": username, "password": password}, **extra)


def test_a_failed_login_is_audited(client, viewer, no_lockouts):
    response = _log_in(client, viewer.username, "wrong")
    assert response.status_code == 200 and "did not match" in response.content.decode()
    event = ImportEvent.objects.get()
    assert (event.action, event.outcome, event.error_code) == (
        "login_failed", "refused", "invalid_credentials")
    assert (event.actor_name, event.client_address) == (viewer.username, "127.0.0.1")


def test_repeated_failed_logins_lock_the_username_from_that_address(client, viewer, settings,
                                                                    no_lockouts):
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        assert _log_in(client, viewer.username, "wrong").status_code == 200
    locked = _log_in(client, viewer.username, "wrong")
    assert locked.status_code == 429
    assert ImportEvent.objects.filter(action="login_failed", actor_name=viewer.username,
                                      client_address="127.0.0.1").count() == limit
    lockout = ImportEvent.objects.get(action="login_locked_out")
    assert (lockout.actor_name, lockout.client_address, lockout.outcome) == (
        viewer.username, "127.0.0.1", "refused")

    response = _log_in(client, viewer.username, PASSWORD)  # the right password, too late
    body = response.content.decode()
    assert response.status_code == 429 and "_auth_user_id" not in client.session
    assert "Content-Security-Policy" in response  # the lockout page is ours, headers and all
    assert "Login locked" in body and f"for <strong>{viewer.username}</strong>" in body
    assert f"Try again in {round(settings.AXES_COOLOFF_TIME * 60)} minutes" in body
    assert "manage.py axes_reset" in body

    # The lock is on the pair: the same user from another address still gets in.
    elsewhere = _log_in(client, viewer.username, PASSWORD, REMOTE_ADDR="192.0.2.7")
    assert elsewhere.status_code == 302 and elsewhere["Location"] == reverse(
        "importer:session-list")


# --- Content Security Policy in a real browser ---------------------------------------------

# Chromium reports violations in the console; this also reports each one as it happens.
# Playwright's init scripts run whatever the page's policy says.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", function (event) {
  console.error("Content Security Policy violation: " + event.violatedDirective + " " +
                event.blockedURI + " at " + event.sourceFile + ":" + event.lineNumber);
});
"""


@pytest.mark.integration
def test_the_dashboard_and_the_admin_run_under_the_content_security_policy(page, live_server,
                                                                           admin_user):
    admin_user.is_staff = admin_user.is_superuser = True  # the admin pages, and Django's own
    admin_user.save()
    copying = make_session("volume", "Copy_In_Progress", name="copying",
                           progress_percentage=40)
    group = make_session("group", "In_Progress", name="finance-cg")
    make_session("volume", "Import_Completed", name="done")
    problems = []
    page.on("console", lambda message: problems.append(message.text)
            if "Content Security Policy" in message.text or "evalDisallowed" in message.text
            else None)
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.add_init_script(REPORT_VIOLATIONS)

    log_in(page, live_server, admin_user)
    with page.expect_response(lambda r: f"/imports/{copying.pk}/row/" in r.url):
        pass  # a row polls, with no eval for its trigger
    page.locator(f"#session-{group.pk} .ferry-expand").click()
    expect(page.locator(f"#session-{group.pk} tr.ferry-member")).to_have_count(2)
    with page.expect_response(lambda r: f"/imports/{group.pk}/row/?members=true" in r.url):
        pass  # an expanded group keeps its members when it polls, with no js: values
    body = page.locator(f"#session-{copying.pk}")
    body.locator(".dropdown-toggle").first.click()
    body.locator("button.dropdown-item[data-action='cancel']:not([data-force])").click()
    expect(page.locator("#confirm-modal")).to_be_visible()
    polls = []
    page.on("request", lambda r: polls.append(r.url) if "/row/" in r.url else None)
    page.wait_for_timeout(2500)  # longer than a row's poll interval
    assert polls == []  # rows wait while a dialog is open, with no trigger filter
    page.locator("#confirm-modal .modal-footer").get_by_text("Keep importing").click()
    expect(page.locator("#confirm-modal")).to_be_hidden()

    page.goto(f"{live_server.url}{reverse('importer:session-detail', args=[copying.pk])}")
    with page.expect_response(lambda r: r.url.endswith(f"/imports/{copying.pk}/")):
        pass  # the detail panel polls
    page.goto(f"{live_server.url}{reverse('importer:import-create')}")
    page.click("button:has-text('Next')")  # an htmx post that swaps the wizard in place
    expect(page.locator("#wizard")).to_be_visible()

    for path in (reverse("admin:index"), reverse("admin:importer_importsession_changelist"),
                 reverse("admin:auth_user_change", args=[admin_user.pk])):
        page.goto(f"{live_server.url}{path}")
        expect(page.locator("#content")).to_be_visible()
    page.goto(f"{live_server.url}{reverse('api:docs')}")  # Swagger UI, our stylesheet
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    page.wait_for_load_state("networkidle")
    page.screenshot(path=SCREENSHOTS / "api-docs.png")
    assert problems == []
