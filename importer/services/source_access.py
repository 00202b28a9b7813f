"""The source's host access where Ferry cannot change it: the operator's manual steps.

A driver that controls the source (the directory driver) revokes hosts' access before the
destination is enabled and restores it on cancel. One that does not (an NBD server Ferry
does not run) cannot: Ferry names the step, refuses Enable Destination Volume until the
operator confirms it was done, and records who confirmed it when. It never claims a
protection it did not apply.
"""

from __future__ import annotations

from importer.drivers import driver_class
from importer.errors import ManualStepRequired
from importer.models import ImportSession
from importer.states import State


def is_manual(session: ImportSession) -> bool:
    return not driver_class(session.remote_system.driver_type).revokes_host_access


def _volumes(session: ImportSession) -> str:
    if session.is_group:
        names = [m.source_volume.name for m in session.members.select_related("source_volume")]
        return f"the volumes of group {session.source_group.name} ({', '.join(names)})"
    return f"source volume {session.source_volume.name}"


def _hosts(session: ImportSession) -> str:
    names = sorted(session.hosts.values_list("name", flat=True))
    if names:
        return f"host{'s' if len(names) > 1 else ''} {', '.join(names)}"
    return f"every host that uses {'them' if session.is_group else 'it'}"


def unmap_step(session: ImportSession) -> str:
    """What the operator does before enabling the destination (the dashboard, the API)."""
    return (f"Unmap {_hosts(session)} from {_volumes(session)} on "
            f"{session.remote_system.name}: Ferry cannot change host access on this source. "
            "Then confirm that no host can write to the source.")


def remap_step(session: ImportSession) -> str:
    """What a cancel leaves to the operator: the hosts go back to the source."""
    return (f"Map {_hosts(session)} back to {_volumes(session)} on "
            f"{session.remote_system.name}: Ferry cannot change host access on this source.")


def require_confirmation(session: ImportSession, confirmed: bool) -> dict:
    """Before enable: the audit details of the confirmation, or ManualStepRequired."""
    if not is_manual(session):
        return {}
    step = unmap_step(session)
    if not confirmed:
        raise ManualStepRequired(
            f"{step} Confirm it with source_unmapped_confirmed=true.",
            session=session.name, manual_step=step)
    return {"manual_step": step, "source_unmapped_confirmed": True}


def manual_step(session: ImportSession) -> str | None:
    """The step the operator does by hand now, if any: unmap before enable, map back after
    a cancel of an import whose unmapping was confirmed."""
    if session.state == State.MIRROR_ENABLED and not session.is_member and is_manual(session):
        return unmap_step(session)
    if session.state == State.CANCELLED and session.source_unmap_confirmed_at:
        return remap_step(session)
    return None


def describe(session: ImportSession) -> str:
    """The truth about the source's host access, for the details page."""
    if not is_manual(session):
        return ("Revoked by Ferry while the destination is in use; restored on cancel."
                if session.source_access_backup is not None else
                "Ferry revokes it when the destination is enabled.")
    if session.source_unmap_confirmed_at:
        when = session.source_unmap_confirmed_at.strftime("%Y-%m-%d %H:%M UTC")
        return (f"Not controlled by Ferry: {session.source_unmap_confirmed_by} confirmed "
                f"the hosts were unmapped by hand ({when}).")
    return "Not controlled by Ferry: unmap the hosts by hand before enabling the destination."
