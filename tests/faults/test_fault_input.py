# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad input, through whole deploy runs on an IPv4 and an IPv6-only node: a file escaping the
repository folder, a hash mismatch, a dependency cycle. Each is refused on the controller with
a message naming the bad value, before any node is touched: no ledger, no engine, no agent,
nothing staged (fault_helpers.assert_nothing_left on every node).

And a huge manifest: 10,000 components in one ``requires`` chain (dependents listed first),
every one already current on the node. It works (docs/repository.md, Size): the run plans
10,000 components and installs none. Its wall time and the controller's peak memory are
printed (``-s`` shows them), never asserted.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from fault_helpers import (IPV4_NODE, IPV6_NODE, assert_nothing_left, fake_component, ledger_events, make_fault_repo, prepare_nodes,
                           run_dir, state_dir)
from fault_node_helpers import by_name, finish, host_results, measured_deploy, start_deploy

from ansible_collections.fleet.firmware.plugins.plugin_utils import engine as engine_mod

pytestmark = [pytest.mark.lab, pytest.mark.faults]

NODES = (IPV4_NODE, IPV6_NODE)
HOSTS = f"{IPV4_NODE}:{IPV6_NODE}"
HUGE = 10_000


def edit_manifest(repo: Path, change) -> None:
    path = repo / "manifest.yml"
    data = yaml.safe_load(path.read_text())
    change(data["components"])
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def refused(lab, tmp_path: Path, repo: Path, tag: str, before: dict) -> dict[str, str]:
    """Run the deploy; every host fails on the controller and nothing of the run exists anywhere.
    Returns each host's message."""
    proc = start_deploy(lab, tmp_path, repo, tag, HOSTS)
    output = finish(proc)
    assert proc.returncode != 0, output
    results = host_results(output)
    assert set(results) == set(NODES), output
    for node in NODES:
        assert results[node]["_status"] == "fatal", results[node]
        assert ledger_events(lab, tag, node) == [], "the run reached the node"
    assert engine_mod.attach(run_dir(lab, tag)) is None and not os.path.exists(run_dir(lab, tag)), "an engine was started"
    assert_nothing_left(lab, tag, before, timeout=10)
    return {node: results[node]["msg"] for node in NODES}


def two_components(lab, tmp_path: Path) -> Path:
    return make_fault_repo(tmp_path / "repo", state_dir(lab), [fake_component("bmc", "1.0", pad=4096), fake_component("nic", "2.0")])


@pytest.mark.parametrize("escape", ["dotdot", "absolute", "symlink"])
def test_a_file_escaping_the_repository_folder_is_refused_by_name(lab, tmp_path, escape):
    before = prepare_nodes(lab, NODES)
    repo = two_components(lab, tmp_path)
    outside = tmp_path / "outside.sh"
    outside.write_bytes((repo / "nic-2.0.sh").read_bytes())
    if escape == "dotdot":
        name, expected = "../outside.sh", "'../outside.sh' escapes the repository folder (..)"
    elif escape == "absolute":
        name, expected = str(outside), f"'{outside}' is absolute"
    else:
        (repo / "link.sh").symlink_to(outside)
        name, expected = "link.sh", f"'link.sh' escapes the repository folder (a link to {outside})"
    edit_manifest(repo, lambda components: components[1].update(file=name))
    for node, message in refused(lab, tmp_path, repo, f"flt-in-{escape}", before).items():
        assert "component 'nic', field file" in message and expected in message, (node, message)


def test_a_file_changed_after_the_manifest_is_refused_with_both_hashes(lab, tmp_path):
    before = prepare_nodes(lab, NODES)
    repo = two_components(lab, tmp_path)
    script = repo / "bmc-1.0.sh"
    recorded = yaml.safe_load((repo / "manifest.yml").read_text())["components"][0]["sha256"]
    body = bytearray(script.read_bytes())
    body[-1:] = b"X"  # same size: only the hash tells
    script.write_bytes(bytes(body))
    for node, message in refused(lab, tmp_path, repo, "flt-in-hash", before).items():
        assert "component 'bmc', field sha256: hash mismatch for bmc-1.0.sh" in message, (node, message)
        assert recorded in message, (node, message)


def test_a_dependency_cycle_is_refused_naming_the_cycle(lab, tmp_path):
    before = prepare_nodes(lab, NODES)
    specs = [fake_component("bios", "1.0", requires=("nic",)), fake_component("bmc", "1.0", requires=("bios",)),
             fake_component("nic", "1.0", requires=("bmc",)), fake_component("tool", "1.0")]
    repo = make_fault_repo(tmp_path / "repo", state_dir(lab), specs)
    for node, message in refused(lab, tmp_path, repo, "flt-in-cycle", before).items():
        assert "dependency cycle: bios -> nic -> bmc -> bios" in message, (node, message)
        assert "tool" not in message


@pytest.mark.faults_slow
def test_a_huge_manifest_of_10000_components_plans_them_all_and_installs_none(lab, tmp_path):
    """10,000 components, each requiring the next (a chain 10,000 deep), all current on both
    nodes: the run succeeds, reports every component skipped as current, and leaves nothing."""
    before = prepare_nodes(lab, NODES)
    specs = [fake_component(f"c{i:05d}", "1.0", requires=(f"c{i + 1:05d}",) if i < HUGE - 1 else ()) for i in range(HUGE)]
    started = time.monotonic()
    repo = make_fault_repo(tmp_path / "repo", state_dir(lab), specs)
    made = time.monotonic() - started
    for node in NODES:
        lab.node_run(node, ["sh", "-c", f"cd {state_dir(lab)} && for i in $(seq -f %05g 0 {HUGE - 1}); do echo 1.0 > c$i.version; done"])
    try:
        output, seconds, peak_kib = measured_deploy(lab, tmp_path, repo, "flt-in-huge", HOSTS, timeout=1200)
        results = host_results(output)
        for node in NODES:
            assert results[node]["_status"] == "ok", output[-3000:]
            components = by_name(results[node])
            assert len(components) == HUGE
            assert {c["status"] for c in components.values()} == {"skipped"}
            assert components["c00000"]["message"] == "already current (1.0)"
        assert_nothing_left(lab, "flt-in-huge", before, timeout=30)
        print(f"\nhuge manifest: {HUGE} components, repository written in {made:.1f} s; deploy on {len(NODES)} nodes: "
              f"{seconds:.1f} s wall, controller peak RSS {peak_kib / 1024:.0f} MiB (largest process of the run)")
    finally:
        for node in NODES:
            lab.node_run(node, ["sh", "-c", f"rm -f {state_dir(lab)}/c*.version"])
