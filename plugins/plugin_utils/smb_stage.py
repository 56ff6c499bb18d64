# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Staging files on a Windows node through its ``ADMIN$`` share (controller side).

HP SUM copies its engine to ``ADMIN$\\Temp`` of a Windows node; this module does the same with
smbprotocol's low-level API, so that every connection is ours alone (no process-wide cache) and
is always closed again ("release the share"):

* signing is required on every connection; the session is encrypted whenever the server
  offers SMB 3 encryption (``encrypted`` in the result says whether it was);
* port 445 (SMB over TCP) first, then 139. Port 139 is the NetBIOS session service
  (RFC 1002): a real Windows server wants a NetBIOS session request before any SMB message
  there. smbprotocol speaks only direct TCP, so for 139 this module sends the session request
  itself (called name ``*SMBSERVER``) and then lets smbprotocol speak SMB2 over the session,
  whose framing (type 0, length) is the one direct TCP uses;
* everything made by a failed ``stage_files`` is removed again before the error is raised,
  and the error names the cause.

Controller-only code (Python 3.11).
"""
from __future__ import annotations

import ntpath
import os
import re
import socket
import struct
import types
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from ansible_collections.fleet.firmware.plugins.module_utils.firewall.common import FirewallError, validate_tag

try:
    from smbprotocol import exceptions as smb_errors
    from smbprotocol.connection import Connection, Dialects
    from smbprotocol.file_info import FileAttributes, FileInformationClass
    from smbprotocol.open import (CreateAction, CreateDisposition, CreateOptions, DirectoryAccessMask,
                                  FilePipePrinterAccessMask, ImpersonationLevel, Open, ShareAccess)
    from smbprotocol.session import Session
    from smbprotocol.transport import Tcp
    from smbprotocol.tree import TreeConnect
    HAS_SMBPROTOCOL = True
    SMBPROTOCOL_IMPORT_ERROR = ""
except ImportError as _import_error:  # pragma: no cover - requirements.txt has it
    HAS_SMBPROTOCOL = False
    SMBPROTOCOL_IMPORT_ERROR = str(_import_error)

SHARE = "ADMIN$"
STAGING_PREFIX = "fleet-firmware-"
# ADMIN$ is %SystemRoot%; C:\Windows on nearly every host. The agent module reports the real
# path from $env:SystemRoot on the node; this one is what the controller can tell from outside.
SYSTEM_ROOT = "C:\\Windows"
NETBIOS_PORT = 139
NETBIOS_CALLED_NAME = "*SMBSERVER"
NETBIOS_CALLING_NAME = "FLEETFIRMWARE"
FILE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
WRITE_CHUNK = 1024 * 1024

# What a failure means for the caller: agent_windows falls back to WinRM for these reasons only.
REASON_UNREACHABLE = "unreachable"
REASON_SHARE = "share"
REASON_ACCESS = "access"
REASON_LOGON = "logon"
REASON_DISK_FULL = "disk_full"
REASON_INPUT = "input"
REASON_IO = "io"
FALLBACK_REASONS = (REASON_UNREACHABLE, REASON_SHARE, REASON_ACCESS)


class SmbStageError(Exception):
    """Staging through ADMIN$ failed; the message names the cause, ``reason`` classifies it."""

    def __init__(self, message: str, reason: str = REASON_IO) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class SmbTarget:
    """Where and as whom to stage. The password is kept out of repr (and so out of logs)."""

    host: str
    user: str
    password: str = field(repr=False)
    domain: str = ""
    ports: tuple = (445, 139)
    timeout: float = 10.0

    @property
    def account(self) -> str:
        return f"{self.domain}\\{self.user}" if self.domain else self.user

    @property
    def unc_host(self) -> str:
        return self.host.strip("[]")


# --------------------------------------------------------------------------------------------
# Port 139: the NetBIOS session service in front of smbprotocol's transport
# --------------------------------------------------------------------------------------------


def netbios_name(name: str, suffix: int) -> bytes:
    """RFC 1001 first-level encoding of a 16-byte NetBIOS name (15 characters + suffix)."""
    raw = name.upper()[:15].ljust(15).encode("ascii") + bytes([suffix])
    encoded = bytes(b for byte in raw for b in (0x41 + (byte >> 4), 0x41 + (byte & 0x0F)))
    return bytes([32]) + encoded + b"\x00"


def netbios_session_request(called: str = NETBIOS_CALLED_NAME, calling: str = NETBIOS_CALLING_NAME) -> bytes:
    """A SESSION REQUEST packet (type 0x81) of RFC 1002 4.3.2."""
    body = netbios_name(called, 0x20) + netbios_name(calling, 0x00)
    return struct.pack(">BBH", 0x81, 0, len(body)) + body


NETBIOS_ERRORS = {
    0x80: "not listening on the called name",
    0x81: "not listening for the calling name",
    0x82: "called name not present",
    0x83: "called name present, but insufficient resources",
    0x8F: "unspecified error",
}


def read_netbios_answer(sock: socket.socket) -> None:
    """Reads the answer to a session request; returns on POSITIVE SESSION RESPONSE (0x82)."""
    header = _recv_exact(sock, 4)
    kind, length = header[0], struct.unpack(">H", header[2:])[0] | ((header[1] & 1) << 16)
    body = _recv_exact(sock, length) if length else b""
    if kind == 0x82:
        return
    if kind == 0x83:
        code = body[0] if body else 0x8F
        raise ConnectionError(f"NetBIOS session refused: {NETBIOS_ERRORS.get(code, hex(code))}")
    raise ConnectionError(f"NetBIOS session not established: answer type {kind:#x} (retarget or not a NetBIOS session service)")


def _recv_exact(sock: socket.socket, length: int) -> bytes:
    data = b""
    while len(data) < length:
        chunk = sock.recv(length - len(data))
        if not chunk:
            raise ConnectionError("the server closed the connection during the NetBIOS session request")
        data += chunk
    return data


if HAS_SMBPROTOCOL:
    class NetbiosSessionTcp(Tcp):
        """smbprotocol's transport, preceded by a NetBIOS session request (port 139)."""

        def connect(self):
            super().connect()
            try:
                self._sock.settimeout(self.timeout)
                self._sock.sendall(netbios_session_request())
                read_netbios_answer(self._sock)
                self._sock.settimeout(None)
            except (OSError, ConnectionError) as exc:
                self.close()
                raise ValueError(f"Failed to connect to '{self.server}:{self.port}': {exc}") from exc

    def _transport_for(server, port, timeout=None):
        cls = NetbiosSessionTcp if port == NETBIOS_PORT else Tcp
        return cls(server, port, timeout)

    def _with_transport_factory(function):
        """Connection.connect with its ``Tcp`` name bound to our factory, for our subclass only.

        smbprotocol builds its transport inside ``connect`` by the module-global name ``Tcp``;
        a copy of that function with one name rebound avoids patching the library for everyone.
        """
        if "Tcp" not in function.__code__.co_names:
            return None
        namespace = dict(function.__globals__)
        namespace["Tcp"] = _transport_for
        return types.FunctionType(function.__code__, namespace, function.__name__, function.__defaults__, function.__closure__)

    _CONNECT_WITH_NETBIOS = _with_transport_factory(Connection.connect)

    class FleetConnection(Connection):
        """A Connection that speaks the NetBIOS session service on port 139."""

        def connect(self, *args, **kwargs):
            if self.port == NETBIOS_PORT:
                if _CONNECT_WITH_NETBIOS is None:
                    raise ValueError("this smbprotocol version builds its transport in a way fleet.firmware cannot extend: "
                                     "no NetBIOS session service on port 139 (use 445)")
                return _CONNECT_WITH_NETBIOS(self, *args, **kwargs)
            return super().connect(*args, **kwargs)


# --------------------------------------------------------------------------------------------
# Connection, session and share, always released
# --------------------------------------------------------------------------------------------


@dataclass
class ShareHandle:
    tree: object
    port: int
    encrypted: bool
    dialect: str


def _require_smbprotocol() -> None:
    if not HAS_SMBPROTOCOL:
        raise SmbStageError(f"the Python package smbprotocol is required on the controller for SMB staging: {SMBPROTOCOL_IMPORT_ERROR}",
                            REASON_INPUT)


def _connect_first_port(target: SmbTarget):
    """The first port of ``target.ports`` that negotiates SMB2+, with signing required."""
    failures = []
    for port in target.ports:
        connection = FleetConnection(uuid.uuid4(), target.unc_host, int(port), require_signing=True)
        try:
            connection.connect(timeout=target.timeout)
            return connection, port
        except Exception as exc:  # noqa: BLE001 - every failure of a port is a reason to try the next
            _quiet_disconnect(connection)
            failures.append(f"port {port}: {_short(exc)}")
    raise SmbStageError(f"SMB on {target.host} unreachable ({'; '.join(failures)})", REASON_UNREACHABLE)


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _quiet_disconnect(connection) -> None:
    try:
        if connection.transport is not None:
            connection.disconnect(close=True)
    except Exception:  # noqa: BLE001 - releasing must never hide the real error
        try:
            connection.transport.close()
        except Exception:  # noqa: BLE001
            pass


def _logon(target: SmbTarget, connection):
    encryption = bool(connection.dialect >= Dialects.SMB_3_0_0 and connection.supports_encryption)
    session = Session(connection, target.account, target.password, require_encryption=encryption)
    try:
        session.connect()
    except (smb_errors.LogonFailure, smb_errors.WrongPassword, smb_errors.SMBAuthenticationError) as exc:
        raise SmbStageError(f"SMB logon to {target.host} as {target.account} refused (wrong user or password)", REASON_LOGON) from exc
    except smb_errors.PasswordExpired as exc:
        raise SmbStageError(f"SMB logon to {target.host} as {target.account} refused: the password has expired", REASON_LOGON) from exc
    except smb_errors.SMBException as exc:
        if "guest" in str(exc):
            raise SmbStageError(f"SMB logon to {target.host} as {target.account} was only accepted as guest, which cannot sign: "
                                "refused (wrong user or password)", REASON_LOGON) from exc
        raise SmbStageError(f"SMB logon to {target.host} as {target.account} failed: {_short(exc)}", REASON_LOGON) from exc
    return session


def _tree_connect(target: SmbTarget, session):
    tree = TreeConnect(session, rf"\\{target.unc_host}\{SHARE}")
    try:
        tree.connect()
    except smb_errors.BadNetworkName as exc:
        raise SmbStageError(f"share {SHARE} missing on {target.host} (administrative shares disabled? "
                            "AutoShareServer=0 or the Server service stopped)", REASON_SHARE) from exc
    except smb_errors.AccessDenied as exc:
        raise SmbStageError(f"{target.account} may not use {SHARE} on {target.host} (not an administrator, or remote UAC "
                            "filters a local account: LocalAccountTokenFilterPolicy)", REASON_ACCESS) from exc
    return tree


@contextmanager
def admin_share(target: SmbTarget) -> Iterator[ShareHandle]:
    """Connected to ``\\\\host\\ADMIN$``; the tree, session and connection are closed on exit."""
    _require_smbprotocol()
    connection, port = _connect_first_port(target)
    try:
        session = _logon(target, connection)
        tree = _tree_connect(target, session)
        yield ShareHandle(tree, port, bool(session.encrypt_data), _dialect(connection.dialect))
    finally:
        _quiet_disconnect(connection)


def _dialect(value: int) -> str:
    digits = "%x" % value  # 0x311 -> "311", 0x202 -> "202"
    return ".".join(digits)


# --------------------------------------------------------------------------------------------
# File operations on the share
# --------------------------------------------------------------------------------------------


def staging_relpath(tag: str) -> str:
    return f"Temp\\{STAGING_PREFIX}{tag}"


def share_path(target: SmbTarget, relpath: str) -> str:
    return rf"\\{target.unc_host}\{SHARE}\{relpath}"


def node_path(relpath: str) -> str:
    return ntpath.join(SYSTEM_ROOT, relpath)


def _open(tree, name: str, access: int, disposition: int, options: int) -> Open:
    handle = Open(tree, name)
    handle.create(ImpersonationLevel.Impersonation, access, FileAttributes.FILE_ATTRIBUTE_NORMAL,
                  ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_DELETE, disposition, options)
    return handle


