"""The empty import list points at Create Import (or at adding a remote system first),
never at the admin site."""

import pytest
from django.urls import reverse

from tests.conftest import RemoteSystemFactory

pytestmark = pytest.mark.django_db


def _list(client, **params):
    return client.get(reverse("importer:session-list"), params).content.decode()


def test_with_no_system_it_says_to_add_one_first(client, operator):
    client.force_login(operator)
    page = _list(client)
    assert "admin site" not in page
    assert "add a remote system" in page and reverse("importer:system-create") in page


def test_with_a_system_it_points_at_create_import(client, operator):
    RemoteSystemFactory()
    client.force_login(operator)
    page = _list(client)
    assert "Use <strong>Create Import</strong> above" in page and "admin site" not in page


def test_a_filtered_empty_list_says_the_filters_match_nothing(client, operator):
    client.force_login(operator)
    assert "No imports match these filters." in _list(client, q="nothing-like-this")
