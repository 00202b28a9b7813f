"""The small interface every remote-system driver implements. No Django here."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import BinaryIO

from importer.errors import SourceError
from importer.mover.sources import FileSource, Source


@dataclass(frozen=True)
class DiscoveredVolume:
    identifier: str  # stable across discoveries
    name: str
    size: int
    group_identifier: str | None = None
    readable: bool = True
    reason: str = ""  # why it is not readable
    # What the volume is, whatever name reaches it (a device and inode, an array's own
    # id): two names of one volume share it, so it is never imported twice at once.
    physical_id: str = ""
    description: str = ""  # what the source says the volume is
    read_only: bool = False  # the source serves it read-only (it can still be imported)


@dataclass(frozen=True)
class DiscoveredGroup:
    identifier: str
    name: str


@dataclass(frozen=True)
class Discovery:
    volumes: list[DiscoveredVolume] = field(default_factory=list)
    groups: list[DiscoveredGroup] = field(default_factory=list)


class SourceDriver(ABC):
    """Reads one remote system. Raises ``importer.errors.SourceError`` with a stable code."""

    # False where Ferry cannot stop hosts writing to the source (a server it does not
    # control): the operator unmaps them by hand and confirms it before enable.
    revokes_host_access = True

    @classmethod
    @abstractmethod
    def validate_settings(cls, settings: dict, roots) -> dict:
        """Return the settings normalised, or raise SourceError naming what is wrong."""

    @abstractmethod
    def discover(self) -> Discovery: ...

    def check_health(self) -> float:
        """Reach the system; the seconds it took. Raises SourceError when it cannot."""
        started = time.monotonic()
        self.discover()
        return time.monotonic() - started

    @abstractmethod
    def open_for_read(self, identifier: str) -> BinaryIO:
        """An unbuffered binary file object positioned at offset 0."""

    def open_source(self, identifier: str, connections: int = 1) -> Source:
        """What the mover copies from. By default the file ``open_for_read`` gives; a
        driver that reads over the network (NBD) returns its own Source, with up to
        ``connections`` connections."""
        return FileSource.from_file(self.open_for_read(identifier), label=identifier)

    def frontend_source(self, identifier: str) -> dict:
        """How a destination's front end reaches this volume to read what is not copied yet
        and to forward host writes: {"path": file} or {"uri": NBD URI, TLS settings}."""
        raise SourceError("frontend_unsupported", f"{identifier}: this kind of remote system "
                          "cannot serve hosts during an import.", identifier=identifier)

    @abstractmethod
    def size(self, identifier: str) -> int: ...

    def physical_id(self, identifier: str) -> str:
        """What the volume is now (see DiscoveredVolume.physical_id); "" if unknown."""
        return ""

    @abstractmethod
    def host_access(self, identifier: str) -> dict:
        """The source's host access now: what restore_host_access puts back."""

    @abstractmethod
    def revoke_host_access(self, identifier: str) -> None:
        """Stop hosts writing to the source. Idempotent."""

    @abstractmethod
    def restore_host_access(self, identifier: str, backup: dict) -> None: ...
