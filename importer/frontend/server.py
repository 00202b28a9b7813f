"""Ferry's side of a front end: one nbdkit process per destination volume, and its keys.

``FrontEnd(folder, ...)`` builds the nbdkit command line, starts it in the foreground,
waits for the NBD handshake, and stops it. Access control for hosts: TLS with one PSK
identity per mapped host (identity = the host's name) in the volume's own PSK file, so a
host of another volume or an unmapped host fails the TLS handshake. (No address
allow-list: Debian's nbdkit 1.32 ip filter refused the address rules as given.) A Unix
socket (no TLS) is for tests and for clients on the same machine.
"""

from __future__ import annotations

import functools
import os
import re
import signal
import socket as sockets
import struct
import subprocess
import time
from pathlib import Path

PLUGIN = Path(__file__).resolve().with_name("plugin.py")
# A clean environment: nbdkit embeds Debian's libpython, which finds an activated venv's
# pyvenv.cfg through PATH and then loads the wrong standard library.
CLEAN_ENV = {"PATH": "/usr/bin:/bin"}
NBD_GREETING = b"NBDMAGIC" + b"IHAVEOPT"  # the newstyle greeting, sent before TLS starts
# Our reply to it: client flags FIXED_NEWSTYLE | NO_ZEROES, then NBD_OPT_ABORT, so the
# readiness probe leaves politely instead of an error line in the server's log.
NBD_PROBE_GOODBYE = struct.pack(">I", 3) + b"IHAVEOPT" + struct.pack(">II", 2, 0)
IDENTITY = re.compile(r"^[^:\s]+$")


