"""The `directory` driver: a folder of raw image files; each sub-folder is a consistency group.

"Host access" is the file's write permission: revoking it makes the source read-only, and
restoring it puts the original mode back.
"""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from importer.drivers.base import (
    DiscoveredGroup,
    DiscoveredVolume,
    Discovery,
    SourceDriver,
)
from importer.errors import SourceError

_WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _is_volume(mode: int) -> bool:
    return stat.S_ISREG(mode) or stat.S_ISBLK(mode)


def _physical_id(info: os.stat_result) -> str:
    """A device and inode: a symlink, a hard link or a second system on the same folder
    reach the same file under another name, and share this id."""
    if stat.S_ISBLK(info.st_mode):
        return f"blk:{os.major(info.st_rdev)}:{os.minor(info.st_rdev)}"
    return f"file:{info.st_dev}:{info.st_ino}"


class DirectoryDriver(SourceDriver):
    def __init__(self, settings: dict, roots):
        self.roots = [Path(root).resolve() for root in roots]
        self.base = Path(self.validate_settings(settings, self.roots)["path"])

    @classmethod
    def validate_settings(cls, settings: dict, roots) -> dict:
        raw = (settings or {}).get("path")
        if not raw or not isinstance(raw, str):
            raise SourceError("path_required", "A directory remote system needs a folder path.")
        path = Path(raw).resolve()
        resolved_roots = [Path(root).resolve() for root in roots]
        if not any(_inside(path, root) for root in resolved_roots):
            raise SourceError(
                "path_outside_roots",
                f"{raw} is outside the allowed source folders "
                f"({', '.join(map(str, resolved_roots)) or 'none configured'}).",
                path=raw, roots=[str(root) for root in resolved_roots])
        if not path.is_dir():
            raise SourceError("folder_not_found", f"The folder {raw} does not exist.", path=raw)
        if not os.access(path, os.R_OK | os.X_OK):
            raise SourceError("folder_not_readable", f"The folder {raw} cannot be read.",
                              path=raw)
        return {**settings, "path": str(path)}

    def check_health(self) -> float:
        started = time.monotonic()
        try:
            os.listdir(self.base)
        except OSError as error:
            raise SourceError("source_unreachable", f"Cannot list {self.base}: "
                              f"{error.strerror}.", path=str(self.base)) from error
        return time.monotonic() - started

    def discover(self) -> Discovery:
        discovery = Discovery()
        try:
            entries = sorted(os.scandir(self.base), key=lambda entry: entry.name)
        except OSError as error:
            raise SourceError("source_unreachable", f"Cannot list {self.base}: "
                              f"{error.strerror}.", path=str(self.base)) from error
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                discovery.groups.append(DiscoveredGroup(entry.name, entry.name))
                discovery.volumes.extend(self._discover_group(entry))
            else:
                discovery.volumes.append(self._describe(entry.name, None))
        discovery.volumes[:] = [volume for volume in discovery.volumes if volume is not None]
        return discovery

    def _discover_group(self, group_entry: os.DirEntry) -> list[DiscoveredVolume]:
        try:
            names = sorted(os.listdir(group_entry.path))
        except OSError:
            return []
        return [self._describe(f"{group_entry.name}/{name}", group_entry.name)
                for name in names if not name.startswith(".")]

    def _describe(self, identifier: str, group: str | None) -> DiscoveredVolume | None:
        """A regular file or a block device, or None: anything else (a FIFO, a socket) is
        not a volume, and is never opened, so it cannot block discovery."""
        name = identifier.rsplit("/", 1)[-1]
        try:
            path = self._path(identifier)
            info = os.stat(path)
            if not _is_volume(info.st_mode):
                return None
            size = self._readable_size(path, info)
            return DiscoveredVolume(identifier, name, size, group,
                                    physical_id=_physical_id(info))
        except SourceError as error:
            return DiscoveredVolume(identifier, name, 0, group, False, error.message)
        except OSError as error:
            return DiscoveredVolume(identifier, name, 0, group, False,
                                    error.strerror or str(error))

    @staticmethod
    def _readable_size(path: Path, info: os.stat_result) -> int:
        """Read one byte (non-blocking) to prove the volume can be read; return its size."""
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            os.read(fd, 1)
            return info.st_size if stat.S_ISREG(info.st_mode) else os.lseek(fd, 0, os.SEEK_END)
        finally:
            os.close(fd)

    def _path(self, identifier: str) -> Path:
        """The real path of a volume; refuses anything that escapes the folder or roots."""
        path = (self.base / identifier).resolve()
        if not _inside(path, self.base) or not any(_inside(path, r) for r in self.roots):
            raise SourceError("path_outside_roots",
                              f"{identifier} points outside the remote system's folder.",
                              identifier=identifier)
        return path

    def open_for_read(self, identifier: str):
        path = self._path(identifier)
        try:
            if not _is_volume(os.stat(path).st_mode):
                raise SourceError("not_a_volume", f"Source volume {identifier} is no longer a "
                                  "regular file or block device.", identifier=identifier)
            return open(path, "rb", buffering=0)
        except FileNotFoundError as error:
            raise SourceError("source_volume_missing", f"Source volume {identifier} is gone "
                              f"from {self.base}.", identifier=identifier) from error
        except OSError as error:
            raise SourceError("source_read_error", f"Cannot open source volume {identifier}: "
                              f"{error.strerror}.", identifier=identifier) from error

    def physical_id(self, identifier: str) -> str:
        try:
            return _physical_id(os.stat(self._path(identifier)))
        except OSError as error:
            raise SourceError("source_volume_missing", f"Source volume {identifier} cannot "
                              f"be found: {error.strerror}.", identifier=identifier) from error

    def size(self, identifier: str) -> int:
        try:
            return os.stat(self._path(identifier)).st_size
        except OSError as error:
            raise SourceError("source_volume_missing", f"Source volume {identifier} cannot "
                              f"be found: {error.strerror}.", identifier=identifier) from error

    def frontend_source(self, identifier: str) -> dict:
        return {"path": str(self._path(identifier))}

    def host_access(self, identifier: str) -> dict:
        try:
            return {"mode": stat.S_IMODE(os.stat(self._path(identifier)).st_mode)}
        except OSError as error:
            raise SourceError("host_access_error", f"Cannot read the access of {identifier}: "
                              f"{error.strerror}.", identifier=identifier) from error

    def revoke_host_access(self, identifier: str) -> None:
        path = self._path(identifier)
        try:
            os.chmod(path, stat.S_IMODE(os.stat(path).st_mode) & ~_WRITE_BITS)
        except OSError as error:
            raise SourceError("host_access_error", f"Cannot make {identifier} read-only: "
                              f"{error.strerror}.", identifier=identifier) from error

    def restore_host_access(self, identifier: str, backup: dict) -> None:
        path = self._path(identifier)
        try:
            os.chmod(path, int(backup["mode"]))
        except OSError as error:
            raise SourceError("host_access_error", f"Cannot restore write access to "
                              f"{identifier}: {error.strerror}.",
                              identifier=identifier) from error
