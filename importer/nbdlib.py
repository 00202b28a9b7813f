"""libnbd's Python bindings for Ferry's virtualenv, and what to install when they are missing.

Debian ships the bindings (python3-libnbd) for its own /usr/bin/python3 (3.11) only; PyPI
has none. They are two files, ``nbd.py`` and ``libnbdmod.cpython-311-*.so``. Linked into a
venv of any CPython 3.11 they import and work (same minor version, same ABI: measured in
../shared/notes/nbd-copy-anchors.md). Linking just those two keeps the rest of Debian's
dist-packages (yaml, boto3, ...) out of the venv, where they would hide missing dependencies.

``python -m importer.nbdlib`` links them (``make setup`` runs it); ``load()`` imports them.
"""

from __future__ import annotations

import importlib
import sys
import sysconfig
from pathlib import Path

DEBIAN_PACKAGES = "nbdkit nbdkit-plugin-python libnbd-bin python3-libnbd qemu-utils"
INSTALL_HINT = f"apt-get install {DEBIAN_PACKAGES}"
DIST_PACKAGES = Path("/usr/lib/python3/dist-packages")


class NbdUnavailable(RuntimeError):
    """libnbd's bindings cannot be imported here; the message says what to install."""


def binding_files(dist_packages: Path = DIST_PACKAGES) -> list[Path]:
    return sorted([*dist_packages.glob("nbd.py"),
                   *dist_packages.glob(f"libnbdmod.cpython-{_abi_tag()}*.so")])


def _abi_tag() -> str:
    return f"{sys.version_info.major}{sys.version_info.minor}"


def load():
    """The ``nbd`` module, or NbdUnavailable naming the packages to install."""
    try:
        return importlib.import_module("nbd")
    except ImportError as error:
        raise NbdUnavailable(
            f"libnbd's Python bindings are not importable ({error}). On Debian or Ubuntu: "
            f"{INSTALL_HINT}, then `make setup` links them into the virtualenv.") from None


def available() -> bool:
    try:
        load()
        return True
    except NbdUnavailable:
        return False


def link_into_venv(site_packages: Path | None = None) -> str:
    """Symlink Debian's binding files into this interpreter's site-packages."""
    target = Path(site_packages or sysconfig.get_paths()["purelib"])
    files = binding_files()
    if len(files) < 2:
        return (f"libnbd's Python bindings for Python {_abi_tag()[0]}.{_abi_tag()[1:]} are "
                f"not installed (no {DIST_PACKAGES}/nbd.py and libnbdmod). Install: "
                f"{INSTALL_HINT}. Ferry runs on without NBD remote systems.")
    for source in files:
        link = target / source.name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source)
    return f"Linked libnbd's Python bindings into {target}."


if __name__ == "__main__":
    print(link_into_venv())
    if binding_files():
        try:
            load()
        except NbdUnavailable as error:
            sys.exit(f"Linked, but the bindings do not load here: {error}")
