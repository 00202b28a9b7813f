"""The import state machine as data: every state, what it allows, and how it moves on.

Pure Python on purpose. Buttons, the API's ``allowed_actions``, admin actions, README's
diagrams and the state-matrix tests all derive from this module; nothing restates it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

VOLUME = "volume"
GROUP = "group"
KINDS = (VOLUME, GROUP)


class Tone(StrEnum):
    """Semantic colour of a state badge; CSS maps tones to colours."""

    NEUTRAL = "neutral"
    INFO = "info"
    WARNING = "warning"
    SUCCESS = "success"
    DANGER = "danger"


class Phase(StrEnum):
    """Who moves the session on next."""

    ACTIVE = "active"  # Ferry is working, the state changes by itself
    WAITING = "waiting"  # an operator has to act
    TERMINAL = "terminal"  # final outcome; only the record can be deleted


class Severity(StrEnum):
    """How urgent an alert is, with PowerStore's names (most urgent first)."""

    CRITICAL = "Critical"
    MAJOR = "Major"
    MINOR = "Minor"
    INFO = "Info"


# Severity → the tone its badge takes; CSS maps tones to colours.
SEVERITY_TONES = {Severity.CRITICAL: Tone.DANGER, Severity.MAJOR: Tone.DANGER,
                  Severity.MINOR: Tone.WARNING, Severity.INFO: Tone.INFO}


class State(StrEnum):
    """Stored values: the PowerStore REST names."""

    SCHEDULED = "Scheduled"
    QUEUED = "Queued"
    IN_PROGRESS = "In_Progress"
    MIRROR_ENABLED = "Mirror_Enabled"
    READY_TO_START_COPY = "Ready_To_Start_Copy"
    COPY_IN_PROGRESS = "Copy_In_Progress"
    PAUSED = "Paused"
    READY_FOR_CUTOVER = "Ready_For_Cutover"
    CUTOVER_IN_PROGRESS = "Cutover_In_Progress"
    IMPORT_COMPLETED = "Import_Completed"
    IMPORT_COMPLETED_WITH_ERRORS = "Import_Completed_With_Errors"
    IMPORT_CUTOVER_INCOMPLETE = "Import_Cutover_Incomplete"
    CANCEL_REQUIRED = "Cancel_Required"
    CANCEL_IN_PROGRESS = "Cancel_In_Progress"
    CANCEL_FAILED = "Cancel_Failed"
    CANCELLED = "Cancelled"
    CLEANUP_REQUIRED = "Cleanup_Required"
    CLEANUP_IN_PROGRESS = "Cleanup_In_Progress"
    CLEANUP_FAILED = "Cleanup_Failed"
    FAILED = "Failed"


class Action(StrEnum):
    """Operator actions, by their REST names."""

    ENABLE_DESTINATION_VOLUME = "enable_destination_volume"
    START_COPY = "start_copy"
    PAUSE = "pause"
    RESUME = "resume"
    CUTOVER = "cutover"
    CANCEL = "cancel"
    CLEANUP = "cleanup"
    DELETE = "delete"
    MODIFY_SCHEDULE = "modify_schedule"


@dataclass(frozen=True)
class ActionInfo:
    """How an action is shown: its label, the note an operator reads before confirming it
    (the spec's "What operators must be told"), and what forcing it skips (admins only).

    A confirmation dialog names its two buttons by what they do ("Cancel import" / "Keep
    importing"), never "OK" / "Close"; the dismiss button is the one focused, so Enter
    never runs an action by default. ``destructive`` actions get a danger-coloured button.
    """

    label: str
    summary: str
    note: str = ""
    force_label: str = ""
    force_note: str = ""
    in_menu: bool = True  # Delete is REST-only (spec); the schedule is edited where shown
    confirm_label: str = ""
    dismiss_label: str = ""
    destructive: bool = False
    force_confirm_label: str = ""
    force_dismiss_label: str = ""

    @property
    def confirm(self) -> bool:
        return bool(self.note)

    @property
    def forceable(self) -> bool:
        return bool(self.force_label)


