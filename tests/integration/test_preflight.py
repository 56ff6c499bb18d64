# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet.firmware.preflight playbook against the lab: real ansible-playbook, real sshd, real
iptables/ip6tables rules in the nodes' network namespaces (made with ``ip netns exec``), the
Windows-like node's Samba, the IPv6-only node, and a real listener on the controller."""
from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import pytest

import fleetlab
from conftest import ansible_bin, ansible_env

pytestmark = pytest.mark.lab

RULE_COMMENT = "fleet-test-preflight"  # every rule these tests make carries it
BOTH_FAMILIES = '{"fleet_node_addresses": "{{ [fleet_lab_ipv4, fleet_lab_ipv6] | select | list }}"}'
CONTROLLER4, CONTROLLER6 = str(fleetlab.CONTROLLER_IPV4), str(fleetlab.CONTROLLER_IPV6)


def run_preflight(lab, report: Path, *extra: str) -> tuple[subprocess.CompletedProcess, dict]:
    """``ansible-playbook fleet.firmware.preflight`` (by its collection name), then the JSON report."""
    argv = [ansible_bin("ansible-playbook"), "-i", str(lab.inventory), "fleet.firmware.preflight", "-e", f"fleet_preflight_report={report}", *extra]
    proc = subprocess.run(argv, capture_output=True, text=True, env=ansible_env(), timeout=300, check=False)
    assert report.exists(), f"no report written (rc={proc.returncode})\n{proc.stdout}\n{proc.stderr}"
    return proc, json.loads(report.read_text())


@contextlib.contextmanager
def netns_rule(lab, node: str, chain: str, rule: list[str], families=("ipv4", "ipv6")) -> Iterator[None]:
    """A rule at the top of ``chain`` of the node's iptables and ip6tables (``ip netns exec``),
    tagged, removed afterwards whatever happens."""
    netns = lab.node(node).netns
    spec = [chain, *rule, "-m", "comment", "--comment", RULE_COMMENT]
    added = []
    try:
        for family in families:
            tool = "ip6tables" if family == "ipv6" else "iptables"
            subprocess.run(["ip", "netns", "exec", netns, tool, "-w", "-I", *spec], check=True, capture_output=True)
            added.append(tool)
        yield
    finally:
        for tool in added:
            subprocess.run(["ip", "netns", "exec", netns, tool, "-w", "-D", *spec], check=False, capture_output=True)


def tagged_rules(lab, node: str) -> str:
    netns = lab.node(node).netns
    out = [subprocess.run(["ip", "netns", "exec", netns, tool, "-w", "-S"], check=True, capture_output=True, text=True).stdout
           for tool in ("iptables", "ip6tables")]
    return "".join(line for text in out for line in text.splitlines(True) if RULE_COMMENT in line)


def host(report: dict, name: str) -> dict:
    return next(h for h in report["hosts"] if h["node"] == name)


def row(report: dict, name: str, family: str) -> dict:
    return next(r for r in host(report, name)["rows"] if r["family"] == family)


def states(report: dict, name: str, family: str) -> dict[str, str]:
    return {label: entry["state"] for label, entry in row(report, name, family)["ports"].items()}


def recap(proc: subprocess.CompletedProcess, name: str) -> dict[str, int]:
    line = next(l for l in proc.stdout.splitlines() if l.startswith(f"{name} ") and "ok=" in l)
    return {k: int(v) for k, v in (part.split("=") for part in line.split(":", 1)[1].split())}


def listening_on_controller(port: int) -> bool:
    for address, family in ((CONTROLLER4, socket.AF_INET), (CONTROLLER6, socket.AF_INET6)):
        with socket.socket(family) as sock:
            sock.settimeout(2)
            if sock.connect_ex((address, port)) == 0:
                return True
    return False


@pytest.fixture(scope="module")
def clean_run(lab, tmp_path_factory):
    """One preflight of the whole lab, both families of every dual-stack node."""
    report = tmp_path_factory.mktemp("preflight") / "report.json"
    return run_preflight(lab, report, "-e", BOTH_FAMILIES)


