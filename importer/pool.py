"""Ferry's own storage pool: destination volumes are sparse files in ``FERRY_POOL_DIR``."""

from __future__ import annotations

import os
import re
from pathlib import Path

from django.conf import settings

from importer.errors import FerryError

_READ_ONLY, _WRITABLE = 0o440, 0o640


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
