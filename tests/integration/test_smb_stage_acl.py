# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Staging nobody else can own (issue 17 item 3), against the lab's real Samba with NT ACLs.

win01's Samba keeps NT security descriptors whole (vfs_acl_xattr), its Administrator's token
carries BUILTIN\\Administrators (a group mapping), and its Temp has the descriptor Windows ships
(users may create folders there). A second, unprivileged account ``LocalUser`` reaches Temp
through the share ``USERTEMP``: it stands for a local user of the node. Every descriptor is read
back over SMB by smbcacls (Samba's own client, not our parser) and by smb_stage's reader.

The same rules on Windows itself (the WinRM path, %ProgramData%\\fleet-firmware) live in
FleetAgent.psm1, which cannot run here: tests/unit/plugins/modules/test_agent_ps1.py parses it.
"""
from __future__ import annotations

import re
import subprocess
import uuid

import pytest

from ansible_collections.fleet.firmware.plugins.plugin_utils import smb_stage

pytestmark = pytest.mark.lab

FULL = 0x001F01FF
PROTECTED = 0x1000


def new_tag() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def admin(lab) -> smb_stage.SmbTarget:
    return smb_stage.SmbTarget(lab.node("win01").ipv4, "Administrator", lab.lab.smb_password)


def local_user(lab) -> smb_stage.SmbTarget:
    return smb_stage.SmbTarget(lab.node("win01").ipv4, "LocalUser", lab.lab.local_user_password)


def temp(lab) -> str:
    return f"{lab.lab.home}/node/windows/Temp"


def smbcacls(lab, tmp_path, relpath: str, *extra: str) -> str:
    """smbcacls --numeric on ADMIN$ as Administrator (the password in a 0600 file, not argv)."""
    auth = tmp_path / "admin.auth"
    auth.write_text(f"username = Administrator\npassword = {lab.lab.smb_password}\n")
    auth.chmod(0o600)
    proc = subprocess.run(["smbcacls", f"//{lab.node('win01').ipv4}/ADMIN$", relpath, "-A", str(auth), "--numeric", *extra],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def parsed(text: str) -> dict:
    """smbcacls' lines as owner, control and the ACL entries (sid, type, flags, mask)."""
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith("ACL:"))
    acl = []
    for line in text.splitlines():
        if line.startswith("ACL:"):
            sid, kind, flags, mask = re.fullmatch(r"ACL:(S-[0-9-]+):(\d+)/(0x[0-9a-f]+)/(0x[0-9a-f]+)", line).groups()
            acl.append((sid, int(kind), int(flags, 16), int(mask, 16)))
    return {"owner": fields["OWNER"], "control": int(fields["CONTROL"], 16), "acl": sorted(acl)}


def assert_staging_descriptor(text: str) -> None:
    sd = parsed(text)
    assert sd["owner"] == "S-1-5-32-544"
    assert sd["control"] & PROTECTED, "the DACL must be protected (nothing inherited from Temp)"
    assert sd["acl"] == [("S-1-5-18", 0, 0, FULL), ("S-1-5-32-544", 0, 0, FULL)]


def plant_folder(lab, name: str, files: dict[str, bytes]) -> None:
    """The local user creates Temp\\<name> and files in it, as any user of the node may."""
    with smb_stage.admin_share(local_user(lab), "USERTEMP") as share:
        access = smb_stage.DirectoryAccessMask.FILE_LIST_DIRECTORY | smb_stage.DirectoryAccessMask.FILE_ADD_FILE
        smb_stage._open(share.tree, name, access, smb_stage.CreateDisposition.FILE_CREATE,
                        smb_stage.CreateOptions.FILE_DIRECTORY_FILE).close()
        for file, data in files.items():
            handle = smb_stage._open(share.tree, f"{name}\\{file}", smb_stage.FilePipePrinterAccessMask.GENERIC_WRITE,
                                     smb_stage.CreateDisposition.FILE_CREATE, smb_stage.CreateOptions.FILE_NON_DIRECTORY_FILE)
            handle.write(data, 0)
            handle.close()


def snapshot(lab, path: str) -> str:
    """Names, owners, modes and contents under ``path`` on the node's own disk."""
    return lab.node_run("win01", ["sh", "-c", f"cd {path} && find . -printf '%p %u %m %s\\n' | sort && cat $(find . -type f | sort)"]).stdout


