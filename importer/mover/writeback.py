"""Page-cache eviction behind a copy written with pwrite, as nbdcopy does.

Measured here (../shared/notes/nbd-copy-anchors.md): starting each chunk's writeback at
once, then waiting for an older chunk's writeback and dropping its pages, took a Python NBD
copy from 200-570 to 1,100-1,300 MB/s. POSIX_FADV_DONTNEED alone drops nothing that is still
dirty, and a page cache full of dirty pages is what slows the writer down.
"""

from __future__ import annotations

import ctypes
import os
from collections import deque

SYNC_FILE_RANGE_WAIT_BEFORE, SYNC_FILE_RANGE_WRITE, SYNC_FILE_RANGE_WAIT_AFTER = 1, 2, 4
_WAIT_FOR_IT = SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER

try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _sync_file_range = _libc.sync_file_range  # ctypes lets go of the GIL while it waits
    _sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
except (OSError, AttributeError):  # not Linux
    _sync_file_range = None


class Writeback:
    """Call ``start(offset, length)`` right after a write (from any thread), then
    ``retire(offset, length)`` in the order of the copy (from one thread). Errors are left
    to the checkpoint's fdatasync, which reports them; here a failure only turns eviction
    off."""

    def __init__(self, fd: int, lag: int = 2):
        self.fd, self.lag = fd, lag  # chunks whose writeback may still be running
        self.started: deque[tuple[int, int]] = deque()
        self.works = _sync_file_range is not None

    def start(self, offset: int, length: int) -> None:
        if not self.works or not self._sync(offset, length, SYNC_FILE_RANGE_WRITE):
            _drop(self.fd, offset, length)  # starts writeback where sync_file_range cannot

    def retire(self, offset: int, length: int) -> None:
        if not self.works:
            return
        self.started.append((offset, length))
        while len(self.started) > self.lag:
            older, size = self.started.popleft()
            self._sync(older, size, _WAIT_FOR_IT)
            _drop(self.fd, older, size)

    def _sync(self, offset: int, length: int, flags: int) -> bool:
        if _sync_file_range(self.fd, offset, length, flags) == 0:
            return True
        self.works = False  # a pipe or a file system without it: plain writes go on
        return False


def _drop(fd: int, offset: int, length: int) -> None:
    try:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass
