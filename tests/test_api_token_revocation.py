"""A password change revokes the user's API tokens, however the password is changed."""

import pytest
from django.contrib.auth.management.commands import changepassword
from django.core.management import call_command
from django.urls import reverse
from knox.models import AuthToken
from rest_framework.test import APIClient

from importer.models import ImportEvent
from tests.api_helpers import API

NEW_PASSWORD = "a brand new passphrase 2026"


def _token(user) -> str:
    return AuthToken.objects.create(user)[1]


def _works(token: str) -> bool:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client.get(f"{API}/events/").status_code == 200


@pytest.mark.django_db
def test_set_password_and_save_revokes_every_token_of_that_user_only(operator, viewer):
    tokens, others = [_token(operator), _token(operator)], _token(viewer)
    assert all(_works(token) for token in tokens)
    operator.set_password(NEW_PASSWORD)
    operator.save()
    assert not any(_works(token) for token in tokens) and _works(others)
    event = ImportEvent.objects.get(action="password_changed")
    assert event.subject == f"user {operator.username}"
    assert event.details == {"api_tokens_revoked": 2}


@pytest.mark.django_db
def test_the_admins_password_form_revokes_the_tokens(client, operator, admin_user):
    admin_user.is_staff = admin_user.is_superuser = True
    admin_user.save()
    token = _token(operator)
    client.force_login(admin_user)
    response = client.post(reverse("admin:auth_user_password_change", args=[operator.pk]),
                           {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302, response.content
    assert not _works(token)


@pytest.mark.django_db
def test_manage_py_changepassword_revokes_the_tokens(operator, monkeypatch):
    token = _token(operator)
    monkeypatch.setattr(changepassword.getpass, "getpass", lambda prompt="": NEW_PASSWORD)
    call_command("changepassword", operator.username)
    assert not _works(token)


@pytest.mark.django_db
def test_other_saves_and_a_hash_upgrade_at_login_keep_the_tokens(operator, settings):
    token = _token(operator)
    operator.first_name = "Otto"
    operator.save()
    # A new preferred hasher: the next login rehashes the same password.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.ScryptPasswordHasher",
                                 "django.contrib.auth.hashers.MD5PasswordHasher"]
    assert operator.check_password("correct horse battery staple")
    operator.refresh_from_db()
    assert operator.password.startswith("scrypt$")
    assert _works(token)
    assert not ImportEvent.objects.filter(action="password_changed").exists()
