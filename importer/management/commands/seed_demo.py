"""Create the demo remote systems: a folder of real volumes (dense, sparse) and a 3-volume
CG, and an NBD array (nbdkit, started by runferry) with its own volumes and a 2-volume CG."""

import os
import shutil
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from importer import nbdlib, services
from importer.errors import InUse
from importer.models import Host, RemoteSystem

MiB = 1024 * 1024
DEMO_SYSTEM = "demo-array"
# name: (size, bytes of data, extents the data is spread over); equal size and data = dense
DEMO_VOLUMES = {
    "db01.img": (128 * MiB, 128 * MiB, 1),
    "web01.img": (64 * MiB, 64 * MiB, 1),
    "logs.img": (1024 * MiB, 48 * MiB, 12),
    "scratch.img": (256 * MiB, 0, 0),
    "cg-finance/ledger.img": (96 * MiB, 96 * MiB, 1),
    "cg-finance/journal.img": (32 * MiB, 32 * MiB, 1),
    "cg-finance/archive.img": (512 * MiB, 64 * MiB, 8),
}
DEMO_NBD_SYSTEM = "demo-nbd-array"
# The NBD array's exports (nbdkit's file plugin serves each file by its name).
DEMO_NBD_VOLUMES = {
    "mail01": (96 * MiB, 96 * MiB, 1),
    "vm-template": (512 * MiB, 32 * MiB, 4),
    "erp-db": (128 * MiB, 64 * MiB, 2),
    "erp-log": (32 * MiB, 32 * MiB, 1),
}
DEMO_NBD_GROUPS = {"erp": ["erp-db", "erp-log"]}
DEMO_HOSTS = {"esx-prod-01": ("ESXi", ["iqn.1998-01.com.vmware:esx-prod-01"]),
              "db-linux-02": ("Linux", ["iqn.2005-03.org.open-iscsi:db-linux-02"])}


def write_volume(path: Path, size: int, data: int, extents: int) -> None:
    """A raw image of ``size`` bytes holding ``data`` random bytes in ``extents`` runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as volume:
        volume.truncate(size)
        if data:
            run, stride = data // extents, size // extents
            for index in range(extents):
                volume.seek(index * stride)
                for _ in range(0, run, 4 * MiB):
                    volume.write(os.urandom(min(4 * MiB, run)))


class Command(BaseCommand):
    help = "Create the demo remote system, its volumes on disk and two hosts (idempotent)."

    def handle(self, *args, **options):
        root = Path(settings.FERRY_SOURCE_ROOTS[0]) / "demo"
        for name, (size, data, extents) in DEMO_VOLUMES.items():
            if not (root / name).exists():
                write_volume(root / name, size, data, extents)
        system = RemoteSystem.objects.filter(name=DEMO_SYSTEM).first()
        if system is None:
            system = services.create_remote_system(
                name=DEMO_SYSTEM, driver_settings={"path": str(root)},
                description="Demo source array: a folder of raw images.", actor=services.SYSTEM)
        services.discover_remote_system(system.pk, actor=services.SYSTEM)
        for name, (os_type, initiators) in DEMO_HOSTS.items():
            Host.objects.get_or_create(name=name, defaults={"os_type": os_type,
                                                            "initiators": initiators})
        self.stdout.write(self.style.SUCCESS(
            f"Demo remote system {DEMO_SYSTEM!r} at {root}: "
            f"{system.source_volumes.count()} volumes, {system.source_groups.count()} group."))
        self._seed_nbd_array()

    def _seed_nbd_array(self) -> None:
        """The NBD array's images and its remote system; a worker discovers it once
        runferry has started nbdkit on the socket."""
        if not shutil.which("nbdkit") or not nbdlib.available():
            self.stdout.write(self.style.WARNING(
                f"No demo NBD array: it needs Debian's {nbdlib.DEBIAN_PACKAGES} "
                f"({nbdlib.INSTALL_HINT}, which `make` does when run as root)."))
            return
        folder = Path(settings.FERRY_DEMO_NBD_DIR)
        for name, (size, data, extents) in DEMO_NBD_VOLUMES.items():
            if not (folder / name).exists():
                write_volume(folder / name, size, data, extents)
        uri = f"nbd+unix:///?socket={settings.FERRY_DEMO_NBD_SOCKET}"
        system = RemoteSystem.objects.filter(name=DEMO_NBD_SYSTEM).first()
        if system is None:
            system = services.create_remote_system(
                name=DEMO_NBD_SYSTEM, driver_type="nbd",
                driver_settings={"uri": uri, "groups": DEMO_NBD_GROUPS},
                description="Demo NBD array: nbdkit serving raw images.", actor=services.SYSTEM)
        try:
            services.request_discovery(system.pk, actor=services.SYSTEM)
        except InUse:
            pass  # one is queued already
        self.stdout.write(self.style.SUCCESS(
            f"Demo NBD array {DEMO_NBD_SYSTEM!r} at {uri}: {len(DEMO_NBD_VOLUMES)} exports, "
            f"discovered by the worker once runferry starts nbdkit."))
