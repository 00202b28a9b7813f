"""Two operators at once: cancel and cutover race for the same session; exactly one wins.

Runs on every database. On PostgreSQL this proves the row lock and the conditional update;
on SQLite, that the IMMEDIATE transactions serialise the writers.
"""

import threading

import pytest
from django.db import connection

from importer import services
from importer.errors import ActionNotAllowed
from importer.models import ImportEvent
from tests.conftest import make_session

ROUNDS = 50


def _race(session_id, actor) -> dict[str, object]:
    barrier = threading.Barrier(2)
    results: dict[str, object] = {}

    def attempt(action):
        barrier.wait()
        try:
            services.perform_action(session_id, action, actor=actor)
            results[action] = "won"
        except ActionNotAllowed as refusal:
            results[action] = refusal
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(a,)) for a in ("cancel", "cutover")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


@pytest.mark.django_db(transaction=True)
def test_cancel_and_cutover_racing_have_exactly_one_winner(operator_actor):
    for round_number in range(ROUNDS):
        session = make_session("volume", "Ready_For_Cutover", name=f"race-{round_number}")
        results = _race(session.pk, operator_actor)
        winners = [action for action, result in results.items() if result == "won"]
        losers = [result for result in results.values() if result != "won"]
        assert len(winners) == 1, results
        assert len(losers) == 1 and isinstance(losers[0], ActionNotAllowed)
        session.refresh_from_db()
        expected = {"cancel": "Cancel_In_Progress", "cutover": "Cutover_In_Progress"}
        assert session.state == expected[winners[0]]
        assert losers[0].state == session.state  # the refusal names the state that won
        events = ImportEvent.objects.filter(session=session)
        assert list(events.values_list("action", flat=True)) == winners
