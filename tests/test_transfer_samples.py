"""The charts' history: a copy records its rate as it goes, at most one sample per session
every FERRY_SAMPLE_SECONDS, pruned after FERRY_SAMPLE_RETENTION_DAYS; series add up."""

from datetime import timedelta

import pytest
from django.utils import timezone

from importer import services
from importer.models import TransferSample
from importer.services import samples
from tests.conftest import MiB, discovered_system, make_session, run_jobs, write_random

T0 = timezone.now().replace(microsecond=0)


def _sample(session, seconds, rate, copied=0):
    return samples.record_transfer_sample(session.pk, bytes_per_second=rate,
                                          copied_bytes=copied,
                                          now=T0 + timedelta(seconds=seconds))


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("small_chunks")
def test_a_running_copy_records_its_rate_as_it_goes(source_root, operator_actor, enqueued,
                                                     settings):
    settings.FERRY_SAMPLE_SECONDS = 0  # every checkpoint, on this short copy
    write_random(source_root / "array" / "db.img", 12 * MiB)
    system = discovered_system(source_root / "array")
    session = services.create_import(name="sampled", actor=operator_actor,
                                     source_resource_id=system.source_volumes.get().pk)
    run_jobs(enqueued)
    for action in ("enable_destination_volume", "start_copy"):
        services.perform_action(session.pk, action, actor=operator_actor)
        run_jobs(enqueued)
    recorded = list(TransferSample.objects.filter(session=session).order_by("timestamp"))
    assert len(recorded) >= 3
    assert all(sample.bytes_per_second > 0 for sample in recorded)
    copied = [sample.copied_bytes for sample in recorded]
    assert copied == sorted(copied) and copied[-1] == 12 * MiB


@pytest.mark.django_db
def test_samples_are_throttled_per_session(settings):
    settings.FERRY_SAMPLE_SECONDS = 5
    first, second = make_session("volume", "Copy_In_Progress"), make_session(
        "volume", "Copy_In_Progress")
    assert _sample(first, 0, 10 * MiB)
    assert not _sample(first, 1, 11 * MiB)  # a checkpoint a second later: not kept
    assert not _sample(first, 4, 11 * MiB)
    assert _sample(second, 1, 3 * MiB)  # another session has its own interval
    assert _sample(first, 6, 12 * MiB)
    assert list(TransferSample.objects.filter(session=first).values_list(
        "bytes_per_second", flat=True)) == [10 * MiB, 12 * MiB]


@pytest.mark.django_db
def test_samples_older_than_the_retention_are_pruned_by_the_scheduler_tick(settings):
    settings.FERRY_SAMPLE_RETENTION_DAYS = 7
    session = make_session("volume", "Copy_In_Progress")
    old = T0 - timedelta(days=7, seconds=1)
    kept = T0 - timedelta(days=6)
    for when in (old, kept):
        TransferSample.objects.create(session=session, timestamp=when, bytes_per_second=1,
                                      copied_bytes=0)
    services.scheduler_tick(now=T0)
    assert list(TransferSample.objects.values_list("timestamp", flat=True)) == [kept]


@pytest.mark.django_db
def test_a_group_series_adds_up_its_members(settings):
    settings.FERRY_SAMPLE_SECONDS = 5
    group = make_session("group", "Copy_In_Progress")
    one, two = group.members.order_by("pk")
    _sample(one, 0, 4 * MiB)
    _sample(two, 1, 6 * MiB)
    _sample(one, 12, 2 * MiB)
    series = samples.session_series(group)
    assert [rate for _, rate in series.points] == [10 * MiB, 2 * MiB]
    assert series.peak == 10 * MiB and series.latest == 2 * MiB


@pytest.mark.django_db
def test_the_system_series_covers_the_whole_window_and_sums_the_copies(settings):
    settings.FERRY_SAMPLE_SECONDS = 5
    first, second = (make_session("volume", "Copy_In_Progress") for _ in range(2))
    now = T0 + timedelta(minutes=5)
    _sample(first, 60, 5 * MiB)
    _sample(second, 61, 7 * MiB)
    series = samples.system_series(timedelta(hours=1), now=now)
    assert 100 <= len(series.points) <= 122  # about 120 buckets of 30 s, idle ones at zero
    times = [time for time, _ in series.points]
    assert times == sorted(times) and times[-1] <= now.timestamp() < times[-1] + 30
    assert series.peak == 12 * MiB and series.latest == 0
