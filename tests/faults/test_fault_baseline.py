# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The check every fault scenario ends with, checked itself: a run without a fault leaves
nothing, and each kind of leftover planted by hand is found."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from fault_helpers import (IPV4_NODE, IPV6_NODE, assert_nothing_left, deploy_playbook, fake_component, ledger_problem, leftovers,
                           make_fault_repo, prepare_nodes, run_dir, state_dir)

pytestmark = [pytest.mark.lab, pytest.mark.faults]


def test_a_run_without_a_fault_installs_everything_and_leaves_nothing(lab, tmp_path):
    before = prepare_nodes(lab, (IPV4_NODE, IPV6_NODE))
    repo = make_fault_repo(tmp_path / "repo", state_dir(lab), [fake_component("bmc", "1.0", pad=1 << 20), fake_component("nic", "2.0")])
    proc = deploy_playbook(lab, tmp_path, repo, "flt-base", f"{IPV4_NODE}:{IPV6_NODE}")
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, output
    assert_nothing_left(lab, "flt-base", before, timeout=10)
    for node in before:
        versions = lab.node_run(node, ["cat", f"{state_dir(lab)}/bmc.version", f"{state_dir(lab)}/nic.version"]).stdout.split()
        assert versions == ["1.0", "2.0"], (node, versions)


def test_each_kind_of_leftover_is_found(lab):
    before = prepare_nodes(lab, (IPV4_NODE,))[IPV4_NODE]
    tag = "flt-planted"
    assert leftovers(lab, IPV4_NODE, tag, before) == []
    planted = [
        (["touch", f"{state_dir(lab)}/bios.partial"], "half-installed ['bios']"),
        (["mkdir", "-p", f"/var/tmp/fleet-firmware-{tag}"], "staged files"),
        (["nft", "add", "table", "inet", f"fleet_firmware_{tag.replace('-', '_')}"], "ruleset differs"),
    ]
    try:
        for argv, expected in planted:
            lab.node_run(IPV4_NODE, argv)
            assert any(problem.startswith(expected) for problem in leftovers(lab, IPV4_NODE, tag, before)), expected
    finally:
        prepare_nodes(lab, (IPV4_NODE,))
        lab.node_run(IPV4_NODE, ["rm", "-rf", f"/var/tmp/fleet-firmware-{tag}"])
    assert leftovers(lab, IPV4_NODE, tag, before) == []


@pytest.mark.parametrize("last, clean", [
    ({"stage": "cleaned"}, True),
    ({"stage": "failed", "message": "cleanup failed: no route to host (the agent's lease will finish it)"}, True),
    ({"stage": "failed", "component": "fw", "message": "rc 3"}, False),  # a component's failure is no end
    ({"stage": "installing", "component": "fw", "message": "installing fw"}, False),  # a message is no end either
    ({"stage": "cancelled", "message": "cancelled by SIGINT"}, False),  # cancelled, but never cleaned
    ({"stage": "failed"}, False),  # failed without saying why
])
def test_a_ledger_counts_as_ended_only_when_cleaned_or_the_session_says_why_not(tmp_path, last, clean):
    lab = SimpleNamespace(lab=SimpleNamespace(home=tmp_path))  # only the run folder is read
    ledger = Path(run_dir(lab, "flt-ledger")) / "ledger"
    ledger.mkdir(parents=True)
    events = [{"stage": "staged"}, {"stage": "installing", "component": "fw"}, last]
    (ledger / f"{IPV4_NODE}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    problem = ledger_problem(lab, "flt-ledger", IPV4_NODE)
    assert (problem is None) == clean, problem
