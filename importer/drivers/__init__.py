"""Remote-system drivers, looked up by a remote system's ``driver_type``."""

from django.conf import settings

from importer.drivers.base import SourceDriver
from importer.drivers.directory import DirectoryDriver
from importer.drivers.nbd import NbdDriver

DRIVERS: dict[str, type[SourceDriver]] = {"directory": DirectoryDriver, "nbd": NbdDriver}


def driver_class(driver_type: str) -> type[SourceDriver]:
    from importer.errors import SourceError

    try:
        return DRIVERS[driver_type]
    except KeyError:
        raise SourceError("unknown_driver", f"Unknown driver type {driver_type!r}. "
                          f"Known: {', '.join(DRIVERS)}.", driver_type=driver_type) from None


def get_driver(remote_system) -> SourceDriver:
    cls = driver_class(remote_system.driver_type)
    return cls(remote_system.driver_settings, settings.FERRY_SOURCE_ROOTS)
