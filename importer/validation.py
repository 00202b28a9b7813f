"""Checks on what people name things and on host initiators, and escaping for logs.

No Django imports: settings' LOGGING loads ``EscapingFormatter`` before the apps exist."""

from __future__ import annotations

import logging
import re
import unicodedata

# Control (Cc), format (Cf: bidi overrides, zero-width) and line or paragraph separators:
# invisible in a table, and in a log they forge lines or rewrite the terminal.
_UNPRINTABLE = {"Cc", "Cf", "Zl", "Zp"}


def unprintable(char: str) -> bool:
    return unicodedata.category(char) in _UNPRINTABLE


def name_problem(value: str) -> str | None:
    """Why ``value`` cannot be a name, or None if it can."""
    bad = next((char for char in value if unprintable(char)), None)
    if bad is None:
        return None
    return ("A name cannot contain control characters (a newline, a tab, an escape...); "
            f"it has {_escape_char(bad)}.")


def escape_controls(text: str) -> str:
    """``text`` with each unprintable character written as its escape (``\\n``, ``\\x1b``)."""
    if not any(unprintable(char) for char in text):
        return text
    return "".join(_escape_char(char) if unprintable(char) else char for char in text)


def _escape_char(char: str) -> str:
    return char.encode("unicode_escape").decode("ascii")


class EscapingFormatter(logging.Formatter):
    """One record, one line: a name holding a newline cannot forge a log entry. Tracebacks,
    appended after the message, keep their lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))


class EscapingFilter(logging.Filter):
    """The same for handlers Ferry does not configure: Celery's worker replaces the root
    logger's (see ``escape_worker_logs``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        escaped = escape_controls(message)
        if escaped != message:
            record.msg, record.args = escaped, None
        return True


def escape_worker_logs(logger: logging.Logger | None = None, **_signal) -> None:
    """Receiver of Celery's after_setup_(task_)logger: escape in the worker's handlers."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, EscapingFilter) for f in handler.filters):
            handler.addFilter(EscapingFilter())


# --- Initiators ----------------------------------------------------------------------------

_IQN = re.compile(r"iqn\.\d{4}-(0[1-9]|1[0-2])\.[a-z0-9]([a-z0-9-]*[a-z0-9])?"
                  r"(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[^\s]+)?")
_EUI = re.compile(r"eui\.[0-9a-f]{16}")
_NAA = re.compile(r"naa\.([0-9a-f]{16}|[0-9a-f]{32})")
_WWN = re.compile(r"[0-9a-f]{16}|([0-9a-f]{2}:){7}[0-9a-f]{2}")
INITIATOR_FORMS = ("an iSCSI name (iqn.2001-04.com.example:host, eui. or naa. and hex digits) "
                   "or a Fibre Channel WWN (16 hex digits, with or without a colon every two)")


def normalise_initiator(value: str) -> str | None:
    """The initiator in its canonical form (lower case; a WWN with colons), or None if it
    is not an iSCSI name nor a WWN."""
    text = value.strip()
    lowered = text.lower()
    if any(unprintable(char) for char in text) or len(text) > 223:  # RFC 3720's limit
        return None
    if lowered.startswith("iqn."):
        # The naming authority is case-insensitive; what follows the colon is the owner's.
        authority, colon, rest = text.partition(":")
        candidate = authority.lower() + colon + rest
        return candidate if _IQN.fullmatch(candidate) else None
    if _EUI.fullmatch(lowered) or _NAA.fullmatch(lowered):
        return lowered
    if _WWN.fullmatch(lowered):
        digits = lowered.replace(":", "")
        return ":".join(digits[i:i + 2] for i in range(0, 16, 2))
    return None


def check_initiators(values) -> tuple[list[str], list[str]]:
    """(the initiators normalised, repeats dropped and order kept; a message per bad one)."""
    good, problems = [], []
    for value in values or ():
        text = str(value).strip()
        if not text:
            continue
        normal = normalise_initiator(text)
        if normal is None:
            problems.append(f"{escape_controls(text)!r} is not {INITIATOR_FORMS}.")
        elif normal not in good:
            good.append(normal)
    return good, problems
