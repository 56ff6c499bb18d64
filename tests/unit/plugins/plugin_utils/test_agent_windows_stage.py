# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""agent_windows.stage/unstage: admin$ first, the WinRM connection as fallback.

The WinRM half needs a Windows host, which cannot run here: the connection is a stand-in
(``FakeWinrm``) that keeps a dictionary for the node's disk and answers the PowerShell the
module sends. The PowerShell text itself is Ansible's real encoding and is parsed with the
PowerShell grammar. SMB is real where it can be without the lab (a refused loopback port); the
lab's Samba drives the SMB half in tests/integration/test_agent_windows.py.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import socket

import pytest
from ansible.plugins.shell.powershell import ShellModule

from ansible_collections.fleet.firmware.plugins.plugin_utils import agent_windows, smb_stage


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def decode(command: str) -> str:
    encoded = re.search(r"-EncodedCommand (\S+)", command).group(1)
    return base64.b64decode(encoded).decode("utf-16-le")


class FakeTemplar:
    def template(self, value):
        return value


class FakeWinrm:
    """A WinRM connection stand-in: PowerShell shell, put_file into a dict; Windows is not here."""

    SYSTEM_ROOT = "C:\\Windows"

    def __init__(self, fail_put_after: int | None = None, shell_family: str = "powershell") -> None:
        self._shell = ShellModule()
        self._shell.SHELL_FAMILY = shell_family
        self.disk: dict[str, bytes] = {}
        self.folders: set[str] = set()
        self.scripts: list[str] = []
        self.sealed: list[str] = []
        self.fail_put_after = fail_put_after

    def folder(self, tag: str) -> str:
        return f"{self.SYSTEM_ROOT}\\Temp\\fleet-firmware-{tag}"

    def put_file(self, in_path: str, out_path: str) -> None:
        if self.fail_put_after is not None and len(self.disk) >= self.fail_put_after:
            raise OSError("winrm send_input failed: disk full")
        assert out_path.rsplit("\\", 1)[0] in self.folders, "put_file before the folder was made"
        with open(in_path, "rb") as handle:
            self.disk[out_path] = handle.read()

    def run(self, script: str) -> dict:
        self.scripts.append(script)
        tag = re.search(r"'Temp\\fleet-firmware-([a-z0-9-]+)'", script).group(1)
        folder = self.folder(tag)
        if "sealed = " in script:
            names = [n.strip(" '") for n in re.search(r"\$names = @\((.*)\)", script).group(1).split(",") if n.strip()]
            assert all(f"{folder}\\{name}" in self.disk for name in names), "sealed a file put_file did not write"
            self.sealed.extend(names)
            return {"rc": 0, "stdout": json.dumps({"path": folder, "sealed": names}), "stderr": ""}
        if "CreateDirectory" in script:
            created = folder not in self.folders
            self.folders.add(folder)
            return {"rc": 0, "stdout": json.dumps({"path": folder, "created": created}) + "\r\n", "stderr": ""}
        if "Remove-Tree" in script:
            if folder not in self.folders:
                return {"rc": 0, "stdout": '{"changed":false,"removed":[]}', "stderr": ""}
            names = re.search(r"\$names = @\((.*)\)", script).group(1)
            wanted = [n.strip(" '") for n in names.split(",") if n.strip()]
            if wanted:
                removed = [p for p in self.disk if p.rsplit("\\", 1)[1] in wanted]
            else:
                removed = [p for p in self.disk if p.startswith(folder + "\\")] + [folder]
                self.folders.discard(folder)
            for path in removed:
                self.disk.pop(path, None)
            return {"rc": 0, "stdout": json.dumps({"changed": bool(removed), "removed": removed}), "stderr": ""}
        raise AssertionError(f"unexpected script: {script}")


class FakeAction:
    def __init__(self, connection: FakeWinrm) -> None:
        self._connection = connection
        self._templar = FakeTemplar()

    def _low_level_execute_command(self, cmd, sudoable=True, **kwargs):
        assert sudoable is False
        return self._connection.run(decode(cmd))


def unreachable_target() -> smb_stage.SmbTarget:
    return smb_stage.SmbTarget("127.0.0.1", "Administrator", "s3cret", ports=(closed_port(), closed_port()), timeout=2.0)


