"""Where a file holds data: SEEK_DATA/SEEK_HOLE, and what a checkpoint map still lacks."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator


def data_segments(fd: int, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The [s, e) ranges of [start, end) that hold data; all of it where holes are unknown."""
    position = start
    while position < end:
        try:
            data = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as error:
            if error.errno == errno.ENXIO:  # nothing but hole up to the end of the file
                return
            if error.errno in (errno.EINVAL, errno.EOPNOTSUPP):  # block device, pipe...
                yield position, end
                return
            raise
        if data >= end:
            return
        hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        yield data, hole
        position = hole


def missing_ranges(copied: list[tuple[int, int]], total: int) -> list[tuple[int, int]]:
    """The gaps in ``copied`` (sorted or not) within [0, total)."""
    gaps, position = [], 0
    for start, end in sorted(copied):
        if start > position:
            gaps.append((position, start))
        position = max(position, end)
    if position < total:
        gaps.append((position, total))
    return gaps


def allocated_bytes(path) -> int:
    """Everything the file system holds for the file, its extent tree included."""
    return os.stat(path).st_blocks * 512


def data_map(path) -> list[tuple[int, int]]:
    """The file's data ranges, as SEEK_DATA/SEEK_HOLE report them (no metadata)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return list(data_segments(fd, 0, os.fstat(fd).st_size))
    finally:
        os.close(fd)