def make_directory(tree, relpath: str) -> bool:
    """Creates the folder if missing; True when this call created it."""
    access = DirectoryAccessMask.FILE_LIST_DIRECTORY | DirectoryAccessMask.FILE_ADD_FILE | DirectoryAccessMask.FILE_ADD_SUBDIRECTORY
    handle = _open(tree, relpath, access, CreateDisposition.FILE_OPEN_IF, CreateOptions.FILE_DIRECTORY_FILE)
    try:
        return handle.create_action == CreateAction.FILE_CREATED
    finally:
        handle.close()


def write_file(tree, relpath: str, data: bytes, chunk: int) -> bool:
    """Writes (replaces) a file; True when it did not exist before."""
    access = FilePipePrinterAccessMask.GENERIC_WRITE
    handle = _open(tree, relpath, access, CreateDisposition.FILE_OVERWRITE_IF, CreateOptions.FILE_NON_DIRECTORY_FILE)
    try:
        for offset in range(0, len(data), chunk):
            handle.write(data[offset:offset + chunk], offset)
        return handle.create_action == CreateAction.FILE_CREATED
    finally:
        handle.close()


def delete(tree, relpath: str, directory: bool) -> None:
    options = (CreateOptions.FILE_DIRECTORY_FILE if directory else CreateOptions.FILE_NON_DIRECTORY_FILE) | CreateOptions.FILE_DELETE_ON_CLOSE
    handle = Open(tree, relpath)
    handle.create(ImpersonationLevel.Impersonation, FilePipePrinterAccessMask.DELETE | FilePipePrinterAccessMask.FILE_READ_ATTRIBUTES,
                  FileAttributes.FILE_ATTRIBUTE_NORMAL, ShareAccess.FILE_SHARE_DELETE, CreateDisposition.FILE_OPEN, options)
    handle.close()


def list_directory(tree, relpath: str) -> list[tuple[str, bool]]:
    """(name, is_directory) of a folder's entries; [] when the folder does not exist."""
    try:
        handle = _open(tree, relpath, DirectoryAccessMask.FILE_LIST_DIRECTORY | DirectoryAccessMask.FILE_READ_ATTRIBUTES,
                       CreateDisposition.FILE_OPEN, CreateOptions.FILE_DIRECTORY_FILE)
    except (smb_errors.ObjectNameNotFound, smb_errors.ObjectPathNotFound):
        raise FileNotFoundError(relpath) from None
    entries = []
    try:
        while True:
            try:
                batch = handle.query_directory("*", FileInformationClass.FILE_DIRECTORY_INFORMATION)
            except smb_errors.NoMoreFiles:
                break
            for entry in batch:
                name = entry["file_name"].get_value().decode("utf-16-le")
                if name not in (".", ".."):
                    is_dir = bool(entry["file_attributes"].get_value() & FileAttributes.FILE_ATTRIBUTE_DIRECTORY)
                    entries.append((name, is_dir))
    finally:
        handle.close()
    return entries


def remove_tree(tree, relpath: str) -> list[str]:
    """Removes a folder and everything in it; the relative paths removed, deepest first."""
    removed = []
    for name, is_dir in list_directory(tree, relpath):
        child = f"{relpath}\\{name}"
        if is_dir:
            removed += remove_tree(tree, child)
        else:
            delete(tree, child, directory=False)
            removed.append(child)
    delete(tree, relpath, directory=True)
    removed.append(relpath)
    return removed


# --------------------------------------------------------------------------------------------
# The API
# --------------------------------------------------------------------------------------------


def validated_tag(tag: str) -> str:
    try:
        return validate_tag(tag)
    except FirewallError as exc:
        raise SmbStageError(str(exc), REASON_INPUT) from None


def read_files(files: dict) -> dict[str, bytes]:
    """Every file's bytes, read before anything is touched on the node; names are plain file names."""
    if not files:
        raise SmbStageError("no files to stage", REASON_INPUT)
    contents = {}
    for name, source in files.items():
        if not isinstance(name, str) or not FILE_NAME_RE.fullmatch(name):
            raise SmbStageError(f"file name {name!r} is invalid: a plain name of letters, digits, '.', '_' and '-'", REASON_INPUT)
        if isinstance(source, (bytes, bytearray)):
            contents[name] = bytes(source)
        elif isinstance(source, (str, os.PathLike)):
            try:
                with open(source, "rb") as handle:
                    contents[name] = handle.read()
            except OSError as exc:
                raise SmbStageError(f"cannot read {source} to stage it as {name}: {exc.strerror or exc}", REASON_INPUT) from None
        else:
            raise SmbStageError(f"file {name}: give bytes or a local path, not {type(source).__name__}", REASON_INPUT)
    return contents


