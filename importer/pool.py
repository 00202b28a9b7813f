"""Ferry's own storage pool: destination volumes are sparse files in ``FERRY_POOL_DIR``."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from importer.errors import FerryError

_READ_ONLY, _WRITABLE = 0o440, 0o640
_MiB = 1024 * 1024


class PoolError(FerryError):
    code = "pool_error"


def volume_path(volume_name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", volume_name)
    return Path(settings.FERRY_POOL_DIR) / f"{safe}.raw"


def create_volume_file(volume_name: str, size: int) -> Path:
    """Create (or find, if a retried setup made it already) a sparse, read-only file."""
    path = volume_path(volume_name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, _READ_ONLY)
        try:
            os.ftruncate(fd, size)  # allocates nothing: the file is all hole
        finally:
            os.close(fd)
        os.chmod(path, _READ_ONLY)
    except OSError as error:
        raise PoolError(f"Cannot create destination {path}: {error.strerror}.",
                        path=str(path)) from error
    return path


def set_read_only(location: str, read_only: bool) -> None:
    try:
        os.chmod(location, _READ_ONLY if read_only else _WRITABLE)
    except OSError as error:
        raise PoolError(f"Cannot change access to destination {location}: "
                        f"{error.strerror}.", path=location) from error


def remove_volume_file(location: str) -> None:
    try:
        Path(location).unlink(missing_ok=True)
    except OSError as error:
        raise PoolError(f"Cannot remove destination {location}: {error.strerror}.",
                        path=location) from error


@dataclass(frozen=True)
class PoolReport:
    """What a storage node reports about its pool; ``problem`` is "" when it is usable."""

    path: str
    capacity_bytes: int = 0
    free_bytes: int = 0
    used_bytes: int = 0  # allocated by Ferry's destinations (sparse files count what they hold)
    problem: str = ""


def prepare_pool() -> None:
    """Create this node's pool folder if it is missing; measure_pool says if that failed."""
    try:
        Path(settings.FERRY_POOL_DIR).mkdir(parents=True, exist_ok=True)
    except OSError:
        pass


def measure_pool() -> PoolReport:
    """The pool's file system (capacity, free) and the space Ferry's destinations take."""
    path = Path(settings.FERRY_POOL_DIR)
    if not path.is_dir():
        return PoolReport(str(path), problem=f"The pool folder {path} is missing.")
    try:
        stats = os.statvfs(path)
        used = sum(entry.stat().st_blocks * 512 for entry in os.scandir(path)
                   if entry.name.endswith(".raw") and entry.is_file())
    except OSError as error:
        return PoolReport(str(path), problem=f"Cannot read the pool {path}: {error.strerror}.")
    report = PoolReport(str(path), stats.f_blocks * stats.f_frsize,
                        stats.f_bavail * stats.f_frsize, used)
    return PoolReport(**{**report.__dict__, "problem": _pool_problem(path, report)})


def _pool_problem(path: Path, report: PoolReport) -> str:
    if not os.access(path, os.W_OK | os.X_OK):
        return f"The pool {path} is not writable by this worker."
    minimum = settings.FERRY_POOL_MIN_FREE_BYTES
    if report.free_bytes < minimum:
        return (f"The pool {path} is full: {report.free_bytes // _MiB} MiB free, less than "
                f"the {minimum // _MiB} MiB kept free (FERRY_POOL_MIN_FREE_BYTES).")
    return ""
