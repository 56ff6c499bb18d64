# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""update_fleet and deploy end to end as the lab's non-root operator (fleetop), becoming root
through sudo (the agent starts in one command, its loader and zipapp on stdin) and through su
(su reads its password from a terminal: the agent is staged as a file, the documented fallback).
Each run must install the baseline, leave the agent's staging folder owned by root while it runs,
and leave nothing of the run on the node."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from deploy_helpers import agent_processes, by_name, component, lab_trust, left_behind, make_repo
from firewall_helpers import module_args, reset_firewall, snapshot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
from sample_repo import SAMPLE, make_sample_repo  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.lab

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "update_fleet.yml"
NODE = "lin01"
OPERATOR = ["-e", "ansible_user={{ fleet_lab_become_user }}"]
SUDO = OPERATOR + ["-e", "ansible_become_password={{ fleet_lab_become_password }}"]
SU = OPERATOR + ["-e", "ansible_become_password={{ fleet_lab_root_password }}"]
WAYS = {"sudo": (SUDO, "sudo", "stdin"), "su": (SU, "su", "staged")}


def state_dir(lab) -> str:
    return f"{lab.lab.home}/node"


def versions(lab, node: str) -> dict[str, str]:
    found = {}
    for name, *_rest in SAMPLE:
        proc = lab.node_run(node, ["cat", f"{state_dir(lab)}/{name}.version"], check=False)
        if proc.returncode == 0:
            found[name] = proc.stdout.strip()
    return found


@pytest.fixture
def fresh(lab):
    reset_firewall(lab, NODE)
    lab.node_run(NODE, ["sh", "-c", f"rm -f {state_dir(lab)}/*.version"])
    return snapshot(lab, NODE)


@pytest.mark.parametrize("way", sorted(WAYS))
def test_update_fleet_as_the_operator(lab, fresh, tmp_path, way):
    extra, method, start = WAYS[way]
    tag = f"op-upd-{way}"
    repo = make_sample_repo(tmp_path / "repo", state_dir(lab))
    variables = {"fleet_repository": str(repo), "fleet_hosts": NODE, "fleet_waves": ["100%"], "fleet_run_tag": tag,
                 "fleet_run_dir": str(lab.lab.home / "runs" / tag), "fleet_lease": 30, "fleet_become_method": method,
                 "fleet_trust": lab_trust()}
    proc = lab.playbook(PLAYBOOK, "-v", "-e", json.dumps(variables), *extra, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert versions(lab, NODE) == {entry[0]: entry[1] for entry in SAMPLE}
    assert f'"agent_start": "{start}"' in output, output
    assert left_behind(lab, NODE, tag, fresh) == []


@pytest.mark.parametrize("way", sorted(WAYS))
def test_deploy_as_the_operator(lab, fresh, tmp_path, way):
    extra, method, start = WAYS[way]
    tag = f"op-dep-{way}"
    repo = make_repo(tmp_path / "r", state_dir(lab), [component("fw-op", "1.0")])
    args = module_args(repository=str(repo), tag=tag, run_dir=str(lab.lab.home / "runs" / tag), lease=30, trust=lab_trust())
    result = lab.adhoc(NODE, "fleet.firmware.deploy", args, extra=extra + ["-b", "--become-method", method], timeout=300)[NODE]
    assert result.status == "CHANGED", result.data
    assert by_name(result.data)["fw-op"]["status"] == "installed" and result.data["agent_start"] == start
    # Installed as root: the installer wrote its version file as root, not as the operator.
    assert lab.node_run(NODE, ["stat", "-c", "%U", f"{state_dir(lab)}/fw-op.version"]).stdout.strip() == "root"
    assert not agent_processes(lab, NODE) and left_behind(lab, NODE, tag, fresh) == []