def _explain_write_error(target: SmbTarget, relpath: str, exc: Exception) -> SmbStageError:
    where = share_path(target, relpath)
    if isinstance(exc, (smb_errors.DiskFull,)) or getattr(exc, "status", None) in (0xC000007F, 0xC0000044):
        return SmbStageError(f"disk full on {target.host} while writing {where}", REASON_DISK_FULL)
    if isinstance(exc, smb_errors.AccessDenied):
        return SmbStageError(f"access denied writing {where}", REASON_ACCESS)
    if isinstance(exc, smb_errors.SharingViolation):
        return SmbStageError(f"{where} is in use on {target.host} (an agent of this tag still running?)", REASON_IO)
    return SmbStageError(f"writing {where} failed: {_short(exc)}", REASON_IO)


def _undo(tree, made_folder: bool, folder: str, written: list[str]) -> list[str]:
    """Removes what a failed stage made; returns what could not be removed."""
    left = []
    if made_folder:
        try:
            remove_tree(tree, folder)
        except Exception:  # noqa: BLE001 - report it, do not mask the cause
            left.append(folder)
        return left
    for relpath in written:
        try:
            delete(tree, relpath, directory=False)
        except Exception:  # noqa: BLE001
            left.append(relpath)
    return left


def stage_files(target: SmbTarget, tag: str, files: dict) -> dict:
    """Copies ``files`` (name -> bytes or local path) to ``ADMIN$\\Temp\\fleet-firmware-<tag>\\``.

    A file of the same name already staged for this tag is replaced. On failure everything this
    call made (the folder if it made it, else the files it wrote) is removed, then
    :class:`SmbStageError` is raised.
    """
    tag = validated_tag(tag)
    contents = read_files(files)
    folder = staging_relpath(tag)
    with admin_share(target) as share:
        made_folder = False
        written: list[str] = []
        try:
            made_folder = make_directory(share.tree, folder)
            chunk = min(WRITE_CHUNK, share.tree.session.connection.max_write_size or WRITE_CHUNK)
            for name, data in contents.items():
                relpath = f"{folder}\\{name}"
                written.append(relpath)
                try:
                    write_file(share.tree, relpath, data, chunk)
                except smb_errors.SMBException as exc:
                    raise _explain_write_error(target, relpath, exc) from exc
        except Exception as exc:
            left = _undo(share.tree, made_folder, folder, written)
            error = exc if isinstance(exc, SmbStageError) else SmbStageError(
                f"staging to {share_path(target, folder)} failed: {_short(exc)}", REASON_IO)
            if left:
                error = SmbStageError(f"{error}; and the partial staging could not be removed: "
                                      f"{', '.join(share_path(target, p) for p in left)}", error.reason)
            else:
                error = SmbStageError(f"{error} (the partial staging was removed)", error.reason)
            raise error from exc
        return {
            "transfer": "smb",
            "port": share.port,
            "share_path": share_path(target, folder),
            "staged_path": node_path(folder),
            "files": sorted(contents),
            "encrypted": share.encrypted,
            "signed": True,
            "dialect": share.dialect,
            "created": made_folder,
        }


def remove_staged(target: SmbTarget, tag: str) -> dict:
    """Removes ``ADMIN$\\Temp\\fleet-firmware-<tag>\\`` and all in it; absent -> changed False."""
    tag = validated_tag(tag)
    folder = staging_relpath(tag)
    with admin_share(target) as share:
        try:
            removed = remove_tree(share.tree, folder)
        except FileNotFoundError:
            return {"changed": False, "removed": []}
        except smb_errors.SharingViolation as exc:
            raise SmbStageError(f"{share_path(target, folder)} is in use on {target.host}: stop the agent first (state=absent)",
                                REASON_IO) from exc
        except smb_errors.SMBException as exc:
            raise SmbStageError(f"removing {share_path(target, folder)} failed: {_short(exc)}", REASON_IO) from exc
    return {"changed": True, "removed": [share_path(target, p) for p in removed]}