# In PowerStore Manager's menu order: the Import Actions menu, the bulk menu, the admin's
# actions and the API's action endpoints are all derived from this table.
ACTIONS: dict[Action, ActionInfo] = {
    Action.ENABLE_DESTINATION_VOLUME: ActionInfo(
        "Enable Destination Volume", "Enable the destination volume",
        "Shut the host application down before you enable the destination volume. Ferry "
        "removes the source's host access, so nothing writes to the old path by mistake.",
        confirm_label="Enable destination volume", dismiss_label="Not yet"),
    Action.START_COPY: ActionInfo(
        "Start Copy", "Start copying",
        "Reconfigure the host application to use the destination volume before you start "
        "the copy.", confirm_label="Start copy", dismiss_label="Not yet"),
    Action.PAUSE: ActionInfo("Pause", "Pause the copy"),
    Action.RESUME: ActionInfo("Resume", "Resume the copy from its last checkpoint"),
    Action.CUTOVER: ActionInfo(
        "Cutover", "Cut over to the destination",
        "Cutover commits the import: the destination becomes the volume of record and the "
        "source is released. A group is complete only when every member is; a partial "
        "cutover is retried until it succeeds.",
        confirm_label="Cut over", dismiss_label="Not yet"),
    Action.CANCEL: ActionInfo(
        "Cancel", "Cancel, and roll back",
        "If the host was already reconfigured to the destination volume, shut the application "
        "down and point it back at the source volume first. Not needed if it never used the "
        "destination. Cancel removes the destination and restores the source's host access.",
        force_label="Force Cancel",
        force_note="Force cancel stops the import without rolling back the source: the "
        "destination is removed if it can be, but the source's host access is NOT restored "
        "(it stays read-only) and must be fixed by hand. What was skipped is recorded in the "
        "audit trail. Type the session's name to confirm.",
        confirm_label="Cancel import", dismiss_label="Keep importing", destructive=True,
        force_confirm_label="Force cancel import", force_dismiss_label="Keep importing"),
    Action.CLEANUP: ActionInfo(
        "Cleanup", "Clean up after a failed rollback",
        force_label="Force Cleanup",
        force_note="Force cleanup gives up on restoring the source: it does NOT restore the "
        "source's host access (it stays read-only, or the source is gone), records what it "
        "skipped in the audit trail, frees the import slot and ends the session Cancelled, "
        "so it can be deleted. Use it only for a source that cannot come back. Type the "
        "session's name to confirm.",
        force_confirm_label="Force cleanup", force_dismiss_label="Don't force"),
    Action.DELETE: ActionInfo("Delete", "Delete a finished session's record", in_menu=False),
    Action.MODIFY_SCHEDULE: ActionInfo("Modify Schedule", "Change the schedule",
                                       in_menu=False),
}
ACTION_LABELS = {action: action_info.label for action, action_info in ACTIONS.items()}
MENU_ACTIONS = tuple(action for action, action_info in ACTIONS.items() if action_info.in_menu)
FORCEABLE_ACTIONS = frozenset(a for a, action_info in ACTIONS.items() if action_info.forceable)


class Job(StrEnum):
    """Work a worker does for a volume session. Each is idempotent and runs under the
    session's lease, so a job whose worker died is simply run again (see services.jobs)."""

    SETUP = "setup"
    ENABLE = "enable"
    COPY = "copy"
    CUTOVER = "cutover"
    CANCEL = "cancel"
    CLEANUP = "cleanup"


# What the Jobs page calls each job, followed by the session's name.
JOB_DESCRIPTIONS = {
    Job.SETUP: "Set up the import of",
    Job.ENABLE: "Enable the destination volume of",
    Job.COPY: "Copy",
    Job.CUTOVER: "Cut over",
    Job.CANCEL: "Cancel and roll back",
    Job.CLEANUP: "Clean up after",
}


