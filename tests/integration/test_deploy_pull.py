# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pull mode against the lab (issue 15 item 3): the node calls the controller.

In a pull-mode deploy the node opens no port and no firewall rule and the controller never
connects to the agent's port (a counting rule of the test's own on the node, its listening
sockets and our tagged rules, sampled while the deploy runs); the engine writes the agent's
events into the ledger, one sequence per node; under ``auto`` a node that loses the engine
after its start has its agent open its port, and the deploy takes over as push does.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from deploy_helpers import by_name, component, left_behind, make_repo
from firewall_helpers import ours, wait_until
from test_deploy import LINUX, NODE, V6, clean, deploy, fresh, installed, run_dir, state_dir  # noqa: F401  pylint: disable=unused-import

pytestmark = pytest.mark.lab

AGENT_PORT = 62286
ENGINE_PORT = 63002
COUNTER = "fleet_pull_test"  # the test's own table (no "fleet-firmware" marker: never ours to sweep)


def count_connections_to_the_agent_port(lab, node: str) -> None:
    for command in (f"add table inet {COUNTER}",
                    f"add chain inet {COUNTER} input {{ type filter hook input priority -10 ; policy accept ; }}",
                    f"add rule inet {COUNTER} input tcp dport {AGENT_PORT} counter"):
        lab.node_run(node, ["nft", command])


def connections_to_the_agent_port(lab, node: str) -> int:
    listing = json.loads(lab.node_run(node, ["nft", "-j", "list", "table", "inet", COUNTER]).stdout)
    return sum(item["rule"]["expr"][-1]["counter"]["packets"] for item in listing["nftables"] if "rule" in item)


def stop_counting(lab, node: str) -> None:
    lab.node_run(node, ["nft", "delete", "table", "inet", COUNTER], check=False)


class NodeWatch(threading.Thread):
    """Samples each node while the deploy runs: a tagged rule of ours, a socket listening on the agent's port."""

    def __init__(self, lab, nodes: tuple) -> None:
        super().__init__(daemon=True)
        self.lab, self.nodes = lab, nodes
        self.halt = threading.Event()
        self.seen: dict[str, list[str]] = {node: [] for node in nodes}
        self.samples = 0

    def run(self) -> None:
        while not self.halt.is_set():
            for node in self.nodes:
                rules = ours(self.lab, node)
                if rules:
                    self.seen[node].append(f"rule: {rules}")
                listening = self.lab.node_run(node, ["ss", "-Hltn", f"sport = :{AGENT_PORT}"], check=False).stdout.strip()
                if listening:
                    self.seen[node].append(f"listening: {listening}")
            self.samples += 1
            self.halt.wait(0.2)


def ledger(lab, tag: str, node: str) -> list[dict]:
    path = Path(run_dir(lab, tag)) / "ledger" / f"{node}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_pull_mode_opens_nothing_on_the_node_and_the_engine_writes_one_sequence(lab, fresh, tmp_path):
    repo = make_repo(tmp_path / "r", state_dir(lab), [component("fw-a", "1.0"), component("fw-b", "2.0", requires=("fw-a",))])
    nodes = (NODE, V6)  # IPv4 and IPv6-only
    for node in nodes:
        count_connections_to_the_agent_port(lab, node)
    watch = NodeWatch(lab, nodes)
    watch.start()
    try:
        results = deploy(lab, ":".join(nodes), repo, "dep-pull", extra=["--forks", "2"])
    finally:
        watch.halt.set()
        watch.join()
    try:
        for node in nodes:
            result = results[node]
            assert result.status == "CHANGED" and result.data["delivery"] == "pull", result.data
            assert {n: c["status"] for n, c in by_name(result.data).items()} == {"fw-a": "installed", "fw-b": "installed"}
            assert by_name(result.data)["fw-b"]["after"] == "2.0"  # the agent's plan after its installs
            assert installed(lab, node, "fw-a") == "1.0" and installed(lab, node, "fw-b") == "2.0"
            # Nothing into the node: no SYN to the agent's port, no listener, no tagged rule, ever.
            assert connections_to_the_agent_port(lab, node) == 0
            assert watch.samples > 0 and watch.seen[node] == [], watch.seen[node]
            # The agent tore itself down and said so: no round trip to clean up.
            assert any("stopped itself" in line for line in result.data["cleanup"]), result.data["cleanup"]
            events = ledger(lab, "dep-pull", node)
            assert [e["seq"] for e in events] == list(range(1, len(events) + 1)), events  # one sequence per node
            by_agent = [(e["stage"], e["component"]) for e in events if e["source"] == "agent"]
            for name in ("fw-a", "fw-b"):
                assert [stage for stage, c in by_agent if c == name] == ["downloading", "verified", "installing", "installed"], by_agent
            assert all(e["source"] in ("engine", "agent", "deploy") for e in events)
            assert "firewall_open" not in [e.get("stage") for e in events]
            assert events[-1]["stage"] == "cleaned"
    finally:
        for node in nodes:
            stop_counting(lab, node)
    for node in nodes:
        assert left_behind(lab, node, "dep-pull", fresh[node]) == []


