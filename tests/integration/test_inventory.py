# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""fleet.firmware.inventory for real: Ansible over SSH to lab Linux nodes, detection by a
command + regex (a tool script that reads the node's own state), a version file in the node's
private state folder, and the dpkg database the nodes share with the host (/usr, /var/lib/dpkg).
Then the whole flow: fleet.firmware.repository builds and validates a manifest on the
controller, and its components go to the inventory module on the nodes.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml

import spp_pki
from deploy_helpers import lab_trust
from firewall_helpers import module_args

pytestmark = pytest.mark.lab

NODES = ("lin01", "lin02")
MODULE = "fleet.firmware.inventory"


def host_dpkg_version() -> str:
    return subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "dpkg"], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def tool(lab) -> Path:
    """A vendor-like tool every node can run (the lab home is visible in nodes); it reports the
    version written in the node's private state folder, or exits 3 when nothing is installed."""
    folder = lab.lab.home / "inventory-test"
    folder.mkdir(mode=0o755, exist_ok=True)
    path = folder / "fwtool"
    state = lab.lab.home / "node"
    path.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        [ -r {state}/tool-version ] || {{ echo "no device" >&2; exit 3; }}
        echo "Fleet Tool"
        echo "Firmware: U30 v$(cat {state}/tool-version) (build 17)"
        """))
    path.chmod(0o755)
    return path


def node_state(lab, node: str, files: dict[str, str | None]) -> None:
    """Write (or remove, for None) files in the node's private state folder."""
    state = lab.lab.home / "node"
    for name, content in files.items():
        if content is None:
            lab.node_run(node, ["rm", "-f", f"{state}/{name}"])
        else:
            lab.node_run(node, ["sh", "-c", f'printf "%s\\n" "$1" > {state}/{name}', "sh", content])


def node_snapshot(lab, node: str) -> str:
    """Files (name, size, mtime) in the node's state folder and /var/tmp, and its firewall rules."""
    state = lab.lab.home / "node"
    files = lab.node_run(node, ["find", str(state), "/var/tmp", "-printf", "%p %s %T@\n"]).stdout
    rules = lab.node_run(node, ["iptables-save"], check=False).stdout
    return "\n".join(sorted(files.splitlines())) + "\n" + "\n".join(line for line in rules.splitlines() if not line.startswith("#"))


def baseline(lab, tool: Path) -> list[dict]:
    state = lab.lab.home / "node"
    return [
        {"name": "bmc-fw", "version": "2.10b", "kind": "firmware", "os": "linux",
         "detect": {"method": "file", "path": f"{state}/bmc-version", "regex": r"^BMC (\S+)$"}},
        {"name": "tool-fw", "version": "U30 v2.90 (07/20/2023)", "kind": "firmware", "os": "linux",
         "detect": {"method": "command", "command": [str(tool), "--show"], "regex": r"Firmware: (?P<version>.+?) \(build", "absent_rc": [3]}},
        {"name": "dpkg", "version": host_dpkg_version(), "kind": "software", "os": "linux",
         "detect": {"method": "package", "name": "dpkg", "manager": "dpkg"}},
        {"name": "not-here", "version": "1.0", "kind": "driver", "os": "linux",
         "detect": {"method": "package", "name": "fleet-firmware-not-a-package"}},
        {"name": "win-nic", "version": "1.0", "kind": "driver", "os": "windows",
         "detect": {"method": "registry", "display_name": "^Fleet NIC"}},
    ]


def run_inventory(lab, baseline_: list[dict], pattern: str = "lin01:lin02", check: bool = False, **policy) -> dict:
    results = lab.adhoc(pattern, MODULE, module_args(baseline=baseline_, **policy), extra=["--check"] if check else [])
    assert all(r.status == "SUCCESS" for r in results.values()), {h: r.data for h, r in results.items()}
    return {host: {e["name"]: e for e in r.data["inventory"]} | {"_result": r.data} for host, r in results.items()}