class Event(StrEnum):
    """Things that happen to a session without an operator: the worker's outcomes."""

    SCHEDULE_DUE = "schedule_due"
    SETUP_SUCCEEDED = "setup_succeeded"
    SETUP_FAILED = "setup_failed"
    COPY_COMPLETED = "copy_completed"
    IO_FAILED = "io_failed"
    AUTOMATIC_CUTOVER = "automatic_cutover"
    CUTOVER_SUCCEEDED = "cutover_succeeded"
    CUTOVER_RETRYABLE = "cutover_retryable"
    CANCEL_SUCCEEDED = "cancel_succeeded"
    CANCEL_FAILED = "cancel_failed"
    SOURCE_RESTORE_FAILED = "source_restore_failed"
    CLEANUP_SUCCEEDED = "cleanup_succeeded"
    CLEANUP_FAILED = "cleanup_failed"
    GROUP_STOPPED = "group_stopped"  # a sibling failed; a consistency group stops together


@dataclass(frozen=True)
class StateInfo:
    value: State
    label: str
    tone: Tone
    phase: Phase
    volume_actions: frozenset[Action]
    group_actions: frozenset[Action]
    hint: str = ""  # the operator's next step, on the details page
    # A session in this state raises an alert of this severity (None: no alert), cleared
    # when it leaves the state (services.alerts).
    alert: Severity | None = None

    @property
    def is_active(self) -> bool:
        return self.phase is Phase.ACTIVE

    @property
    def is_terminal(self) -> bool:
        return self.phase is Phase.TERMINAL


def _info(value, label, tone, phase, volume=(), group=(), hint="", alert=None):
    return StateInfo(value, label, tone, phase, frozenset(volume), frozenset(group), hint,
                     alert)


A = Action
_CANCEL_SCHEDULE = (A.CANCEL, A.MODIFY_SCHEDULE)

