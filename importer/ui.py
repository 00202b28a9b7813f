"""What the dashboard shows about actions: menu entries derived from states.py, the notes
operators must read before acting, and human-readable numbers."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse

from importer import roles, states
from importer.states import Action

# The Import Actions menu, in PowerStore Manager's order. Delete is REST-only (spec), and
# the schedule is changed where it is shown, so neither is a menu entry.
MENU_ACTIONS = (Action.ENABLE_DESTINATION_VOLUME, Action.START_COPY, Action.PAUSE,
                Action.RESUME, Action.CUTOVER, Action.CANCEL, Action.CLEANUP)

# The spec's "What operators must be told", shown in the confirmation dialog.
OPERATOR_NOTES = {
    Action.ENABLE_DESTINATION_VOLUME: (
        "Shut the host application down before you enable the destination volume. Ferry "
        "removes the source's host access, so nothing writes to the old path by mistake."),
    Action.START_COPY: (
        "Reconfigure the host application to use the destination volume before you start "
        "the copy."),
    Action.CUTOVER: (
        "Cutover commits the import: the destination becomes the volume of record and the "
        "source is released. A group is complete only when every member is; a partial "
        "cutover is retried until it succeeds."),
    Action.CANCEL: (
        "If the host was already reconfigured to the destination volume, shut the application "
        "down and point it back at the source volume first. Not needed if it never used the "
        "destination. Cancel removes the destination and restores the source's host access."),
}
CONFIRMED_ACTIONS = frozenset(OPERATOR_NOTES)


@dataclass(frozen=True)
class MenuEntry:
    action: str
    label: str
    enabled: bool
    reason: str  # why it is disabled, for the tooltip
    confirm: bool
    note: str
    url: str = ""


def action_menu(session, user) -> list[MenuEntry]:
    """The menu for one session; reversed once per row (the page renders 50 of them)."""
    allowed = session.allowed_actions
    may_operate = user.has_perm(roles.OPERATE)
    label = session.state_info.label
    url = reverse("importer:session-action", args=[session.pk, "ACTION"]).replace(
        "ACTION", "{action}")
    entries = []
    for action in MENU_ACTIONS:
        if not may_operate:
            reason = "Your role can view imports but not run actions."
        elif session.is_member:
            reason = "Run actions on the group session."
        elif action not in allowed:
            reason = f"Not allowed while {label}."
        else:
            reason = ""
        entries.append(MenuEntry(action.value, states.ACTION_LABELS[action], not reason, reason,
                                 action in CONFIRMED_ACTIONS, OPERATOR_NOTES.get(action, ""),
                                 url.format(action=action.value)))
    return entries


def bulk_menu() -> list[MenuEntry]:
    """Bulk actions: every menu action; each selected session is checked on its own."""
    return [MenuEntry(action.value, states.ACTION_LABELS[action], True, "",
                      action in CONFIRMED_ACTIONS, OPERATOR_NOTES.get(action, ""))
            for action in MENU_ACTIONS]


def can_force_cancel(session, user) -> bool:
    return (Action.CANCEL in session.allowed_actions and not session.is_member
            and user.has_perm(roles.FORCE_CANCEL))


_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


def human_bytes(value: int | float | None) -> str:
    if value is None:
        return "—"
    size, unit = float(value), 0
    while size >= 1000 and unit < len(_UNITS) - 1:
        size, unit = size / 1000, unit + 1
    return f"{size:.0f} {_UNITS[unit]}" if unit == 0 or size >= 100 else \
        f"{size:.1f} {_UNITS[unit]}"