def test_a_second_run_with_nothing_to_do_has_its_agent_stop_itself_through_the_engine(lab, fresh, tmp_path):
    repo = make_repo(tmp_path / "r", state_dir(lab), [component("fw-n", "1.0")])
    assert deploy(lab, NODE, repo, "dep-pull-n1")[NODE].status == "CHANGED"
    result = deploy(lab, NODE, repo, "dep-pull-n2")[NODE]
    assert result.status == "SUCCESS" and result.data["changed"] is False, result.data
    assert by_name(result.data)["fw-n"]["status"] == "skipped", result.data
    # The empty job told the agent there is nothing to do: it tore itself down, no SSH round trip.
    assert any("stopped itself" in line for line in result.data["cleanup"]), result.data["cleanup"]
    stages = [e.get("stage") for e in ledger(lab, "dep-pull-n2", NODE)]
    assert stages[-1] == "cleaned" and "installing" not in stages, stages
    assert left_behind(lab, NODE, "dep-pull-n2", fresh[NODE]) == []


def _reject_new_connections_after_two(lab, node: str, delete: bool = False) -> None:
    """The node's way back blocked for every new connection but the first two (the launcher's check and
    the agent's uplink): the agent keeps its uplink and cannot download. A rule of the user's, not ours."""
    base = ["-p", "tcp", "--dport", str(ENGINE_PORT), "-m", "conntrack", "--ctstate", "NEW"]
    nth = ["-m", "statistic", "--mode", "nth", "--every", "1000000", "--packet", "0"]
    rules = [base + ["-j", "REJECT"], base + nth + ["-j", "ACCEPT"], base + nth + ["-j", "ACCEPT"]]
    for tool in ("iptables-legacy", "ip6tables-legacy"):
        for rule in rules:
            lab.node_run(node, [tool, "-D" if delete else "-I", "OUTPUT"] + rule, check=not delete)


def test_auto_takes_over_with_push_when_the_node_cannot_download_from_the_engine(lab, fresh, tmp_path):
    repo = make_repo(tmp_path / "r", state_dir(lab), [component("fw-d", "1.0")])
    _reject_new_connections_after_two(lab, NODE)
    try:
        result = deploy(lab, NODE, repo, "dep-pull-d")[NODE]
    finally:
        _reject_new_connections_after_two(lab, NODE, delete=True)
    assert result.status == "CHANGED" and result.data["delivery"] == "push", result.data
    assert installed(lab, NODE, "fw-d") == "1.0"
    stages = [e.get("stage") for e in ledger(lab, "dep-pull-d", NODE)]
    assert stages[-1] == "cleaned" and "installed" in stages
    assert left_behind(lab, NODE, "dep-pull-d", fresh[NODE]) == []


def _reject_the_way_back(lab, node: str, delete: bool = False) -> None:
    for tool in ("iptables-legacy", "ip6tables-legacy"):
        lab.node_run(node, [tool, "-D" if delete else "-I", "OUTPUT", "-p", "tcp", "--dport", str(ENGINE_PORT), "-j", "REJECT"],
                     check=not delete)


def test_auto_takes_over_on_the_agents_port_when_the_node_loses_the_engine_mid_install(lab, fresh, tmp_path):
    repo = make_repo(tmp_path / "r", state_dir(lab), [component("slow-p", "1.0", sleep=30), component("next-p", "1.0")])
    box: dict = {}
    runner = threading.Thread(target=lambda: box.update(deploy(lab, NODE, repo, "dep-pull-m")))
    runner.start()
    try:
        assert wait_until(lambda: any(e.get("stage") == "installing" for e in _events(lab, "dep-pull-m", NODE)), 120), "no install started"
        _reject_the_way_back(lab, NODE)  # the uplink fails from now on: every connection to the engine
        runner.join(300)
    finally:
        _reject_the_way_back(lab, NODE, delete=True)
    result = box[NODE]
    assert result.status == "CHANGED" and result.data["delivery"] == "push", result.data.get("msg")
    assert {n: c["status"] for n, c in by_name(result.data).items()} == {"slow-p": "installed", "next-p": "installed"}
    assert ledger(lab, "dep-pull-m", NODE)[-1]["stage"] == "cleaned"
    assert left_behind(lab, NODE, "dep-pull-m", fresh[NODE]) == []


def _events(lab, tag: str, node: str) -> list[dict]:
    try:
        return ledger(lab, tag, node)
    except (OSError, ValueError):
        return []
