"""importer/states.py declares every state completely, and agrees with itself."""

import pytest

from importer import states
from importer.states import Action, Phase, State, Tone

# The spec's "Allowed actions per state" table, written out: (volume actions, group actions).
SPEC_ALLOWED = {
    "Scheduled": ({"cancel", "modify_schedule"}, {"cancel", "modify_schedule"}),
    "Queued": ({"cancel"}, {"cancel"}),
    "In_Progress": (set(), {"pause", "cancel"}),
    "Mirror_Enabled": ({"enable_destination_volume", "cancel"},
                       {"enable_destination_volume", "cancel"}),
    "Ready_To_Start_Copy": ({"start_copy", "cancel"}, {"start_copy", "cancel"}),
    "Copy_In_Progress": ({"pause", "cancel"}, set()),
    "Paused": ({"resume", "cancel"}, {"resume", "cancel"}),
    "Ready_For_Cutover": ({"cutover", "cancel"}, {"cutover", "cancel"}),
    "Cutover_In_Progress": (set(), set()),
    "Import_Completed": ({"delete"}, {"delete"}),
    "Import_Completed_With_Errors": (set(), {"delete"}),
    "Import_Cutover_Incomplete": (set(), {"cutover", "cancel"}),
    "Cancel_Required": ({"cancel"}, {"cancel"}),
    "Cancel_In_Progress": (set(), set()),
    "Cancel_Failed": ({"cancel"}, {"cancel"}),
    "Cancelled": ({"delete"}, {"delete"}),
    "Cleanup_Required": ({"cleanup"}, {"cleanup"}),
    "Cleanup_In_Progress": (set(), set()),
    "Cleanup_Failed": ({"cleanup"}, {"cleanup"}),
    "Failed": ({"cancel", "delete"}, {"cancel", "delete"}),
}

TRIPLES = [(kind, state, action) for kind in states.KINDS for state in SPEC_ALLOWED
           for action in Action]


def test_every_spec_state_is_declared_and_nothing_else():
    assert {state.value for state in states.STATES} == set(SPEC_ALLOWED)


@pytest.mark.parametrize("state", list(State))
def test_every_state_has_a_label_a_tone_and_a_phase(state):
    declared = states.STATES[state]
    assert declared.value == state
    assert declared.label and declared.label[0].isupper()
    assert isinstance(declared.tone, Tone)
    assert isinstance(declared.phase, Phase)
    assert declared.is_active + declared.is_terminal + (declared.phase is Phase.WAITING) == 1


@pytest.mark.parametrize(("kind", "state", "action"), TRIPLES)
def test_allowed_actions_follow_the_spec(kind, state, action):
    volume_actions, group_actions = SPEC_ALLOWED[state]
    expected = volume_actions if kind == "volume" else group_actions
    assert (action in states.allowed_actions(kind, state)) == (action.value in expected)


def test_allowed_actions_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="unknown session kind"):
        states.allowed_actions("snapshot", "Queued")


@pytest.mark.parametrize(("state", "action"), [
    (state, action) for state in State for action in states.allowed_actions("volume", state)
    if action != Action.DELETE])
def test_every_allowed_volume_action_has_a_transition(state, action):
    assert states.next_volume_state(state, action) is not None


@pytest.mark.parametrize(("src", "trigger", "dst"), [
    edge for edge in states.GROUP_TRANSITIONS if edge[1] in set(Action)])
def test_group_action_edges_agree_with_the_aggregation_rules(src, trigger, dst):
    from tests.conftest import GROUP_MEMBERS

    members = [states.next_volume_state(m, trigger) or m for m in GROUP_MEMBERS[src]]
    assert states.derive_group_state(members) == dst


@pytest.mark.parametrize(("members", "expected"), [
    (["Scheduled", "Scheduled"], "Scheduled"),
    (["Queued", "Scheduled"], "Queued"),
    (["Queued", "Queued"], "Queued"),
    (["Mirror_Enabled", "Queued"], "In_Progress"),
    (["Mirror_Enabled", "Mirror_Enabled"], "Mirror_Enabled"),
    (["Ready_To_Start_Copy", "Ready_To_Start_Copy"], "Ready_To_Start_Copy"),
    (["Copy_In_Progress", "Ready_For_Cutover"], "In_Progress"),
    (["Paused", "Ready_For_Cutover"], "Paused"),
    (["Paused", "Copy_In_Progress"], "In_Progress"),
    (["Ready_For_Cutover", "Ready_For_Cutover"], "Ready_For_Cutover"),
    (["Cancel_Required", "Paused"], "Cancel_Required"),
    (["Failed", "Mirror_Enabled"], "Failed"),
    (["Cutover_In_Progress", "Import_Completed"], "Cutover_In_Progress"),
    (["Import_Completed", "Import_Completed"], "Import_Completed"),
    (["Import_Completed", "Ready_For_Cutover"], "Import_Cutover_Incomplete"),
    (["Import_Completed", "Cancel_Required"], "Import_Cutover_Incomplete"),
    (["Import_Completed", "Cancelled"], "Import_Completed_With_Errors"),
    (["Cancel_In_Progress", "Cancelled"], "Cancel_In_Progress"),
    (["Cancelled", "Cancelled"], "Cancelled"),
    (["Cancel_Failed", "Cancelled"], "Cancel_Failed"),
    (["Cleanup_Required", "Cancel_Failed"], "Cleanup_Required"),
    (["Cleanup_In_Progress", "Cancelled"], "Cleanup_In_Progress"),
    (["Cleanup_Failed", "Cancelled"], "Cleanup_Failed"),
])
def test_a_group_state_is_derived_from_its_members(members, expected):
    assert states.derive_group_state(members) == expected


def test_a_group_needs_members():
    with pytest.raises(ValueError):
        states.derive_group_state([])


@pytest.mark.parametrize("action", [a for a in Action if states.ACTIONS[a].confirm])
def test_every_confirmed_action_names_its_dialog_buttons(action):
    declared = states.ACTIONS[action]
    assert declared.confirm_label and declared.dismiss_label
    assert declared.confirm_label not in ("OK", "Confirm", "Cancel")


@pytest.mark.parametrize("action", sorted(states.FORCEABLE_ACTIONS))
def test_every_forced_action_names_its_dialog_buttons(action):
    declared = states.ACTIONS[action]
    assert declared.force_confirm_label and declared.force_dismiss_label