def test_admin_share_unreachable_falls_back_to_the_winrm_connection(tmp_path):
    local = tmp_path / "FleetAgent.psm1"
    local.write_bytes(b"module")
    action = FakeAction(FakeWinrm())
    result = agent_windows.stage(action, {}, "run-1", {"fleet_agent.ps1": b"agent", "FleetAgent.psm1": str(local)}, unreachable_target())
    assert result["transfer"] == "winrm"
    assert result["fallback_reason"].startswith("SMB on 127.0.0.1 unreachable (port ")
    assert result["staged_path"] == "C:\\Windows\\Temp\\fleet-firmware-run-1"
    assert result["files"] == ["FleetAgent.psm1", "fleet_agent.ps1"]
    assert action._connection.disk == {
        "C:\\Windows\\Temp\\fleet-firmware-run-1\\fleet_agent.ps1": b"agent",
        "C:\\Windows\\Temp\\fleet-firmware-run-1\\FleetAgent.psm1": b"module",
    }
    # The folder is made first, with a protected ACL for SYSTEM and Administrators only.
    assert "SetAccessRuleProtection($true, $false)" in action._connection.scripts[0]
    assert "'S-1-5-18', 'S-1-5-32-544'" in action._connection.scripts[0]


def test_no_smb_credentials_goes_straight_to_winrm():
    action = FakeAction(FakeWinrm())
    result = agent_windows.stage(action, {}, "run-1", {"fleet_agent.ps1": b"agent"}, None)
    assert result["transfer"] == "winrm" and result["fallback_reason"].startswith("no SMB credentials")


@pytest.mark.parametrize("reason", ["logon", "disk_full", "input", "io"])
def test_causes_that_winrm_would_not_fix_fail_without_fallback(monkeypatch, reason):
    def refuse(target, tag, files):
        raise smb_stage.SmbStageError(f"refused: {reason}", reason)

    monkeypatch.setattr(smb_stage, "stage_files", refuse)
    action = FakeAction(FakeWinrm())
    with pytest.raises(smb_stage.SmbStageError, match=f"refused: {reason}"):
        agent_windows.stage(action, {}, "run-1", {"fleet_agent.ps1": b"x"}, unreachable_target())
    assert action._connection.scripts == [] and action._connection.disk == {}


@pytest.mark.parametrize("reason", ["unreachable", "share", "access"])
def test_causes_of_an_unusable_admin_share_fall_back(monkeypatch, reason):
    def refuse(target, tag, files):
        raise smb_stage.SmbStageError(f"admin$: {reason}", reason)

    monkeypatch.setattr(smb_stage, "stage_files", refuse)
    result = agent_windows.stage(FakeAction(FakeWinrm()), {}, "run-1", {"fleet_agent.ps1": b"x"}, unreachable_target())
    assert result["transfer"] == "winrm" and result["fallback_reason"] == f"admin$: {reason}"


def test_a_failed_copy_over_winrm_removes_the_folder_it_made():
    connection = FakeWinrm(fail_put_after=1)
    with pytest.raises(agent_windows.AgentStageError) as caught:
        agent_windows.stage(FakeAction(connection), {}, "run-1", {"a.ps1": b"1", "b.ps1": b"2"}, None)
    assert "disk full" in str(caught.value) and "the partial staging was removed" in str(caught.value)
    assert connection.disk == {} and connection.folders == set()


def test_a_failed_copy_into_an_existing_folder_removes_only_the_files_it_wrote():
    connection = FakeWinrm()
    agent_windows.stage(FakeAction(connection), {}, "run-1", {"keep.log": b"earlier"}, None)
    connection.fail_put_after = 2
    with pytest.raises(agent_windows.AgentStageError):
        agent_windows.stage(FakeAction(connection), {}, "run-1", {"a.ps1": b"1", "b.ps1": b"2"}, None)
    assert connection.disk == {"C:\\Windows\\Temp\\fleet-firmware-run-1\\keep.log": b"earlier"}
    assert "$names = @('a.ps1', 'b.ps1')" in connection.scripts[-1]


def test_without_a_powershell_connection_there_is_no_fallback():
    action = FakeAction(FakeWinrm(shell_family="sh"))
    with pytest.raises(agent_windows.AgentStageError, match="not WinRM/PSRP"):
        agent_windows.stage(action, {}, "run-1", {"a.ps1": b"1"}, unreachable_target())


def test_unstage_over_winrm_removes_everything_then_reports_a_clean_node():
    connection = FakeWinrm()
    action = FakeAction(connection)
    agent_windows.stage(action, {}, "run-1", {"a.ps1": b"1"}, None)
    connection.disk["C:\\Windows\\Temp\\fleet-firmware-run-1\\agent.log"] = b"log"
    done = agent_windows.unstage(action, {}, "run-1", unreachable_target())
    assert done["changed"] is True and done["transfer"] == "winrm"
    assert "C:\\Windows\\Temp\\fleet-firmware-run-1" in done["removed"]
    assert connection.disk == {}
    again = agent_windows.unstage(action, {}, "run-1", None)
    assert again["changed"] is False and again["removed"] == []


def test_a_bad_tag_never_reaches_powershell():
    action = FakeAction(FakeWinrm())
    with pytest.raises(smb_stage.SmbStageError, match="is invalid"):
        agent_windows.stage(action, {}, "x'; Remove-Item C:\\ -Recurse; '", {"a.ps1": b"1"}, None)
    with pytest.raises(smb_stage.SmbStageError, match="is invalid"):
        agent_windows.unstage(action, {}, "Run 1", None)
    assert action._connection.scripts == []


