"""The `nbd` driver: an NBD server's exports are the source volumes.

Any NBD server will do: nbdkit (which fronts files, disks, VMDK/qcow2 images, SSH, S3...),
qemu-nbd, or a storage gateway. Ferry reads it with libnbd, the client nbdcopy is built on.

Consistency groups come from the settings (``groups``: name → export names) or, for
exports not named there, from the export name: ``db/data`` is volume ``data`` of group
``db``, like the directory driver's sub-folders.

Ferry does not control an NBD server's host access, so it cannot revoke it: the operator
unmaps the hosts from the source and confirms it before Enable Destination Volume
(``revokes_host_access`` is False), and Ferry never claims a protection it did not apply.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from django.conf import settings as django_settings

from importer import nbdlib
from importer.drivers.base import DiscoveredGroup, DiscoveredVolume, Discovery, SourceDriver
from importer.errors import SourceError
from importer.validation import unprintable

SCHEMES = {"nbd": (False, False), "nbds": (True, False),
           "nbd+unix": (False, True), "nbds+unix": (True, True)}  # scheme: (tls, unix)
DEFAULT_PORT = 10809
TLS_KEYS = ("tls_psk_file", "tls_certificates", "tls_username", "tls_verify_peer")
KNOWN_KEYS = {"uri", "groups", "description", *TLS_KEYS}


@dataclass(frozen=True)
class Server:
    """Where an NBD server listens, parsed from its URI."""

    uri: str
    tls: bool
    socket: str = ""
    host: str = ""
    port: int = DEFAULT_PORT

    @property
    def key(self) -> str:
        """The server's identity in physical ids: two URIs of one server share it."""
        if self.socket:
            return f"unix:{os.path.realpath(self.socket)}"
        return f"tcp:{self.host.lower()}:{self.port}"

    def describe(self, export: str | None = None) -> str:
        return self.uri if export is None else f"export {export!r} on {self.uri}"


def _bad(code: str, message: str, **arguments) -> SourceError:
    return SourceError(code, message, **arguments)


def parse_uri(raw) -> Server:
    """The server in an NBD URI, or a SourceError saying what is wrong with it."""
    if not raw or not isinstance(raw, str):
        raise _bad("uri_required", "An NBD remote system needs a server URI, such as "
                   "nbd://array.example:10809 or nbd+unix:///?socket=/run/nbd.sock.")
    parts = urlsplit(raw.strip())
    if parts.scheme not in SCHEMES:
        raise _bad("uri_scheme", f"{raw!r} is not an NBD URI: it must start with "
                   f"{', '.join(s + '://' for s in SCHEMES)}.", uri=raw)
    tls, unix = SCHEMES[parts.scheme]
    if parts.path not in ("", "/"):
        raise _bad("uri_names_export", f"{raw!r} names an export ({parts.path[1:]!r}). Give "
                   "the server only: Ferry lists its exports when it discovers them.", uri=raw)
    query = parse_qs(parts.query)
    unknown = sorted(set(query) - ({"socket"} if unix else set()))
    if unknown:
        raise _bad("uri_query", f"{raw!r} has parameters Ferry does not use: "
                   f"{', '.join(unknown)}. TLS goes in the TLS settings.", uri=raw)
    if unix:
        return Server(raw, tls, socket=_unix_socket(raw, parts, query))
    return Server(raw, tls, host=_tcp_host(raw, parts), port=_tcp_port(raw, parts))


def _unix_socket(raw: str, parts, query) -> str:
    if parts.netloc:
        raise _bad("uri_host", f"{raw!r}: a Unix-socket URI has no host (nbd+unix:///?"
                   "socket=/path).", uri=raw)
    sockets = query.get("socket", [])
    if len(sockets) != 1 or not sockets[0].startswith("/"):
        raise _bad("uri_socket", f"{raw!r} needs one absolute socket path: "
                   "nbd+unix:///?socket=/run/nbd.sock.", uri=raw)
    return sockets[0]


def _tcp_host(raw: str, parts) -> str:
    if not parts.hostname:
        raise _bad("uri_host", f"{raw!r} names no server: nbd://host[:port].", uri=raw)
    if parts.username or parts.password:
        raise _bad("uri_credentials", f"{raw!r} carries credentials: NBD has none; use TLS "
                   "with a PSK file or certificates.", uri=raw)
    return parts.hostname


