# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Staging the Windows agent, for the ``fleet.firmware.agent`` action (controller side).

``stage`` copies the agent's files to ``%SystemRoot%\\Temp\\fleet-firmware-<tag>\\`` through
the ``ADMIN$`` share (:mod:`smb_stage`), and when admin$ cannot be reached (ports closed or
filtered, the share missing, or the account refused on the share) through the play's WinRM /
PSRP connection instead: a small PowerShell command makes the folder, then the connection's own
``put_file`` copies each file. A refused logon (wrong user or password) is *not* a reason to
fall back: the same credentials would fail again, so it fails the task with that cause.

Only the SMB half is tested against a real server (the lab's Samba); the WinRM half is tested
with a stand-in connection, Windows cannot run here.
"""
from __future__ import annotations

import base64
import json
import os
import secrets as random
import shutil
import tempfile
from typing import Any, Optional

from ansible_collections.fleet.firmware.plugins.plugin_utils import smb_stage
from ansible_collections.fleet.firmware.plugins.plugin_utils.smb_stage import SmbStageError, SmbTarget

# The folder is made, and emptied, by PowerShell on the node. The tag and file names are
# validated (a-z0-9- and plain file names), so they are safe inside single quotes.
# The ACL model is smb_stage's (docs/agent.md): the agent runs as SYSTEM from this folder, so it
# is created with its descriptor at once (owner Administrators; SYSTEM and Administrators full
# control; protected), an existing one is repaired only when it is ours (owner Administrators or
# SYSTEM, not a reparse point) and refused otherwise, left as it is. The files put_file writes
# inherit the folder's ACEs and then get the same descriptor of their own (PS_SEAL). None of this
# PowerShell can run here: tests/unit/plugins/plugin_utils/test_agent_windows_stage.py parses it
# and checks it holds these rules.
PS_FOLDER = "Join-Path $env:SystemRoot 'Temp\\fleet-firmware-{tag}'"
PS_SECURITY = """Function New-Security([bool]$Folder) {{
    if ($Folder) {{ $acl = New-Object System.Security.AccessControl.DirectorySecurity; $inherit = 'ContainerInherit,ObjectInherit' }}
    else {{ $acl = New-Object System.Security.AccessControl.FileSecurity; $inherit = 'None' }}
    $acl.SetAccessRuleProtection($true, $false)
    foreach ($sid in 'S-1-5-18', 'S-1-5-32-544') {{
        $who = New-Object System.Security.Principal.SecurityIdentifier($sid)
        $acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule($who, 'FullControl', $inherit, 'None', 'Allow')))
    }}
    $acl.SetOwner((New-Object System.Security.Principal.SecurityIdentifier('S-1-5-32-544')))
    return $acl
}}
Function Assert-Ours([string]$Path) {{
    $item = Get-Item -LiteralPath $Path -Force
    if (($item.Attributes -band [System.IO.FileAttributes]::ReparsePoint) -ne 0) {{
        throw "$Path already exists and is a reparse point (a junction or link): refused, left as it is"
    }}
    $owner = $item.GetAccessControl('Owner').GetOwner([System.Security.Principal.SecurityIdentifier]).Value
    if ($owner -ne 'S-1-5-18' -and $owner -ne 'S-1-5-32-544') {{
        throw "$Path already exists and is owned by $owner, not by BUILTIN\\Administrators or SYSTEM: refused, left as it is"
    }}
    return $item
}}
"""
PS_MAKE_FOLDER = """$ErrorActionPreference = 'Stop'
""" + PS_SECURITY + """$path = {folder}
$created = -not (Test-Path -LiteralPath $path)
# Create-new with the descriptor at once; then (and for an existing folder) the owner decides.
if ($created) {{ [void][System.IO.Directory]::CreateDirectory($path, (New-Security $true)) }}
$item = Assert-Ours $path
if (-not $item.PSIsContainer) {{ throw "$path already exists and is not a folder: refused, left as it is" }}
Set-Acl -LiteralPath $path -AclObject (New-Security $true)
ConvertTo-Json -Compress @{{ path = $path; created = $created }}
"""
PS_SEAL = """$ErrorActionPreference = 'Stop'
""" + PS_SECURITY + """$path = {folder}
$names = @({names})
foreach ($name in $names) {{
    $file = Join-Path $path $name
    [void](Assert-Ours $file)
    Set-Acl -LiteralPath $file -AclObject (New-Security $false)
}}
ConvertTo-Json -Compress @{{ path = $path; sealed = @($names) }}
"""
# Removal never follows a reparse point: a junction or link is removed as a link
# ([System.IO.Directory]::Delete($link, $false)), never descended (Remove-Item -Recurse of
# Windows PowerShell 5.1 descends into junctions).
PS_REMOVE = """$ErrorActionPreference = 'Stop'
$path = {folder}
$names = @({names})
$removed = New-Object System.Collections.ArrayList
Function Remove-Tree([string]$Path) {{
    $item = Get-Item -LiteralPath $Path -Force -ErrorAction SilentlyContinue
    if ($null -eq $item) {{ return }}
    $link = ($item.Attributes -band [System.IO.FileAttributes]::ReparsePoint) -ne 0
    if ($item.PSIsContainer -and -not $link) {{
        foreach ($child in @(Get-ChildItem -LiteralPath $item.FullName -Force)) {{ Remove-Tree $child.FullName }}
    }}
    if ($item.PSIsContainer) {{ [System.IO.Directory]::Delete($item.FullName, $false) }}
    else {{ $item.Attributes = 'Normal'; [System.IO.File]::Delete($item.FullName) }}
    [void]$removed.Add($item.FullName)
}}
if (-not (Test-Path -LiteralPath $path)) {{ ConvertTo-Json -Compress @{{ changed = $false; removed = @() }}; exit 0 }}
if ($names.Count -gt 0) {{ foreach ($name in $names) {{ Remove-Tree (Join-Path $path $name) }} }}
else {{ Remove-Tree $path }}
ConvertTo-Json -Compress @{{ changed = ($removed.Count -gt 0); removed = @($removed) }}
"""


class AgentStageError(Exception):
    """Staging or unstaging the Windows agent failed; the message names the cause."""


def folder_expression(tag: str) -> str:
    return PS_FOLDER.format(tag=smb_stage.validated_tag(tag))


def make_folder_script(tag: str) -> str:
    return PS_MAKE_FOLDER.format(folder=folder_expression(tag))


def _quoted_names(names: tuple[str, ...]) -> str:
    for name in names:
        if not smb_stage.FILE_NAME_RE.fullmatch(name):
            raise AgentStageError(f"file name {name!r} is invalid")
    return ", ".join(f"'{name}'" for name in names)


def remove_script(tag: str, names: tuple[str, ...] = ()) -> str:
    """Removes the tag's folder (or only ``names`` in it); prints {changed, removed}."""
    return PS_REMOVE.format(folder=folder_expression(tag), names=_quoted_names(names))


