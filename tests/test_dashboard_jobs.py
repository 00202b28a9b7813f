"""The Jobs page: every job with its state, step, progress, times and error; filtered by
state; each links to its session."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from importer.models import Job, JobState
from importer.states import State
from tests.conftest import make_volume_session

pytestmark = pytest.mark.django_db
JOBS = reverse("importer:job-list")


@pytest.fixture
def history():
    session = make_volume_session(State.CANCEL_REQUIRED, name="db01")
    start = timezone.now() - timedelta(minutes=3)
    done = Job.objects.create(
        resource_type="import_session", resource_action="setup", resource_id=str(session.pk),
        resource_name="db01", session=session, description_l10n="Set up the import of db01",
        state=JobState.COMPLETED, step="Done", progress_percentage=100, start_time=start,
        end_time=start + timedelta(seconds=42))
    failed = Job.objects.create(
        resource_type="import_session", resource_action="copy", resource_id=str(session.pk),
        resource_name="db01", session=session, description_l10n="Copy db01",
        state=JobState.FAILED, step="Ended: io failed", progress_percentage=37,
        start_time=start, end_time=start + timedelta(minutes=2, seconds=5),
        response_body={"error": {"code": "source_truncated", "message": "db01.img shrank.",
                                 "arguments": {}}})
    return session, done, failed


def test_the_page_lists_jobs_with_their_outcome_and_timings(client, viewer, history):
    session, done, failed = history
    client.force_login(viewer)
    page = client.get(JOBS).content.decode()
    for text in ("Set up the import of db01", "Copy db01", "Completed", "Failed", "42 s",
                 "2 min 05 s", "37%", "db01.img shrank.", "source_truncated", "Ended: io failed"):
        assert text in page, text
    assert f'href="{reverse("importer:session-detail", args=[session.pk])}"' in page


def test_the_page_filters_by_state(client, viewer, history):
    client.force_login(viewer)
    page = client.get(JOBS, {"state": "Failed"}).content.decode()
    assert "Copy db01" in page and "Set up the import of db01" not in page
    assert "Set up the import of db01" in client.get(JOBS, {"state": "bogus"}).content.decode()


def test_an_htmx_poll_gets_only_the_table(client, viewer, history):
    client.force_login(viewer)
    response = client.get(JOBS, {"state": "Completed"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="job-table"') and "<html" not in body
    assert "HX-Request" in response["Vary"]


def test_a_job_of_a_deleted_session_is_listed_without_a_link(client, viewer, history):
    session, _, _ = history
    Job.objects.update(session=None, resource_id="999999")
    client.force_login(viewer)
    page = client.get(JOBS).content.decode()
    assert "Copy db01" in page and "/imports/999999/" not in page


def test_the_job_list_query_count_does_not_grow_with_jobs(client, viewer, history,
                                                          django_assert_max_num_queries):
    session, _, _ = history
    Job.objects.bulk_create([Job(resource_type="import_session", resource_action="copy",
                                 resource_id=str(session.pk), resource_name="db01",
                                 session=session, description_l10n=f"Copy {index}")
                             for index in range(40)])
    client.force_login(viewer)
    with django_assert_max_num_queries(12):
        assert "Copy 39" in client.get(JOBS).content.decode()


def test_the_jobs_page_marks_its_nav_entry_active(client, viewer):
    client.force_login(viewer)
    page = client.get(JOBS).content.decode()
    assert f'class="ferry-nav-link active" href="{JOBS}"' in page
    assert "<title>Jobs · Ferry</title>" in page
