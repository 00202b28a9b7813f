"""What the dashboard shows about actions: menu entries derived from states.py, the notes
operators must read before acting, and human-readable numbers."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q
from django.urls import reverse

from importer import roles, states
from importer.services import frontends, source_access


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
    # The dialog's buttons, named by what they do (states.ActionInfo).
    confirm_label: str = ""
    dismiss_label: str = ""
    destructive: bool = False


def _buttons(action_info: states.ActionInfo, forced: bool = False) -> dict:
    if forced:
        return {"confirm_label": action_info.force_confirm_label,
                "dismiss_label": action_info.force_dismiss_label, "destructive": True}
    return {"confirm_label": action_info.confirm_label,
            "dismiss_label": action_info.dismiss_label,
            "destructive": action_info.destructive}


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
                                 url.format(action=action.value), manual_step,
                                 **_buttons(action_info)))
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
                      states.ACTIONS[action].confirm, states.ACTIONS[action].note,
                      **_buttons(states.ACTIONS[action]))
            for action in states.MENU_ACTIONS]


def forced_entries(session, user) -> list[MenuEntry]:
    """The admin's way out of a rollback that cannot finish: Force Cancel, Force Cleanup."""
    if session.is_member or not user.has_perm(roles.FORCE):
        return []
    url = reverse("importer:session-action", args=[session.pk, "ACTION"])
    return [MenuEntry(action.value, states.ACTIONS[action].force_label, True, "", True,
                      states.ACTIONS[action].force_note, url.replace("ACTION", action.value),
                      **_buttons(states.ACTIONS[action], forced=True))
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


# --- Host access: the destination's front end and how each mapped host connects -----------

FRONTEND_STATES = {  # value: (label, tone)
    "starting": ("Starting", "info"),
    "serving": ("Serving", "success"),
    "failed": ("Failed", "danger"),
    "stopped": ("Stopped", "neutral"),
}
FRONTEND_MODES = {
    "forward": "Forwarding writes to the source",
    "cut_over": "Serving from the destination only",
    "fenced": "Fenced: no host I/O",
}
KEY_FOLDER = "/etc/ferry"  # on the host: one folder per volume, qemu's tls-creds-psk dir


@dataclass(frozen=True)
class FrontEndPanel:
    volume: object
    state_label: str
    tone: str
    mode_label: str
    cannot_serve: bool  # enabled, yet no front end was ever started (a node without it)
    hosts: list


def host_access_panels(session, user) -> list[FrontEndPanel]:
    """One panel per destination volume that hosts use or should: its front end, and for
    each mapped host the address, identity, key (operators only) and commands."""
    may_operate = user.has_perm(roles.OPERATE)
    access = frontends.host_access(session)
    panels = []
    for member, volume in frontends.destination_volumes(session):
        wanted = frontends.wanted_mode(member.state) is not None
        if not volume.frontend_state and not (wanted and volume.is_enabled):
            continue  # before Enable Destination Volume: nothing to show for it
        label, tone = FRONTEND_STATES.get(volume.frontend_state, ("Not started", "warning"))
        hosts = [_with_commands(entry, may_operate) for entry in access
                 if entry["volume"] == volume.name]
        panels.append(FrontEndPanel(volume, label, tone,
                                    FRONTEND_MODES.get(volume.frontend_mode, "—"),
                                    not volume.frontend_state, hosts))
    return panels


def host_commands(entry: dict, key_folder: str = KEY_FOLDER) -> dict[str, str]:
    """Ready-to-paste commands for a Linux host (Debian: libnbd-bin, qemu-utils), all
    reading the key from <key_folder>/<volume>/keys.psk (psktool's format)."""
    folder = f"{key_folder}/{entry['volume']}"
    psk_file = f"{folder}/keys.psk"
    uri = (f"nbds://{entry['tls_psk_identity']}@{entry['address']}:{entry['port']}/"
           f"?tls-psk-file={psk_file}")
    mount = f"/mnt/ferry-{entry['volume']}"
    qemu_object = (f"tls-creds-psk,id=tls0,endpoint=client,dir={folder},"
                   f"username={entry['tls_psk_identity']}")
    qemu_blockdev = (f"driver=nbd,server.type=inet,server.host={entry['address']},"
                     f"server.port={entry['port']},tls-creds=tls0")
    return {
        "psk_file": psk_file,
        "uri": uri,
        "check": f"nbdinfo '{uri}'",
        # nbdsh -u refuses a URI that names a local file (the key): allow it first.
        "nbdsh": (f"nbdsh -c 'h.set_uri_allow_local_file(True)' "
                  f"-c 'h.connect_uri(\"{uri}\")' -c 'print(h.get_size())'"),
        # nbdfuse (libnbd 1.14) refuses a URI that names the key file: nbdkit's nbd plugin
        # (Debian's nbdkit) makes the TLS connection as nbdfuse's subprocess instead.
        "nbdfuse": (f"mkdir -p {mount} && nbdfuse -P /run/ferry-{entry['volume']}.pid "
                    f"{mount}/disk [ nbdkit nbd hostname={entry['address']} "
                    f"port={entry['port']} tls=require tls-psk={psk_file} "
                    f"tls-username={entry['tls_psk_identity']} ] &\n"
                    f"losetup --find --show {mount}/disk"),
        "mount_dir": mount,
        "qemu_img": f"qemu-img info --object {qemu_object} --image-opts {qemu_blockdev}",
        "qemu": f"-object {qemu_object} -blockdev node-name=ferry0,{qemu_blockdev}",
    }


def _with_commands(entry: dict, may_operate: bool) -> dict:
    commands = host_commands(entry)
    folder = commands["psk_file"].rsplit("/", 1)[0]
    if may_operate:
        commands["save_key"] = (f"install -d -m 700 {folder} && umask 077 && "
                                f"echo '{entry['psk_file_line']}' > {commands['psk_file']}")
    shown = {key: value for key, value in entry.items()
             if may_operate or key not in ("tls_psk_key", "psk_file_line")}
    return {**shown, "commands": commands}


def cancel_host_step(session) -> str:
    """After a cancel that left hosts on Ferry's front end: the step that re-points them."""
    from importer.models import ImportEvent
    from importer.states import State

    if session.state != State.CANCELLED:
        return ""
    events = ImportEvent.objects.filter(
        Q(session=session) | Q(session__parent_session=session), to_state=State.CANCELLED)
    steps = {event.details.get("host_step") for event in events
             if isinstance(event.details, dict)}
    return " ".join(sorted(step for step in steps if step))


def delete_call(session, request) -> str:
    """Deleting a finished session's record is REST-only (spec): the call, ready to paste,
    for a session whose state allows it; "" otherwise."""
    if session.is_member or states.Action.DELETE not in session.allowed_actions:
        return ""
    url = request.build_absolute_uri(reverse("api:import-session-detail", args=[session.pk]))
    return f'curl -X DELETE -H "Authorization: Token $FERRY_TOKEN" {url}'


# Deleting an inventory record: the same dialog as the Import Actions, with buttons named
# by what they do. {name} is the record's name.
INVENTORY_DELETES = {
    "remote_system": {
        "title": "Delete remote system?",
        "note": "Ferry forgets {name} and what was discovered on it. Nothing on the system "
                "itself changes; you can add it again and rediscover it.",
        "confirm_label": "Delete remote system", "dismiss_label": "Keep it"},
    "host": {
        "title": "Delete host?",
        "note": "Ferry forgets {name} and its initiators. A host mapped to a volume or used "
                "by an unfinished import cannot be deleted.",
        "confirm_label": "Delete host", "dismiss_label": "Keep it"},
}
