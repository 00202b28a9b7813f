"""A copy's live figures: the transfer rate (data actually moved per second), its smoothed
ETA, and a group's figures aggregated from its members. Pure Python, so the numbers are
tested without a database; importer.copying and services.transitions store them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

# How quickly the smoothed figures follow a change: a new pace counts for about 63% after
# this many seconds of copying. Long enough that one slow chunk does not swing the ETA,
# short enough that a throttle change shows within a minute.
SMOOTHING_SECONDS = 10.0


def _smooth(previous: float, sample: float, seconds: float) -> float:
    """Exponentially weighted moving average over time; the first sample is taken as is."""
    if previous <= 0:
        return sample
    weight = 1 - math.exp(-seconds / SMOOTHING_SECONDS)
    return previous + weight * (sample - previous)


@dataclass
class Pace:
    """The smoothed pace of one copy.

    ``data_rate`` is what the Rate column shows: bytes read from the source and written to
    the destination per second. Holes and all-zero chunks are skipped, not moved, so they do
    not count (the throttle does not count them either). ``span_rate`` is how fast the copy
    advances through the volume, holes included: what the ETA divides the rest by, because
    the rest has holes too. Both start unknown (0): no ETA until there is a measurement.
    """

    data_rate: float = 0.0
    span_rate: float = 0.0

    def measure(self, *, moved: int, span: int, seconds: float) -> None:
        seconds = max(seconds, 1e-6)
        self.data_rate = _smooth(self.data_rate, moved / seconds, seconds)
        self.span_rate = _smooth(self.span_rate, span / seconds, seconds)

    def eta(self, remaining: int, now: datetime) -> datetime | None:
        """When the copy should end, or None while there is nothing to go on."""
        if remaining <= 0:
            return now
        if self.span_rate <= 0:
            return None
        return now + timedelta(seconds=remaining / self.span_rate)


def group_figures(members: list[dict], copying_states) -> dict:
    """A group's figures from its members' rows (copied_bytes, total_bytes, state,
    current_transfer_rate, average_transfer_rate, estimated_completion_timestamp).

    Members copy in parallel, so the group's rates are their sum; the group ends when its
    last member does, so its ETA is the latest one. While a copying member has no estimate
    yet, the group has none either ("estimating…")."""
    copied = sum(member["copied_bytes"] for member in members)
    total = sum(member["total_bytes"] for member in members)
    copying = [member for member in members if member["state"] in copying_states]
    estimates = [member["estimated_completion_timestamp"] for member in copying]
    return {
        "copied_bytes": copied,
        "progress_percentage": min(100, copied * 100 // max(total, 1)),
        "current_transfer_rate": sum(member["current_transfer_rate"] for member in copying),
        "average_transfer_rate": sum(member["average_transfer_rate"] for member in members),
        "estimated_completion_timestamp":
            max(estimates) if estimates and None not in estimates else None,
    }
