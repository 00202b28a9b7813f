"""Real NBD servers for tests and the bench: nbdkit and qemu-nbd as foreground children.

``nbdkit_file(...)`` and ``qemu_nbd(...)`` are context managers yielding the server's URI.
``NbdServer`` is the same server as an object, for a test that kills and restarts it.
Foreground children, because ``qemu-nbd --fork`` leaves zombies; absolute socket paths,
because qemu-nbd refuses relative ones.
"""

from __future__ import annotations

import os
import shutil
import socket as sockets
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

INSTALL_HINT = "apt-get install nbdkit libnbd-bin python3-libnbd qemu-utils"


def missing_tools() -> list[str]:
    """What this machine lacks to run NBD tests: commands, or libnbd's Python bindings."""
    missing = [tool for tool in ("nbdkit", "qemu-nbd", "nbdcopy") if not shutil.which(tool)]
    try:
        import nbd  # noqa: F401
    except ImportError:
        missing.append("import nbd")
    return missing


def missing_frontend_tools() -> list[str]:
    """What the front end's tests lack: the NBD tools, and nbdkit's Python plugin
    (Debian's nbdkit-plugin-python), which runs importer/frontend/plugin.py."""
    missing = missing_tools()
    if shutil.which("nbdkit") and subprocess.run(
            ["nbdkit", "python", "--version"], env={"PATH": "/usr/bin:/bin"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
        missing.append("nbdkit-plugin-python")
    return missing


def require_nbd_tools(frontend: bool = False) -> None:
    """Skip the test without the tools, except on CI, where their absence is a failure.
    ``frontend``: also nbdkit's Python plugin."""
    import pytest

    missing = missing_frontend_tools() if frontend else missing_tools()
    if not missing:
        return
    hint = INSTALL_HINT.replace("nbdkit ", "nbdkit nbdkit-plugin-python ") if frontend \
        else INSTALL_HINT
    message = f"NBD tests need {', '.join(missing)}: {hint} (then make setup)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with sockets.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class NbdServer:
    """One server process on a Unix socket (absolute path) or a 127.0.0.1 TCP port."""

    def __init__(self, argv: list[str], socket: str | os.PathLike | None = None,
                 port: int | None = None, export: str = ""):
        if socket is None and port is None:
            port = free_port()
        self.argv, self.export = argv, export
        self.socket = str(Path(socket).resolve()) if socket is not None else None
        self.port = port
        self.process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        if self.socket:
            return f"nbd+unix:///{self.export}?socket={self.socket}"
        return f"nbd://127.0.0.1:{self.port}/{self.export}"

    def start(self, timeout: float = 10) -> NbdServer:
        if self.socket:
            Path(self.socket).unlink(missing_ok=True)
        argv = [part.format(socket=self.socket, port=self.port) for part in self.argv]
        # A file, not a pipe: a chatty server must never block on a full pipe.
        self.log = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                        stderr=self.log)
        self._wait_until_listening(timeout)
        return self

    def _wait_until_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.argv[0]} exited: {self.output()!r}")
            if self._accepts():
                return
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"{self.argv[0]} did not listen within {timeout} s")

    def _accepts(self) -> bool:
        family = sockets.AF_UNIX if self.socket else sockets.AF_INET
        address = self.socket if self.socket else ("127.0.0.1", self.port)
        with sockets.socket(family) as probe:
            try:
                probe.connect(address)
                return True
            except OSError:
                return False

    def kill(self) -> None:
        """Stop the server at once, as a crash would (SIGKILL), and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        if self.process is not None:
            self.process.wait(10)

    def output(self) -> str:
        """What the server printed so far (its errors)."""
        self.log.seek(0)
        return self.log.read()

    def __enter__(self) -> NbdServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.kill()


def nbdkit_file_server(path_or_dir, socket=None, port=None, extra_args=(),
                       export: str = "", read_only: bool = True) -> NbdServer:
    """nbdkit's file plugin, read-only unless told: one file, or a folder's files."""
    target = Path(path_or_dir).resolve()
    plugin_arg = f"dir={target}" if target.is_dir() else f"file={target}"
    listen = ["--unix", "{socket}"] if socket is not None else [
        "--ipaddr", "127.0.0.1", "--port", "{port}"]
    argv = ["nbdkit", "--foreground", "--exit-with-parent",
            *(["--readonly"] if read_only else []), *listen, *extra_args, "file", plugin_arg]
    return NbdServer(argv, socket, port, export)


def qemu_nbd_server(image, socket=None, port=None, extra_args=(),
                    image_format: str = "raw", read_only: bool = True) -> NbdServer:
    """qemu-nbd, read-only unless told (it then allows multi-conn), for many clients."""
    listen = ["--socket", "{socket}"] if socket is not None else [
        "--bind", "127.0.0.1", "--port", "{port}"]
    argv = ["qemu-nbd", *(["--read-only"] if read_only else []), "--persistent", "--shared", "16",
            f"--format={image_format}", *listen, *extra_args, str(Path(image).resolve())]
    return NbdServer(argv, socket, port)


@contextmanager
def nbdkit_file(path_or_dir, socket=None, port=None, extra_args=(), export: str = ""):
    with nbdkit_file_server(path_or_dir, socket, port, extra_args, export) as server:
        yield server.uri


@contextmanager
def qemu_nbd(image, socket=None, port=None, extra_args=(), image_format: str = "raw"):
    with qemu_nbd_server(image, socket, port, extra_args, image_format) as server:
        yield server.uri


def write_psk(path: Path, username: str = "ferry") -> Path:
    """A TLS pre-shared key file as nbdkit and libnbd read it: ``username:hexkey``."""
    path.write_text(f"{username}:{os.urandom(32).hex()}\n")
    path.chmod(0o600)
    return path


def tls_args(psk: Path) -> list[str]:
    return ["--tls=require", f"--tls-psk={psk}"]


def with_tls(uri: str) -> str:
    return uri.replace("nbd", "nbds", 1)
