# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The preflight's logic (plugin_utils/preflight.py) and its listener
(plugin_utils/preflight_listener.py). The listener is tested on loopback with real sockets; the
lab tests (tests/integration/test_preflight.py) run the whole playbook against real nodes."""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from ansible_collections.fleet.firmware.plugins.module_utils import ports as fleet_ports
from ansible_collections.fleet.firmware.plugins.plugin_utils import preflight as pf
from ansible_collections.fleet.firmware.plugins.plugin_utils import preflight_listener as pl


def _row(address: str, family: str, states: dict[str, str], plans: list[pf.PortPlan]) -> dict:
    by_label = {p.label: p for p in plans}
    ports = {label: {"state": state, "role": by_label[label].role, "direction": by_label[label].direction} for label, state in states.items()}
    return {"family": family, "address": address, "controller_address": None, "ports": ports}


# --------------------------------------------------------------------------------------------
# Which ports
# --------------------------------------------------------------------------------------------


def test_linux_path_over_ssh_checks_ssh_agent_then_engine():
    plans = pf.plan_ports("linux", 62286, 63002, 22)
    assert [(p.label, p.role, p.direction, p.connection) for p in plans] == [
        ("22/tcp", "ssh", fleet_ports.TO_NODE, True),
        ("62286/tcp", "agent", fleet_ports.TO_NODE, False),
        ("63002/tcp", "engine", fleet_ports.FROM_NODE, False),
    ]


def test_ssh_on_another_port_is_still_the_ssh_step():
    plans = pf.plan_ports("linux", 62286, 63002, 2222)
    assert plans[0].label == "2222/tcp" and plans[0].role == "ssh"
    assert "22/tcp" not in [p.label for p in plans]


def test_windows_path_over_ssh_adds_the_connection_port():
    labels = [p.label for p in pf.plan_ports("windows", 62286, 64002, 22)]
    assert labels == ["22/tcp", "445/tcp", "139/tcp", "137/udp", "138/udp", "5985/tcp", "5986/tcp", "62286/tcp", "64002/tcp"]


def test_windows_path_over_winrm_marks_the_winrm_port_as_the_connection():
    plans = pf.plan_ports("windows", 62286, 63002, pf.connection_port("winrm", None, "https"))
    assert [p.label for p in plans if p.connection] == ["5986/tcp"]
    assert pf.connection_port("winrm", None, "http") == 5985
    assert pf.connection_port("local", None) is None
    assert pf.connection_port("ssh", "2200") == 2200


def test_default_path_follows_the_connection():
    assert pf.default_path("winrm") == "windows"
    assert pf.default_path("ssh", "powershell") == "windows"
    assert pf.default_path("ssh") == "linux"


@pytest.mark.parametrize("bad", [0, 70000, "abc", True, None])
def test_bad_ports_name_the_value(bad):
    with pytest.raises(pf.PreflightError, match="engine_port"):
        pf.check_port("engine_port", bad)


def test_bad_path_is_named():
    with pytest.raises(pf.PreflightError, match="'solaris'"):
        pf.plan_ports("solaris", 62286, 63002, 22)


# --------------------------------------------------------------------------------------------
# What breaks: the texts come from ports.py
# --------------------------------------------------------------------------------------------


def test_engine_blocked_from_node_says_pull_delivery_is_impossible():
    plans = pf.plan_ports("linux", 62286, 63002, 22)
    rows = [_row("198.18.0.11", "ipv4", {"22/tcp": "open", "62286/tcp": "closed", "63002/tcp": "filtered"}, plans)]
    problems = pf.evaluate(plans, rows, "auto")
    assert [p["message"] for p in problems] == ["63002/tcp from node filtered: pull delivery impossible, use push or url"]
    assert pf.settle(problems, rows) == ["63002/tcp from node filtered: pull delivery impossible, use push or url"]


def test_with_push_delivery_a_blocked_engine_port_is_a_warning():
    plans = pf.plan_ports("linux", 62286, 63002, 22)
    rows = [_row("198.18.0.11", "ipv4", {"22/tcp": "open", "62286/tcp": "closed", "63002/tcp": "filtered"}, plans)]
    problems = pf.evaluate(plans, rows, "push")
    assert problems[0]["severity"] == fleet_ports.WARNING and "delivery is push" in problems[0]["message"]
    assert pf.settle(problems, rows) == []


def test_admin_share_blocked_with_winrm_open_is_a_warning_with_fallback():
    plans = pf.plan_ports("windows", 62286, 63002, 5986)
    states = {"445/tcp": "filtered", "139/tcp": "filtered", "137/udp": "open|filtered", "138/udp": "open|filtered",
              "5985/tcp": "closed", "5986/tcp": "open", "62286/tcp": "closed", "63002/tcp": "open"}
    rows = [_row("198.18.0.14", "ipv4", states, plans)]
    problems = {p["port"]: p for p in pf.evaluate(plans, rows, "auto")}
    assert problems["445/tcp"]["message"] == "445/tcp filtered: admin$ staging will fail; WinRM fallback possible"
    assert problems["445/tcp"]["severity"] == fleet_ports.WARNING
    assert problems["5985/tcp"]["severity"] == fleet_ports.INFO  # HTTPS answers
    assert pf.settle(list(problems.values()), rows) == []


def test_admin_share_and_winrm_blocked_fails_the_node():
    plans = pf.plan_ports("windows", 62286, 63002, 22)
    states = {"22/tcp": "open", "445/tcp": "closed", "139/tcp": "closed", "137/udp": "closed", "138/udp": "closed",
              "5985/tcp": "filtered", "5986/tcp": "filtered", "62286/tcp": "closed", "63002/tcp": "open"}
    rows = [_row("198.18.0.14", "ipv4", states, plans)]
    reasons = pf.settle(pf.evaluate(plans, rows, "auto"), rows)
    assert reasons == ["445/tcp closed: admin$ staging will fail; no fallback: WinRM is blocked too"]


def test_connection_port_blocked_fails_and_the_return_direction_is_not_checked():
    plans = pf.plan_ports("linux", 62286, 63002, 22)
    rows = [_row("198.18.0.11", "ipv4", {"22/tcp": "filtered", "62286/tcp": "filtered", "63002/tcp": pf.NOT_CHECKED}, plans)]
    problems = pf.evaluate(plans, rows, "auto")
    assert problems[0]["message"] == "22/tcp filtered: Ansible cannot connect to the node; nothing can run there"
    assert {p["port"]: p["severity"] for p in problems} == {"22/tcp": "blocking", "62286/tcp": "warning", "63002/tcp": "info"}
    assert len(pf.settle(problems, rows)) == 1


def test_agent_port_refused_is_fine_before_a_run():
    plans = pf.plan_ports("linux", 62286, 63002, 22)
    rows = [_row("198.18.0.11", "ipv4", {"22/tcp": "open", "62286/tcp": "closed", "63002/tcp": "open"}, plans)]
    assert pf.evaluate(plans, rows, "auto") == []


def test_a_problem_on_one_address_only_does_not_fail_the_node():
    plans = pf.plan_ports("linux", 62286, 63002, 22)
    rows = [_row("198.18.0.11", "ipv4", {"22/tcp": "open", "62286/tcp": "closed", "63002/tcp": "open"}, plans),
            _row("fd00::b", "ipv6", {"22/tcp": "open", "62286/tcp": "closed", "63002/tcp": "filtered"}, plans)]
    problems = pf.evaluate(plans, rows, "auto")
    assert pf.settle(problems, rows) == []
    assert problems[0]["severity"] == fleet_ports.WARNING and problems[0]["message"].endswith("the node's other address works")


def test_the_same_reason_on_every_address_is_said_once_with_the_addresses():
    plans = pf.plan_ports("linux", 62286, 63002, 22)
    rows = [_row(a, f, {"22/tcp": "open", "62286/tcp": "closed", "63002/tcp": "filtered"}, plans) for a, f in (("198.18.0.11", "ipv4"), ("fd00::b", "ipv6"))]
    assert pf.settle(pf.evaluate(plans, rows, "auto"), rows) == [
        "63002/tcp from node filtered: pull delivery impossible, use push or url (ipv4 198.18.0.11, ipv6 fd00::b)"]


def test_every_role_has_words_and_a_severity():
    for role in list(fleet_ports.ROLES) + [fleet_ports.CONNECTION_ROLE]:
        impact = fleet_ports.IMPACTS[role]
        assert impact["breaks"] and impact["severity"] in (fleet_ports.BLOCKING, fleet_ports.WARNING, fleet_ports.INFO)
        for fallback in impact.get("fallback", ()):
            assert fallback in fleet_ports.ROLES


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


def _host(name: str, engine_state: str) -> dict:
    plans = pf.plan_ports("linux", 62286, 63002, 22)
    rows = [_row("198.18.0.11", "ipv4", {"22/tcp": "open", "62286/tcp": "closed", "63002/tcp": engine_state}, plans)]
    problems = pf.evaluate(plans, rows, "auto")
    return {"path": "linux", "rows": rows, "problems": problems, "blocking": pf.settle(problems, rows)}


def test_report_and_table():
    report = pf.build_report({"lin01": _host("lin01", "open"), "lin02": _host("lin02", "filtered"), "bad": {"failed": True, "msg": "bad path 'x'"}})
    assert report["summary"] == {"nodes": 3, "ok": 1, "failed": 2, "failed_nodes": ["lin02", "bad"]}
    table = pf.render_table(report)
    assert table[0].split() == ["node", "family", "address", "22/tcp", "62286/tcp", "63002/tcp", "from", "node", "result"]
    assert table[1].split() == ["lin01", "ipv4", "198.18.0.11", "open", "closed", "open", "ok"]
    assert table[2].split()[-2:] == ["filtered", "FAILED"]
    assert "lin02 ipv4: 63002/tcp from node filtered: pull delivery impossible, use push or url [FAILS]" in table
    assert "bad: FAILED: bad path 'x'" in table
    assert table[-1] == "3 node(s): 1 ok, 2 failed (lin02, bad)"


# --------------------------------------------------------------------------------------------
# Addresses and the listener (loopback only)
# --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_route_source_and_configured_controller_address():
    assert pf.route_source("127.0.0.1") == "127.0.0.1"
    nodes = [("ipv4", "127.0.0.1")]
    assert pf.controller_addresses(nodes, []) == {"ipv4": "127.0.0.1"}
    assert pf.controller_addresses(nodes, ["127.0.0.2", "::1"]) == {"ipv4": "127.0.0.2"}


def test_listener_listens_only_inside_the_block_and_workers_share_the_port():
    port = _free_port()
    with pl.listening(["127.0.0.1"], port) as first:
        assert first["127.0.0.1"]["listener"] == pl.PREFLIGHT and _answers(port)
        # A second worker at the same time (SO_REUSEPORT), then the first one ends.
        with pl.listening(["127.0.0.1"], port) as second:
            assert second["127.0.0.1"]["listener"] == pl.PREFLIGHT
        assert _answers(port)
    assert not _answers(port)


def test_listener_reports_another_program_and_a_foreign_address():
    port = _free_port()
    with socket.socket() as other:
        other.bind(("127.0.0.1", port))
        other.listen(1)
        with pl.listening(["127.0.0.1"], port) as status:
            assert status["127.0.0.1"]["listener"] == pl.OTHER and "another program" in status["127.0.0.1"]["detail"]
    # TEST-NET-2 is never an address of this machine; bind sends nothing.
    with pl.listening(["198.51.100.7"], port) as status:
        assert status["198.51.100.7"]["listener"] == pl.FAILED and "not an address of this controller" in status["198.51.100.7"]["detail"]


def test_listener_goes_away_with_a_killed_worker():
    """The kernel closes a killed worker's socket: nothing stays behind after kill -9."""
    port = _free_port()
    code = ("import sys, time; from ansible_collections.fleet.firmware.plugins.plugin_utils import preflight_listener as pl\n"
            f"with pl.listening(['127.0.0.1'], {port}):\n    print('up', flush=True); time.sleep(60)\n")
    env = {"PYTHONPATH": ":".join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)  # pylint: disable=consider-using-with
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        assert _answers(port)
    finally:
        proc.kill()
        proc.wait()
    assert not _answers(port)