def seal_script(tag: str, names: tuple[str, ...]) -> str:
    """Gives every file put_file wrote the staging descriptor of its own; refuses what is not ours."""
    return PS_SEAL.format(folder=folder_expression(tag), names=_quoted_names(names))


def sha256_of(contents: dict[str, bytes]) -> dict[str, str]:
    """name -> SHA-256 of what is staged: the agent task checks each before it runs anything."""
    return smb_stage.sha256_of(contents)


def smb_target_from_vars(action, task_vars: dict) -> Optional[SmbTarget]:
    """The host's SMB account: fleet_smb_user/_password, else the WinRM ansible_user/_password.

    None when there is no password to log on with (then staging goes straight to WinRM).
    """
    def var(*names: str, default: Any = None) -> Any:
        for name in names:
            if task_vars.get(name) not in (None, ""):
                return action._templar.template(task_vars[name])
        return default

    user = var("fleet_smb_user", "ansible_user", "ansible_winrm_user", "ansible_psrp_user")
    password = var("fleet_smb_password", "ansible_password", "ansible_winrm_password", "ansible_psrp_password")
    if not user or not password:
        return None
    host = var("fleet_smb_host", "ansible_host", "inventory_hostname")
    domain = var("fleet_smb_domain", default="")
    if "\\" in user and not domain:
        domain, user = user.split("\\", 1)
    ports = tuple(int(p) for p in var("fleet_smb_ports", default=(445, 139)))
    timeout = float(var("fleet_smb_timeout", default=10.0))
    return SmbTarget(str(host), str(user), str(password), str(domain), ports, timeout)


def _is_powershell(action) -> bool:
    return getattr(getattr(action._connection, "_shell", None), "SHELL_FAMILY", "") == "powershell"


def _run_powershell(action, script: str) -> dict:
    """Runs a script through the connection's PowerShell; its stdout is one JSON object."""
    command = action._connection._shell._encode_script(script)
    result = action._low_level_execute_command(command, sudoable=False)
    if result.get("rc", 1) != 0:
        detail = (result.get("stderr") or result.get("stdout") or "").strip().splitlines()
        raise AgentStageError(f"PowerShell on the node failed (rc={result.get('rc')}): {detail[0] if detail else 'no output'}")
    try:
        return json.loads((result.get("stdout") or "").strip().splitlines()[-1])
    except (ValueError, IndexError) as exc:
        raise AgentStageError(f"unexpected answer from PowerShell on the node: {(result.get('stdout') or '')[:200]!r}") from exc


def _put_all(action, folder: str, contents: dict[str, bytes]) -> list[str]:
    """Copies every file through the connection; returns the names written (also on failure, via the exception)."""
    written: list[str] = []
    scratch = tempfile.mkdtemp(prefix="fleet-agent-stage-")  # 0700: the agent's files may be private
    try:
        for name, data in contents.items():
            local = os.path.join(scratch, name)
            with open(local, "wb") as handle:
                handle.write(data)
            written.append(name)
            action._connection.put_file(local, f"{folder}\\{name}")
    except Exception as exc:
        exc.fleet_written = written  # type: ignore[attr-defined]
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return written


