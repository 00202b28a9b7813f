"""The whole API fuzzed against its own OpenAPI schema (schemathesis, in process).

Valid and invalid requests for every operation, a bounded number each: no answer may be a
5xx, and every answer must match the schema (status, content type, body)."""

import os

import pytest
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, settings
from knox.models import AuthToken
from schemathesis import pytest as schemathesis_pytest
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from importer.models import Host
from tests.conftest import GROUP_MEMBERS, make_session

# CI runs the same examples every time, so it never goes red by chance; set
# FERRY_FUZZ_RANDOM=true to explore new ones (a failure prints how to reproduce it), and
# FERRY_FUZZ_EXAMPLES for more of them (`make fuzz` draws hundreds per operation).
DERANDOMIZE = os.environ.get("FERRY_FUZZ_RANDOM", "").lower() not in {"1", "true", "yes"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
EXAMPLES_PER_OPERATION = int(os.environ.get("FERRY_FUZZ_EXAMPLES", "25"))

pytestmark = pytest.mark.fuzz


@pytest.fixture
def in_process_requests():
    """Keep the test's transaction open across the in-process requests, as Django's test
    client does: Django would otherwise close the connection after each one."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def token(admin_user) -> str:
    return AuthToken.objects.create(admin_user)[1]


@pytest.fixture
def api_schema(db, in_process_requests, token, enqueued):
    import schemathesis

    host = Host.objects.create(name="esx-fuzz")
    for state in list(GROUP_MEMBERS)[:8]:  # ids the fuzzer can hit, in several states
        make_session("volume", state).hosts.add(host)
        make_session("group", state).hosts.add(host)
    return schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json",
                                          get_wsgi_application(),
                                          headers={"Authorization": f"Token {token}"})


# Revoking tokens would log the fuzzer itself out; tests/test_api.py covers them.
schema = schemathesis_pytest.from_fixture("api_schema").exclude(path_regex="/auth/logout")


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=DERANDOMIZE,
          suppress_health_check=list(HealthCheck))
def test_the_api_matches_its_schema_and_never_fails(case, token):
    # Each example in a savepoint, rolled back and released after: on PostgreSQL a failed
    # query would otherwise abort the test's transaction and fail every later example, and
    # savepoints never released would nest, one per example, until PostgreSQL runs out of
    # lock memory ("out of shared memory") at a few thousand examples.
    with transaction.atomic():
        try:
            case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)
        finally:
            transaction.set_rollback(True)
