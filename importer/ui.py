"""What the dashboard shows about actions: menu entries derived from states.py, the notes
operators must read before acting, and human-readable numbers."""

from __future__ import annotations

from dataclasses import dataclass

from django.urls import reverse

from importer import roles, states
from importer.services import source_access


@dataclass(frozen=True)
class MenuEntry:
    action: str
    label: str
    enabled: bool
    reason: str  # why it is disabled, for the tooltip
    confirm: bool
    note: str
    url: str = ""
    manual_step: str = ""  # done by hand and confirmed in the dialog (source_access)


def action_menu(session, user) -> list[MenuEntry]:
    """The menu for one session; reversed once per row (the page renders 50 of them)."""
    allowed = session.allowed_actions
    may_operate = user.has_perm(roles.OPERATE)
    label = session.state_info.label
    url = reverse("importer:session-action", args=[session.pk, "ACTION"]).replace(
        "ACTION", "{action}")
    entries = []
    for action in states.MENU_ACTIONS:
        if not may_operate:
            reason = "Your role can view imports but not run actions."
        elif session.is_member:
            reason = "Run actions on the group session."
        elif action not in allowed:
            reason = f"Not allowed while {label}."
        else:
            reason = ""
        action_info = states.ACTIONS[action]
        manual_step = _manual_step(session, action) if not reason else ""
        entries.append(MenuEntry(action.value, action_info.label, not reason, reason,
                                 action_info.confirm,
                                 MANUAL_ENABLE_NOTE if manual_step else action_info.note,
                                 url.format(action=action.value), manual_step))
    return entries


# The enable note where Ferry cannot revoke the source's host access: it must not claim to.
MANUAL_ENABLE_NOTE = ("Shut the host application down before you enable the destination "
                      "volume. Ferry cannot remove host access on this source: do the manual "
                      "step below first, so nothing writes to the old path by mistake.")


def _manual_step(session, action) -> str:
    if action != states.Action.ENABLE_DESTINATION_VOLUME:
        return ""
    return source_access.manual_step(session) or ""


def bulk_menu() -> list[MenuEntry]:
    """Bulk actions: every menu action; each selected session is checked on its own."""
    return [MenuEntry(action.value, states.ACTIONS[action].label, True, "",
                      states.ACTIONS[action].confirm, states.ACTIONS[action].note)
            for action in states.MENU_ACTIONS]


def forced_entries(session, user) -> list[MenuEntry]:
    """The admin's way out of a rollback that cannot finish: Force Cancel, Force Cleanup."""
    if session.is_member or not user.has_perm(roles.FORCE):
        return []
    url = reverse("importer:session-action", args=[session.pk, "ACTION"])
    return [MenuEntry(action.value, states.ACTIONS[action].force_label, True, "", True,
                      states.ACTIONS[action].force_note, url.replace("ACTION", action.value))
            for action in states.MENU_ACTIONS
            if action in states.forceable_actions(session.kind, session.state)]


_UNITS = ("B", "KB", "MB", "GB", "TB", "PB")


def human_bytes(value: int | float | None) -> str:
    if value is None:
        return "—"
    size, unit = float(value), 0
    while size >= 1000 and unit < len(_UNITS) - 1:
        size, unit = size / 1000, unit + 1
    return f"{size:.0f} {_UNITS[unit]}" if unit == 0 or size >= 100 else \
        f"{size:.1f} {_UNITS[unit]}"
