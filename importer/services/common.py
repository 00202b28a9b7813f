"""Small helpers every service module shares: who acts, lookups, and audit records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from importer import audit
from importer.errors import FerryError, NotFound, PermissionDenied

NAME_MAX = 255


@dataclass(frozen=True)
class Actor:
    """Who asks: a user (with the client's address) or Ferry itself."""

    user: Any = None
    address: str | None = None

    @classmethod
    def of(cls, request) -> "Actor":
        """The user behind a web, API or admin request, and where it came from."""
        return cls(request.user, audit.client_address(request))

    @property
    def is_system(self) -> bool:
        return self.user is None

    @property
    def name(self) -> str:
        return "system" if self.is_system else self.user.get_username()

    def require(self, permission: str, doing: str) -> None:
        if self.is_system or self.user.has_perm(permission):
            return
        refusal = PermissionDenied(f"{self.name} is not allowed to {doing}.",
                                   permission=permission, user=self.name)
        audit.record(audit.ACCESS_DENIED, user=self.user, actor_name=self.name,
                     address=self.address, subject=doing, outcome="refused",
                     error_code=refusal.code, error_message=refusal.message,
                     details={"permission": permission})
        raise refusal


SYSTEM = Actor()


def get_object(model, pk):
    try:
        return model.objects.get(pk=pk)
    except (model.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"{model._meta.verbose_name.capitalize()} {pk} does not exist.",
                       id=str(pk)) from None


def jsonable(value):
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def audit_change(action: str, actor: Actor, subject: str, details: dict | None = None,
                 error: FerryError | None = None) -> None:
    """An audit event for a change that is not a session's: systems, hosts, discovery."""
    audit.record(action, user=actor.user, actor_name=actor.name, address=actor.address,
                 subject=subject, outcome="failed" if error else "succeeded",
                 error_code=error.code if error else "",
                 error_message=error.message if error else "",
                 details=jsonable(details or {}))