# One line per state: the spec's "Allowed actions per state" table, literally.
STATES: dict[State, StateInfo] = {
    info.value: info
    for info in (
        _info(State.SCHEDULED, "Scheduled", Tone.NEUTRAL, Phase.ACTIVE,
              _CANCEL_SCHEDULE, _CANCEL_SCHEDULE),
        _info(State.QUEUED, "Queued", Tone.NEUTRAL, Phase.ACTIVE, [A.CANCEL], [A.CANCEL]),
        _info(State.IN_PROGRESS, "In Progress", Tone.INFO, Phase.ACTIVE,
              [], [A.PAUSE, A.CANCEL]),
        _info(State.MIRROR_ENABLED, "Ready To Enable Destination Volume", Tone.WARNING,
              Phase.WAITING, [A.ENABLE_DESTINATION_VOLUME, A.CANCEL],
              [A.ENABLE_DESTINATION_VOLUME, A.CANCEL]),
        _info(State.READY_TO_START_COPY, "Ready To Start Copy", Tone.WARNING, Phase.WAITING,
              [A.START_COPY, A.CANCEL], [A.START_COPY, A.CANCEL]),
        _info(State.COPY_IN_PROGRESS, "Copy In Progress", Tone.INFO, Phase.ACTIVE,
              [A.PAUSE, A.CANCEL], []),
        _info(State.PAUSED, "Paused", Tone.WARNING, Phase.WAITING,
              [A.RESUME, A.CANCEL], [A.RESUME, A.CANCEL]),
        _info(State.READY_FOR_CUTOVER, "Ready For Cutover", Tone.SUCCESS, Phase.WAITING,
              [A.CUTOVER, A.CANCEL], [A.CUTOVER, A.CANCEL],
              hint="run Cutover (after an error: fix the cause, then retry Cutover).",
              alert=Severity.INFO),
        _info(State.CUTOVER_IN_PROGRESS, "Cutover In Progress", Tone.INFO, Phase.ACTIVE),
        _info(State.IMPORT_COMPLETED, "Import Completed", Tone.SUCCESS, Phase.TERMINAL,
              [A.DELETE], [A.DELETE]),
        _info(State.IMPORT_COMPLETED_WITH_ERRORS, "Import Completed With Errors",
              Tone.WARNING, Phase.TERMINAL, [], [A.DELETE], alert=Severity.MINOR),
        _info(State.IMPORT_CUTOVER_INCOMPLETE, "Import Cutover Incomplete", Tone.DANGER,
              Phase.WAITING, [], [A.CUTOVER, A.CANCEL],
              hint="fix the cause, then retry Cutover (or cancel the members not completed).",
              alert=Severity.MAJOR),
        _info(State.CANCEL_REQUIRED, "Cancel Required", Tone.DANGER, Phase.WAITING,
              [A.CANCEL], [A.CANCEL],
              hint="cancel the import; fix the cause named above, then import again.",
              alert=Severity.CRITICAL),
        _info(State.CANCEL_IN_PROGRESS, "Cancel In Progress", Tone.INFO, Phase.ACTIVE),
        _info(State.CANCEL_FAILED, "Cancel Failed", Tone.DANGER, Phase.WAITING,
              [A.CANCEL], [A.CANCEL], hint="fix the pool, then cancel again.",
              alert=Severity.MAJOR),
        _info(State.CANCELLED, "Cancelled", Tone.NEUTRAL, Phase.TERMINAL,
              [A.DELETE], [A.DELETE]),
        _info(State.CLEANUP_REQUIRED, "Cleanup Required", Tone.DANGER, Phase.WAITING,
              [A.CLEANUP], [A.CLEANUP],
              hint="make the source reachable, then run Cleanup. An admin can force cleanup "
                   "for a source that is gone for good.", alert=Severity.MAJOR),
        _info(State.CLEANUP_IN_PROGRESS, "Cleanup In Progress", Tone.INFO, Phase.ACTIVE),
        _info(State.CLEANUP_FAILED, "Cleanup Failed", Tone.DANGER, Phase.WAITING,
              [A.CLEANUP], [A.CLEANUP],
              hint="make the source reachable, then run Cleanup again. An admin can force "
                   "cleanup for a source that is gone for good.", alert=Severity.MAJOR),
        _info(State.FAILED, "Failed", Tone.DANGER, Phase.WAITING,
              [A.CANCEL, A.DELETE], [A.CANCEL, A.DELETE],
              hint="cancel (or delete) the session, fix the source, then import again.",
              alert=Severity.CRITICAL),
    )
}

S = State

# Groupings that the top bar, the scheduler, the mover and the pages share.
NEEDS_ATTENTION = frozenset({S.FAILED, S.CANCEL_REQUIRED, S.CANCEL_FAILED, S.CLEANUP_REQUIRED,
                             S.CLEANUP_FAILED, S.IMPORT_CUTOVER_INCOMPLETE})
ACTIVE = frozenset(state for state, state_info in STATES.items() if state_info.is_active)
# Waiting on an operator's next step, with nothing wrong (Paused, Ready To Enable
# Destination Volume, Ready To Start Copy): the top bar's "waiting" count. Ready For
# Cutover has a count of its own, and what went wrong needs attention instead.
WAITING = frozenset(state for state, state_info in STATES.items()
                    if state_info.phase is Phase.WAITING) - NEEDS_ATTENTION - {S.READY_FOR_CUTOVER}
# A session holds an import slot from admission until it ends (Failed frees it: no copy ran).
RELEASES_SLOT = frozenset(
    {state for state, state_info in STATES.items() if state_info.is_terminal} | {S.FAILED})
UNFINISHED = frozenset(state for state, state_info in STATES.items()
                       if not state_info.is_terminal)
# The copier may still record a range it wrote once a pause or cancel was asked for.
CHECKPOINTING = frozenset({S.COPY_IN_PROGRESS, S.PAUSED, S.CANCEL_IN_PROGRESS})
# Shows a current transfer rate and an ETA.
COPYING = frozenset({S.COPY_IN_PROGRESS, S.IN_PROGRESS})
# The job a volume session gets when it enters a state (setup comes with a free slot).
ENTRY_JOBS: dict[State, Job] = {
    S.READY_TO_START_COPY: Job.ENABLE,
    S.COPY_IN_PROGRESS: Job.COPY,
    S.CUTOVER_IN_PROGRESS: Job.CUTOVER,
    S.CANCEL_IN_PROGRESS: Job.CANCEL,
    S.CLEANUP_IN_PROGRESS: Job.CLEANUP,
}

