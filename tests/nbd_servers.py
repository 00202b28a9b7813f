"""Real NBD servers for tests: nbdkit and qemu-nbd, run as foreground children.

Each is a context manager that yields the server's URI and stops the server on exit.
qemu-nbd runs in the foreground (``--fork`` leaves zombies) and needs an absolute socket.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

PACKAGES = "nbdkit libnbd-bin python3-libnbd qemu-utils"


def require_nbd_tools() -> None:
    """Skip without the NBD tools; under CI=true their absence is a failure."""
    from importer import nbdlib

    missing = [tool for tool in ("nbdkit", "qemu-nbd", "nbdcopy") if not shutil.which(tool)]
    if not nbdlib.available():
        missing.append("libnbd's Python bindings")
    if not missing:
        return
    message = f"missing {', '.join(missing)}: apt-get install {PACKAGES} (make setup does it)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI needs the NBD tools: {message}")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_psk(path: Path, username: str = "ferry") -> Path:
    """A TLS pre-shared key file as nbdkit and libnbd read it: ``username:hexkey``."""
    path.write_text(f"{username}:{secrets.token_hex(32)}\n")
    path.chmod(0o600)
    return path


def _wait_listening(process, sock: Path | None, port: int | None, what: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited: {process.stderr.read().decode()[-500:]}")
        if sock is not None and sock.exists():
            return
        if port is not None:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port),
                                                                        timeout=0.2):
                return
        time.sleep(0.02)
    raise RuntimeError(f"{what} did not start listening")


@contextlib.contextmanager
def _serving(command: list[str], sock: Path | None, port: int | None, what: str):
    if sock is not None:
        sock.unlink(missing_ok=True)  # nbdkit leaves its socket behind
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
    try:
        _wait_listening(process, sock, port, what)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr:
            process.stderr.close()
        if sock is not None:
            sock.unlink(missing_ok=True)


def _listen(sock: Path | None, port: int | None) -> list[str]:
    return ["-U", str(sock)] if sock is not None else ["-i", "127.0.0.1", "-p", str(port)]


def uri(*, sock: Path | None = None, port: int | None = None, tls: bool = False) -> str:
    scheme = "nbds" if tls else "nbd"
    return f"{scheme}+unix:///?socket={sock}" if sock is not None \
        else f"{scheme}://127.0.0.1:{port}"


@contextlib.contextmanager
def nbdkit_dir(folder: Path, *, sock: Path | None = None, port: int | None = None,
               psk: Path | None = None, args: tuple[str, ...] = ()):
    """nbdkit's file plugin serving every file in ``folder`` as an export named after it."""
    tls = ["--tls=require", f"--tls-psk={psk}"] if psk else []
    command = ["nbdkit", "-f", "--exit-with-parent", *_listen(sock, port), *tls, *args,
               "file", f"dir={folder}"]
    with _serving(command, sock, port, "nbdkit"):
        yield uri(sock=sock, port=port, tls=bool(psk))


@contextlib.contextmanager
def qemu_nbd(image: Path, *, export: str, sock: Path | None = None, port: int | None = None,
             read_only: bool = True, description: str = ""):
    """qemu-nbd serving one raw image under the export name ``export``."""
    listen = [f"--socket={sock.resolve()}"] if sock is not None \
        else ["--bind=127.0.0.1", f"--port={port}"]
    command = ["qemu-nbd", "--persistent", "--shared=8", "--format=raw", f"--export-name={export}",
               *(["--read-only"] if read_only else []),
               *([f"--description={description}"] if description else []), *listen,
               str(image.resolve())]
    with _serving(command, sock.resolve() if sock else None, port, "qemu-nbd"):
        yield uri(sock=sock.resolve() if sock else None, port=port)
