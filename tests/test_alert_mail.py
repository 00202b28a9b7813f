"""New alerts are e-mailed to FERRY_ALERT_EMAILS once their transaction commits; no
recipients, no mail; a mail server that fails never fails the transition."""

import pytest
from django.core import mail

from importer.errors import SourceError
from importer.models import Alert
from importer.services.transitions import advance
from importer.states import Event, State
from tests.conftest import make_volume_session

pytestmark = pytest.mark.django_db


@pytest.fixture
def recipients(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.FERRY_ALERT_EMAILS = ["storage-team@example.com", "oncall@example.com"]
    return settings.FERRY_ALERT_EMAILS


def _fail_a_setup(capture):
    session = make_volume_session(State.QUEUED, pending_job="setup", name="db01")
    with capture(execute=True) as callbacks:
        advance(session.pk, Event.SETUP_FAILED, expected=State.QUEUED,
                error=SourceError("source_volume_missing", "db01.img is gone."))
    session.refresh_from_db()
    return session, callbacks


def test_a_new_alert_is_mailed_after_commit(recipients, django_capture_on_commit_callbacks):
    _fail_a_setup(django_capture_on_commit_callbacks)
    [message] = mail.outbox
    assert message.to == recipients
    assert message.subject == "[Ferry] Critical: db01"
    assert "db01.img is gone." in message.body


def test_no_recipients_no_mail(settings, django_capture_on_commit_callbacks):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.FERRY_ALERT_EMAILS = []
    _fail_a_setup(django_capture_on_commit_callbacks)
    assert mail.outbox == [] and Alert.objects.count() == 1


def test_a_failing_mail_server_does_not_fail_the_transition(
        recipients, monkeypatch, django_capture_on_commit_callbacks):
    def refuse(*args, **kwargs):
        raise ConnectionRefusedError("no mail server")
    monkeypatch.setattr("importer.services.alerts.send_mail", refuse)
    session, callbacks = _fail_a_setup(django_capture_on_commit_callbacks)
    assert len(callbacks) >= 1  # the mail was tried, after commit
    assert session.state == State.FAILED and Alert.objects.count() == 1


def test_an_alert_cleared_before_commit_is_not_mailed(recipients,
                                                      django_capture_on_commit_callbacks):
    session = make_volume_session(State.COPY_IN_PROGRESS, pending_job="copy",
                                  automatic_cutover=True)
    with django_capture_on_commit_callbacks(execute=True):
        advance(session.pk, Event.COPY_COMPLETED, expected=State.COPY_IN_PROGRESS)
    session.refresh_from_db()
    assert session.state == State.CUTOVER_IN_PROGRESS
    assert Alert.objects.get().state == "CLEARED" and mail.outbox == []
