"""Audit events that are not session state changes: refusals, failed logins, and changes to
remote systems and hosts. Session transitions are recorded by ``services.transitions.record``."""

import logging

from axes.signals import user_locked_out
from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver

from importer.models import EventOutcome, ImportEvent

log = logging.getLogger(__name__)

LOGIN_FAILED = "login_failed"
LOCKED_OUT = "login_locked_out"
ACCESS_DENIED = "access_denied"


def client_address(request) -> str | None:
    """The peer's address. Behind a proxy this is the proxy's (see README, Operations)."""
    return request.META.get("REMOTE_ADDR") if request is not None else None


def record(action: str, *, user=None, actor_name: str, address: str | None,
           subject: str = "", outcome: str = EventOutcome.SUCCEEDED, error_code: str = "",
           error_message: str = "", details: dict | None = None) -> ImportEvent:
    log.info("audit: %s %s by %s from %s (%s%s)", action, subject, actor_name, address,
             outcome, f", {error_code}" if error_code else "")
    return ImportEvent.objects.create(
        session_name="", subject=subject[:255], actor=user, actor_name=actor_name[:150],
        action=action, client_address=address, outcome=outcome, error_code=error_code,
        error_message=error_message, details=details or {})


def record_denial(request, *, code: str, message: str, subject: str = "") -> ImportEvent:
    """A refused request: not logged in, a bad token, or a role that does not allow it."""
    user = getattr(request, "user", None)
    known = user if user is not None and user.is_authenticated else None
    return record(ACCESS_DENIED, user=known,
                  actor_name=known.get_username() if known else "anonymous",
                  address=client_address(request), subject=subject or request.path,
                  outcome=EventOutcome.REFUSED, error_code=code, error_message=message,
                  details={"method": request.method})


@receiver(user_login_failed)
def record_failed_login(sender, credentials, request=None, **kwargs) -> None:
    username = str(credentials.get("username", ""))
    record(LOGIN_FAILED, actor_name=username or "anonymous", address=client_address(request),
           subject=getattr(request, "path", "login"), outcome=EventOutcome.REFUSED,
           error_code="invalid_credentials",
           error_message=f"Failed login for {username or 'an empty username'}.")


@receiver(user_locked_out)
def record_lockout(sender, request, username, ip_address, **kwargs) -> None:
    record(LOCKED_OUT, actor_name=username or "anonymous", address=ip_address,
           subject="login", outcome=EventOutcome.REFUSED, error_code="locked_out",
           error_message=f"{username or 'A client'} is locked out after repeated failures.")
