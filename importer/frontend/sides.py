"""The two sides the front end reads and writes: a local file, or an NBD export (libnbd).

Stdlib plus Debian's ``nbd`` module (imported only for an NBD source), because nbdkit's
embedded Python runs this. Both sides offer the same five calls, so the plugin does not
care which one the source is.
"""

from __future__ import annotations

import ctypes
import os

FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 0x01, 0x02
ZERO_PIECE = 1024 * 1024
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = (ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong)


class FileSide:
    """A file or block device opened read-write."""

    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)

    def read_into(self, view: memoryview, offset: int) -> None:
        done = 0
        while done < len(view):
            count = os.preadv(self.fd, [view[done:]], offset + done)
            if count == 0:
                raise OSError(f"{self.path} ends before {offset + done}")
            done += count

    def write(self, data, offset: int) -> None:
        view, done = memoryview(data), 0
        while done < len(view):
            done += os.pwrite(self.fd, view[done:], offset + done)

    def zero(self, count: int, offset: int) -> None:
        """Punch a hole (reads as zeros, frees the space); write zeros where the file
        system or device cannot punch."""
        if _libc.fallocate(self.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                           offset, count) == 0:
            return
        zeros = bytes(min(count, ZERO_PIECE))
        for position in range(offset, offset + count, ZERO_PIECE):
            self.write(zeros[:min(ZERO_PIECE, offset + count - position)], position)

    def flush(self) -> None:
        os.fdatasync(self.fd)

    def close(self) -> None:
        os.close(self.fd)


class NbdSide:
    """An NBD export through one libnbd handle (thread-safe: libnbd locks the handle)."""

    def __init__(self, spec: dict):
        import nbd

        self.handle = nbd.NBD()
        self.handle.set_uri_allow_local_file(True)  # ?tls-psk-file= in the URI
        if spec.get("tls_psk_file"):
            self.handle.set_tls_psk_file(spec["tls_psk_file"])
        if spec.get("tls_username"):
            self.handle.set_tls_username(spec["tls_username"])
        self.handle.connect_uri(spec["uri"])
        self.can_zero = bool(self.handle.can_zero())
        self.can_flush = bool(self.handle.can_flush())

    def read_into(self, view: memoryview, offset: int) -> None:
        view[:] = self.handle.pread(len(view), offset)

    def write(self, data, offset: int) -> None:
        self.handle.pwrite(data, offset)

    def zero(self, count: int, offset: int) -> None:
        if self.can_zero:
            self.handle.zero(count, offset)
            return
        zeros = bytes(min(count, ZERO_PIECE))
        for position in range(offset, offset + count, ZERO_PIECE):
            self.write(zeros[:min(ZERO_PIECE, offset + count - position)], position)

    def flush(self) -> None:
        if self.can_flush:
            self.handle.flush()

    def close(self) -> None:
        try:
            self.handle.shutdown()
        except Exception:  # noqa: BLE001  (a dead source has nothing left to shut down)
            pass


def open_source(spec: dict):
    return FileSide(spec["path"]) if "path" in spec else NbdSide(spec)
