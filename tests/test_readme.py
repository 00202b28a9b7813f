"""README's state diagrams are generated from importer/states.py and must not drift."""

from importer import states
from importer.management.commands.readme_diagrams import README, diagram_block


def test_readme_shows_the_diagrams_of_the_state_table():
    text = README.read_text()
    for kind in states.KINDS:
        assert diagram_block(kind) in text, f"run `make diagrams`: the {kind} diagram drifted"


def test_readme_quick_start_is_two_commands():
    text = README.read_text()
    quick_start = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = [line for line in quick_start.splitlines() if line.startswith("make ")]
    assert commands == ["make run", "make test"]