def test_table_printed_json_written_every_node_passes(lab, clean_run):
    proc, report = clean_run
    assert proc.returncode == 0, proc.stdout + proc.stderr
    header = next(l for l in proc.stdout.splitlines() if l.startswith("node ") and "family" in l)
    assert header.split()[:5] == ["node", "family", "address", "22/tcp", "445/tcp"] and "63002/tcp from node" in header
    # One table per run: the header is printed once.
    assert proc.stdout.count(header) == 1
    assert "4 node(s): 4 ok, 0 failed" in proc.stdout
    assert report["summary"] == {"nodes": 4, "ok": 4, "failed": 0, "failed_nodes": []}
    for name in ("lin01", "lin02"):
        for family in ("ipv4", "ipv6"):
            assert states(report, name, family) == {"22/tcp": "open", "62286/tcp": "closed", "63002/tcp": "open"}
            assert row(report, name, family)["address"] == getattr(lab.node(name), family)
    assert row(report, "lin01", "ipv4")["controller_address"] == CONTROLLER4
    assert row(report, "lin01", "ipv6")["controller_address"] == CONTROLLER6
    # The controller listened itself (no engine runs), and stopped listening afterwards.
    assert host(report, "lin01")["listener"][CONTROLLER4]["listener"] == "preflight"
    assert not listening_on_controller(63002)


def test_windows_like_node_is_reported_on_its_paths_ports(lab, clean_run):
    _proc, report = clean_run
    win = host(report, "win01")
    assert win["path"] == "windows" and win["ok"]
    seen = states(report, "win01", "ipv4")
    # The lab reaches it over SSH: 22/tcp is its connection port, beside the Windows path's ports.
    assert set(seen) == {"22/tcp", "445/tcp", "139/tcp", "137/udp", "138/udp", "5985/tcp", "5986/tcp", "62286/tcp", "63002/tcp"}
    assert row(report, "win01", "ipv4")["ports"]["22/tcp"]["role"] == "connection"
    assert seen["445/tcp"] == seen["139/tcp"] == "open"  # smbd
    assert seen["137/udp"] == "open"  # nmbd answered a NetBIOS node-status query
    assert seen["5985/tcp"] == seen["5986/tcp"] == "closed"  # Samba is no WinRM
    messages = [p["message"] for p in win["problems"] if p["family"] == "ipv4"]
    assert "5986/tcp closed: WinRM over HTTPS unavailable; no WinRM: no fallback when admin$ staging fails" in messages
    assert all(p["severity"] != "blocking" for p in win["problems"])


def test_ipv6_only_node(lab, clean_run):
    _proc, report = clean_run
    v6 = host(report, "v6n01")
    assert [r["family"] for r in v6["rows"]] == ["ipv6"] and v6["ok"]
    assert row(report, "v6n01", "ipv6")["address"] == lab.node("v6n01").ipv6
    assert row(report, "v6n01", "ipv6")["controller_address"] == CONTROLLER6
    assert states(report, "v6n01", "ipv6") == {"22/tcp": "open", "62286/tcp": "closed", "63002/tcp": "open"}


def test_return_direction_blocked_by_a_node_output_rule_fails_that_node_only(lab, tmp_path):
    drop = ["-p", "tcp", "--dport", "63002", "-j", "DROP"]
    with netns_rule(lab, "lin02", "OUTPUT", drop):
        proc, report = run_preflight(lab, tmp_path / "report.json", "-e", BOTH_FAMILIES)
    assert tagged_rules(lab, "lin02") == ""
    reason = "63002/tcp from node filtered: pull delivery impossible, use push or url"
    lin02 = host(report, "lin02")
    assert not lin02["ok"] and lin02["blocking"] == [f"{reason} (ipv4 {lab.node('lin02').ipv4}, ipv6 {lab.node('lin02').ipv6})"]
    assert states(report, "lin02", "ipv4")["63002/tcp"] == states(report, "lin02", "ipv6")["63002/tcp"] == "filtered"
    # The table says it, the node fails with the reason, the others go on.
    assert f"lin02 ipv4: {reason} [FAILS]" in proc.stdout
    assert proc.returncode != 0 and f"fatal: [lin02]: FAILED! => {{\"changed\": false, \"msg\": \"{reason}" in proc.stdout
    assert recap(proc, "lin02")["failed"] == 1
    for name in ("lin01", "v6n01", "win01"):
        assert recap(proc, name)["failed"] == 0 and host(report, name)["ok"], name
    assert report["summary"]["failed_nodes"] == ["lin02"]
    assert not listening_on_controller(63002)


