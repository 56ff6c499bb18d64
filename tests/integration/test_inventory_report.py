# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""fleet.firmware.inventory_report end to end over the lab (issue 19 item 4): the table and its
JSON for every host of the play (also under --limit, also a host that cannot be planned), and
the compliance report over three runs with a deploy between the first two and a node that
drifted (a version changed outside any run) before the third; the page in headless chromium.
Nothing stays on the nodes: check mode stages nothing, the test removes the version files."""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest

import conftest
from checks import recap
from deploy_helpers import agent_processes, lab_trust
from firewall_helpers import module_args, reset_firewall, snapshot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
sys.path.insert(0, str(conftest.REPO / "tests" / "unit" / "plugins" / "plugin_utils"))
from sample_repo import SAMPLE, make_sample_repo  # noqa: E402  pylint: disable=wrong-import-position
import report_browser  # noqa: E402  pylint: disable=wrong-import-position,wrong-import-order

pytestmark = pytest.mark.lab
PLAYBOOK = conftest.REPO / "playbooks" / "inventory_report.yml"
LINUX = ("lin01", "lin02", "v6n01")


@pytest.fixture
def fleet(lab, tmp_path):
    state = f"{lab.lab.home}/node"
    before = {}
    for node in LINUX:
        reset_firewall(lab, node)
        lab.node_run(node, ["sh", "-c", f"rm -f {state}/*.version"])
        before[node] = snapshot(lab, node)
    repo = make_sample_repo(tmp_path / "repo", state)
    yield {"repo": repo, "state": state, "history": tmp_path / "history"}
    for node in LINUX:
        lab.node_run(node, ["sh", "-c", f"rm -f {state}/*.version"])
        assert not agent_processes(lab, node) and snapshot(lab, node) == before[node], node
        assert lab.node_run(node, ["sh", "-c", "ls -d /var/tmp/fleet-firmware-* 2>/dev/null"], check=False).stdout == "", node


def report(lab, fleet, tmp_path, name: str, hosts: str = "linux", *extra: str) -> tuple[dict, str]:
    out = tmp_path / f"{name}.json"
    variables = {"fleet_repository": str(fleet["repo"]), "fleet_trust": lab_trust(), "fleet_hosts": hosts, "fleet_inventory_report": str(out),
                 "fleet_compliance_dir": str(fleet["history"]), "fleet_runs_dir": str(lab.lab.home / "runs"), "fleet_compliance_keep": 10}
    proc = lab.playbook(PLAYBOOK, "-e", json.dumps(variables), *extra, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    return json.loads(out.read_text()), output


def by_node(rows: list[dict]) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for row in rows:
        found.setdefault(row["node"], {})[row["component"]] = row["action"]
    return found


def test_the_table_the_limit_and_compliance_over_three_runs(lab, fleet, tmp_path):
    names = [entry[0] for entry in SAMPLE]
    first, output = report(lab, fleet, tmp_path, "first")
    assert by_node(first["rows"]) == {node: {name: "install" for name in names} for node in LINUX}, output
    assert "9 change(s) on 3 node(s); 0 node(s) could not be planned" in output

    # A deploy between the first and the second run: lin01 and lin02 reach the baseline.
    args = dict(repository=str(fleet["repo"]), tag="invrep-dep", run_dir=str(lab.lab.home / "runs" / "invrep-dep"), lease=30, trust=lab_trust())
    results = lab.adhoc("lin01:lin02", "fleet.firmware.deploy", module_args(**args), timeout=300)
    assert all(r.status == "CHANGED" for r in results.values()), results
    second, _output = report(lab, fleet, tmp_path, "second")
    assert by_node(second["rows"])["lin01"] == {name: "skip" for name in names}
    assert by_node(second["rows"])["v6n01"] == {name: "install" for name in names}

    # lin02's BMC goes back to 2.30 outside any run; the third run covers lin01 and lin02 only.
    lab.node_run("lin02", ["sh", "-c", f"echo 2.30 > {fleet['state']}/bmc-firmware.version"])
    third, output = report(lab, fleet, tmp_path, "third", "linux", "--limit", "lin01,lin02")
    assert sorted(by_node(third["rows"])) == ["lin01", "lin02"], output
    assert by_node(third["rows"])["lin02"]["bmc-firmware"] == "upgrade"
    counts = recap(output)
    assert set(counts) == {"lin01", "lin02"}, counts

    model = json.loads((fleet["history"] / "compliance.json").read_text())
    assert len(model["snapshots"]) == 3
    entries = {(e["node"], e["component"]): e for e in model["entries"]}
    drifted = entries[("lin02", "bmc-firmware")]
    assert (drifted["installed"], drifted["baseline"], drifted["at_baseline"]) == ("2.30", "2.31", False)
    assert drifted["drift"] == {"from": "2.31", "to": "2.30", "by_run": None}
    # lin01 changed in the deploy, and the ledger says by which run.
    assert entries[("lin01", "nic-firmware")]["changed_by_run"] == "invrep-dep" and entries[("lin01", "nic-firmware")]["drift"] is None
    # v6n01 was left out of the third run: its second snapshot stands.
    assert entries[("v6n01", "bmc-firmware")]["seen"] == model["snapshots"][1]
    assert model["summary"] == {"nodes": 3, "nodes_at_baseline": 1, "nodes_at_baseline_pct": 33.3, "components": 9,
                                "components_at_baseline": 5, "components_at_baseline_pct": 55.6, "drifted": 1, "drifted_outside_runs": 1}
    table = list(csv.DictReader((fleet["history"] / "compliance.csv").open(encoding="utf-8")))
    assert len(table) == 9 and {r["node"] for r in table if r["at_baseline"] == "yes"} == {"lin01", "lin02"}
    if report_browser.missing():
        pytest.skip(report_browser.missing())
    seen = report_browser.inspect_compliance(fleet["history"] / "compliance.html", "compliance-integration.png")
    assert seen["console"] == [] and seen["scripts"] == 0 and len(seen["rows"]) == 9
    assert seen["drift"][("lin02", "bmc-firmware")] == "2.31 → 2.30 (outside any run)"
    assert "1/3 (33.3 %)" in seen["summary"]


def test_a_host_that_cannot_be_reached_is_in_the_table_with_why(lab, fleet, tmp_path):
    # ghost01: a second inventory's host on a closed loopback port (refused at once, no traffic
    # leaves the machine). It stays in the play (ignore_unreachable) and its row says why.
    extra = tmp_path / "ghost.ini"
    extra.write_text("[linux]\nghost01 ansible_host=127.0.0.1 ansible_port=9\n")
    rows, output = report(lab, fleet, tmp_path, "mixed", "lin01:ghost01", "-i", str(extra))
    nodes = by_node(rows["rows"])
    assert nodes["ghost01"] == {"-": "ERROR"} and nodes["lin01"] == {name: "install" for name, *_rest in SAMPLE}, output
    error = next(r for r in rows["rows"] if r["node"] == "ghost01")
    assert error["reason"].startswith("unreachable: "), error
    assert "1 node(s) could not be planned" in output
    # The history leaves the unplanned host out (it says nothing of its versions).
    model = json.loads((fleet["history"] / "compliance.json").read_text())
    assert {e["node"] for e in model["entries"]} == {"lin01"}
