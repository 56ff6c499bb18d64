# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""fleet.firmware.update_fleet over the lab's Linux nodes, in waves: a failing canary stops the
run before the later waves touch anything; a good baseline reaches every node."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from checks import recap
from deploy_helpers import lab_trust
from firewall_helpers import reset_firewall

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from sample_repo import SAMPLE, make_sample_repo  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.lab

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "update_fleet.yml"
LINUX = ("lin01", "lin02", "v6n01")


def versions(lab, node: str) -> dict[str, str]:
    state = f"{lab.lab.home}/node"
    found = {}
    for name, *_rest in SAMPLE:
        proc = lab.node_run(node, ["cat", f"{state}/{name}.version"], check=False)
        if proc.returncode == 0:
            found[name] = proc.stdout.strip()
    return found


@pytest.fixture
def fresh(lab):
    for node in LINUX:
        reset_firewall(lab, node)
        lab.node_run(node, ["sh", "-c", f"rm -f {lab.lab.home}/node/*.version"])


def update(lab, repo: Path, tag: str, waves: list) -> str:
    variables = {"fleet_repository": str(repo), "fleet_trust": lab_trust(), "fleet_hosts": "linux", "fleet_waves": waves, "fleet_max_fail_percentage": 100,
                 "fleet_run_tag": tag, "fleet_run_dir": str(lab.lab.home / "runs" / tag), "fleet_lease": 30}
    proc = lab.playbook(PLAYBOOK, "-e", json.dumps(variables), timeout=600)
    return proc.stdout + proc.stderr + f"\nrc={proc.returncode}"


def test_a_failing_canary_stops_the_later_waves(lab, fresh, tmp_path):
    # The first wave is lin01 and lin02: nic-firmware fails on lin01 only.
    repo = make_sample_repo(tmp_path / "repo", f"{lab.lab.home}/node", fail_on=["lin01"])
    output = update(lab, repo, "upd-canary", [2, 1, "100%"])
    assert "rc=0" not in output
    assert "the canary wave failed on lin01: the later waves do not start" in output, output
    assert versions(lab, "lin01").get("nic-firmware") is None
    assert versions(lab, "lin02") == {entry[0]: entry[1] for entry in SAMPLE}
    assert versions(lab, "v6n01") == {}, "a later wave ran after the canary failed"
    counts = recap(output)
    # lin01 failed its component, lin02 (updated) fails at the canary check; v6n01 never started.
    assert set(counts) == {"lin01", "lin02"} and counts["lin01"]["failed"] == counts["lin02"]["failed"] == 1, counts


def test_a_good_baseline_reaches_every_linux_node_in_waves(lab, fresh, tmp_path):
    repo = make_sample_repo(tmp_path / "repo", f"{lab.lab.home}/node")
    output = update(lab, repo, "upd-good", [1, 1, "100%"])
    assert "rc=0" in output, output
    for node in LINUX:
        assert versions(lab, node) == {entry[0]: entry[1] for entry in SAMPLE}, node
    counts = recap(output)
    assert set(counts) == set(LINUX), counts
    assert all(c["failed"] == 0 and c["unreachable"] == 0 for c in counts.values()), counts
    assert all(counts[node]["changed"] >= 1 for node in LINUX), counts
