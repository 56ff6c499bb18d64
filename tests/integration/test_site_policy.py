# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The site policy (issue 19 item 3) in a plan (check mode) and in a deploy on a lab node: an
allow-list of hashes, a denied version, a required intermediate version (installed first, in
that order) and a minimum criticality. Each installer appends its name to a log on the node, so
the test sees what ran and in which order."""
from __future__ import annotations

import hashlib
import shlex
import sys
from pathlib import Path

import pytest
import yaml

from deploy_helpers import agent_processes, lab_trust
from firewall_helpers import module_args, reset_firewall, snapshot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
import spp_pki  # noqa: E402  pylint: disable=wrong-import-position,wrong-import-order

pytestmark = pytest.mark.lab
NODE = "lin01"
# name, version, writes the version of, extra manifest fields
COMPONENTS = (
    ("bmc-firmware", "2.31", "bmc-firmware", {"criticality": "critical"}),
    ("nic-firmware", "14.2.0", "nic-firmware", {}),                       # not in approved_hashes
    ("storage-driver", "5.6.1", "storage-driver", {}),                    # a denied version
    ("ilo5", "2.10", "ilo5", {"criticality": "critical"}),                # needs 1.40 first
    ("ilo5-1.40", "1.40", "ilo5", {"superseded_by": "ilo5", "criticality": "critical"}),
    ("opt-tool", "1.0", "opt-tool", {"criticality": "optional"}),         # below min_criticality
)


def make_repo(folder: Path, state: str) -> tuple[Path, dict[str, str]]:
    folder.mkdir(parents=True)
    entries, hashes = [], {}
    for name, version, device, extra in COMPONENTS:
        script = folder / f"{name}.sh"
        script.write_text(f"#!/bin/sh\necho {shlex.quote(name)} >> {state}/install.log\necho {version} > {state}/{device}.version\nexit 0\n")
        script.chmod(0o755)
        hashes[name] = hashlib.sha256(script.read_bytes()).hexdigest()
        entries.append(dict({"name": name, "version": version, "kind": "firmware", "os": "linux", "file": script.name,
                             "sha256": hashes[name], "size": script.stat().st_size,
                             "detect": {"method": "file", "path": f"{state}/{device}.version"}, "install": "script",
                             "reboot": "none", "requires": [],
                             "signature": spp_pki.sign_file(script, spp_pki.shared_lab_pki().signer).name}, **extra))
    (folder / "manifest.yml").write_text(yaml.safe_dump({"format": 2, "components": entries}, sort_keys=False))
    return folder, hashes


def policy(hashes: dict[str, str]) -> dict:
    return {"approved_hashes": [h for name, h in hashes.items() if name != "nic-firmware"],
            "denied_versions": [{"name": "storage-driver", "version": "5.6.1", "reason": "corrupts the array cache"}],
            "required_versions": [{"name": "ilo5", "version": "1.40"}],
            "min_criticality": "recommended"}


@pytest.fixture
def node(lab):
    state = f"{lab.lab.home}/node"
    reset_firewall(lab, NODE)
    lab.node_run(NODE, ["sh", "-c", f"rm -f {state}/*.version {state}/install.log; echo 1.20 > {state}/ilo5.version"])
    before = snapshot(lab, NODE)
    yield state
    lab.node_run(NODE, ["sh", "-c", f"rm -f {state}/*.version {state}/install.log"])
    assert not agent_processes(lab, NODE) and snapshot(lab, NODE) == before


def run(lab, repo: Path, tag: str, site: dict, check: bool) -> dict:
    args = dict(repository=str(repo), tag=tag, run_dir=str(lab.lab.home / "runs" / tag), lease=30, trust=lab_trust(), **site)
    results = lab.adhoc(NODE, "fleet.firmware.deploy", module_args(**args), extra=["--check"] if check else [], timeout=300)
    return results[NODE].data


EXPECTED = [
    ("bmc-firmware", "install", None),
    ("nic-firmware", "skip", "approved_hashes"),
    ("storage-driver", "skip", "denied_versions"),
    ("ilo5-1.40", "upgrade", "required_versions"),
    ("ilo5", "upgrade", "required_versions"),
    ("opt-tool", "skip", "min_criticality"),
]


def test_each_rule_in_the_plan_and_in_the_deploy(lab, node, tmp_path):
    repo, hashes = make_repo(tmp_path / "repo", node)
    planned = run(lab, repo, "pol-plan", policy(hashes), check=True)
    assert [(e["name"], e["action"], e.get("policy")) for e in planned["plan"]] == EXPECTED, planned
    reasons = {e["name"]: e["reason"] for e in planned["plan"]}
    assert "is not in approved_hashes" in reasons["nic-firmware"]
    assert reasons["storage-driver"] == "version 5.6.1 is denied by the site policy, never installed: corrupts the array cache"
    assert reasons["ilo5-1.40"] == "required intermediate version before 2.10: installed 1.20 is older than 1.40"
    assert reasons["opt-tool"] == "criticality optional is below the site's min_criticality recommended"
    assert lab.node_run(NODE, ["cat", f"{node}/install.log"], check=False).returncode != 0, "check mode installed something"

    done = run(lab, repo, "pol-deploy", policy(hashes), check=False)
    assert not done.get("failed"), done
    got = {c["name"]: c for c in done["components"]}
    assert {name: got[name]["status"] for name, *_rest in EXPECTED} == {
        "bmc-firmware": "installed", "nic-firmware": "skipped", "storage-driver": "skipped", "ilo5-1.40": "installed", "ilo5": "installed",
        "opt-tool": "skipped"}, done["components"]
    assert "corrupts the array cache" in got["storage-driver"]["message"] and "approved_hashes" in got["nic-firmware"]["message"]
    # What ran, in that order: the intermediate before its target; nothing the policy refused.
    log = lab.node_run(NODE, ["cat", f"{node}/install.log"]).stdout.split()
    assert log == ["bmc-firmware", "ilo5-1.40", "ilo5"], log
    assert lab.node_run(NODE, ["cat", f"{node}/ilo5.version"]).stdout.strip() == "2.10"


def test_an_intermediate_that_needs_a_reboot_holds_the_target_for_the_next_run(lab, node, tmp_path):
    repo, hashes = make_repo(tmp_path / "repo", node)
    manifest = yaml.safe_load((repo / "manifest.yml").read_text())
    for entry in manifest["components"]:
        if entry["name"] == "ilo5-1.40":
            entry["reboot"] = "required"
    (repo / "manifest.yml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    site = {"required_versions": [{"name": "ilo5", "version": "1.40"}], "components": ["ilo5", "ilo5-1.40"]}
    done = run(lab, repo, "pol-reboot", site, check=False)
    assert not done.get("failed"), done
    entries = {c["name"]: c for c in done["components"]}
    assert entries["ilo5"]["status"] == "skipped" and "waits for 1.40 to be activated" in entries["ilo5"]["message"], entries
    assert lab.node_run(NODE, ["cat", f"{node}/install.log"]).stdout.split() == ["ilo5-1.40"]
    assert done["reboot_required"] is True, done


def test_a_bad_policy_is_refused_before_the_node_is_touched(lab, node, tmp_path):
    repo, _hashes = make_repo(tmp_path / "repo", node)
    args = dict(repository=str(repo), tag="pol-bad", run_dir=str(lab.lab.home / "runs" / "pol-bad"), lease=30, trust=lab_trust(),
                denied_versions=[{"name": "ilo5"}])
    result = lab.adhoc(NODE, "fleet.firmware.deploy", module_args(**args), timeout=300)[NODE]
    done = result.data
    assert result.status == "FAILED" and "denied_versions: {'name': 'ilo5'} needs a name and a version" in done["msg"], done
    assert not (lab.lab.home / "runs" / "pol-bad" / "ledger").exists()