def test_every_staged_folder_and_file_carries_the_staging_descriptor(lab, tmp_path):
    tag = new_tag()
    folder = smb_stage.staging_relpath(tag)
    smb_stage.stage_files(admin(lab), tag, {"fleet_agent.ps1": b"agent", "FleetAgent.psm1": b"module", "fleet-data.json": b"{}"})
    try:
        # Temp itself grants users add-file/add-folder, inheritable: nothing of that may be ours.
        assert ("S-1-5-11", 0, 0x2, 0x00100026) in parsed(smbcacls(lab, tmp_path, "Temp"))["acl"]
        for relpath in (folder, f"{folder}\\fleet_agent.ps1", f"{folder}\\FleetAgent.psm1", f"{folder}\\fleet-data.json"):
            assert_staging_descriptor(smbcacls(lab, tmp_path, relpath))
        with smb_stage.admin_share(admin(lab)) as share:
            for relpath in (folder, f"{folder}\\fleet_agent.ps1"):
                handle = smb_stage._open(share.tree, relpath, smb_stage.FilePipePrinterAccessMask.READ_CONTROL,
                                         smb_stage.CreateDisposition.FILE_OPEN, 0)
                try:
                    assert smb_stage.is_staging_descriptor(smb_stage.query_descriptor(handle))
                finally:
                    handle.close()
        # The local user can neither list nor add to the staging folder.
        with smb_stage.admin_share(local_user(lab), "USERTEMP") as share:
            with pytest.raises(smb_stage.smb_errors.AccessDenied):
                smb_stage._open(share.tree, f"fleet-firmware-{tag}\\evil.ps1", smb_stage.FilePipePrinterAccessMask.GENERIC_WRITE,
                                smb_stage.CreateDisposition.FILE_CREATE, smb_stage.CreateOptions.FILE_NON_DIRECTORY_FILE)
    finally:
        smb_stage.remove_staged(admin(lab), tag)


def test_a_retried_stage_repairs_a_descriptor_of_ours(lab, tmp_path):
    tag = new_tag()
    folder = smb_stage.staging_relpath(tag)
    smb_stage.stage_files(admin(lab), tag, {"fleet_agent.ps1": b"v1"})
    try:
        # Someone with the right to (an administrator) widened it: the next stage sets it back.
        smbcacls(lab, tmp_path, folder, "--add", "ACL:S-1-1-0:ALLOWED/0x0/FULL")
        smbcacls(lab, tmp_path, f"{folder}\\fleet_agent.ps1", "--add", "ACL:S-1-1-0:ALLOWED/0x0/FULL")
        again = smb_stage.stage_files(admin(lab), tag, {"fleet_agent.ps1": b"v2"})
        assert again["created"] is False
        assert_staging_descriptor(smbcacls(lab, tmp_path, folder))
        assert_staging_descriptor(smbcacls(lab, tmp_path, f"{folder}\\fleet_agent.ps1"))
        assert lab.node_run("win01", ["cat", f"{temp(lab)}/fleet-firmware-{tag}/fleet_agent.ps1"]).stdout == "v2"
    finally:
        smb_stage.remove_staged(admin(lab), tag)


def test_a_folder_a_local_user_made_first_is_refused_and_left_as_it_was(lab, tmp_path):
    tag = new_tag()
    name = f"fleet-firmware-{tag}"
    plant_folder(lab, name, {"fleet_agent.ps1": b"the user's script"})
    path = f"{temp(lab)}/{name}"
    before, descriptor = snapshot(lab, path), smbcacls(lab, tmp_path, f"Temp\\{name}")
    try:
        with pytest.raises(smb_stage.SmbStageError) as caught:
            smb_stage.stage_files(admin(lab), tag, {"fleet_agent.ps1": b"ours", "FleetAgent.psm1": b"ours"})
        assert caught.value.reason == "not_ours"
        message = str(caught.value)
        owner = parsed(descriptor)["owner"]
        assert message.startswith(f"\\\\{lab.node('win01').ipv4}\\ADMIN$\\Temp\\{name} already exists and is owned by {owner}, "
                                  "not by BUILTIN\\Administrators or SYSTEM: refused, left as it is")
        assert owner.startswith("S-1-5-21-")  # the local user's own SID
        assert snapshot(lab, path) == before
        assert smbcacls(lab, tmp_path, f"Temp\\{name}") == descriptor
        # The cleanup refuses it too: not ours to remove.
        with pytest.raises(smb_stage.SmbStageError, match="not by BUILTIN"):
            smb_stage.remove_staged(admin(lab), tag)
        assert snapshot(lab, path) == before
    finally:
        lab.node_run("win01", ["rm", "-rf", path])


