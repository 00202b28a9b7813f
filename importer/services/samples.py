"""Transfer-rate history for the charts: samples written while copies run (throttled per
session, pruned by age), and the series the dashboard draws from them."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, F, Sum
from django.utils import timezone

from importer import states
from importer.models import ImportSession, TransferSample


def record_transfer_sample(session_id: int, *, bytes_per_second: int, copied_bytes: int,
                           now: datetime | None = None) -> bool:
    """Keep the session's current rate, unless it already has a sample from the last
    FERRY_SAMPLE_SECONDS: checkpoints come every second, the charts need far fewer."""
    now = now or timezone.now()
    recent = now - timedelta(seconds=settings.FERRY_SAMPLE_SECONDS)
    if TransferSample.objects.filter(session_id=session_id, timestamp__gt=recent).exists():
        return False
    TransferSample.objects.create(session_id=session_id, timestamp=now,
                                  bytes_per_second=max(0, int(bytes_per_second)),
                                  copied_bytes=copied_bytes)
    return True


def prune_transfer_samples(now: datetime | None = None) -> int:
    """Forget samples older than FERRY_SAMPLE_RETENTION_DAYS (the scheduler's tick)."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.FERRY_SAMPLE_RETENTION_DAYS)
    deleted, _ = TransferSample.objects.filter(timestamp__lt=cutoff).delete()
    return deleted


@dataclass(frozen=True)
class Series:
    """Points (Unix seconds, bytes per second) and the figures a reader gets as text."""

    points: list[tuple[float, int]]
    # Points further apart than this were not measured in between (a pause): the chart
    # breaks its line there.
    gap_seconds: float = 0

    @property
    def latest(self) -> int:
        return self.points[-1][1] if self.points else 0

    @property
    def peak(self) -> int:
        return max((rate for _, rate in self.points), default=0)

    @property
    def average(self) -> int:
        return sum(r for _, r in self.points) // len(self.points) if self.points else 0

    def as_json(self) -> dict:
        return {"unit": "bytes_per_second", "points": [[t, r] for t, r in self.points],
                "gap_seconds": self.gap_seconds or 3 * max(settings.FERRY_SAMPLE_SECONDS, 1),
                "latest": self.latest, "peak": self.peak, "average": self.average}


def session_series(session: ImportSession) -> Series:
    """A volume's own samples; a group's, its members' rates added up over time."""
    if not session.is_group:
        rows = (TransferSample.objects.filter(session=session).order_by("timestamp")
                .values_list("session_id", "timestamp", "bytes_per_second"))
        return Series([(round(t.timestamp(), 3), rate) for _, t, rate in rows])
    rows = (TransferSample.objects.filter(session__parent_session=session)
            .order_by("timestamp").values_list("session_id", "timestamp", "bytes_per_second"))
    bucket = _bucket_seconds(timedelta(0))
    return Series(_summed(rows, bucket).points, gap_seconds=3 * bucket)


WINDOWS = {"1h": timedelta(hours=1), "6h": timedelta(hours=6), "24h": timedelta(hours=24)}
POINTS_PER_WINDOW = 120


def system_series(window: timedelta, now: datetime | None = None) -> Series:
    """Throughput of every copy together over the window, in at most ~120 buckets."""
    now = now or timezone.now()
    rows = (TransferSample.objects.filter(timestamp__gte=now - window).order_by("timestamp")
            .values_list("session_id", "timestamp", "bytes_per_second"))
    bucket = _bucket_seconds(window)
    measured = dict(_summed(rows, bucket).points)
    # Every bucket of the window is drawn: no sample means nothing was copying then.
    first = (now - window).timestamp() // bucket * bucket
    last = now.timestamp() // bucket * bucket
    count = int((last - first) // bucket) + 1
    return Series([(first + i * bucket, measured.get(first + i * bucket, 0))
                   for i in range(count)], gap_seconds=2 * bucket)


def _bucket_seconds(window: timedelta) -> float:
    # At least two sample intervals, so each running copy has a sample in every bucket.
    return max(2 * settings.FERRY_SAMPLE_SECONDS, window.total_seconds() / POINTS_PER_WINDOW)


def _summed(rows, bucket: float) -> Series:
    """Per bucket: each session's mean rate in it, added up over the sessions."""
    per_bucket: dict[float, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for session_id, timestamp, rate in rows:
        start = timestamp.timestamp() // bucket * bucket
        per_bucket[start][session_id].append(rate)
    return Series([(start, sum(sum(rates) // len(rates) for rates in sessions.values()))
                   for start, sessions in sorted(per_bucket.items())])


def system_figures() -> dict:
    """What the Overview states in words: throughput now, bytes left, sessions by state."""
    volumes = ImportSession.objects.filter(source_volume__isnull=False)
    copying = volumes.filter(state__in=states.COPYING).aggregate(
        rate=Sum("current_transfer_rate"), count=Count("pk"))
    left = volumes.filter(state__in=states.UNFINISHED).aggregate(
        total=Sum("total_bytes"), remaining=Sum(F("total_bytes") - F("copied_bytes")))
    counts = dict(ImportSession.objects.filter(parent_session__isnull=True).order_by()
                  .values_list("state").annotate(count=Count("pk")))
    by_state = [(info, counts[value]) for value, info in states.STATES.items()
                if counts.get(value)]
    total, remaining = left["total"] or 0, max(0, left["remaining"] or 0)
    return {"throughput": copying["rate"] or 0, "copying": copying["count"],
            "total_bytes": total, "remaining_bytes": remaining,
            "copied_percent": (total - remaining) * 100 // total if total else 0,
            "by_state": by_state, "sessions": sum(counts.values()),
            "need_attention": sum(counts.get(s, 0) for s in states.NEEDS_ATTENTION),
            "most": max(counts.values(), default=0)}