def stage_winrm(action, tag: str, contents: dict[str, bytes]) -> dict:
    """Makes the folder with PowerShell and copies the files with the connection's put_file."""
    if not _is_powershell(action):
        raise AgentStageError("the host's connection is not WinRM/PSRP (no PowerShell shell): cannot stage the Windows agent without admin$")
    made = _run_powershell(action, make_folder_script(tag))
    folder = made["path"]
    try:
        _put_all(action, folder, contents)
        _run_powershell(action, seal_script(tag, tuple(contents)))
    except Exception as exc:
        written = getattr(exc, "fleet_written", [])
        cleanup = remove_script(tag) if made.get("created") else remove_script(tag, tuple(written))
        note = "the partial staging was removed"
        try:
            _run_powershell(action, cleanup)
        except AgentStageError as cleanup_error:
            note = f"and the partial staging could not be removed ({cleanup_error})"
        raise AgentStageError(f"copying the agent to {folder} over the connection failed: {exc} ({note})") from exc
    return {"transfer": "winrm", "staged_path": folder, "share_path": None, "files": sorted(contents), "created": bool(made.get("created")),
            "sha256": sha256_of(contents)}


def stage(action, task_vars: dict, tag: str, files: dict, smb: Optional[SmbTarget]) -> dict:
    """Stages ``files`` (name -> bytes or local path) for run ``tag``: admin$ first, else WinRM.

    Returns smb_stage's result (``transfer: smb``) or ``{"transfer": "winrm", "staged_path",
    "files", "fallback_reason"}``. Raises :class:`SmbStageError` for a refused logon or a full
    disk (no fallback), :class:`AgentStageError` when the WinRM path fails too.
    """
    del task_vars  # the target is resolved by the caller (smb_target_from_vars); kept for the action's call shape
    tag = smb_stage.validated_tag(tag)
    contents = smb_stage.read_files(files)
    if smb is None:
        reason = "no SMB credentials for the host (fleet_smb_user/fleet_smb_password or ansible_user/ansible_password)"
    else:
        try:
            return smb_stage.stage_files(smb, tag, contents) | {"fallback_reason": None}
        except SmbStageError as exc:
            if exc.reason not in smb_stage.FALLBACK_REASONS:
                raise
            reason = str(exc)
    try:
        result = stage_winrm(action, tag, contents)
    except AgentStageError as exc:
        raise AgentStageError(f"admin$ staging was not possible ({reason}) and the WinRM fallback failed: {exc}") from exc
    return result | {"fallback_reason": reason}


def unstage(action, task_vars: dict, tag: str, smb: Optional[SmbTarget]) -> dict:
    """Removes the tag's staging folder: admin$ first, else through PowerShell on the connection.

    Returns ``{"changed", "removed": [paths], "transfer": "smb"|"winrm", "fallback_reason"}``;
    a node without the folder gives ``changed: False``.
    """
    del task_vars
    tag = smb_stage.validated_tag(tag)
    reason = "no SMB credentials for the host"
    if smb is not None:
        try:
            return smb_stage.remove_staged(smb, tag) | {"transfer": "smb", "fallback_reason": None}
        except SmbStageError as exc:
            if exc.reason not in smb_stage.FALLBACK_REASONS:
                raise
            reason = str(exc)
    if not _is_powershell(action):
        raise AgentStageError(f"admin$ not usable ({reason}) and the host's connection is not WinRM/PSRP: cannot remove the staged agent")
    done = _run_powershell(action, remove_script(tag))
    return {"changed": bool(done.get("changed")), "removed": list(done.get("removed") or []), "transfer": "winrm", "fallback_reason": reason}


# --------------------------------------------------------------------------------------------
# What the action stages and hands to agent.ps1
# --------------------------------------------------------------------------------------------

# The agent process and the three modules it imports; agent.ps1 refuses to start without them.
AGENT_FILES = ("fleet_agent.ps1", "FleetAgent.psm1", "FleetFirewall.psm1", "FleetInventory.psm1")
MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")


def agent_files() -> dict[str, str]:
    """name -> local path of every file the Windows agent needs in its staging folder (for ``stage``)."""
    return {name: os.path.join(MODULE_UTILS, name) for name in AGENT_FILES}


def windows_secrets(secrets: dict) -> dict:
    """``secrets`` plus ``server_pfx`` (base64 PKCS#12 of server_cert + server_key) and its password.

    Windows PowerShell 5.1 (.NET Framework) cannot import a PEM private key; a PKCS#12 it can.
    Triple-DES and SHA-1 for the PKCS#12 envelope because older Windows reads nothing newer; the
    envelope only guards the file format, the secret travels no_log inside the module arguments.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    cert = x509.load_pem_x509_certificate(secrets["server_cert"].encode("ascii"))
    key = serialization.load_pem_private_key(secrets["server_key"].encode("ascii"), password=None)
    password = random.token_urlsafe(24)
    encryption = (serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(50000)
                  .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC).hmac_hash(hashes.SHA1())
                  .build(password.encode("ascii")))
    blob = pkcs12.serialize_key_and_certificates(b"fleet-firmware-agent", key, cert, None, encryption)
    return dict(secrets, server_pfx=base64.b64encode(blob).decode("ascii"), server_pfx_password=password)
