"""The domain errors services raise. Views and the API map them to responses.

Every error carries a stable ``code``, a human ``message`` and its ``arguments``.
"""


class FerryError(Exception):
    code = "ferry_error"

    def __init__(self, message: str, **arguments):
        super().__init__(message)
        self.message = message
        self.arguments = arguments

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "arguments": self.arguments}


class NotFound(FerryError):
    code = "not_found"


class PermissionDenied(FerryError):
    code = "permission_denied"


class ValidationError(FerryError):
    """Bad input. ``field_errors`` maps a field name to its messages."""

    code = "validation_error"

    def __init__(self, field_errors: dict[str, list[str]]):
        summary = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in field_errors.items())
        super().__init__(f"Invalid input. {summary}", field_errors=field_errors)
        self.field_errors = field_errors


class InUse(FerryError):
    """The object cannot be removed or changed while something still depends on it."""

    code = "in_use"


class ActionNotAllowed(FerryError):
    """The session's state (or role) does not allow the action."""

    code = "action_not_allowed"

    def __init__(self, session_name: str, action: str, state: str, allowed, reason: str = ""):
        from importer import states

        allowed = sorted(allowed)
        label = states.info(state).label
        message = reason or (
            f"{action} is not allowed while {session_name} is {label}. "
            f"Allowed: {', '.join(allowed) or 'none'}."
        )
        super().__init__(message, session=session_name, action=action, state=state,
                         allowed_actions=allowed)
        self.state = state
        self.allowed_actions = allowed


class ManualStepRequired(FerryError):
    """The operator must do something on the source by hand, and confirm it, first."""

    code = "source_unmap_required"


class SourceError(FerryError):
    """A remote system or source volume cannot be used: missing, unreadable, escaping."""

    def __init__(self, code: str, message: str, **arguments):
        super().__init__(message, **arguments)
        self.code = code