@pytest.fixture()
def nodes_state(lab):
    """lin01: BMC 2.10a, tool U30 v2.90; lin02: BMC 2.10b, tool U30 v2.92 (newer than the baseline)."""
    node_state(lab, "lin01", {"bmc-version": "BMC 2.10a", "tool-version": "2.90 (07/20/2023)"})
    node_state(lab, "lin02", {"bmc-version": "BMC 2.10b", "tool-version": "2.92 (11/03/2023)"})
    yield
    for node in NODES:
        node_state(lab, node, {"bmc-version": None, "tool-version": None})


def test_inventory_per_node_with_file_command_and_package_detection(lab, tool, nodes_state):
    before = {node: node_snapshot(lab, node) for node in NODES}
    plans = run_inventory(lab, baseline(lab, tool))
    one, two = plans["lin01"], plans["lin02"]

    assert (one["bmc-fw"]["installed"], one["bmc-fw"]["action"], one["bmc-fw"]["comparison"]) == ("2.10a", "upgrade", "older")
    assert (two["bmc-fw"]["installed"], two["bmc-fw"]["action"]) == ("2.10b", "skip")
    assert "already current" in two["bmc-fw"]["reason"]

    # The command's output gives the vendor form; the regex takes it out.
    assert one["tool-fw"]["installed"] == "U30 v2.90 (07/20/2023)" and one["tool-fw"]["action"] == "skip"
    assert two["tool-fw"]["installed"] == "U30 v2.92 (11/03/2023)" and two["tool-fw"]["action"] == "skip"
    assert "allow_downgrade" in two["tool-fw"]["reason"] and two["tool-fw"]["comparison"] == "newer"

    # The nodes see the host's dpkg database.
    for plan in (one, two):
        assert plan["dpkg"]["installed"] == host_dpkg_version() and plan["dpkg"]["action"] == "skip"
        assert plan["dpkg"]["detection"]["scheme"] == "dpkg"
        assert plan["not-here"]["action"] == "install" and plan["not-here"]["installed"] is None
        assert plan["win-nic"]["action"] == "skip" and "windows nodes" in plan["win-nic"]["reason"]
        assert plan["_result"]["changed"] is False
    assert one["_result"]["summary"] == {"install": 1, "upgrade": 1, "downgrade": 0, "rewrite": 0, "skip": 3}
    assert one["_result"]["update_needed"] is True
    # Side-effect free: the nodes' files and firewall are as they were.
    assert {node: node_snapshot(lab, node) for node in NODES} == before


def test_policies(lab, tool, nodes_state):
    components = baseline(lab, tool)
    plans = run_inventory(lab, components, allow_downgrade=True)
    assert plans["lin02"]["tool-fw"]["action"] == "downgrade"
    plans = run_inventory(lab, components, rewrite=True, only="software")
    assert plans["lin01"]["dpkg"]["action"] == "rewrite"
    assert plans["lin01"]["bmc-fw"]["action"] == "skip" and "only software" in plans["lin01"]["bmc-fw"]["reason"]
    plans = run_inventory(lab, components, components=["bmc-fw"], pattern="lin01")
    assert [name for name, e in plans["lin01"].items() if name != "_result" and e["action"] != "skip"] == ["bmc-fw"]


def test_unknowns_are_explicit_and_force_overrides_them(lab, tool, nodes_state):
    node_state(lab, "lin01", {"tool-version": "2.90 (07/20/2023)", "bmc-version": "BMC 2.10rc1"})
    components = baseline(lab, tool)
    components[1]["version"] = "U32 v2.90 (07/20/2023)"  # another ROM family
    plans = run_inventory(lab, components, pattern="lin01")
    bmc, rom = plans["lin01"]["bmc-fw"], plans["lin01"]["tool-fw"]
    assert bmc["action"] == "skip" and bmc["comparison"] == "unknown" and "cannot be compared" in bmc["reason"]
    assert rom["action"] == "skip" and "different families" in rom["reason"]
    forced = run_inventory(lab, components, pattern="lin01", force=True)["lin01"]
    assert forced["bmc-fw"]["action"] == "install" and forced["tool-fw"]["action"] == "install"
    # No device: the tool exits 3, which the component says means "not installed".
    node_state(lab, "lin01", {"tool-version": None})
    assert run_inventory(lab, components, pattern="lin01")["lin01"]["tool-fw"]["action"] == "install"


