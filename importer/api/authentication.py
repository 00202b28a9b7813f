"""HTTP Basic that says so when django-axes has locked the client out."""

from django.conf import settings
from rest_framework import exceptions
from rest_framework.authentication import BasicAuthentication


class LockedOut(exceptions.APIException):
    status_code = 429
    default_code = "locked_out"

    def __init__(self, username: str):
        self.wait = round(settings.AXES_COOLOFF_TIME * 3600)  # seconds, for Retry-After
        super().__init__(
            f"Too many failed logins for {username} from this address: locked out for "
            f"{self.wait // 60} minutes. An administrator can lift it with "
            f"`manage.py axes_reset_username {username}`.")


class LockoutAwareBasicAuthentication(BasicAuthentication):
    """A locked-out client is told it is locked out, rather than that a right password is
    wrong: django-axes refuses it before the password is checked."""

    def authenticate_credentials(self, userid, password, request=None):
        try:
            return super().authenticate_credentials(userid, password, request)
        except exceptions.AuthenticationFailed:
            if getattr(request, "axes_locked_out", False):
                raise LockedOut(userid) from None
            raise
