# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Windows-like node's ADMIN$ share is real Samba, reached with smbprotocol.

Windows itself cannot run here: Samba stands in for the admin$ share (SMB2/3 over 445, NetBIOS
over 139/137). What the share does is real; what Windows would do around it is not.
"""
from __future__ import annotations

import uuid

import pytest

smbclient = pytest.importorskip("smbclient")
smb_exceptions = pytest.importorskip("smbprotocol.exceptions")

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_admin_share_accepts_a_file_with_the_lab_credentials(lab, family):
    win = lab.node("win01")
    server = getattr(win, family)
    name = f"fleet-test-{uuid.uuid4().hex[:8]}.txt"
    unc = rf"\\{server}\ADMIN$\Temp\{name}"
    try:
        smbclient.register_session(server, username="Administrator", password=lab.lab.smb_password, connection_timeout=10)
        with smbclient.open_file(unc, mode="w") as handle:
            handle.write("staged by the test")
        with smbclient.open_file(unc, mode="r") as handle:
            assert handle.read() == "staged by the test"
        # The file landed in the node's private folder, which only that node sees.
        inside = lab.node_run("win01", ["cat", f"{lab.lab.home}/node/windows/Temp/{name}"]).stdout
        assert inside == "staged by the test"
        assert lab.node_run("lin01", ["test", "-e", f"{lab.lab.home}/node/windows/Temp/{name}"], check=False).returncode != 0
        smbclient.remove(unc)
        assert lab.node_run("win01", ["test", "-e", f"{lab.lab.home}/node/windows/Temp/{name}"], check=False).returncode != 0
    finally:
        smbclient.reset_connection_cache()


def test_admin_share_refuses_a_wrong_password(lab):
    win = lab.node("win01")
    with pytest.raises(smb_exceptions.LogonFailure):
        smbclient.register_session(win.ipv4, username="Administrator", password="not-the-password", connection_timeout=10)
    smbclient.reset_connection_cache()


def test_admin_share_refuses_an_unknown_user(lab):
    win = lab.node("win01")
    with pytest.raises(smb_exceptions.LogonFailure):
        smbclient.register_session(win.ipv4, username="intruder", password=lab.lab.smb_password, connection_timeout=10)
    smbclient.reset_connection_cache()
