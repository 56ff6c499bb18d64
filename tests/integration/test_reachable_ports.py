# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet.firmware.reachable_ports lookup and the fleet.firmware.reach module against the lab:
real sockets, real iptables/ip6tables rules in the nodes' namespaces, real sshd and nmbd."""
from __future__ import annotations

import pytest

from fleetlab import LAB_ID
from reach_helpers import lookup, node_listener, node_rule, private_resolver

pytestmark = pytest.mark.lab

PORT = 8022  # the test listener's port on lin02


def q(*terms: str, **options) -> str:
    args = [repr(t) for t in terms] + [f"{k}={v!r}" for k, v in options.items()]
    return "query('fleet.firmware.reachable_ports', %s)" % ", ".join(args)


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_open_closed_filtered_made_by_real_rules(lab, family):
    node = lab.node("lin02")
    address = getattr(node, family)
    with node_listener(lab, "lin02", PORT):
        opened = lookup(q(address, ports=[PORT], timeout=1))["data"]["msg"][0][f"{PORT}/tcp"]
        assert opened["state"] == "open" and opened["address"] == address and opened["family"] == family
        assert opened["latency_ms"] is not None and "error" not in opened
        with node_rule(lab, "lin02", "INPUT", ["-p", "tcp", "--dport", str(PORT), "-j", "REJECT", "--reject-with", "tcp-reset"]):
            closed = lookup(q(address, ports=[f"{PORT}/tcp"], timeout=1))["data"]["msg"][0][f"{PORT}/tcp"]
        assert closed["state"] == "closed" and "refused" in closed["error"].lower()
        with node_rule(lab, "lin02", "INPUT", ["-p", "tcp", "--dport", str(PORT), "-j", "DROP"]):
            dropped = lookup(q(address, ports=[PORT], timeout=1))["data"]["msg"][0][f"{PORT}/tcp"]
        assert dropped["state"] == "filtered" and dropped["latency_ms"] is None and "no answer" in dropped["error"]
        # The rules are gone again: the port answers as before.
        assert lookup(q(address, ports=[PORT], timeout=1))["data"]["msg"][0][f"{PORT}/tcp"]["state"] == "open"


def test_linux_path_defaults_to_ssh_and_the_agent_port(lab):
    ports = lookup(q(lab.node("lin01").ipv4, timeout=1))["data"]["msg"][0]
    assert sorted(ports) == ["22/tcp", "62286/tcp"]
    assert ports["22/tcp"]["state"] == "open"
    # No agent runs before a deployment and nothing drops the port: refused.
    assert ports["62286/tcp"]["state"] == "closed"


def test_ipv6_only_node_with_and_without_brackets(lab):
    v6 = lab.node("v6n01").ipv6
    plain, bracketed = lookup(q(v6, f"[{v6}]", ports=[22], timeout=1))["data"]["msg"]
    assert plain["22/tcp"]["state"] == bracketed["22/tcp"]["state"] == "open"
    assert plain["22/tcp"]["address"] == bracketed["22/tcp"]["address"] == v6
    # The node has no IPv4: asking for IPv4 of an IPv6 literal is a clear error.
    failed = lookup(q(v6, ports=[22], family="ipv4"), check=False)
    assert failed["status"] == "FAILED" and v6 in failed["data"]["msg"] and "IPv4" in failed["data"]["msg"]


def test_link_local_with_zone(lab):
    # The controller's own link-local address on the lab bridge, with the bridge as zone: sshd
    # does not listen there (nodes' sshd only), so the kernel refuses at once.
    bridge = f"fflbr{__import__('fleetlab').LAB_ID}"
    out = lab.node_run("lin01", ["ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link"]).stdout
    node_ll = out.split()[3].split("/")[0]
    ports = lookup(q(f"{node_ll}%{bridge}", ports=[22, 1], timeout=1))["data"]["msg"][0]
    assert ports["1/tcp"]["address"] == f"{node_ll}%{bridge}"
    assert ports["1/tcp"]["state"] == "closed"
    assert ports["22/tcp"]["state"] == "closed"  # the nodes' sshd listens on their lab addresses only, not link-local


