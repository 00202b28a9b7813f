"""Requests too big for the API: an oversized body is a 413 problem, and ``?limit=`` has a
ceiling (documented in the schema)."""

import pytest
from knox.models import AuthToken
from rest_framework.test import APIClient

from importer.api.pagination import MAX_LIMIT
from importer.models import ImportEvent
from tests.api_helpers import API, client_for

BIG = 3 * 1024 * 1024  # above Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MiB)


def _big_body() -> str:
    return '{"name": "' + "x" * BIG + '"}'


def _token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {AuthToken.objects.create(user)[1]}")
    return client


@pytest.mark.parametrize("headers", [{}, {"HTTP_IDEMPOTENCY_KEY": "big-1"}])
def test_an_oversized_body_is_a_413_problem(admin_user, headers):
    response = _token_client(admin_user).post(f"{API}/hosts/", _big_body(),
                                              content_type="application/json", **headers)
    assert response.status_code == 413, response.content[:300]
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "request_too_large" and "2621440 bytes" in body["detail"]


def test_a_request_django_refuses_before_the_api_is_a_400_problem(viewer):
    response = client_for(viewer).get(f"{API}/events/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "bad_request"
    assert "ALLOWED_HOSTS" not in response.json()["detail"]


@pytest.mark.django_db
def test_an_oversized_form_outside_the_api_keeps_the_html_400(client, admin_user):
    client.force_login(admin_user)
    response = client.post("/hosts/new/", {"name": "x" * BIG})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


def test_limit_is_capped(viewer):
    ImportEvent.objects.bulk_create(
        ImportEvent(action="probe", actor_name="system") for _ in range(MAX_LIMIT + 5))
    client = client_for(viewer)
    for limit in (MAX_LIMIT + 1, 10**20):
        response = client.get(f"{API}/events/", {"limit": limit})
        assert response.status_code == 200, response.content
        body = response.json()
        assert len(body["results"]) == MAX_LIMIT and body["count"] == MAX_LIMIT + 5
        assert f"limit={MAX_LIMIT}" in body["next"]


def test_the_schema_documents_the_limits_ceiling(viewer):
    schema = client_for(viewer).get(f"{API}/schema/?format=json").json()
    limit = next(p for p in schema["paths"]["/api/v1/events/"]["get"]["parameters"]
                 if p["name"] == "limit")
    assert limit["schema"]["maximum"] == MAX_LIMIT and str(MAX_LIMIT) in limit["description"]
    assert "413" in schema["paths"]["/api/v1/hosts/"]["post"]["responses"]
