"""The scheduler with a real worker and beat: schedules and the import slots."""

from datetime import timedelta

import pytest
from django.utils import timezone

from importer import services
from tests.conftest import MiB, discovered_system, wait_for_state, write_random

pytestmark = pytest.mark.integration


def _volumes(source_root, count):
    for index in range(count):
        write_random(source_root / "array" / f"v{index}.img", MiB)
    return list(discovered_system(source_root / "array").source_volumes.order_by("identifier"))


def test_a_scheduled_import_starts_when_due(source_root, live_worker, operator_actor):
    [volume] = _volumes(source_root, 1)
    session = services.create_import(name="night", source_resource_id=volume.pk,
                                     actor=operator_actor,
                                     scheduled_timestamp=timezone.now() + timedelta(seconds=3))
    session.refresh_from_db()
    assert session.state == "Scheduled"
    wait_for_state(session, "Mirror_Enabled", 30)
    assert session.events.filter(action="schedule_due").exists()


@pytest.mark.parametrize("live_worker", [{"FERRY_MAX_ACTIVE_IMPORTS": "2"}], indirect=True)
def test_with_two_slots_the_third_import_waits_its_turn(source_root, live_worker,
                                                        operator_actor):
    volumes = _volumes(source_root, 3)
    sessions = [services.create_import(name=f"s{i}", source_resource_id=v.pk,
                                       actor=operator_actor) for i, v in enumerate(volumes)]
    first, second, third = sessions
    wait_for_state(first, "Mirror_Enabled")
    wait_for_state(second, "Mirror_Enabled")
    import time
    time.sleep(3)  # several scheduler ticks
    third.refresh_from_db()
    assert third.state == "Queued" and third.admitted_timestamp is None
    services.perform_action(first.pk, "cancel", actor=operator_actor)
    wait_for_state(first, "Cancelled")
    wait_for_state(third, "Mirror_Enabled", 30)