def test_windows_path_and_netbios_answered_by_nmbd(lab):
    win = lab.node("win01")
    ports = lookup(q(win.ipv4, path="windows", timeout=1))["data"]["msg"][0]
    assert sorted(ports) == sorted(["445/tcp", "139/tcp", "137/udp", "138/udp", "5985/tcp", "5986/tcp", "62286/tcp"])
    assert ports["445/tcp"]["state"] == "open" and ports["139/tcp"]["state"] == "open"
    # A real NetBIOS node-status answer, with the names nmbd registered.
    assert ports["137/udp"]["state"] == "open"
    assert "WIN01" in ports["137/udp"]["netbios_names"]
    # nmbd listens on 138 but never answers an empty datagram.
    assert ports["138/udp"]["state"] == "open|filtered"
    assert ports["5985/tcp"]["state"] == "closed" and ports["5986/tcp"]["state"] == "closed"


def test_udp_port_unreachable_is_closed_and_dropped_udp_is_open_or_filtered(lab):
    lin = lab.node("lin01")
    ports = lookup(q(lin.ipv4, lin.ipv6, ports=["137/udp"], timeout=1))["data"]["msg"]
    assert [p["137/udp"]["state"] for p in ports] == ["closed", "closed"]
    with node_rule(lab, "lin01", "INPUT", ["-p", "udp", "--dport", "137", "-j", "DROP"]):
        ports = lookup(q(lin.ipv4, lin.ipv6, ports=["137/udp"], timeout=1))["data"]["msg"]
    assert [p["137/udp"]["state"] for p in ports] == ["open|filtered", "open|filtered"]
    # nmbd is IPv4 only: over IPv6 the Windows-like node refuses 137/udp.
    win6 = lookup(q(lab.node("win01").ipv6, ports=["137/udp"], timeout=1))["data"]["msg"][0]["137/udp"]
    assert win6["state"] == "closed"


def test_a_name_is_probed_on_every_address_and_says_which_a_client_uses(lab):
    lin = lab.node("lin02")
    with private_resolver({"lin02.fleetlab.test": [lin.ipv4, lin.ipv6]}) as wrap:
        ports = lookup(q("lin02.fleetlab.test", ports=[22], timeout=1), wrap=wrap)["data"]["msg"][0]
        entry = ports["22/tcp"]
        assert sorted(a["address"] for a in entry["addresses"]) == sorted([lin.ipv4, lin.ipv6])
        assert all(a["state"] == "open" for a in entry["addresses"])
        assert entry["address"] == entry["addresses"][0]["address"]  # resolver order: the first that answers
        # SSH dropped over IPv6 only: the client's choice is the address that still answers.
        with node_rule(lab, "lin02", "INPUT", ["-p", "tcp", "--dport", "22", "-j", "DROP"], families=("ipv6",)):
            entry = lookup(q("lin02.fleetlab.test", ports=[22], timeout=1), wrap=wrap)["data"]["msg"][0]["22/tcp"]
        states = {a["address"]: a["state"] for a in entry["addresses"]}
        assert states == {lin.ipv4: "open", lin.ipv6: "filtered"}
        assert entry["address"] == lin.ipv4 and entry["state"] == "open"
        only6 = lookup(q("lin02.fleetlab.test", ports=[22], timeout=1, family="ipv6"), wrap=wrap)["data"]["msg"][0]["22/tcp"]
        assert [a["address"] for a in only6["addresses"]] == [lin.ipv6]


@pytest.mark.parametrize(
    "expression, named",
    [
        (q(f"198.18.{LAB_ID}.250", ports=[0]), "0"),
        (q(f"198.18.{LAB_ID}.250", ports=[70000]), "70000"),
        (q(f"198.18.{LAB_ID}.250", ports=["abc"]), "'abc'"),
        (q(f"198.18.{LAB_ID}.250", ports=["22/sctp"]), "'22/sctp'"),
        (q(f"198.18.{LAB_ID}.250", ports=[22], timeout=0), "timeout"),
        (q(f"198.18.{LAB_ID}.250:22", ports=[22]), f"198.18.{LAB_ID}.250:22"),
        ("query('fleet.firmware.reachable_ports', ports=[22])", "no hosts"),
    ],
)
def test_bad_input_is_refused_naming_the_bad_value(lab, expression, named):
    out = lookup(expression, check=False)
    assert out["status"] == "FAILED"
    assert named in out["data"]["msg"]


