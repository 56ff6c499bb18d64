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
  and the error names the cause;
* nobody else can own the staging (the ACL model, docs/agent.md): the folder is created
  create-new with an explicit security descriptor (owner BUILTIN\\Administrators; SYSTEM and
  Administrators full control; protected, nothing inherited and nothing to inherit), and so is
  every file in it. A folder or file of that name that already exists is refused and left as it
  is when its owner is neither Administrators nor SYSTEM or when it is a reparse point (a
  junction or link a local user planted); one of ours is repaired (its descriptor set again);
* the cleanup never follows a link: an entry that is a reparse point, or a folder whose identity
  (file id) is not the one its parent's listing gave, is removed as a name, never descended.

Controller-only code (Python 3.11).
"""
from __future__ import annotations

import hashlib
import ntpath
import os
import re
import socket
import struct
import types
import typing as t
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from ansible_collections.fleet.firmware.plugins.module_utils.firewall.common import FirewallError, validate_tag

try:
    from smbprotocol import exceptions as smb_errors
    from smbprotocol.connection import Connection, Dialects
    from smbprotocol.create_contexts import CreateContextName, SMB2CreateContextRequest
    from smbprotocol.file_info import FileAttributes, FileInformationClass, InfoType
    from smbprotocol.open import (CreateDisposition, CreateOptions, DirectoryAccessMask,
                                  FilePipePrinterAccessMask, ImpersonationLevel, Open, ShareAccess,
                                  SMB2QueryInfoRequest, SMB2QueryInfoResponse, SMB2SetInfoRequest)
    from smbprotocol.security_descriptor import (AccessAllowedAce, AclPacket, SDControl, SIDPacket,
                                                 SMB2CreateSDBuffer)
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
REASON_NOT_OURS = "not_ours"
FALLBACK_REASONS = (REASON_UNREACHABLE, REASON_SHARE, REASON_ACCESS)

# The ACL model: who may own and change what the SYSTEM task runs.
ADMINISTRATORS_SID = "S-1-5-32-544"
SYSTEM_SID = "S-1-5-18"
TRUSTED_OWNERS = {ADMINISTRATORS_SID: "BUILTIN\\Administrators", SYSTEM_SID: "NT AUTHORITY\\SYSTEM"}
FULL_CONTROL = 0x001F01FF
# OWNER | GROUP | DACL security information (MS-DTYP 2.4.7)
SECURITY_INFORMATION = 0x00000007
# SE_DACL_PRESENT | SE_DACL_PROTECTED | SE_SELF_RELATIVE: the DACL is exactly ours, and
# protected, so nothing of the parent's inheritable ACEs (Temp's CREATOR OWNER, Users) enters.
DESCRIPTOR_CONTROL = 0x8000 | 0x1000 | 0x0004
FILE_ATTRIBUTE_REPARSE_POINT = 0x00000400
STATUS_OBJECT_NAME_COLLISION = 0xC0000035


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


def _tree_connect(target: SmbTarget, session, share: str = SHARE):
    tree = TreeConnect(session, rf"\\{target.unc_host}\{share}")
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
def admin_share(target: SmbTarget, share: str = SHARE) -> Iterator[ShareHandle]:
    """Connected to ``\\\\host\\ADMIN$`` (or ``share``); the tree, session and connection are
    closed on exit."""
    _require_smbprotocol()
    connection, port = _connect_first_port(target)
    try:
        session = _logon(target, connection)
        tree = _tree_connect(target, session, share)
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


def _open(tree, name: str, access: int, disposition: int, options: int, contexts: list | None = None) -> Open:
    handle = Open(tree, name)
    handle.create(ImpersonationLevel.Impersonation, access, FileAttributes.FILE_ATTRIBUTE_NORMAL,
                  ShareAccess.FILE_SHARE_READ | ShareAccess.FILE_SHARE_DELETE, disposition, options, contexts)
    return handle


# ---- security descriptors -------------------------------------------------------------------


def _sid(text: str):
    sid = SIDPacket()
    sid.from_string(text)
    return sid


def staging_descriptor():
    """Owner Administrators, group SYSTEM; SYSTEM and Administrators full control, no ACE
    inheritable, the DACL protected (nothing inherited from Temp)."""
    sd = SMB2CreateSDBuffer()
    sd["control"].set_flag(SDControl.SELF_RELATIVE)
    sd["control"].set_flag(SDControl.DACL_PROTECTED)
    aces = []
    for sid in (SYSTEM_SID, ADMINISTRATORS_SID):
        ace = AccessAllowedAce()
        ace["mask"] = FULL_CONTROL
        ace["sid"] = _sid(sid)
        aces.append(ace)
    acl = AclPacket()
    acl["aces"] = aces
    sd.set_owner(_sid(ADMINISTRATORS_SID))
    sd.set_group(_sid(SYSTEM_SID))
    sd.set_dacl(acl)
    return sd


def _sd_context():
    context = SMB2CreateContextRequest()
    context["buffer_name"] = CreateContextName.SMB2_CREATE_SD_BUFFER
    context["buffer_data"] = staging_descriptor()
    return context


def parse_descriptor(data: bytes) -> dict:
    """A self-relative security descriptor as plain data: owner, group, control, DACL entries."""
    sd = SMB2CreateSDBuffer()
    sd.unpack(data)
    dacl = sd.get_dacl()
    entries = []
    for ace in (dacl["aces"].get_value() if dacl is not None else []):
        if isinstance(ace, bytes):  # a kind of ACE smbprotocol does not decode: keep it visible
            entries.append({"type": ace[0], "flags": ace[1], "mask": None, "sid": None})
            continue
        entries.append({"type": int(ace["ace_type"].get_value()), "flags": int(ace["ace_flags"].get_value()),
                        "mask": int(ace["mask"].get_value()), "sid": str(ace["sid"].get_value())})
    owner, group = sd.get_owner(), sd.get_group()
    return {"owner": str(owner) if owner is not None else None, "group": str(group) if group is not None else None,
            "control": int(sd["control"].get_value()), "dacl": entries if dacl is not None else None}


def query_descriptor(handle: Open) -> dict:
    """The descriptor (owner, group, DACL) of an open handle (needs READ_CONTROL)."""
    request = SMB2QueryInfoRequest()
    request["info_type"] = InfoType.SMB2_0_INFO_SECURITY
    request["output_buffer_length"] = 65536
    request["additional_information"] = SECURITY_INFORMATION
    request["file_id"] = handle.file_id
    tree = handle.tree_connect
    sent = tree.session.connection.send(request, sid=tree.session.session_id, tid=tree.tree_connect_id)
    answer = SMB2QueryInfoResponse()
    answer.unpack(tree.session.connection.receive(sent)["data"].get_value())
    return parse_descriptor(answer["buffer"].get_value())


def set_descriptor(handle: Open) -> None:
    """Sets owner, group and DACL of an open handle (WRITE_OWNER | WRITE_DAC) to the staging one."""
    request = SMB2SetInfoRequest()
    request["info_type"] = InfoType.SMB2_0_INFO_SECURITY
    request["file_info_class"] = 0
    request["additional_information"] = SECURITY_INFORMATION
    request["file_id"] = handle.file_id
    request["buffer"] = staging_descriptor()
    tree = handle.tree_connect
    sent = tree.session.connection.send(request, sid=tree.session.session_id, tid=tree.tree_connect_id)
    tree.session.connection.receive(sent)


def is_staging_descriptor(descriptor: dict) -> bool:
    """True when ``descriptor`` (parse_descriptor) is exactly the staging one."""
    wanted = {(SYSTEM_SID, FULL_CONTROL), (ADMINISTRATORS_SID, FULL_CONTROL)}
    dacl = descriptor.get("dacl") or []
    return (descriptor.get("owner") == ADMINISTRATORS_SID and bool(descriptor["control"] & SDControl.DACL_PROTECTED)
            and all(e["type"] == 0 and e["flags"] == 0 for e in dacl)
            and {(e["sid"], e["mask"]) for e in dacl} == wanted and len(dacl) == 2)


# ---- refusing what is not ours ----------------------------------------------------------------


# READ_CONTROL | FILE_READ_ATTRIBUTES | WRITE_DAC | WRITE_OWNER (as numbers: smbprotocol is optional at import).
_INSPECT_ACCESS = 0x00020000 | 0x00000080 | 0x00040000 | 0x00080000


def _not_ours(target, relpath: str, why: str) -> SmbStageError:
    return SmbStageError(f"{share_path(target, relpath)} already exists and {why}: refused, left as it is "
                         "(a local user may have made it to take over the run; an administrator should look at it "
                         "and remove it)", REASON_NOT_OURS)


def _claim_existing(target, tree, relpath: str, directory: bool) -> None:
    """An existing folder or file of ours is repaired (the staging descriptor set again); one
    that is a reparse point or owned by anyone but Administrators or SYSTEM is refused."""
    options = (CreateOptions.FILE_DIRECTORY_FILE if directory else CreateOptions.FILE_NON_DIRECTORY_FILE) | CreateOptions.FILE_OPEN_REPARSE_POINT
    try:
        handle = _open(tree, relpath, _INSPECT_ACCESS, CreateDisposition.FILE_OPEN, options)
    except smb_errors.SMBException as exc:
        raise _not_ours(target, relpath, f"cannot be inspected ({_short(exc)})") from exc
    try:
        if int(handle.file_attributes) & FILE_ATTRIBUTE_REPARSE_POINT:
            raise _not_ours(target, relpath, "is a reparse point (a junction or link)")
        owner = query_descriptor(handle)["owner"]
        if owner not in TRUSTED_OWNERS:
            raise _not_ours(target, relpath, f"is owned by {owner}, not by BUILTIN\\Administrators or SYSTEM")
        set_descriptor(handle)
    finally:
        handle.close()


def _check_ours(target, tree, relpath: str) -> None:
    """Refuses (SmbStageError, not_ours) a staging folder that is a reparse point or not owned by
    Administrators or SYSTEM; FileNotFoundError when there is none."""
    try:
        handle = _open(tree, relpath, FilePipePrinterAccessMask.READ_CONTROL | FilePipePrinterAccessMask.FILE_READ_ATTRIBUTES,
                       CreateDisposition.FILE_OPEN, CreateOptions.FILE_DIRECTORY_FILE | CreateOptions.FILE_OPEN_REPARSE_POINT)
    except (smb_errors.ObjectNameNotFound, smb_errors.ObjectPathNotFound):
        raise FileNotFoundError(relpath) from None
    try:
        if int(handle.file_attributes) & FILE_ATTRIBUTE_REPARSE_POINT:
            raise _not_ours(target, relpath, "is a reparse point (a junction or link)")
        owner = query_descriptor(handle)["owner"]
        if owner not in TRUSTED_OWNERS:
            raise _not_ours(target, relpath, f"is owned by {owner}, not by BUILTIN\\Administrators or SYSTEM")
    finally:
        handle.close()


def make_directory(target, tree, relpath: str) -> bool:
    """Creates the folder create-new with the staging descriptor; True when this call created
    it. An existing one is claimed (:func:`_claim_existing`): repaired if ours, else refused."""
    access = (DirectoryAccessMask.FILE_LIST_DIRECTORY | DirectoryAccessMask.FILE_ADD_FILE
              | DirectoryAccessMask.FILE_ADD_SUBDIRECTORY | DirectoryAccessMask.READ_CONTROL)
    try:
        handle = _open(tree, relpath, access, CreateDisposition.FILE_CREATE, CreateOptions.FILE_DIRECTORY_FILE, [_sd_context()])
    except smb_errors.SMBException as exc:
        if getattr(exc, "status", None) != STATUS_OBJECT_NAME_COLLISION:
            raise
        _claim_existing(target, tree, relpath, directory=True)
        return False
    handle.close()
    return True


def write_file(target, tree, relpath: str, data: bytes, chunk: int) -> bool:
    """Writes a file create-new with the staging descriptor; True when it did not exist before.
    One of ours that exists (a retried stage) is removed first; one not ours is refused."""
    access = FilePipePrinterAccessMask.GENERIC_WRITE | FilePipePrinterAccessMask.READ_CONTROL
    existed = False
    try:
        handle = _open(tree, relpath, access, CreateDisposition.FILE_CREATE, CreateOptions.FILE_NON_DIRECTORY_FILE, [_sd_context()])
    except smb_errors.SMBException as exc:
        if getattr(exc, "status", None) != STATUS_OBJECT_NAME_COLLISION:
            raise
        _claim_existing(target, tree, relpath, directory=False)
        delete(tree, relpath, directory=False)
        existed = True
        handle = _open(tree, relpath, access, CreateDisposition.FILE_CREATE, CreateOptions.FILE_NON_DIRECTORY_FILE, [_sd_context()])
    try:
        for offset in range(0, len(data), chunk):
            handle.write(data[offset:offset + chunk], offset)
        return not existed
    finally:
        handle.close()


def delete(tree, relpath: str, directory: bool | None) -> None:
    """Deletes one name; with FILE_OPEN_REPARSE_POINT a junction or link goes itself, never
    what it points to. ``directory`` None: whatever it is."""
    kind = {True: CreateOptions.FILE_DIRECTORY_FILE, False: CreateOptions.FILE_NON_DIRECTORY_FILE, None: 0}[directory]
    options = kind | CreateOptions.FILE_DELETE_ON_CLOSE | CreateOptions.FILE_OPEN_REPARSE_POINT
    handle = Open(tree, relpath)
    handle.create(ImpersonationLevel.Impersonation, FilePipePrinterAccessMask.DELETE | FilePipePrinterAccessMask.FILE_READ_ATTRIBUTES,
                  FileAttributes.FILE_ATTRIBUTE_NORMAL, ShareAccess.FILE_SHARE_DELETE, CreateDisposition.FILE_OPEN, options)
    handle.close()


@dataclass
class Entry:
    name: str
    directory: bool
    reparse: bool
    file_id: int


def list_directory(tree, relpath: str) -> list[Entry]:
    """The entries of a folder (name, kind, reparse point, file id); FileNotFoundError when the
    folder does not exist."""
    try:
        handle = _open(tree, relpath, DirectoryAccessMask.FILE_LIST_DIRECTORY | DirectoryAccessMask.FILE_READ_ATTRIBUTES,
                       CreateDisposition.FILE_OPEN, CreateOptions.FILE_DIRECTORY_FILE | CreateOptions.FILE_OPEN_REPARSE_POINT)
    except (smb_errors.ObjectNameNotFound, smb_errors.ObjectPathNotFound):
        raise FileNotFoundError(relpath) from None
    entries = []
    try:
        while True:
            try:
                batch = handle.query_directory("*", FileInformationClass.FILE_ID_FULL_DIRECTORY_INFORMATION)
            except smb_errors.NoMoreFiles:
                break
            for entry in batch:
                name = entry["file_name"].get_value().decode("utf-16-le")
                if name not in (".", ".."):
                    attributes = int(entry["file_attributes"].get_value())
                    entries.append(Entry(name, bool(attributes & FileAttributes.FILE_ATTRIBUTE_DIRECTORY),
                                         bool(attributes & FILE_ATTRIBUTE_REPARSE_POINT), int(entry["file_id"].get_value())))
    finally:
        handle.close()
    return entries


def _query_file_id(handle: Open) -> int:
    request = SMB2QueryInfoRequest()
    request["info_type"] = InfoType.SMB2_0_INFO_FILE
    request["file_info_class"] = FileInformationClass.FILE_INTERNAL_INFORMATION
    request["output_buffer_length"] = 8
    request["file_id"] = handle.file_id
    tree = handle.tree_connect
    sent = tree.session.connection.send(request, sid=tree.session.session_id, tid=tree.tree_connect_id)
    answer = SMB2QueryInfoResponse()
    answer.unpack(tree.session.connection.receive(sent)["data"].get_value())
    return int(struct.unpack("<Q", answer["buffer"].get_value()[:8])[0])


def _descend_refusal(tree, relpath: str, entry: Entry) -> str | None:
    """Why the cleanup must not descend into the folder ``relpath`` (None: it may).

    Windows marks a junction or symbolic link as a reparse point in the listing and when opened
    with FILE_OPEN_REPARSE_POINT. A server that follows links itself (Samba, ``follow symlinks``)
    shows the folder the link points to instead: what sits in a staging folder was made by us or
    the agent (owner Administrators or SYSTEM), so a folder owned by anyone else is not ours to
    empty, and one whose identity differs from its listing's changed under us.
    """
    handle = _open(tree, relpath, FilePipePrinterAccessMask.READ_CONTROL | FilePipePrinterAccessMask.FILE_READ_ATTRIBUTES,
                   CreateDisposition.FILE_OPEN, CreateOptions.FILE_DIRECTORY_FILE | CreateOptions.FILE_OPEN_REPARSE_POINT)
    try:
        if int(handle.file_attributes) & FILE_ATTRIBUTE_REPARSE_POINT:
            return "is a reparse point (a junction or link)"
        if _query_file_id(handle) != entry.file_id:
            return "changed while it was being removed"
        owner = query_descriptor(handle)["owner"]
        if owner not in TRUSTED_OWNERS:
            return f"is owned by {owner} (a link the server follows, or a folder not ours)"
    finally:
        handle.close()
    return None


def remove_tree(tree, relpath: str) -> list[str]:
    """Removes a folder and everything in it without following a link; the relative paths
    removed, deepest first. Every subfolder is checked (:func:`_descend_refusal`) before anything
    of this level is removed; a refused one raises :class:`LinkRefused`, with nothing of it touched.
    A reparse point (junction, symbolic link) is removed as a name, never descended.
    """
    entries = list_directory(tree, relpath)
    for entry in entries:
        if entry.directory and not entry.reparse:
            why = _descend_refusal(tree, f"{relpath}\\{entry.name}", entry)
            if why:
                raise LinkRefused(f"{relpath}\\{entry.name}", why)
    removed = []
    for entry in entries:
        child = f"{relpath}\\{entry.name}"
        if entry.directory and not entry.reparse:
            removed += remove_tree(tree, child)
            continue
        delete(tree, child, directory=None if entry.reparse else False)
        removed.append(child)
    delete(tree, relpath, directory=True)
    removed.append(relpath)
    return removed


class LinkRefused(Exception):
    """A folder inside the staging that is a link the server follows: it is neither descended
    nor removed (removing its name through the server would remove what it points to)."""

    def __init__(self, relpath: str, why: str) -> None:
        super().__init__(f"{relpath} {why}")
        self.relpath = relpath
        self.why = why


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


def sha256_of(contents: dict[str, bytes]) -> dict[str, str]:
    """name -> SHA-256 of what is staged: the agent task checks each before it runs anything."""
    return {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()}


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
            made_folder = make_directory(target, share.tree, folder)
            chunk = min(WRITE_CHUNK, share.tree.session.connection.max_write_size or WRITE_CHUNK)
            for name, data in contents.items():
                relpath = f"{folder}\\{name}"
                written.append(relpath)
                try:
                    write_file(target, share.tree, relpath, data, chunk)
                except SmbStageError:
                    written.pop()  # refused as not ours: it stays as it is
                    raise
                except smb_errors.SMBException as exc:
                    raise _explain_write_error(target, relpath, exc) from exc
        except SmbStageError as exc:
            if exc.reason == REASON_NOT_OURS and not made_folder and not written:
                raise  # nothing of ours was made: nothing to undo
            _raise_undone(target, share.tree, made_folder, folder, written, exc)
        except Exception as exc:
            _raise_undone(target, share.tree, made_folder, folder, written, exc)
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
            "descriptor": "owner BUILTIN\\Administrators; SYSTEM, Administrators full control; protected",
            "sha256": sha256_of(contents),
        }


def _raise_undone(target: SmbTarget, tree, made_folder: bool, folder: str, written: list[str], exc: Exception) -> t.NoReturn:
    left = _undo(tree, made_folder, folder, written)
    error = exc if isinstance(exc, SmbStageError) else SmbStageError(
        f"staging to {share_path(target, folder)} failed: {_short(exc)}", REASON_IO)
    if left:
        error = SmbStageError(f"{error}; and the partial staging could not be removed: "
                              f"{', '.join(share_path(target, p) for p in left)}", error.reason)
    else:
        error = SmbStageError(f"{error} (the partial staging was removed)", error.reason)
    raise error from exc


def remove_staged(target: SmbTarget, tag: str) -> dict:
    """Removes ``ADMIN$\\Temp\\fleet-firmware-<tag>\\`` and all in it; absent -> changed False."""
    tag = validated_tag(tag)
    folder = staging_relpath(tag)
    with admin_share(target) as share:
        try:
            _check_ours(target, share.tree, folder)
            removed = remove_tree(share.tree, folder)
        except FileNotFoundError:
            return {"changed": False, "removed": []}
        except LinkRefused as exc:
            raise SmbStageError(f"{share_path(target, exc.relpath)} {exc.why}: not followed and not removed; the staging "
                                f"{share_path(target, folder)} stays until an administrator looks at it", REASON_NOT_OURS) from None
        except smb_errors.SharingViolation as exc:
            raise SmbStageError(f"{share_path(target, folder)} is in use on {target.host}: stop the agent first (state=absent)",
                                REASON_IO) from exc
        except smb_errors.SMBException as exc:
            raise SmbStageError(f"removing {share_path(target, folder)} failed: {_short(exc)}", REASON_IO) from exc
    return {"changed": True, "removed": [share_path(target, p) for p in removed]}
