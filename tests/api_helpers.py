"""Helpers for the API tests: clients per role and the endpoints of an action."""

from rest_framework.test import APIClient

API = "/api/v1"


def client_for(user=None) -> APIClient:
    """A client logged in with the user's session cookie (or anonymous)."""
    client = APIClient()
    if user is not None:
        client.force_login(user)
    return client


def session_url(session_id, suffix: str = "") -> str:
    return f"{API}/import-sessions/{session_id}/{suffix}"


def run_action(client, session_id, action: str, **body):
    """An action as the API spells it: a POST, except delete and modify_schedule."""
    if action == "delete":
        return client.delete(session_url(session_id))
    if action == "modify_schedule":
        return client.patch(session_url(session_id), body, format="json")
    return client.post(session_url(session_id, f"{action.replace('_', '-')}/"), body,
                       format="json")