_CANCELLABLE = [S.SCHEDULED, S.QUEUED, S.MIRROR_ENABLED, S.READY_TO_START_COPY,
                S.COPY_IN_PROGRESS, S.PAUSED, S.READY_FOR_CUTOVER, S.CANCEL_REQUIRED,
                S.CANCEL_FAILED, S.FAILED]
# Where an I/O failure or a network outage can strike once setup is done.
_IO_EXPOSED = [S.MIRROR_ENABLED, S.READY_TO_START_COPY, S.COPY_IN_PROGRESS, S.PAUSED,
               S.READY_FOR_CUTOVER, S.CUTOVER_IN_PROGRESS]

# Every move a volume session can make: (from, trigger, to).
VOLUME_TRANSITIONS: tuple[tuple[State, Action | Event, State], ...] = (
    (S.SCHEDULED, Event.SCHEDULE_DUE, S.QUEUED),
    (S.SCHEDULED, A.MODIFY_SCHEDULE, S.SCHEDULED),
    (S.QUEUED, Event.SETUP_SUCCEEDED, S.MIRROR_ENABLED),
    (S.QUEUED, Event.SETUP_FAILED, S.FAILED),
    (S.MIRROR_ENABLED, A.ENABLE_DESTINATION_VOLUME, S.READY_TO_START_COPY),
    (S.READY_TO_START_COPY, A.START_COPY, S.COPY_IN_PROGRESS),
    (S.COPY_IN_PROGRESS, A.PAUSE, S.PAUSED),
    (S.COPY_IN_PROGRESS, Event.GROUP_STOPPED, S.PAUSED),
    (S.PAUSED, A.RESUME, S.COPY_IN_PROGRESS),
    (S.COPY_IN_PROGRESS, Event.COPY_COMPLETED, S.READY_FOR_CUTOVER),
    (S.READY_FOR_CUTOVER, A.CUTOVER, S.CUTOVER_IN_PROGRESS),
    (S.READY_FOR_CUTOVER, Event.AUTOMATIC_CUTOVER, S.CUTOVER_IN_PROGRESS),
    (S.CUTOVER_IN_PROGRESS, Event.CUTOVER_SUCCEEDED, S.IMPORT_COMPLETED),
    (S.CUTOVER_IN_PROGRESS, Event.CUTOVER_RETRYABLE, S.READY_FOR_CUTOVER),
    *((state, Event.IO_FAILED, S.CANCEL_REQUIRED) for state in _IO_EXPOSED),
    *((state, A.CANCEL, S.CANCEL_IN_PROGRESS) for state in _CANCELLABLE),
    (S.CANCEL_IN_PROGRESS, Event.CANCEL_SUCCEEDED, S.CANCELLED),
    (S.CANCEL_IN_PROGRESS, Event.CANCEL_FAILED, S.CANCEL_FAILED),
    (S.CANCEL_IN_PROGRESS, Event.SOURCE_RESTORE_FAILED, S.CLEANUP_REQUIRED),
    (S.CLEANUP_REQUIRED, A.CLEANUP, S.CLEANUP_IN_PROGRESS),
    (S.CLEANUP_FAILED, A.CLEANUP, S.CLEANUP_IN_PROGRESS),
    (S.CLEANUP_IN_PROGRESS, Event.CLEANUP_SUCCEEDED, S.CANCELLED),
    (S.CLEANUP_IN_PROGRESS, Event.CLEANUP_FAILED, S.CLEANUP_FAILED),
)
_VOLUME_NEXT = {(src, trigger): dst for src, trigger, dst in VOLUME_TRANSITIONS}


