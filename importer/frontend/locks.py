"""Byte-range locks shared by processes: Linux OFD locks on one lock file per volume.

Stdlib only: nbdkit's embedded Python (Debian's 3.11) imports this as well as Ferry's venv.

Why OFD locks (F_OFD_SETLKW) and not lockf or Redis: a classic POSIX lock belongs to the
process, so two threads of the plugin would not exclude each other, and closing any fd of
the file drops them all; OFD locks belong to one open file description, conflict between
descriptions even in one process, and the kernel drops them when their holder dies
(measured in ../shared/notes/nbd-frontend.md §2). So each concurrent holder needs its own
open file description: a ``RangeLock``, borrowed from a ``LockPool``.

No deadlock detection is done for OFD locks; every holder therefore takes one contiguous
range in one call and waits for nothing else while holding it, except the documented gate
order in runtime.py (gate, then chunks; never the reverse).
"""

from __future__ import annotations

import fcntl
import os
import queue
import struct
from contextlib import contextmanager

F_RDLCK, F_WRLCK, F_UNLCK = 0, 1, 2  # <fcntl.h>; the fcntl module does not export them


def _flock(kind: int, start: int, length: int) -> bytes:
    """struct flock on Linux x86_64 and aarch64; l_pid must be 0 for OFD locks."""
    return struct.pack("hhxxxxqqixxxx", kind, os.SEEK_SET, start, length, 0)


class RangeLock:
    """One open file description of the lock file: lock byte i stands for chunk i."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def lock(self, start: int, length: int, exclusive: bool, wait: bool = True) -> bool:
        """Take [start, start+length); False only when ``wait`` is off and it is held."""
        if length <= 0:  # fcntl reads 0 as "to the end of the file": never meant here
            raise ValueError(f"a lock needs a positive length, not {length}")
        command = fcntl.F_OFD_SETLKW if wait else fcntl.F_OFD_SETLK
        try:
            fcntl.fcntl(self.fd, command, _flock(F_WRLCK if exclusive else F_RDLCK,
                                                 start, length))
        except (BlockingIOError, PermissionError):  # EAGAIN / EACCES: held by another
            if wait:
                raise
            return False
        return True

    def unlock(self, start: int, length: int) -> None:
        fcntl.fcntl(self.fd, fcntl.F_OFD_SETLK, _flock(F_UNLCK, start, length))

    @contextmanager
    def held(self, start: int, length: int, exclusive: bool):
        self.lock(start, length, exclusive)
        try:
            yield self
        finally:
            self.unlock(start, length)

    def close(self) -> None:
        os.close(self.fd)


class LockPool:
    """RangeLocks to borrow, one per request in flight.

    A pool, not threading.local: nbdkit's Python plugin gives every callback a fresh
    thread state, so a thread-local lock handle was a new fd per request (the prototype
    leaked 10,000 fds in 10,000 requests). Locks are returned unlocked.
    """

    def __init__(self, path):
        self.path = path
        self.idle: queue.SimpleQueue = queue.SimpleQueue()

    @contextmanager
    def borrowed(self):
        try:
            handle = self.idle.get_nowait()
        except queue.Empty:
            handle = RangeLock(self.path)
        try:
            yield handle
        finally:
            self.idle.put(handle)

    def close(self) -> None:
        while True:
            try:
                self.idle.get_nowait().close()
            except queue.Empty:
                return