def test_check_mode_gives_the_same_answer(lab, tool, nodes_state):
    components = baseline(lab, tool)
    normal = run_inventory(lab, components)
    checked = run_inventory(lab, components, check=True)
    assert entries_only(normal) == entries_only(checked)


def entries_only(plans: dict) -> dict:
    return {host: {name: entry for name, entry in plan.items() if name != "_result"} for host, plan in plans.items()}


def test_bad_baseline_entry_fails_naming_it(lab):
    results = lab.adhoc("lin01", MODULE, module_args(baseline=[{"name": "x", "version": "1"}]))
    assert results["lin01"].status == "FAILED"
    assert "baseline entry 1 (x): missing os, detect" in results["lin01"].data["msg"]


def signing() -> dict:
    """The repository module signs the manifest it writes (a hand-written repository is trusted through it)."""
    signer = spp_pki.shared_lab_pki().signer
    return {"sign_cert": str(signer.cert), "sign_key": str(signer.key)}


def test_repository_then_inventory_in_one_playbook(lab, tool, nodes_state, tmp_path):
    """The flow users run: build and validate the manifest on the controller, plan on every node."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "bmc-2.10b.sh").write_text("#!/bin/sh\nexit 0\n")
    (repo / "tool-u30-2.90.scexe").write_text("#!/bin/sh\nexit 2\n")
    state = lab.lab.home / "node"
    hand_written = {"format": 1, "components": [
        {"name": "bmc-fw", "version": "2.10b", "kind": "firmware", "os": "linux", "file": "bmc-2.10b.sh", "install": "script",
         "detect": {"method": "file", "path": f"{state}/bmc-version", "regex": r"^BMC (\S+)$"}, "requires": ["tool-fw"]},
        {"name": "tool-fw", "version": "U30 v2.90 (07/20/2023)", "kind": "firmware", "os": "linux", "file": "tool-u30-2.90.scexe",
         "install": "smart_component", "detect": {"method": "command", "command": [str(tool)], "regex": r"Firmware: (.+?) \(build"}},
    ]}
    (repo / "manifest.yml").write_text(yaml.safe_dump(hand_written, sort_keys=False))
    playbook = tmp_path / "plan.yml"
    playbook.write_text(yaml.safe_dump([{
        "hosts": "lin01:lin02", "gather_facts": False,
        "tasks": [
            {"name": "manifest", "fleet.firmware.repository": {"path": str(repo), "trust": lab_trust(), **signing()},
             "delegate_to": "localhost", "run_once": True,
             "register": "repo"},
            {"name": "plan", "fleet.firmware.inventory": {"baseline": "{{ repo.components }}"}, "register": "plan"},
            {"ansible.builtin.copy": {"content": "{{ {'repo': repo, 'plan': plan} | to_json }}", "dest": str(tmp_path) + "/{{ inventory_hostname }}.json"},
             "delegate_to": "localhost"},
        ],
    }], sort_keys=False))
    proc = lab.playbook(playbook)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    written = yaml.safe_load((repo / "manifest.yml").read_text())
    assert [c["sha256"] for c in written["components"]] == [
        hashlib.sha256((repo / name).read_bytes()).hexdigest() for name in ("bmc-2.10b.sh", "tool-u30-2.90.scexe")]
    one = json.loads((tmp_path / "lin01.json").read_text())
    assert one["repo"]["changed"] is True and one["repo"]["problems"] == []
    assert one["repo"]["manifest_signature"]["ok"] and {v["method"] for v in one["repo"]["signatures"]} == {"manifest"}
    # Dependency order: tool-fw first, because bmc-fw requires it.
    assert [e["name"] for e in one["plan"]["inventory"]] == ["tool-fw", "bmc-fw"]
    assert [e["action"] for e in one["plan"]["inventory"]] == ["skip", "upgrade"]
    two = json.loads((tmp_path / "lin02.json").read_text())
    assert [e["action"] for e in two["plan"]["inventory"]] == ["skip", "skip"]
