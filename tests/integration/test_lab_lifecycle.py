# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's own life: idempotent up, repair, simulated reboot, and down after a crash."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fleetlab
from conftest import STANDARD_LAB

pytestmark = pytest.mark.lab
LAB_TOOL = Path(__file__).resolve().parents[1] / "lab" / "fleetlab.py"


def test_up_twice_changes_nothing_and_repairs_a_dead_sshd(lab):
    nodes = lab.nodes()
    holders = {n.name: lab.lab.holder_pid(n) for n in nodes}
    lab.lab.up(fleetlab.plan_nodes(**STANDARD_LAB))
    assert {n.name: lab.lab.holder_pid(n) for n in nodes} == holders

    lin02 = lab.node("lin02")
    os.kill(lab.lab.service_pids(lin02)["sshd"], signal.SIGKILL)
    deadline = time.monotonic() + 5
    while lab.lab.node_healthy(lin02) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not lab.lab.node_healthy(lin02)
    lab.lab.up(fleetlab.plan_nodes(**STANDARD_LAB))
    assert lab.lab.node_healthy(lin02)
    assert lab.adhoc("lin02", "ansible.builtin.ping")["lin02"].status == "SUCCESS"


def test_simulated_reboot_changes_boot_id_clears_run_and_keeps_var_tmp(lab):
    def read(command: str) -> str:
        return lab.adhoc("lin01", "ansible.builtin.shell", command)["lin01"].data["stdout"]

    before = read("cat /proc/sys/kernel/random/boot_id; touch /var/tmp/fleet-reboot-keep /run/fleet-reboot-gone")
    lab.lab.reboot(lab.node("lin01"))
    after = read("cat /proc/sys/kernel/random/boot_id; ls /var/tmp/fleet-reboot-keep; ls /run/fleet-reboot-gone 2>&1 || true")
    lines = after.splitlines()
    assert lines[0] != before.strip()
    assert lines[1] == "/var/tmp/fleet-reboot-keep"
    assert "No such file" in lines[2]
    lab.adhoc("lin01", "ansible.builtin.file", "path=/var/tmp/fleet-reboot-keep state=absent")


def test_reboot_of_an_unknown_node_names_it(lab):
    with pytest.raises(fleetlab.LabError, match="no lab node named 'nosuch'"):
        lab.lab.node("nosuch")


def _lab_processes(inodes):
    return [p for p in fleetlab.pids_in_netns(inodes) if fleetlab.pid_alive(p)]


def test_down_cleans_up_after_up_was_killed_half_way(lab_session):
    lab_session.down()
    proc = subprocess.Popen(
        [sys.executable, str(LAB_TOOL), "up", "--linux", "3", "--ipv6-only", "1", "--windows", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while len(fleetlab.lab_namespaces()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert fleetlab.lab_namespaces(), "the killed up made no namespace: nothing to clean was tested"
    inodes = [fleetlab.netns_inode(n) for n in fleetlab.lab_namespaces()]
    removed = lab_session.down()
    assert removed
    assert fleetlab.lab_namespaces() == []
    assert fleetlab.lab_links() == []
    assert _lab_processes(inodes) == []
    assert not lab_session.home.exists()


def test_down_finds_namespaces_and_processes_even_when_the_lab_state_is_lost(lab_session):
    nodes = lab_session.up(fleetlab.plan_nodes(linux=1, ipv6_only=0, windows=1))
    inodes = [fleetlab.netns_inode(n.netns) for n in nodes]
    assert _lab_processes(inodes)
    lab_session.state_file.unlink()
    lab_session.down()
    assert fleetlab.lab_namespaces() == []
    assert fleetlab.lab_links() == []
    assert _lab_processes(inodes) == []


def test_cli_up_status_inventory_down(lab_session, tmp_path_factory):
    def tool(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(LAB_TOOL), *args], capture_output=True, text=True, check=False)

    assert tool("up", "--linux", "1", "--ipv6-only", "1", "--windows", "0").returncode == 0
    status = tool("status")
    assert '"up": true' in status.stdout and '"up": false' not in status.stdout
    inventory = Path(lab_session.home) / "extra-inventory.yml"
    assert tool("inventory", str(inventory)).returncode == 0
    assert oct(inventory.stat().st_mode & 0o777) == "0o600"
    assert "v6n01" in inventory.read_text()
    bad = tool("up", "--linux", "-2")
    assert bad.returncode == 2 and "--linux must be a whole number >= 0, got -2" in bad.stderr
    assert tool("down").returncode == 0
    assert fleetlab.lab_namespaces() == []


def test_a_node_that_fails_to_build_is_rolled_back_and_the_error_names_the_cause(lab_session, monkeypatch):
    lab_session.down()
    real_config = fleetlab.sshd_config
    monkeypatch.setattr(fleetlab, "sshd_config", lambda node, home: real_config(node, home) + "NoSuchSshdOption yes\n")
    with pytest.raises(fleetlab.LabError) as failure:
        lab_session.up(fleetlab.plan_nodes(linux=1, ipv6_only=0, windows=0))
    assert "lin01" in str(failure.value) and "NoSuchSshdOption" in str(failure.value)
    assert fleetlab.lab_namespaces() == []
    assert [link for link in fleetlab.lab_links() if link != fleetlab.BRIDGE] == []
    monkeypatch.setattr(fleetlab, "sshd_config", real_config)
    lab_session.down()