def test_bad_input_probes_nothing(lab):
    """A bad port next to good ones: the lookup fails before any packet leaves (the listener sees
    no connection)."""
    lin = lab.node("lin02")
    with node_rule(lab, "lin02", "INPUT", ["-p", "tcp", "--dport", str(PORT), "-j", "LOG", "--log-prefix", "fleet-test"]):
        before = _rule_packets(lab)
        out = lookup(q(lin.ipv4, lin.ipv6, ports=[PORT, "22/sctp"]), check=False)
        assert out["status"] == "FAILED" and "'22/sctp'" in out["data"]["msg"]
        assert _rule_packets(lab) == before
        # The same call without the bad port does reach the rule: the counter is a real witness.
        lookup(q(lin.ipv4, ports=[PORT], timeout=1))
        assert _rule_packets(lab) > before


def _rule_packets(lab) -> int:
    out = lab.node_run("lin02", ["iptables", "-w", "-L", "INPUT", "-v", "-x", "-n"]).stdout
    return sum(int(line.split()[0]) for line in out.splitlines() if "fleet-test-reach" in line)


def test_unresolvable_name_strict_fails_warn_and_ignore_go_on(lab):
    lin = lab.node("lin01")
    with private_resolver({}) as wrap:
        strict = lookup(q("nowhere.fleetlab.test", lin.ipv4, ports=[22]), wrap=wrap, check=False)
        assert strict["status"] == "FAILED" and "nowhere.fleetlab.test" in strict["data"]["msg"]
        warned = lookup(q("nowhere.fleetlab.test", lin.ipv4, ports=[22], on_unresolved="warn"), wrap=wrap)
        missing, found = warned["data"]["msg"]
        assert missing["22/tcp"]["state"] == "unresolved" and "nowhere.fleetlab.test" in missing["22/tcp"]["error"]
        assert found["22/tcp"]["state"] == "open"
        assert "nowhere.fleetlab.test" in warned["stderr"]
        ignored = lookup(q("nowhere.fleetlab.test", ports=[22], on_unresolved="ignore"), wrap=wrap)
        assert ignored["data"]["msg"][0]["22/tcp"]["state"] == "unresolved"
        assert "nowhere.fleetlab.test" not in ignored["stderr"]
        # Ansible's own errors= keyword works on the whole lookup: nothing for any host.
        whole = lookup(q("nowhere.fleetlab.test", lin.ipv4, ports=[22], errors="warn"), wrap=wrap)
        assert whole["data"]["msg"] in (None, [], "") and "nowhere.fleetlab.test" in whole["stderr"]


def test_reach_module_probes_from_the_node(lab):
    """The return direction: from each node towards the controller, through the reach module."""
    controllers = "{{ fleet_lab_controller_ipv4 }},{{ fleet_lab_controller_ipv6 }}"
    results = lab.adhoc("lin01:v6n01", "fleet.firmware.reach", f"hosts={controllers} ports=22,137/udp timeout=1")
    lin01 = results["lin01"].data["reach"]
    assert results["lin01"].status == "SUCCESS" and results["lin01"].data["changed"] is False
    controller4 = lab.node("lin01").ipv4.rsplit(".", 1)[0] + ".1"
    # The controller runs no sshd on its lab addresses: refused from the node.
    assert lin01[controller4]["22/tcp"]["state"] == "closed"
    # The IPv6-only node has no IPv4 route: the IPv4 controller address is unreachable there.
    v6 = results["v6n01"].data["reach"]
    assert v6[controller4]["22/tcp"]["state"] == "filtered" and "unreachable" in v6[controller4]["22/tcp"]["error"].lower()
    with node_rule(lab, "lin01", "OUTPUT", ["-p", "tcp", "--dport", "22", "-d", controller4, "-j", "DROP"], families=("ipv4",)):
        blocked = lab.adhoc("lin01", "fleet.firmware.reach", f"hosts={controller4} ports=22 timeout=1")["lin01"].data
    assert blocked["reach"][controller4]["22/tcp"]["state"] == "filtered" and blocked["all_open"] is False


def test_reach_module_refuses_bad_input(lab):
    for args, named in (("hosts=198.18.4.250 ports=70000", "70000"), ("hosts=198.18.4.250 ports=22/sctp", "22/sctp"), ("hosts=a:b:c ports=22", "a:b:c")):
        result = lab.adhoc("lin01", "fleet.firmware.reach", args)["lin01"]
        assert result.status == "FAILED" and named in result.data["msg"]
