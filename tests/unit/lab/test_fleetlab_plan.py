# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lab's plan (names, addresses, inventory, configs): pure functions, no root needed."""
from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import fleetlab

LAB_V4 = ipaddress.ip_network("198.18.0.0/15")
LAB_V6 = ipaddress.ip_network("fd00::/8")


def test_default_plan_is_two_dual_stack_one_ipv6_only_one_windows():
    nodes = fleetlab.plan_nodes()
    assert [(n.name, n.kind, n.family) for n in nodes] == [
        ("lin01", "linux", "dual"),
        ("lin02", "linux", "dual"),
        ("v6n01", "linux", "ipv6"),
        ("win01", "windows", "dual"),
    ]


def test_addresses_stay_inside_the_lab_ranges_and_are_unique():
    nodes = fleetlab.plan_nodes(linux=60, ipv6_only=60, ipv4_only=40, windows=40)
    v4 = [n.ipv4 for n in nodes if n.ipv4]
    v6 = [n.ipv6 for n in nodes if n.ipv6]
    assert len(set(v4)) == len(v4) and len(set(v6)) == len(v6)
    assert all(ipaddress.ip_address(a) in LAB_V4 for a in v4)
    assert all(ipaddress.ip_address(a) in LAB_V6 for a in v6)
    controller = {str(fleetlab.CONTROLLER_IPV4), str(fleetlab.CONTROLLER_IPV6)}
    assert not controller & set(v4 + v6)
    assert ipaddress.ip_address(str(fleetlab.CONTROLLER_IPV4)) in LAB_V4
    assert len({n.mac for n in nodes}) == len(nodes)
    assert len({n.veth for n in nodes}) == len(nodes)
    assert all(len(n.veth) <= 15 and len(n.netns) <= 32 for n in nodes)


def test_single_family_nodes_have_only_that_family():
    six, four = fleetlab.plan_nodes(linux=0, ipv6_only=1, ipv4_only=1, windows=0)
    assert six.ipv4 is None and six.ansible_host == six.ipv6
    assert four.ipv6 is None and four.ansible_host == four.ipv4


def test_plan_is_stable_so_addresses_survive_a_second_up():
    assert fleetlab.plan_nodes(3, 1, 1, 2) == fleetlab.plan_nodes(3, 1, 1, 2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"linux": -1}, "--linux must be a whole number >= 0, got -1"),
        ({"windows": "2"}, "--windows must be a whole number >= 0, got '2'"),
        ({"linux": 0, "ipv6_only": 0, "windows": 0}, "a lab needs at least one node"),
        ({"linux": 201}, "at most 200 nodes, 203 were asked for"),
    ],
)
def test_bad_node_counts_are_refused_with_the_bad_value(kwargs, message):
    with pytest.raises(fleetlab.LabError, match=message):
        fleetlab.plan_nodes(**kwargs)


PASSWORDS = {"smb_password": "s3cret", "become_password": "b3come", "root_password": "r00t"}


def test_inventory_groups_and_connection_vars(tmp_path: Path):
    nodes = fleetlab.plan_nodes(linux=1, ipv6_only=1, ipv4_only=1, windows=1)
    data = yaml.safe_load("---\n" + fleetlab.to_yaml(fleetlab.inventory_data(nodes, tmp_path, PASSWORDS)))
    groups = data["all"]["children"]
    assert set(groups["linux"]["hosts"]) == {"lin01", "v6n01", "v4n01"}
    assert set(groups["windows"]["hosts"]) == {"win01"}
    assert set(groups["ipv6_only"]["hosts"]) == {"v6n01"}
    assert set(groups["ipv4_only"]["hosts"]) == {"v4n01"}
    assert groups["linux"]["hosts"]["v6n01"]["ansible_host"] == str(fleetlab.IPV6_NET.network_address + fleetlab.FIRST_HOST + 2)
    assert groups["windows"]["hosts"]["win01"]["fleet_smb_password"] == "s3cret"
    assert "fleet_smb_password" not in groups["linux"]["hosts"]["lin01"]
    common = data["all"]["vars"]
    assert common["ansible_user"] == "root"
    assert common["ansible_ssh_private_key_file"] == str(tmp_path / "ssh" / "id_ed25519")
    assert common["ansible_python_interpreter"] == "/usr/bin/python3"
    assert "StrictHostKeyChecking=yes" in common["ansible_ssh_common_args"]
    assert (common["fleet_lab_become_user"], common["fleet_lab_become_password"]) == ("fleetop", "b3come")
    assert common["fleet_lab_root_password"] == "r00t"


def test_sshd_listens_only_on_the_node_lab_addresses(tmp_path: Path):
    six = fleetlab.plan_nodes(linux=0, ipv6_only=1, windows=0)[0]
    config = fleetlab.sshd_config(six, tmp_path)
    assert [line for line in config.splitlines() if line.startswith("ListenAddress")] == [f"ListenAddress {six.ipv6}"]
    assert "PasswordAuthentication no" in config


def test_samba_serves_admin_share_on_the_node_addresses_only(tmp_path: Path):
    win = fleetlab.plan_nodes(linux=0, ipv6_only=0, windows=1)[0]
    config = fleetlab.smb_config(win, tmp_path)
    assert "[ADMIN$]" in config
    assert f"interfaces = {win.ipv4} {win.ipv6}" in config
    assert "bind interfaces only = yes" in config
    assert "map to guest = never" in config