def _any(*states: State) -> Callable[[frozenset[State]], bool]:
    wanted = frozenset(states)
    return lambda members: bool(members & wanted)


def _only(*states: State) -> Callable[[frozenset[State]], bool]:
    allowed = frozenset(states)
    return lambda members: members <= allowed


# A group session's state is derived from its members' states: the first rule that
# matches wins. The running group operations come first, so a group stays "In Progress"
# of a cutover, cancel or cleanup until every member has settled.
GROUP_RULES: tuple[tuple[str, Callable[[frozenset[State]], bool], State], ...] = (
    ("a member is cleaning up", _any(S.CLEANUP_IN_PROGRESS), S.CLEANUP_IN_PROGRESS),
    ("a member is cancelling", _any(S.CANCEL_IN_PROGRESS), S.CANCEL_IN_PROGRESS),
    ("a member is cutting over", _any(S.CUTOVER_IN_PROGRESS), S.CUTOVER_IN_PROGRESS),
    ("a member's cleanup failed", _any(S.CLEANUP_FAILED), S.CLEANUP_FAILED),
    ("a member needs cleanup", _any(S.CLEANUP_REQUIRED), S.CLEANUP_REQUIRED),
    ("a member's cancel failed", _any(S.CANCEL_FAILED), S.CANCEL_FAILED),
    ("all members completed", _only(S.IMPORT_COMPLETED), S.IMPORT_COMPLETED),
    ("all members cancelled", _only(S.CANCELLED), S.CANCELLED),
    ("members completed or cancelled", _only(S.IMPORT_COMPLETED, S.CANCELLED),
     S.IMPORT_COMPLETED_WITH_ERRORS),
    ("some members completed", _any(S.IMPORT_COMPLETED), S.IMPORT_CUTOVER_INCOMPLETE),
    ("a member's setup failed", _any(S.FAILED), S.FAILED),
    ("a member's copy failed", _any(S.CANCEL_REQUIRED), S.CANCEL_REQUIRED),
    ("all members scheduled", _only(S.SCHEDULED), S.SCHEDULED),
    ("no member picked up yet", _only(S.SCHEDULED, S.QUEUED), S.QUEUED),
    ("all members set up", _only(S.MIRROR_ENABLED), S.MIRROR_ENABLED),
    ("all destinations enabled", _only(S.READY_TO_START_COPY), S.READY_TO_START_COPY),
    ("all members copied", _only(S.READY_FOR_CUTOVER), S.READY_FOR_CUTOVER),
    ("every unfinished member paused", _only(S.PAUSED, S.READY_FOR_CUTOVER), S.PAUSED),
    ("members picked up", lambda members: True, S.IN_PROGRESS),
)