def test_return_direction_blocked_with_push_delivery_is_a_warning(lab, tmp_path):
    with netns_rule(lab, "lin02", "OUTPUT", ["-p", "tcp", "--dport", "63002", "-j", "DROP"], families=("ipv4",)):
        proc, report = run_preflight(lab, tmp_path / "report.json", "--limit", "lin02", "-e", "fleet_delivery=push")
    assert proc.returncode == 0, proc.stdout
    problem = host(report, "lin02")["problems"][0]
    assert problem["severity"] == "warning" and problem["message"] == (
        "63002/tcp from node filtered: pull delivery impossible; delivery is push, which does not need it")


def test_admin_share_blocked_on_the_windows_like_node(lab, tmp_path):
    with netns_rule(lab, "win01", "INPUT", ["-p", "tcp", "--dport", "445", "-j", "DROP"], families=("ipv4",)):
        proc, report = run_preflight(lab, tmp_path / "report.json", "--limit", "win01")
    assert host(report, "win01")["blocking"] == ["445/tcp filtered: admin$ staging will fail; no fallback: WinRM is blocked too"]
    assert proc.returncode != 0 and recap(proc, "win01")["failed"] == 1


def test_connection_port_blocked_fails_without_waiting_for_ssh(lab, tmp_path):
    with netns_rule(lab, "lin01", "INPUT", ["-p", "tcp", "--dport", "22", "-j", "DROP"], families=("ipv4",)):
        proc, report = run_preflight(lab, tmp_path / "report.json", "--limit", "lin01")
    lin01 = host(report, "lin01")
    assert lin01["blocking"] == ["22/tcp filtered: Ansible cannot connect to the node; nothing can run there"]
    assert states(report, "lin01", "ipv4")["63002/tcp"] == "not checked"
    assert recap(proc, "lin01")["unreachable"] == 0 and recap(proc, "lin01")["failed"] == 1


def test_engine_port_is_configurable_and_the_runs_engine_is_used(lab, tmp_path):
    """With fleet_engine_run_dir naming a running engine on the port, the preflight checks
    against the engine and leaves it running."""
    from ansible_collections.fleet.firmware.plugins.plugin_utils import engine  # pylint: disable=import-outside-toplevel

    port = 63102
    run_dir = lab.lab.home / "preflight-tests" / uuid.uuid4().hex[:8]
    run_dir.mkdir(parents=True, mode=0o700)
    eng = engine.Engine(str(run_dir), engine.EngineSettings(address=[CONTROLLER4], port=port, tls=False)).start()
    try:
        proc, report = run_preflight(lab, tmp_path / "report.json", "--limit", "lin01",
                                     "-e", f"fleet_engine_port={port}", "-e", f"fleet_engine_run_dir={run_dir}")
        assert proc.returncode == 0, proc.stdout
        lin01 = host(report, "lin01")
        assert lin01["engine_port"] == port and states(report, "lin01", "ipv4")[f"{port}/tcp"] == "open"
        assert lin01["listener"][CONTROLLER4]["listener"] == "engine"
        assert engine.attach(str(run_dir)) is not None, "the engine must keep running"
    finally:
        eng.stop()


def test_another_program_on_the_engine_port_is_reported(lab, tmp_path):
    port = 63103
    with socket.socket() as other:
        other.bind((CONTROLLER4, port))
        other.listen(8)
        proc, report = run_preflight(lab, tmp_path / "other.json", "--limit", "lin01", "-e", f"fleet_engine_port={port}")
    assert proc.returncode == 0, proc.stdout
    listener = host(report, "lin01")["listener"][CONTROLLER4]
    assert listener["listener"] == "other" and "the run's engine cannot listen there" in listener["detail"]
    assert f"controller: another program listens on {CONTROLLER4}:{port}" in proc.stdout


def test_bad_input_fails_the_node_and_is_in_the_table(lab, tmp_path):
    proc, report = run_preflight(lab, tmp_path / "report.json", "--limit", "lin01", "-e", "fleet_engine_port=70000")
    lin01 = host(report, "lin01")
    assert not lin01["ok"] and "70000" in lin01["blocking"][0] and lin01["rows"] == []
    assert "lin01: FAILED: fleet.firmware.preflight: bad engine_port 70000" in proc.stdout
    assert proc.returncode != 0 and recap(proc, "lin01")["failed"] == 1
