"""Runs the mover for one import session: the lease, checkpoints, progress and verification.

It writes progress and checkpoints, never state: importer.services moves the session on.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from importer import figures, states
from importer.drivers import get_driver
from importer.errors import FerryError, SourceError
from importer.models import CopiedExtent, ImportSession
from importer.mover.copier import Checkpoint, CopyError, CopyPlan, copy_range, first_mismatch
from importer.mover.extents import missing_ranges
from importer.mover.throttle import TokenBucket
from importer.services import frontends, samples
from importer.services.transitions import update_group_figures
from importer.states import State

MIN_CHUNK = 1024 * 1024
STOP_CHECK_SECONDS = 0.2  # how often the copier re-reads the state: pause within 1 s


class VerificationFailed(FerryError):
    code = "verification_failed"


def copy_plan(rate_limit: float | None = None) -> CopyPlan:
    """The configured plan; a throttled copy takes smaller chunks, so that its progress
    still moves at least every second or so."""
    chunk = settings.FERRY_CHUNK_BYTES
    while rate_limit and chunk > MIN_CHUNK and chunk > rate_limit:
        chunk //= 2
    return CopyPlan(chunk_size=chunk, checkpoint_bytes=settings.FERRY_CHECKPOINT_BYTES,
                    checkpoint_seconds=settings.FERRY_CHECKPOINT_SECONDS,
                    checksums=settings.FERRY_VERIFY_CHECKSUMS,
                    host_yield_seconds=settings.FERRY_HOST_YIELD_SECONDS)


def _lease() -> timedelta:
    return timedelta(seconds=settings.FERRY_LEASE_SECONDS)


def copy_slice(session: ImportSession, lease_id: str) -> str:
    """Copy for up to one slice. Returns "finished", "slice_done" or why it stopped.

    Raises SourceError naming the volume, the offset and the cause when the copy fails.
    """
    driver = get_driver(session.remote_system)
    identifier = session.source_volume.identifier
    copied = list(session.copied_extents.values_list("start", "end"))
    gaps = missing_ranges(copied, session.total_bytes)
    if not gaps:
        return "finished"
    progress = _Progress(session, lease_id, driver, identifier)
    deadline = time.monotonic() + settings.FERRY_COPY_SLICE_SECONDS
    try:
        with driver.open_source(identifier, connections_for(session)) as source:
            progress.source = source
            return _copy_gaps(session, source, gaps, progress, deadline)
    except CopyError as error:
        raise SourceError(error.kind, f"Copy of {session.source_volume.name} failed at "
                          f"offset {error.offset}: {error.cause}.",
                          volume=session.source_volume.name, offset=error.offset,
                          cause=error.cause) from error


def connections_for(session: ImportSession) -> int:
    """The node's FERRY_NBD_CONNECTIONS shared by the copies running on it now: on few
    cores, many copies with many connections each fight over the CPU (measured: 8 copies
    on 2 nodes of 2 cores moved 735 MB/s with 1 connection each, 598 with 4)."""
    running = ImportSession.objects.filter(
        storage_node_id=session.storage_node_id, pending_job=states.Job.COPY,
        lease_expires_at__gt=timezone.now()).count()
    return max(1, settings.FERRY_NBD_CONNECTIONS // max(1, running))


def _copy_gaps(session, source, gaps, progress, deadline) -> str:
    destination = _open_destination(session)
    try:
        progress.check_source(gaps[0][0])
        with frontends.copy_guard(session.destination_volume) as guard:
            for start, end in gaps:
                rate = progress.throttle.rate if progress.throttle else None
                outcome = copy_range(
                    source, destination, start, end, plan=copy_plan(rate),
                    should_stop=progress.should_stop, on_checkpoint=progress.save,
                    throttle=progress.throttle, deadline=deadline, guard=guard)
                if not outcome.finished:
                    return outcome.stopped_because
    finally:
        os.close(destination)
    return "finished"


def _open_destination(session: ImportSession) -> int:
    volume = session.destination_volume
    try:
        return os.open(volume.location, os.O_WRONLY)
    except OSError as error:
        raise SourceError("destination_missing", f"Cannot open destination {volume.location}: "
                          f"{error.strerror}.", path=volume.location) from error


class _Progress:
    """The copy's link to the database: stop checks, checkpoints and rates."""

    def __init__(self, session, lease_id, driver, identifier):
        self.session, self.lease_id = session, lease_id
        self.driver, self.identifier = driver, identifier
        self.copied = sum(e - s for s, e in session.copied_extents.values_list("start", "end"))
        self.copy_seconds = session.copy_seconds
        # Data moved so far, recovered from the stored average: no extra column to keep.
        self.moved = session.average_transfer_rate * session.copy_seconds
        # A slice that follows another goes on from its smoothed pace; after a resume (the
        # rate was cleared when the copy stopped) the pace is measured afresh.
        self.pace = figures.Pace()
        if session.current_transfer_rate and self.copy_seconds > 0:
            self.pace = figures.Pace(session.current_transfer_rate,
                                     self.copied / self.copy_seconds)
        self.last_time, self.last_check = time.monotonic(), 0.0
        self.throttle = _throttle_for(session)
        self.source = None  # the open Source, once there is one

    def should_stop(self) -> str | None:
        now = time.monotonic()
        if now - self.last_check < STOP_CHECK_SECONDS:
            return None
        self.last_check = now
        row = (ImportSession.objects.filter(pk=self.session.pk)
               .values("state", "lease_owner").first())
        if row is None:
            return "deleted"
        if row["state"] != State.COPY_IN_PROGRESS:
            return row["state"]  # paused or cancelled: the operator asked us to stop
        if row["lease_owner"] != self.lease_id:
            return "lease_lost"
        return None

    def save(self, checkpoint: Checkpoint) -> None:
        self.check_source(checkpoint.end)
        now = time.monotonic()
        elapsed, self.last_time = max(now - self.last_time, 1e-6), now
        length = checkpoint.end - checkpoint.start
        self.copied += length
        self.moved += checkpoint.moved
        self.copy_seconds += elapsed
        self.pace.measure(moved=checkpoint.moved, span=length, seconds=elapsed)
        with transaction.atomic():
            # Still ours while we hold the lease, even once a pause or cancel was asked for:
            # the range is on disk, and a pause keeps every copied range. So the last range
            # in flight when a pause came may still add to the progress (one checkpoint at
            # most: the copier stops within STOP_CHECK_SECONDS), never to the rate.
            mine = ImportSession.objects.filter(pk=self.session.pk, lease_owner=self.lease_id,
                                                state__in=states.CHECKPOINTING)
            still_copying = bool(mine.filter(state__in=states.COPYING).update(
                **self._progress_fields(True)))
            if not (still_copying or mine.update(**self._progress_fields(False))):
                return  # taken over by another worker: this checkpoint is not ours to keep
            CopiedExtent.objects.create(session_id=self.session.pk, start=checkpoint.start,
                                        end=checkpoint.end, chunk_size=checkpoint.chunk_size,
                                        digests=checkpoint.digests)
            if self.session.parent_session_id:
                update_group_figures(self.session.parent_session_id)
            if still_copying:  # the charts' history, throttled
                samples.record_transfer_sample(
                    self.session.pk, bytes_per_second=int(self.pace.data_rate),
                    copied_bytes=self.copied)

    def _progress_fields(self, still_copying: bool) -> dict:
        now = timezone.now()
        total = max(self.session.total_bytes, 1)
        remaining = max(self.session.total_bytes - self.copied, 0)
        fields = {"copied_bytes": self.copied,
                  "progress_percentage": min(100, self.copied * 100 // total),
                  "average_transfer_rate": int(self.moved / max(self.copy_seconds, 1e-6)),
                  "copy_seconds": self.copy_seconds,
                  "lease_expires_at": now + _lease(), "last_update_timestamp": now}
        # A paused or cancelled copy shows no current rate and no ETA.
        fields.update(current_transfer_rate=int(self.pace.data_rate) if still_copying else 0,
                      estimated_completion_timestamp=self.pace.eta(remaining, now)
                      if still_copying else None)
        return fields

    def check_source(self, offset: int) -> None:
        """A source that shrank or vanished stops the copy, even with our fd still open."""
        # A source that knows its size cheaply (an NBD export) says; a file is asked through
        # its driver by name, which sees a file replaced or removed under our open fd.
        size = self.source.current_size() if self.source is not None else None
        if size is None:
            size = self.driver.size(self.identifier)
        if size != self.session.total_bytes:
            raise CopyError("source_truncated", min(offset, size),
                            f"the source is now {size} bytes, not {self.session.total_bytes}")


def _throttle_for(session: ImportSession) -> TokenBucket | None:
    limits = [limit for limit in (session.throttle_bytes_per_second,
                                  _global_share()) if limit]
    return TokenBucket(min(limits)) if limits else None


def _global_share() -> int | None:
    """The global limit, shared evenly by the copies running now."""
    limit = settings.FERRY_GLOBAL_BANDWIDTH
    if not limit:
        return None
    running = ImportSession.objects.filter(state=State.COPY_IN_PROGRESS).count()
    return max(limit // max(running, 1), 1)


def verify_destination(session: ImportSession, rewritten=()) -> None:
    """Before cutover: every range copied, and the destination matches its checksums,
    except in the chunks ``rewritten`` (by hosts, through the front end), which the
    cutover compares with the source instead."""
    extents = list(session.copied_extents.order_by("start"))
    gaps = missing_ranges([(e.start, e.end) for e in extents], session.total_bytes)
    if gaps:
        raise VerificationFailed(
            f"{session.name}: {sum(e - s for s, e in gaps)} bytes were never copied "
            f"(first gap at offset {gaps[0][0]}).", offset=gaps[0][0])
    location = session.destination_volume.location
    skip = {start for start, _ in rewritten}
    fd = os.open(location, os.O_RDONLY)
    try:
        if os.fstat(fd).st_size != session.total_bytes:
            raise VerificationFailed(f"{location} is not {session.total_bytes} bytes long.",
                                     path=location)
        for extent in extents:
            checkpoint = Checkpoint(extent.start, extent.end, extent.chunk_size,
                                    extent.digests)
            offset = first_mismatch(fd, checkpoint, skip=skip)
            if offset is not None:
                raise VerificationFailed(
                    f"{session.name}: the destination differs from what was copied at "
                    f"offset {offset}.", offset=offset, path=location)
    finally:
        os.close(fd)


def chunks_touching(extents, ranges) -> list[tuple[int, int]]:
    """The checksummed chunks of ``extents`` that overlap any of ``ranges``."""
    touched = []
    for extent in extents:
        size = extent.chunk_size
        for start, end in ranges:
            low, high = max(start, extent.start), min(end, extent.end)
            if low >= high:
                continue
            first = extent.start + (low - extent.start) // size * size
            for chunk in range(first, high, size):
                touched.append((chunk, min(chunk + size, extent.end)))
    return sorted(set(touched))