# The group edges README draws. Action edges are checked against GROUP_RULES by a test.
GROUP_TRANSITIONS: tuple[tuple[State, str, State], ...] = (
    (S.SCHEDULED, Event.SCHEDULE_DUE, S.QUEUED),
    (S.SCHEDULED, A.MODIFY_SCHEDULE, S.SCHEDULED),
    (S.QUEUED, "members picked up", S.IN_PROGRESS),
    (S.QUEUED, Event.SETUP_FAILED, S.FAILED),
    (S.IN_PROGRESS, Event.SETUP_FAILED, S.FAILED),
    (S.IN_PROGRESS, "all members set up", S.MIRROR_ENABLED),
    (S.MIRROR_ENABLED, A.ENABLE_DESTINATION_VOLUME, S.READY_TO_START_COPY),
    (S.READY_TO_START_COPY, A.START_COPY, S.IN_PROGRESS),
    (S.IN_PROGRESS, A.PAUSE, S.PAUSED),
    (S.PAUSED, A.RESUME, S.IN_PROGRESS),
    (S.IN_PROGRESS, "all members copied", S.READY_FOR_CUTOVER),
    (S.IN_PROGRESS, Event.IO_FAILED, S.CANCEL_REQUIRED),
    (S.READY_FOR_CUTOVER, A.CUTOVER, S.CUTOVER_IN_PROGRESS),
    (S.READY_FOR_CUTOVER, Event.AUTOMATIC_CUTOVER, S.CUTOVER_IN_PROGRESS),
    (S.CUTOVER_IN_PROGRESS, "all members completed", S.IMPORT_COMPLETED),
    (S.CUTOVER_IN_PROGRESS, "some members failed", S.IMPORT_CUTOVER_INCOMPLETE),
    (S.CUTOVER_IN_PROGRESS, Event.CUTOVER_RETRYABLE, S.READY_FOR_CUTOVER),
    (S.IMPORT_CUTOVER_INCOMPLETE, A.CUTOVER, S.CUTOVER_IN_PROGRESS),
    (S.IMPORT_CUTOVER_INCOMPLETE, A.CANCEL, S.CANCEL_IN_PROGRESS),
    *((state, A.CANCEL, S.CANCEL_IN_PROGRESS) for state in
      (S.SCHEDULED, S.QUEUED, S.IN_PROGRESS, S.MIRROR_ENABLED, S.READY_TO_START_COPY,
       S.PAUSED, S.READY_FOR_CUTOVER, S.CANCEL_REQUIRED, S.CANCEL_FAILED, S.FAILED)),
    (S.CANCEL_IN_PROGRESS, "all members cancelled", S.CANCELLED),
    (S.CANCEL_IN_PROGRESS, "completed members kept", S.IMPORT_COMPLETED_WITH_ERRORS),
    (S.CANCEL_IN_PROGRESS, "a member's cancel failed", S.CANCEL_FAILED),
    (S.CANCEL_IN_PROGRESS, "a member needs cleanup", S.CLEANUP_REQUIRED),
    (S.CLEANUP_REQUIRED, A.CLEANUP, S.CLEANUP_IN_PROGRESS),
    (S.CLEANUP_FAILED, A.CLEANUP, S.CLEANUP_IN_PROGRESS),
    (S.CLEANUP_IN_PROGRESS, "all members cleaned up", S.CANCELLED),
    (S.CLEANUP_IN_PROGRESS, "a member's cleanup failed", S.CLEANUP_FAILED),
)


def info(state: str) -> StateInfo:
    return STATES[State(state)]


def allowed_actions(kind: str, state: str) -> frozenset[str]:
    """The spec's allowed actions for a volume or group session in ``state``."""
    state_info = info(state)
    if kind == VOLUME:
        return state_info.volume_actions
    if kind == GROUP:
        return state_info.group_actions
    raise ValueError(f"unknown session kind {kind!r}")


def next_volume_state(state: str, trigger: str) -> State | None:
    """Where ``trigger`` takes a volume session from ``state``, or None if it cannot."""
    return _VOLUME_NEXT.get((State(state), trigger))


def derive_group_state(member_states: Iterable[str]) -> State:
    members = frozenset(State(state) for state in member_states)
    if not members:
        raise ValueError("a group session has at least one member")
    return next(state for _, matches, state in GROUP_RULES if matches(members))


def mermaid_diagram(kind: str) -> str:
    """A Mermaid state diagram of ``kind``, for README."""
    edges = VOLUME_TRANSITIONS if kind == VOLUME else GROUP_TRANSITIONS
    lines = ["stateDiagram-v2"]
    lines += [f"    [*] --> {S.SCHEDULED}", f"    [*] --> {S.QUEUED}"]
    lines += [f"    {src} --> {dst}: {trigger}" for src, trigger, dst in edges]
    terminal = [state for state, state_info in STATES.items() if state_info.is_terminal]
    lines += [f"    {state} --> [*]" for state in terminal if _appears(state, edges)]
    return "\n".join(lines)


def _appears(state: State, edges) -> bool:
    return any(state in (src, dst) for src, _, dst in edges)


def forceable_actions(kind: str, state: str) -> frozenset[Action]:
    """What an admin may force in ``state``: a forceable action that the state allows."""
    return allowed_actions(kind, state) & FORCEABLE_ACTIONS