def _tcp_port(raw: str, parts) -> int:
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is None:
        return DEFAULT_PORT
    if not 1 <= port <= 65535:
        raise _bad("uri_port", f"{raw!r} has an invalid port: use 1 to 65535 "
                   f"(NBD's is {DEFAULT_PORT}).", uri=raw)
    return port


def _check_text(value) -> None:
    """No control character (a NUL, a newline) nor unpaired surrogate in any setting: none
    belongs in a URI, a path or an export name, and PostgreSQL cannot store a NUL."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_text(item)
    elif isinstance(value, list):
        for item in value:
            _check_text(item)
    elif isinstance(value, str) and any(_unusable(char) for char in value):
        raise _bad("settings_invalid_characters", f"The setting {ascii(value)} contains "
                   "control characters or invalid Unicode.")


def _unusable(char: str) -> bool:
    return unprintable(char) or "\ud800" <= char <= "\udfff"


def _readable_file(settings: dict, key: str, *, directory: bool = False) -> str:
    path = settings.get(key)
    if not isinstance(path, str) or not path.startswith("/"):
        raise _bad(f"{key}_invalid", f"{key} must be an absolute path.", setting=key)
    exists = Path(path).is_dir() if directory else Path(path).is_file()
    if not exists or not os.access(path, os.R_OK):
        kind = "folder" if directory else "file"
        raise _bad(f"{key}_missing", f"{key}: the {kind} {path} does not exist or cannot "
                   "be read by Ferry.", setting=key, path=path)
    return path


def _validate_tls(settings: dict, server: Server) -> dict:
    given = {key: settings[key] for key in TLS_KEYS if settings.get(key) not in (None, "")}
    if not server.tls:
        if given:
            raise _bad("tls_needs_nbds", f"TLS settings ({', '.join(given)}) need an nbds:// "
                       "or nbds+unix:// URI.", uri=server.uri)
        return {}
    if "tls_psk_file" not in given and "tls_certificates" not in given:
        raise _bad("tls_credentials_required", "An nbds:// server needs tls_psk_file (a PSK "
                   "file, username:hexkey) or tls_certificates (a folder with ca-cert.pem).",
                   uri=server.uri)
    if "tls_psk_file" in given:
        given["tls_psk_file"] = _readable_file(settings, "tls_psk_file")
    if "tls_certificates" in given:
        given["tls_certificates"] = _readable_file(settings, "tls_certificates", directory=True)
    if not isinstance(given.get("tls_username", ""), str):
        raise _bad("tls_username_invalid", "tls_username must be text.")
    if not isinstance(given.get("tls_verify_peer", True), bool):
        raise _bad("tls_verify_peer_invalid", "tls_verify_peer must be true or false.")
    return given


def _validate_groups(raw) -> dict[str, list[str]]:
    if raw in (None, "", {}):
        return {}
    problem = _bad("groups_invalid", "groups must map each group's name to a list of export "
                   'names, e.g. {"finance": ["finance-db", "finance-log"]}.')
    if not isinstance(raw, dict):
        raise problem
    owner: dict[str, str] = {}
    for group, exports in raw.items():
        if not group.strip() or not isinstance(exports, list) or not exports \
                or not all(isinstance(e, str) and e for e in exports):
            raise problem
        for export in exports:
            if export in owner:
                raise _bad("groups_overlap", f"Export {export!r} is in two groups "
                           f"({owner[export]!r} and {group!r}); a volume has one group.",
                           export=export)
            owner[export] = group
    return {group.strip(): list(exports) for group, exports in raw.items()}


class NbdDriver(SourceDriver):
    revokes_host_access = False

    def __init__(self, settings: dict, roots=()):
        self.settings = self.validate_settings(settings, roots)
        self.server = parse_uri(self.settings["uri"])

    @classmethod
    def validate_settings(cls, settings: dict, roots=()) -> dict:
        settings = dict(settings or {})
        unknown = sorted(set(settings) - KNOWN_KEYS)
        if unknown:
            names = ", ".join(ascii(name) for name in unknown)  # echoed safely, NULs too
            raise _bad("unknown_settings", f"Unknown NBD settings: {names}. "
                       f"Known: {', '.join(sorted(KNOWN_KEYS))}.")
        _check_text(settings)
        server = parse_uri(settings.get("uri"))
        cleaned = {"uri": server.uri.strip(), **_validate_tls(settings, server)}
        groups = _validate_groups(settings.get("groups"))
        if groups:
            cleaned["groups"] = groups
        if settings.get("description"):
            cleaned["description"] = str(settings["description"])
        return cleaned

    # --- Connections -------------------------------------------------------------------------

    def connect(self, export: str = "", *, listing: bool = False, block_status: bool = False):
        """A libnbd handle connected to ``export`` (or, ``listing``, stopped at the option
        phase to list exports). Bounded by FERRY_NBD_CONNECT_TIMEOUT: libnbd's own connect
        waits as long as TCP does (minutes) for a host that does not answer."""
        nbd = nbdlib.load()
        handle = nbd.NBD()
        handle.set_opt_mode(listing)
        handle.set_export_name(export)
        if block_status:
            handle.add_meta_context("base:allocation")
        self._configure_tls(nbd, handle)
        try:
            self._start_connect(handle)
            self._wait_connected(handle, export)
        except nbd.Error as error:
            raise self.error_from(error, export) from None
        return handle  # on an error, dropping the handle closes its socket

    def _configure_tls(self, nbd, handle) -> None:
        if not self.server.tls:
            handle.set_tls(nbd.TLS_DISABLE)
            return
        handle.set_tls(nbd.TLS_REQUIRE)
        if self.settings.get("tls_psk_file"):
            handle.set_tls_psk_file(self.settings["tls_psk_file"])
        if self.settings.get("tls_certificates"):
            handle.set_tls_certificates(self.settings["tls_certificates"])
        username = self.settings.get("tls_username") or self._psk_username()
        if username:  # else libnbd asks getlogin(), which a service may not have
            handle.set_tls_username(username)
        handle.set_tls_verify_peer(self.settings.get("tls_verify_peer", True))

    def _psk_username(self) -> str:
        """The first identity in the PSK file (``username:hexkey`` lines)."""
        path = self.settings.get("tls_psk_file")
        try:
            with open(path) as keys:
                return keys.readline().split(":", 1)[0].strip()
        except (OSError, TypeError):
            return ""

    def _start_connect(self, handle) -> None:
        if self.server.socket:
            handle.aio_connect_unix(self.server.socket)
        else:
            handle.aio_connect_tcp(self.server.host, str(self.server.port))

    def _wait_connected(self, handle, export: str) -> None:
        timeout = django_settings.FERRY_NBD_CONNECT_TIMEOUT
        deadline = time.monotonic() + timeout
        while handle.aio_is_connecting():
            left = deadline - time.monotonic()
            if left <= 0:
                raise _bad("nbd_timeout", f"{self.server.uri} did not complete the NBD "
                           f"handshake within {timeout:g} s.", server=self.server.uri)
            handle.poll(max(1, int(left * 1000)))

    def error_from(self, error, export: str = "") -> SourceError:
        """A libnbd error as a SourceError that names the server, the export and the cause."""
        cause = _cause(error)
        where = self.server.describe(export or None)
        lowered = cause.lower()
        if "tls" in lowered or "gnutls" in lowered or "psk" in lowered:
            return _bad("nbd_tls_failed", f"TLS with {where} failed: {cause}.",
                        server=self.server.uri, export=export, cause=cause)
        if "no export" in lowered or ("enoent" in lowered and "handshake" in str(error)):
            return _bad("source_volume_missing", f"The server {self.server.uri} has no "
                        f"export {export!r}.", server=self.server.uri, export=export)
        return _bad("source_unreachable", f"Cannot reach {where}: {cause}.",
                    server=self.server.uri, export=export, cause=cause)

    # --- Discovery, health -------------------------------------------------------------------

    def check_health(self) -> float:
        """Connect and complete the handshake; the seconds it took."""
        started = time.monotonic()
        handle = self.connect(listing=True)
        try:
            return time.monotonic() - started
        finally:
            _abort(handle)

    def discover(self) -> Discovery:
        handle = self.connect(listing=True)
        try:
            exports = self._list_exports(handle)
            volumes = [self._describe(handle, name, description)
                       for name, description in exports]
        finally:
            _abort(handle)
        groups = sorted({v.group_identifier for v in volumes if v.group_identifier})
        return Discovery(volumes, [DiscoveredGroup(group, group) for group in groups])

    def _list_exports(self, handle) -> list[tuple[str, str]]:
        exports: list[tuple[str, str]] = []
        try:
            handle.opt_list(lambda name, description: exports.append((name, description)) or 0)
        except nbdlib.load().Error as error:
            if "not supported" not in _cause(error).lower():
                raise self.error_from(error) from None
            return self._default_export(handle, error)
        return sorted(exports)

    def _default_export(self, handle, list_error) -> list[tuple[str, str]]:
        """A server that does not list: its default export, if it serves one. A server
        that wants TLS first refuses both, and says no more than "not supported"."""
        try:
            handle.set_export_name("")
            handle.opt_info()
        except nbdlib.load().Error:
            hint = "" if self.server.tls else " If it requires TLS, use an nbds:// URI."
            raise _bad("nbd_listing_refused", f"{self.server.uri} refused to list its exports "
                       f"and serves no default export ({_cause(list_error)}).{hint}",
                       server=self.server.uri) from None
        return [("", "")]

    def _describe(self, handle, export: str, description: str) -> DiscoveredVolume:
        group, name = self._group_of(export)
        nbd = nbdlib.load()
        try:
            handle.set_export_name(export)
            handle.set_full_info(True)
            handle.opt_info()
            return DiscoveredVolume(
                export, name, handle.get_size(), group, physical_id=self.physical_id(export),
                description=description or _export_description(nbd, handle),
                read_only=bool(handle.is_read_only()))
        except nbd.Error as error:
            return DiscoveredVolume(export, name, 0, group, readable=False,
                                    reason=self.error_from(error, export).message,
                                    physical_id=self.physical_id(export))

    def _group_of(self, export: str) -> tuple[str | None, str]:
        for group, exports in self.settings.get("groups", {}).items():
            if export in exports:
                return group, export
        if "/" in export:
            group, name = export.split("/", 1)
            return group, name
        return None, export or "default"

    # --- Reading -----------------------------------------------------------------------------

    def physical_id(self, identifier: str) -> str:
        return f"nbd:{self.server.key}/{identifier}"[:200]

    def size(self, identifier: str) -> int:
        handle = self.connect(identifier)
        try:
            return handle.get_size()
        finally:
            _shutdown(handle)

    def open_for_read(self, identifier: str):
        raise _bad("not_a_file", f"{self.server.describe(identifier)} is read over NBD, not "
                   "as a file.", export=identifier)

    def open_source(self, identifier: str, connections: int = 1):
        """The export for the mover: several connections with block status, each dropped
        connection retried for FERRY_NBD_RETRY_SECONDS (the mover's NbdSource)."""
        from importer.mover.sources import NbdSource

        def connect():
            try:
                return self.connect(identifier, block_status=True)
            except SourceError as error:  # an OSError is what NbdSource retries
                raise ConnectionError(error.message) from None

        return NbdSource(connect, label=self.server.describe(identifier),
                         connections=connections,
                         retry_seconds=django_settings.FERRY_NBD_RETRY_SECONDS)

    def frontend_source(self, identifier: str) -> dict:
        """The export's own URI (the server's, with the export as its path), and the PSK
        the server wants: the front end connects with libnbd's connect_uri."""
        parts = urlsplit(self.server.uri)
        query = f"?{parts.query}" if parts.query else ""  # urlunsplit drops an empty "//"
        uri = f"{parts.scheme}://{parts.netloc}/{quote(identifier, safe='')}{query}"
        source = {"uri": uri}
        if self.settings.get("tls_psk_file"):
            source["tls_psk_file"] = self.settings["tls_psk_file"]
            source["tls_username"] = self.settings.get("tls_username") or self._psk_username()
        return source

    # --- Host access: the operator's manual step ---------------------------------------------

    def host_access(self, identifier: str) -> dict:
        return {"manual": True}

    def revoke_host_access(self, identifier: str) -> None:
        """Nothing Ferry can do: the operator confirmed the unmapping before enable."""

    def restore_host_access(self, identifier: str, backup: dict) -> None:
        """Nothing Ferry can do: the cancel tells the operator to map the hosts back."""


def _cause(error) -> str:
    """libnbd's message without the C function's name in front: "connect: No such file"."""
    message = str(getattr(error, "string", None) or error)
    first, _, rest = message.partition(": ")
    return (rest if first.startswith("nbd_") and rest else message).strip().rstrip(".")


def _export_description(nbd, handle) -> str:
    try:
        return handle.get_export_description() or ""
    except nbd.Error:
        return ""  # the server sent none


def _abort(handle) -> None:
    """End a listing connection politely (libnbd closes the socket with the handle)."""
    try:
        if handle.aio_is_negotiating():
            handle.opt_abort()
    except Exception:  # the server is gone already: nothing to end politely
        pass


def _shutdown(handle) -> None:
    try:
        handle.shutdown()
    except Exception:  # the server is gone already
        pass