@functools.lru_cache(maxsize=1)
def plugin_available() -> bool:
    """Whether nbdkit and its Python plugin (Debian's nbdkit-plugin-python) are here."""
    try:
        return subprocess.run(["nbdkit", "python", "--version"], env=CLEAN_ENV,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def generate_psk() -> str:
    """A 32-byte key, hex encoded, as nbdkit's and libnbd's PSK files hold it."""
    return os.urandom(32).hex()


def write_psk_file(path, keys: dict[str, str]) -> Path:
    """Write ``identity:hexkey`` lines (psktool's format), readable by the owner only.
    Written to a temporary file first, so nbdkit never reads half a file."""
    path = Path(path)
    lines = []
    for identity, key in keys.items():
        if not IDENTITY.match(identity):
            raise ValueError(f"a PSK identity has no colon or space: {identity!r}")
        if not re.fullmatch(r"[0-9a-fA-F]+", key):
            raise ValueError(f"the key of {identity!r} is not hex")
        lines.append(f"{identity}:{key}\n")
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.writelines(lines)
    os.replace(temporary, path)
    return path


def free_port(low: int, high: int, address: str = "127.0.0.1") -> int:
    """The first port in [low, high] nothing listens on at ``address``. Another process
    may still take it before nbdkit does: start() then fails and the caller tries again."""
    for port in range(low, high + 1):
        with sockets.socket() as probe:
            try:
                probe.bind((address, port))
                return port
            except OSError:
                continue
    raise OSError(f"no free TCP port in {low}-{high} on {address}")


class FrontEnd:
    """One nbdkit serving one runtime folder (see runtime.py), on a Unix socket or TCP.

    ``exit_with_parent`` (default on) makes nbdkit die with the process that started it
    (PR_SET_PDEATHSIG). The supervisor is meant to be the Celery worker's main process:
    a front end must not outlive the one process that knows its pid and port, or a new
    worker would find the port taken and a server it cannot account for (the runtime
    files make a restart safe: intent recovery repairs an interrupted write, and hosts
    reconnect). Caveat: Linux sends that signal when the *thread* that forked nbdkit ends,
    so start front ends from a long-lived thread, never from a short-lived helper thread,
    and never from a prefork pool child (recycled after max-tasks-per-child).
    """

    def __init__(self, folder, *, socket=None, address: str | None = None,
                 port: int | None = None, psk_file=None,
                 exit_with_parent: bool = True, threads: int | None = None,
                 params=(), log_path=None):
        if (socket is None) == (port is None):
            raise ValueError("give either a Unix socket or a TCP port")
        self.folder = Path(folder).resolve()
        self.socket = str(Path(socket).resolve()) if socket is not None else None
        self.address, self.port = address or "127.0.0.1", port
        self.psk_file = Path(psk_file).resolve() if psk_file else None
        self.exit_with_parent, self.threads = exit_with_parent, threads
        self.params = list(params)  # extra plugin parameters (tests: nolock=1, ...)
        self.log_path = Path(log_path) if log_path else self.folder / "frontend.log"
        self.process: subprocess.Popen | None = None

    def argv(self) -> list[str]:
        argv = ["nbdkit", "--foreground", "--log=stderr"]
        if self.exit_with_parent:
            argv.append("--exit-with-parent")
        if self.threads:
            argv.append(f"--threads={self.threads}")
        if self.socket:
            argv += ["--unix", self.socket]
        else:
            argv += ["--ipaddr", self.address, "--port", str(self.port)]
        if self.psk_file:
            argv += ["--tls=require", f"--tls-psk={self.psk_file}"]
        argv += ["python", str(PLUGIN), f"runtime={self.folder}", *self.params]
        return argv

    # --- Life ---------------------------------------------------------------------------

    def start(self) -> FrontEnd:
        if self.socket:
            Path(self.socket).unlink(missing_ok=True)  # nbdkit leaves it after SIGTERM
        # A file, not a pipe: a chatty server must never block on a full pipe.
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=log, env=CLEAN_ENV)
        (self.folder / "frontend.pid").write_text(f"{self.process.pid}\n")
        return self

    def wait_ready(self, timeout: float = 10) -> FrontEnd:
        """Until the server sends the NBD greeting (TLS comes after it, so this needs no
        key); RuntimeError with its log if it exits or stays silent."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"nbdkit exited: {self.output()[-2000:]}")
            if self._greets():
                return self
            time.sleep(0.02)
        raise RuntimeError(f"nbdkit did not greet within {timeout} s: "
                           f"{self.output()[-2000:]}")

    def _greets(self) -> bool:
        family = sockets.AF_UNIX if self.socket else sockets.AF_INET
        address = self.socket if self.socket else (self.address, self.port)
        with sockets.socket(family) as probe:
            probe.settimeout(1)
            try:
                probe.connect(address)
                received = b""
                while len(received) < len(NBD_GREETING) + 2:  # + the server's flags
                    more = probe.recv(len(NBD_GREETING) + 2 - len(received))
                    if not more:
                        return False
                    received += more
                if received[:16] != NBD_GREETING:
                    return False
                probe.sendall(NBD_PROBE_GOODBYE)
                return True
            except OSError:
                return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 1) -> None:
        """SIGTERM, then SIGKILL after ``timeout``. nbdkit 1.32 does not exit on SIGTERM
        while a client stays connected (it waited out the whole timeout, with its own
        file plugin too), so with hosts connected this ends in SIGKILL. That is safe: a
        write cut short was not acknowledged, and intent recovery repairs its chunks."""
        if self.process is None:
            return
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process.wait()
        self._forget()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.alive():
            self.process.kill()
        if self.process is not None:
            self.process.wait()
            self._forget()

    def _forget(self) -> None:
        (self.folder / "frontend.pid").unlink(missing_ok=True)
        if self.socket:
            Path(self.socket).unlink(missing_ok=True)

    def output(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # --- For clients --------------------------------------------------------------------

    def uri(self, identity: str | None = None, psk_file=None) -> str:
        """An NBD URI for libnbd/nbdcopy/qemu: TLS PSK when the server requires it
        (``identity`` and the client's own key file, which must contain that identity)."""
        if self.socket:
            return f"nbd+unix:///?socket={self.socket}"
        if not self.psk_file:
            return f"nbd://{self.address}:{self.port}/"
        user = f"{identity}@" if identity else ""
        return f"nbds://{user}{self.address}:{self.port}/?tls-psk-file={psk_file}"

    def __enter__(self) -> FrontEnd:
        return self.start().wait_ready()

    def __exit__(self, *exc_info) -> None:
        self.stop()
