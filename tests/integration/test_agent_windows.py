# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""admin$ staging of the Windows agent (plugin_utils/smb_stage.py) against the lab's real Samba.

The Windows-like node win01 runs smbd with an ``ADMIN$`` share; what lands in the share is read
back from the node's own filesystem. Windows itself cannot run here: Samba stands in for the
share, and the PowerShell agent is covered by unit tests only (tests/unit/*agent_ps1*).
"""
from __future__ import annotations

import hashlib
import uuid
from contextlib import contextmanager

import pytest

from ansible_collections.fleet.firmware.plugins.plugin_utils import smb_stage

pytestmark = pytest.mark.lab


def new_tag() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def target(lab, family: str = "ipv4", password: str | None = None, **kwargs) -> smb_stage.SmbTarget:
    node = lab.node("win01")
    return smb_stage.SmbTarget(getattr(node, family), "Administrator", lab.lab.smb_password if password is None else password, **kwargs)


def node_folder(lab, tag: str) -> str:
    """Where ADMIN$\\Temp\\fleet-firmware-<tag> is on the node's own filesystem."""
    return f"{lab.lab.home}/node/windows/Temp/fleet-firmware-{tag}"


def node_listing(lab, tag: str) -> list[str] | None:
    proc = lab.node_run("win01", ["ls", "-A", node_folder(lab, tag)], check=False)
    return proc.stdout.split() if proc.returncode == 0 else None


def temp_listing(lab) -> list[str]:
    return lab.node_run("win01", ["ls", "-A", f"{lab.lab.home}/node/windows/Temp"]).stdout.split()


@contextmanager
def node_iptables(lab, *rules: list[str]):
    """Inserts rules into win01's own IPv4 INPUT chain and deletes exactly them afterwards."""
    added = []
    try:
        for rule in rules:
            lab.node_run("win01", ["iptables", "-I", "INPUT", *rule])
            added.append(rule)
        yield
    finally:
        for rule in reversed(added):
            lab.node_run("win01", ["iptables", "-D", "INPUT", *rule], check=False)


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_stage_puts_the_files_into_the_share_and_remove_takes_them_away(lab, family, tmp_path):
    tag = new_tag()
    local = tmp_path / "FleetAgent.psm1"
    local.write_bytes(b"# agent module\r\n")
    payload = bytes(range(256)) * 8192  # 2 MiB: several SMB writes
    result = smb_stage.stage_files(target(lab, family), tag, {"fleet_agent.ps1": payload, "FleetAgent.psm1": str(local)})
    try:
        assert result["transfer"] == "smb" and result["port"] == 445
        assert result["signed"] is True and result["encrypted"] is True  # Samba offers SMB 3.1.1 encryption
        assert result["staged_path"] == f"C:\\Windows\\Temp\\fleet-firmware-{tag}"
        assert result["share_path"].endswith(f"\\ADMIN$\\Temp\\fleet-firmware-{tag}")
        assert result["files"] == ["FleetAgent.psm1", "fleet_agent.ps1"]
        assert sorted(node_listing(lab, tag)) == ["FleetAgent.psm1", "fleet_agent.ps1"]
        digest = lab.node_run("win01", ["sha256sum", f"{node_folder(lab, tag)}/fleet_agent.ps1"]).stdout.split()[0]
        assert digest == hashlib.sha256(payload).hexdigest()
        digest = lab.node_run("win01", ["sha256sum", f"{node_folder(lab, tag)}/FleetAgent.psm1"]).stdout.split()[0]
        assert digest == hashlib.sha256(b"# agent module\r\n").hexdigest()
        # Staging again replaces in place (same run, e.g. a retried task).
        again = smb_stage.stage_files(target(lab, family), tag, {"fleet_agent.ps1": b"v2"})
        assert again["created"] is False
        assert lab.node_run("win01", ["cat", f"{node_folder(lab, tag)}/fleet_agent.ps1"]).stdout == "v2"
    finally:
        removed = smb_stage.remove_staged(target(lab, family), tag)
    assert removed["changed"] is True
    assert removed["removed"][-1] == result["share_path"]
    assert len(removed["removed"]) == 3
    assert node_listing(lab, tag) is None
    assert smb_stage.remove_staged(target(lab, family), tag) == {"changed": False, "removed": []}


def test_remove_staged_removes_what_the_agent_added_too(lab):
    tag = new_tag()
    smb_stage.stage_files(target(lab), tag, {"fleet_agent.ps1": b"x"})
    # The agent writes its log and downloads into the folder, with a subfolder. It runs as SYSTEM,
    # so what it makes is owned by SYSTEM or Administrators: made here over SMB as Administrator
    # (a folder owned by anyone else is refused by the cleanup, tests/integration/test_smb_stage_acl.py).
    with smb_stage.admin_share(target(lab)) as share:
        smb_stage.make_directory(target(lab), share.tree, f"{smb_stage.staging_relpath(tag)}\\components")
    lab.node_run("win01", ["touch", f"{node_folder(lab, tag)}/agent.log", f"{node_folder(lab, tag)}/components/cp1.exe"])
    removed = smb_stage.remove_staged(target(lab), tag)
    assert removed["changed"] is True
    assert any(p.endswith("\\components\\cp1.exe") for p in removed["removed"])
    assert node_listing(lab, tag) is None


def test_a_wrong_password_fails_cleanly_with_nothing_left(lab):
    tag = new_tag()
    before = temp_listing(lab)
    with pytest.raises(smb_stage.SmbStageError) as caught:
        smb_stage.stage_files(target(lab, password="not-the-password"), tag, {"fleet_agent.ps1": b"x"})
    host = lab.node("win01").ipv4
    assert str(caught.value) == f"SMB logon to {host} as Administrator refused (wrong user or password)"
    assert caught.value.reason == "logon"
    assert "not-the-password" not in repr(target(lab, password="not-the-password"))
    assert node_listing(lab, tag) is None and temp_listing(lab) == before


def test_an_unknown_user_is_refused_like_a_wrong_password(lab):
    bad = smb_stage.SmbTarget(lab.node("win01").ipv4, "intruder", lab.lab.smb_password)
    with pytest.raises(smb_stage.SmbStageError, match=r"SMB logon to .* as intruder refused \(wrong user or password\)"):
        smb_stage.remove_staged(bad, new_tag())


def test_445_filtered_falls_back_to_139_netbios_session(lab):
    """445 silently dropped by the node's firewall: staging goes over the NetBIOS session service."""
    tag = new_tag()
    with node_iptables(lab, ["-p", "tcp", "--dport", "445", "-j", "DROP"]):
        result = smb_stage.stage_files(target(lab, timeout=2.0), tag, {"fleet_agent.ps1": b"over 139"})
        try:
            assert result["port"] == 139
            assert result["signed"] is True and result["encrypted"] is True
            assert lab.node_run("win01", ["cat", f"{node_folder(lab, tag)}/fleet_agent.ps1"]).stdout == "over 139"
        finally:
            assert smb_stage.remove_staged(target(lab, timeout=2.0), tag)["changed"] is True
    assert node_listing(lab, tag) is None


def test_both_ports_unreachable_names_both(lab):
    tag = new_tag()
    rules = [["-p", "tcp", "--dport", str(port), "-j", "REJECT", "--reject-with", "tcp-reset"] for port in (445, 139)]
    with node_iptables(lab, *rules):
        with pytest.raises(smb_stage.SmbStageError) as caught:
            smb_stage.stage_files(target(lab, timeout=2.0), tag, {"fleet_agent.ps1": b"x"})
    message = str(caught.value)
    assert message.startswith(f"SMB on {lab.node('win01').ipv4} unreachable (port 445: ")
    assert "; port 139: " in message and "refused" in message
    assert caught.value.reason == "unreachable"
    assert node_listing(lab, tag) is None


def test_disk_full_removes_the_partial_staging(lab):
    """A tiny tmpfs over the node's Temp: the write fails with STATUS_DISK_FULL, the folder goes away."""
    temp = f"{lab.lab.home}/node/windows/Temp"
    lab.node_run("win01", ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0755", "fleet-test-full", temp])
    tag = new_tag()
    try:
        with pytest.raises(smb_stage.SmbStageError) as caught:
            smb_stage.stage_files(target(lab), tag, {"small.txt": b"fits", "big.bin": b"\0" * (4 * 1024 * 1024)})
        assert caught.value.reason == "disk_full"
        assert str(caught.value).startswith(f"disk full on {lab.node('win01').ipv4} while writing ")
        assert "big.bin" in str(caught.value) and str(caught.value).endswith("(the partial staging was removed)")
        assert lab.node_run("win01", ["ls", "-A", temp]).stdout.split() == []
    finally:
        lab.node_run("win01", ["umount", temp], check=False)


@pytest.mark.parametrize("tag", ["Bad", "", "a/b", "x" * 33, "..\\x"])
def test_a_bad_tag_is_refused_before_connecting(tag):
    unreachable = smb_stage.SmbTarget("192.0.2.1", "Administrator", "x", timeout=0.1)
    with pytest.raises(smb_stage.SmbStageError, match="is invalid") as caught:
        smb_stage.stage_files(unreachable, tag, {"a": b"x"})
    assert caught.value.reason == "input"


@pytest.mark.parametrize("name", ["..", "a\\b", "a/b", "", ".hidden", "c:x"])
def test_a_bad_file_name_is_refused_before_connecting(name):
    unreachable = smb_stage.SmbTarget("192.0.2.1", "Administrator", "x", timeout=0.1)
    with pytest.raises(smb_stage.SmbStageError, match="is invalid"):
        smb_stage.stage_files(unreachable, "run-1", {name: b"x"})


class RecordingWinrm:
    """Stands in for the WinRM connection (Windows cannot run here): records what would be sent."""

    def __init__(self) -> None:
        from ansible.plugins.shell.powershell import ShellModule
        self._shell = ShellModule()
        self.commands: list[str] = []
        self.puts: list[str] = []

    def put_file(self, in_path: str, out_path: str) -> None:
        self.puts.append(out_path)


class RecordingAction:
    def __init__(self) -> None:
        self._connection = RecordingWinrm()

    def _low_level_execute_command(self, cmd, sudoable=True, **kwargs):
        self._connection.commands.append(cmd)
        return {"rc": 0, "stdout": '{"path": "C:\\\\Windows\\\\Temp\\\\fleet-firmware-x", "created": true}', "stderr": ""}


def test_agent_stage_uses_admin_share_when_it_works(lab):
    from ansible_collections.fleet.firmware.plugins.plugin_utils import agent_windows
    tag, action = new_tag(), RecordingAction()
    result = agent_windows.stage(action, {}, tag, {"fleet_agent.ps1": b"x"}, target(lab))
    try:
        assert result["transfer"] == "smb" and result["fallback_reason"] is None
        assert node_listing(lab, tag) == ["fleet_agent.ps1"]
        assert action._connection.commands == [] and action._connection.puts == []
    finally:
        done = agent_windows.unstage(action, {}, tag, target(lab))
    assert done["changed"] is True and done["transfer"] == "smb" and node_listing(lab, tag) is None


def test_agent_stage_does_not_fall_back_on_a_wrong_password(lab):
    from ansible_collections.fleet.firmware.plugins.plugin_utils import agent_windows
    tag, action = new_tag(), RecordingAction()
    with pytest.raises(smb_stage.SmbStageError, match=r"refused \(wrong user or password\)"):
        agent_windows.stage(action, {}, tag, {"fleet_agent.ps1": b"x"}, target(lab, password="wrong"))
    assert action._connection.commands == [] and node_listing(lab, tag) is None


def test_agent_stage_falls_back_to_winrm_when_both_smb_ports_are_closed(lab):
    from ansible_collections.fleet.firmware.plugins.plugin_utils import agent_windows
    tag, action = new_tag(), RecordingAction()
    rules = [["-p", "tcp", "--dport", str(port), "-j", "REJECT", "--reject-with", "tcp-reset"] for port in (445, 139)]
    with node_iptables(lab, *rules):
        result = agent_windows.stage(action, {}, tag, {"fleet_agent.ps1": b"x"}, target(lab, timeout=2.0))
    assert result["transfer"] == "winrm" and "unreachable" in result["fallback_reason"]
    # One command makes the folder, one gives the file put_file wrote the staging descriptor.
    assert len(action._connection.commands) == 2 and action._connection.puts == ["C:\\Windows\\Temp\\fleet-firmware-x\\fleet_agent.ps1"]
    assert node_listing(lab, tag) is None