@pytest.mark.parametrize("home", ["/var/tmp/lab", "/run/lab", "/root/x", "relative/lab"])
def test_lab_home_cannot_be_private_inside_nodes_or_relative(home):
    with pytest.raises(fleetlab.LabError, match=home.split("/")[-1] if home.startswith("relative") else "cannot live under"):
        fleetlab.Lab(Path(home))


# A home that does not exist (and outside /tmp, which the lab refuses as a home).
ABSENT_HOME = "/nonexistent/fleet-lab-unit-test"


def test_lab_refuses_to_run_without_root(monkeypatch, capsys):
    monkeypatch.setattr(fleetlab.os, "geteuid", lambda: 1000)
    assert fleetlab.main(["--home", ABSENT_HOME, "up"]) == 2
    assert "the lab needs root" in capsys.readouterr().err
    assert not Path(ABSENT_HOME).exists()


def test_inventory_command_says_when_the_lab_is_not_up(capsys):
    assert fleetlab.main(["--home", ABSENT_HOME, "inventory"]) == 2
    assert "the lab is not up" in capsys.readouterr().err


def test_missing_tools_are_named(monkeypatch):
    monkeypatch.setattr(fleetlab.shutil, "which", lambda tool, path=None: None if tool == "smbd" else "/bin/" + tool)
    with pytest.raises(fleetlab.LabError, match="missing tools: smbd"):
        fleetlab.require_tools(("ip", "smbd"))


def _names_of_instance(lab_id: str) -> subprocess.CompletedProcess:
    probe = "import fleetlab as f; print(f.PREFIX, f.BRIDGE, f.VETH_PREFIX, f.IPV4_NET, f.IPV6_NET, f.DEFAULT_HOME)"
    env = {k: v for k, v in os.environ.items() if k not in ("FLEET_LAB_ID", "FLEET_LAB_HOME")}
    env.update(FLEET_LAB_ID=lab_id, PYTHONPATH=str(Path(fleetlab.__file__).parent))
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, check=False)


def test_parallel_lab_instances_share_no_name_subnet_or_folder():
    zero = _names_of_instance("0").stdout.split()
    seven = _names_of_instance("7").stdout.split()
    assert zero == ["ffl-", "fflbr0", "fflv", "198.18.0.0/24", "fd00:f1ee:7ab::/64", "/var/lib/fleet-lab"]
    assert seven == ["ffl7-", "fflbr7", "ffl7v", "198.18.7.0/24", "fd00:f1ee:7ab:7::/64", "/var/lib/fleet-lab-7"]


@pytest.mark.parametrize("bad", ["100", "-1", "x"])
def test_a_bad_lab_instance_id_is_named(bad):
    proc = _names_of_instance(bad)
    assert proc.returncode != 0
    assert f"FLEET_LAB_ID must be a whole number from 0 to 99, got {bad!r}" in proc.stderr


# ---- the firewalld node --------------------------------------------------------------------


def test_a_firewalld_node_comes_last_so_the_other_nodes_keep_their_addresses():
    standard, with_firewalld = fleetlab.plan_nodes(), fleetlab.plan_nodes(firewalld=1)
    assert with_firewalld[:-1] == standard
    node = with_firewalld[-1]
    assert (node.name, node.kind, node.family) == ("fwd01", "firewalld", "dual")


def test_a_firewalld_node_is_a_linux_path_host_in_a_group_of_its_own(tmp_path):
    nodes = fleetlab.plan_nodes(linux=1, ipv6_only=0, windows=0, firewalld=1)
    data = fleetlab.inventory_data(nodes, tmp_path, {"smb_password": "s", "become_password": "b", "root_password": "r"})
    children = data["all"]["children"]
    assert list(children["firewalld"]["hosts"]) == ["fwd01"] and list(children["linux"]["hosts"]) == ["lin01"]
    assert children["firewalld"]["hosts"]["fwd01"]["fleet_path"] == "linux"


def test_the_firewalld_nodes_bus_runs_as_root_with_absolute_policy_folders():
    debian = ("<busconfig><type>system</type><user>messagebus</user><pidfile>/run/dbus/pid</pidfile>"
              "<includedir>system.d</includedir><includedir>/etc/dbus-1/system.d</includedir>"
              '<include if_selinux_enabled="yes" selinux_root_relative="yes">contexts/dbus_contexts</include></busconfig>')
    conf = fleetlab.firewalld_bus_config(debian)
    assert "<user>" not in conf and "dbus_contexts" not in conf
    assert "<includedir>/usr/share/dbus-1/system.d</includedir>" in conf and "<includedir>system.d</includedir>" not in conf
    assert "<includedir>/etc/dbus-1/system.d</includedir>" in conf


def test_the_firewalld_users_configuration_is_zones_with_services_ports_and_a_rich_rule():
    import xml.etree.ElementTree as ET  # our own constant, not untrusted input
    public = ET.fromstring(fleetlab.FIREWALLD_USER_CONFIG["zones/public.xml"])
    assert public.find("interface").get("name") == "eth0"
    assert {s.get("name") for s in public.findall("service")} >= {"ssh"}  # the lab's Ansible must still get in
    assert public.find("rule/port").get("port") == "9100"
    mgmt = ET.fromstring(fleetlab.FIREWALLD_USER_CONFIG["zones/mgmt.xml"])
    source = ipaddress.ip_network(mgmt.find("source").get("address"))
    assert source.subnet_of(LAB_V4) and ipaddress.ip_address(str(fleetlab.CONTROLLER_IPV4)) not in source
