# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's Linux side is real: Ansible over SSH to every node, private folders, own firewalls."""
from __future__ import annotations

import subprocess
import uuid

import pytest

from firewall_helpers import tcp_state

pytestmark = pytest.mark.lab


def test_ansible_pings_every_node_over_ssh_including_ipv6_only(lab):
    results = lab.adhoc("all", "ansible.builtin.ping")
    assert {name: r.status for name, r in results.items()} == {n.name: "SUCCESS" for n in lab.nodes()}
    assert all(r.data["ping"] == "pong" for r in results.values())
    assert lab.node("v6n01").ansible_host.startswith("fd00:")


def test_each_node_has_its_own_hostname_and_boot_id(lab):
    results = lab.adhoc("all", "ansible.builtin.command", "cat /proc/sys/kernel/random/boot_id")
    boot_ids = {name: r.data["stdout"] for name, r in results.items()}
    assert len(set(boot_ids.values())) == len(lab.nodes())
    with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
        assert handle.read().strip() not in boot_ids.values()
    hostnames = lab.adhoc("all", "ansible.builtin.command", "hostname")
    assert {name: r.data["stdout"] for name, r in hostnames.items()} == {n.name: n.name for n in lab.nodes()}


@pytest.mark.parametrize("folder", ["/var/tmp", "/run", "/tmp"])
def test_a_file_staged_on_one_node_is_seen_by_no_other_node_nor_the_controller(lab, folder):
    path = f"{folder}/fleet-lab-marker-{uuid.uuid4().hex[:8]}"
    copied = lab.adhoc("lin01", "ansible.builtin.copy", f"content=lin01 dest={path} mode=0600")
    assert copied["lin01"].status == "CHANGED"
    seen = lab.adhoc("all", "ansible.builtin.stat", f"path={path}")
    assert {name: r.data["stat"]["exists"] for name, r in seen.items()} == {n.name: n.name == "lin01" for n in lab.nodes()}
    assert not __import__("os").path.exists(path)
    lab.adhoc("lin01", "ansible.builtin.file", f"path={path} state=absent")


def test_a_drop_rule_in_one_node_ip6tables_blocks_only_that_node_over_ipv6(lab):
    lin01, lin02 = lab.node("lin01"), lab.node("lin02")
    rule = ["-p", "tcp", "--dport", "22", "-m", "comment", "--comment", "fleet-lab-test", "-j", "DROP"]
    lab.node_run("lin02", ["ip6tables", "-I", "INPUT"] + rule)
    try:
        assert tcp_state(lin02.ipv6, 22) == "filtered"
        assert tcp_state(lin01.ipv6, 22) == "open"
        assert tcp_state(lin02.ipv4, 22) == "open"  # ip6tables only: IPv4 still passes
        over_ipv6 = lab.adhoc(
            "lin01,lin02", "ansible.builtin.ping", extra=["-e", "ansible_host={{ fleet_lab_ipv6 }}", "-T", "3"]
        )
        assert over_ipv6["lin01"].status == "SUCCESS"
        assert over_ipv6["lin02"].status == "UNREACHABLE"
        assert lab.adhoc("lin02", "ansible.builtin.ping")["lin02"].status == "SUCCESS"
    finally:
        lab.node_run("lin02", ["ip6tables", "-D", "INPUT"] + rule)
    assert tcp_state(lin02.ipv6, 22) == "open"


def test_each_node_has_its_own_iptables_and_nftables_rulesets(lab):
    lab.node_run("lin01", ["iptables", "-A", "INPUT", "-p", "tcp", "--dport", "4711", "-m", "comment", "--comment", "fleet-lab-only-lin01", "-j", "ACCEPT"])
    lab.node_run("lin01", ["nft", "add", "table", "inet", "fleet_lab_only_lin01"])
    try:
        assert "fleet-lab-only-lin01" in lab.node_run("lin01", ["iptables-save"]).stdout
        assert "fleet_lab_only_lin01" in lab.node_run("lin01", ["nft", "list", "tables"]).stdout
        assert "fleet-lab-only-lin01" not in lab.node_run("lin02", ["iptables-save"]).stdout
        assert "fleet_lab_only_lin01" not in lab.node_run("lin02", ["nft", "list", "tables"]).stdout
        host = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
        assert "fleet-lab-only-lin01" not in host
    finally:
        lab.node_run("lin01", ["iptables", "-D", "INPUT", "-p", "tcp", "--dport", "4711", "-m", "comment", "--comment", "fleet-lab-only-lin01", "-j", "ACCEPT"])
        lab.node_run("lin01", ["nft", "delete", "table", "inet", "fleet_lab_only_lin01"])


def test_nodes_have_no_route_out_of_the_lab(lab):
    for node in lab.nodes():
        routes = lab.node_run(node.name, ["ip", "-4", "route"]).stdout + lab.node_run(node.name, ["ip", "-6", "route"]).stdout
        assert "default" not in routes, f"{node.name} has a default route: {routes}"


def test_the_operator_becomes_root_through_sudo_and_su_and_a_wrong_password_fails(lab):
    as_operator = ["-e", "ansible_user={{ fleet_lab_become_user }}"]
    plain = lab.adhoc("linux", "ansible.builtin.command", "whoami", extra=as_operator)
    assert {r.data["stdout"] for r in plain.values()} == {"fleetop"}
    sudo = lab.adhoc("linux", "ansible.builtin.command", "whoami", extra=as_operator + ["-b", "-e", "ansible_become_password={{ fleet_lab_become_password }}"])
    assert {name: r.data["stdout"] for name, r in sudo.items()} == {n.name: "root" for n in lab.nodes("linux")}
    su = lab.adhoc(
        "v6n01", "ansible.builtin.command", "whoami",
        extra=as_operator + ["-b", "--become-method", "su", "-e", "ansible_become_password={{ fleet_lab_root_password }}"],
    )
    assert su["v6n01"].data["stdout"] == "root"
    wrong = lab.adhoc("lin01", "ansible.builtin.command", "whoami", extra=as_operator + ["-b", "-e", "ansible_become_password=wrong"])
    assert wrong["lin01"].status == "FAILED"
    assert "Incorrect sudo password" in wrong["lin01"].data.get("msg", "")


def test_node_accounts_are_private_and_the_host_has_no_operator(lab):
    with open("/etc/passwd", encoding="utf-8") as handle:
        assert "fleetop:" not in handle.read()
    inside = lab.node_run("lin01", ["getent", "passwd", "fleetop"]).stdout
    assert inside.startswith("fleetop:x:4242:")