def test_smb_target_from_inventory_vars():
    action = FakeAction(FakeWinrm())
    target = agent_windows.smb_target_from_vars(action, {
        "inventory_hostname": "win01", "ansible_host": "198.18.16.14", "ansible_user": "LAB\\ops", "ansible_password": "p",
    })
    assert (target.host, target.user, target.domain, target.ports) == ("198.18.16.14", "ops", "LAB", (445, 139))
    assert "p'" not in repr(target) and "password" not in repr(target)
    own = agent_windows.smb_target_from_vars(action, {"inventory_hostname": "win01", "ansible_user": "x", "ansible_password": "y",
                                                      "fleet_smb_user": "Administrator", "fleet_smb_password": "z"})
    assert (own.host, own.user, own.password) == ("win01", "Administrator", "z")
    assert agent_windows.smb_target_from_vars(action, {"inventory_hostname": "win01", "ansible_user": "x"}) is None


def _parse_errors(text: str) -> list[str]:
    ts = pytest.importorskip("tree_sitter")
    tsp = pytest.importorskip("tree_sitter_powershell")
    root = ts.Parser(ts.Language(tsp.language())).parse(text.encode()).root_node
    errors, stack = [], [root]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            errors.append(f"{node.start_point}: {node.text[:40]!r}")
        stack.extend(node.children)
    return errors


@pytest.mark.parametrize("script", [
    agent_windows.make_folder_script("run-1"),
    agent_windows.seal_script("run-1", ("a.ps1", "b.ps1")),
    agent_windows.remove_script("run-1"),
    agent_windows.remove_script("run-1", ("a.ps1", "b.ps1")),
], ids=["make-folder", "seal", "remove-all", "remove-some"])
def test_the_powershell_the_fallback_sends_parses(script):
    assert not _parse_errors(script)
    assert "Join-Path $env:SystemRoot 'Temp\\fleet-firmware-run-1'" in script


def test_the_real_agent_files_go_over_the_winrm_fallback_whole():
    """Every file the agent needs (the inventory twin for plan and detection too) is staged, byte for byte."""
    files = agent_windows.agent_files()
    assert set(files) == {"fleet_agent.ps1", "FleetAgent.psm1", "FleetFirewall.psm1", "FleetInventory.psm1"}
    action = FakeAction(FakeWinrm())
    result = agent_windows.stage(action, {}, "run-1", files, None)
    assert result["files"] == sorted(files)
    for name, path in files.items():
        with open(path, "rb") as handle:
            assert action._connection.disk["C:\\Windows\\Temp\\fleet-firmware-run-1\\" + name] == handle.read()


def test_the_winrm_folder_is_made_create_new_and_an_existing_one_not_ours_is_refused():
    """The WinRM path's PowerShell (which cannot run here) holds the rules smb_stage keeps over
    admin$ (tested against Samba in tests/integration/test_smb_stage_acl.py)."""
    script = agent_windows.make_folder_script("run-1")
    create = script.index("[void][System.IO.Directory]::CreateDirectory($path, (New-Security $true))")
    check = script.index("$item = Assert-Ours $path")
    repair = script.index("Set-Acl -LiteralPath $path -AclObject (New-Security $true)")
    assert create < check < repair
    assert "($item.Attributes -band [System.IO.FileAttributes]::ReparsePoint) -ne 0" in script
    assert "if ($owner -ne 'S-1-5-18' -and $owner -ne 'S-1-5-32-544') {" in script
    assert "refused, left as it is" in script
    assert "$acl.SetAccessRuleProtection($true, $false)" in script
    assert "SetOwner((New-Object System.Security.Principal.SecurityIdentifier('S-1-5-32-544')))" in script


def test_every_file_put_over_winrm_gets_the_descriptor_of_its_own():
    connection = FakeWinrm()
    result = agent_windows.stage(FakeAction(connection), {}, "run-1", {"a.ps1": b"1", "b.ps1": b"2"}, None)
    assert connection.sealed == ["a.ps1", "b.ps1"]
    assert result["sha256"] == {"a.ps1": hashlib.sha256(b"1").hexdigest(), "b.ps1": hashlib.sha256(b"2").hexdigest()}
    seal = agent_windows.seal_script("run-1", ("a.ps1",))
    assert seal.index("[void](Assert-Ours $file)") < seal.index("Set-Acl -LiteralPath $file -AclObject (New-Security $false)")


def test_the_winrm_removal_never_follows_a_reparse_point():
    script = agent_windows.remove_script("run-1")
    assert "-Recurse" not in script
    assert "if ($item.PSIsContainer -and -not $link) {" in script
    assert "[System.IO.Directory]::Delete($item.FullName, $false)" in script