def test_a_link_planted_as_the_staging_folder_is_refused(lab, tmp_path):
    """Temp\\fleet-firmware-<tag> is a link (Samba follows it) to a folder of the local user."""
    tag = new_tag()
    victim = f"victim-{tag}"
    plant_folder(lab, victim, {"keep.txt": b"keep"})
    link = f"{temp(lab)}/fleet-firmware-{tag}"
    lab.node_run("win01", ["ln", "-s", victim, link])
    before = snapshot(lab, f"{temp(lab)}/{victim}")
    try:
        with pytest.raises(smb_stage.SmbStageError, match="refused, left as it is") as caught:
            smb_stage.stage_files(admin(lab), tag, {"fleet_agent.ps1": b"ours"})
        assert caught.value.reason == "not_ours"
        assert snapshot(lab, f"{temp(lab)}/{victim}") == before
    finally:
        lab.node_run("win01", ["rm", "-rf", link, f"{temp(lab)}/{victim}"])


def test_the_cleanup_does_not_follow_a_link_inside_the_staging(lab):
    """A link to a folder elsewhere in the share, which Samba follows: the cleanup must not empty it.

    (Through the old cleanup, which listed and deleted whatever the path led to, this removed the
    victim's files.)"""
    tag = new_tag()
    victim = f"victim-{tag}"
    smb_stage.stage_files(admin(lab), tag, {"fleet_agent.ps1": b"ours"})
    plant_folder(lab, victim, {"keep.txt": b"keep"})
    lab.node_run("win01", ["mkdir", f"{temp(lab)}/{victim}/sub"])
    lab.node_run("win01", ["sh", "-c", f"echo deep > {temp(lab)}/{victim}/sub/deep.txt"])
    staging = f"{temp(lab)}/fleet-firmware-{tag}"
    lab.node_run("win01", ["ln", "-s", f"../{victim}", f"{staging}/link"])
    before = snapshot(lab, f"{temp(lab)}/{victim}")
    try:
        with pytest.raises(smb_stage.SmbStageError) as caught:
            smb_stage.remove_staged(admin(lab), tag)
        assert caught.value.reason == "not_ours"
        assert re.search(r"\\fleet-firmware-%s\\link is owned by S-1-5-21-[0-9-]+ \(a link the server follows, or a folder "
                         r"not ours\): not followed and not removed" % tag, str(caught.value)), str(caught.value)
        assert snapshot(lab, f"{temp(lab)}/{victim}") == before
        assert sorted(lab.node_run("win01", ["ls", "-A", staging]).stdout.split()) == ["fleet_agent.ps1", "link"]
    finally:
        lab.node_run("win01", ["rm", "-f", f"{staging}/link"])
        smb_stage.remove_staged(admin(lab), tag)
        lab.node_run("win01", ["rm", "-rf", f"{temp(lab)}/{victim}"])


def test_the_cleanup_removes_a_file_link_as_a_name_only(lab):
    tag = new_tag()
    victim = f"victim-{tag}"
    smb_stage.stage_files(admin(lab), tag, {"fleet_agent.ps1": b"ours"})
    plant_folder(lab, victim, {"keep.txt": b"keep"})
    staging = f"{temp(lab)}/fleet-firmware-{tag}"
    lab.node_run("win01", ["ln", "-s", f"../{victim}/keep.txt", f"{staging}/flink"])
    try:
        removed = smb_stage.remove_staged(admin(lab), tag)
        assert removed["changed"] is True and any(p.endswith("\\flink") for p in removed["removed"])
        assert lab.node_run("win01", ["cat", f"{temp(lab)}/{victim}/keep.txt"]).stdout == "keep"
        assert lab.node_run("win01", ["test", "-e", staging], check=False).returncode != 0
    finally:
        lab.node_run("win01", ["rm", "-rf", staging, f"{temp(lab)}/{victim}"])
