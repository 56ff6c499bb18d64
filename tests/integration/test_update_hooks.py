# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""update_fleet's hooks and health gates (issue 19 item 1) over the lab's Linux nodes, with a real
drain: a file-based pool on the controller (a load balancer's member list) that the pre-hook takes
the node out of and the post-hook puts it back in. Each component's installer, running on the node,
writes down the pool it sees at that moment, so the test knows the node was out of the pool while
it was flashed. A health gate reads what the firmware says of its device, and one node's firmware
says "degraded"; a pre-hook (maintenance mode) is refused for one node."""
from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from checks import recap
from deploy_helpers import agent_processes, lab_trust
from firewall_helpers import reset_firewall, snapshot

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab"))
import spp_pki  # noqa: E402  pylint: disable=wrong-import-position,wrong-import-order

pytestmark = pytest.mark.lab

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "update_fleet.yml"
LINUX = ("lin01", "lin02", "v6n01")

DRAIN = """---
- name: Drain - take the node out of the pool (the load balancer's member list)
  ansible.builtin.lineinfile:
    path: "{{ fleet_test_pool }}"
    line: "{{ inventory_hostname }}"
    state: absent
  delegate_to: localhost
  throttle: 1
"""
MAINTENANCE = """---
- name: Maintenance mode - the cluster refuses it for some nodes
  ansible.builtin.fail:
    msg: "the cluster refuses maintenance mode for {{ inventory_hostname }}"
  when: inventory_hostname in lookup('ansible.builtin.file', fleet_test_refused).split()
"""
HEALTH = """---
- name: Health - read what the firmware says of its device
  ansible.builtin.slurp:
    src: "{{ fleet_lab_state_dir }}/bmc-firmware.health"
  register: fleet_test_health
- name: Health - the device must say ok
  ansible.builtin.assert:
    that: (fleet_test_health.content | b64decode | trim) == 'ok'
    fail_msg: "bmc-firmware on {{ inventory_hostname }} says {{ fleet_test_health.content | b64decode | trim }}"
"""
REJOIN = """---
- name: Rejoin - put the node back into the pool
  ansible.builtin.lineinfile:
    path: "{{ fleet_test_pool }}"
    line: "{{ inventory_hostname }}"
    state: present
  delegate_to: localhost
  throttle: 1
- name: Rejoin - write down the outcome the hook saw
  ansible.builtin.shell: "echo {{ inventory_hostname }} {{ fleet_hook_phase }} {{ fleet_update_outcome }} >> {{ fleet_test_hooklog | quote }}"
  delegate_to: localhost
  throttle: 1
  changed_when: true
"""


def make_repo(folder: Path, state: str, shared: Path, degraded: str) -> Path:
    """One signed component whose installer logs the pool it sees, writes its version and the
    device's health: "degraded" on the node ``degraded``, else "ok"."""
    folder.mkdir(parents=True)
    script = folder / "bmc-firmware-2.31.sh"
    pool, log = shlex.quote(str(shared / "pool")), shlex.quote(str(shared / "installs.log"))
    script.write_text(
        "#!/bin/sh\nhost=$(cat /proc/sys/kernel/hostname)\n"
        f'echo "$host: $(sort {pool} | tr "\\n" " ")" >> {log}\n'
        f"echo 2.31 > {state}/bmc-firmware.version\n"
        f'if [ "$host" = {shlex.quote(degraded)} ]; then echo degraded; else echo ok; fi > {state}/bmc-firmware.health\n'
        "exit 0\n")
    script.chmod(0o755)
    entry = {"name": "bmc-firmware", "version": "2.31", "kind": "firmware", "os": "linux", "file": script.name,
             "sha256": hashlib.sha256(script.read_bytes()).hexdigest(), "size": script.stat().st_size,
             "detect": {"method": "file", "path": f"{state}/bmc-firmware.version"}, "install": "script", "reboot": "none",
             "requires": [], "signature": spp_pki.sign_file(script, spp_pki.shared_lab_pki().signer).name}
    (folder / "manifest.yml").write_text(yaml.safe_dump({"format": 1, "components": [entry]}, sort_keys=False))
    return folder


@pytest.fixture
def site(lab, tmp_path):
    """The pool (every node a member), the hook files, a clean slate on the nodes; at the end
    nothing of the test stays on a node."""
    shared = lab.lab.shared_dir() / f"hooks-{tmp_path.name}"
    shared.mkdir()
    (shared / "pool").write_text("".join(f"{n}\n" for n in LINUX))
    (shared / "refused").write_text("")
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    for name, text in (("drain.yml", DRAIN), ("maintenance.yml", MAINTENANCE), ("health.yml", HEALTH), ("rejoin.yml", REJOIN)):
        (hooks / name).write_text(text)
    state = f"{lab.lab.home}/node"
    before = {}
    for node in LINUX:
        reset_firewall(lab, node)
        lab.node_run(node, ["sh", "-c", f"rm -f {state}/*.version {state}/*.health"])
        before[node] = snapshot(lab, node)
    yield {"shared": shared, "hooks": hooks, "state": state, "before": before}
    shutil.rmtree(shared)
    for node in LINUX:
        lab.node_run(node, ["sh", "-c", f"rm -f {state}/*.version {state}/*.health"])


def run(lab, site, tmp_path, tag: str, waves: list, degraded: str = "none", refused: str = "", max_fail: int = 0) -> str:
    (site["shared"] / "refused").write_text(refused)
    repo = make_repo(tmp_path / "repo", site["state"], site["shared"], degraded)
    variables = {"fleet_repository": str(repo), "fleet_trust": lab_trust(), "fleet_hosts": "linux", "fleet_waves": waves,
                 "fleet_max_fail_percentage": max_fail, "fleet_run_tag": tag, "fleet_run_dir": str(lab.lab.home / "runs" / tag),
                 "fleet_lease": 30, "fleet_hooks_dir": str(site["hooks"]),
                 "fleet_pre_hooks": ["drain.yml", "maintenance.yml"], "fleet_health_gates": ["health.yml"],
                 "fleet_post_hooks": ["rejoin.yml"],
                 "fleet_test_pool": str(site["shared"] / "pool"), "fleet_test_refused": str(site["shared"] / "refused"),
                 "fleet_test_hooklog": str(site["shared"] / "hooks.log")}
    proc = lab.playbook(PLAYBOOK, "-e", json.dumps(variables), timeout=600)
    return proc.stdout + proc.stderr + f"\nrc={proc.returncode}"


def read(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def state_of(lab, node: str, state: str) -> str:
    return lab.node_run(node, ["sh", "-c", f"cat {state}/bmc-firmware.version {state}/bmc-firmware.health 2>/dev/null"],
                        check=False).stdout.split()


def nothing_left(lab, site, tag: str) -> None:
    for node in LINUX:
        assert not agent_processes(lab, node), node
        assert lab.node_run(node, ["test", "-e", f"/var/tmp/fleet-firmware-{tag}"], check=False).returncode != 0, node
        assert snapshot(lab, node) == site["before"][node], node


def test_a_failing_health_gate_keeps_the_node_drained_and_stops_the_run(lab, site, tmp_path):
    output = run(lab, site, tmp_path, "hook-gate", [1, 1, "100%"], degraded="lin02")
    assert "rc=0" not in output
    # Each node was out of the pool while its firmware was installed; the others were in.
    assert read(site["shared"] / "installs.log") == ["lin01: lin02 v6n01 ", "lin02: lin01 v6n01 "], output
    # lin01 rejoined; lin02's gate failed, so it stays drained; v6n01's wave never started.
    assert sorted(read(site["shared"] / "pool")) == ["lin01", "v6n01"]
    assert read(site["shared"] / "hooks.log") == ["lin01 post ok"]
    assert "health gate failed (task Health - the device must say ok): bmc-firmware on lin02 says degraded; " \
           "the post-hooks did not run" in output, output
    assert state_of(lab, "v6n01", site["state"]) == [], "a later wave ran after a failed health gate"
    counts = recap(output)
    assert set(counts) == {"lin01", "lin02"} and counts["lin02"]["failed"] == 1 and counts["lin01"]["failed"] == 0, counts
    nothing_left(lab, site, "hook-gate")


def test_a_failing_pre_hook_leaves_the_node_untouched_and_counts_as_failed(lab, site, tmp_path):
    output = run(lab, site, tmp_path, "hook-pre", [1, 1, "100%"], refused="lin02\n")
    assert "rc=0" not in output
    assert "pre-hook failed (task Maintenance mode - the cluster refuses it for some nodes): the cluster refuses maintenance " \
           "mode for lin02; the node was not touched" in output, output
    assert state_of(lab, "lin02", site["state"]) == [], "the deploy ran after a failing pre-hook"
    assert not (lab.lab.home / "runs" / "hook-pre" / "ledger" / "lin02.jsonl").exists()
    assert read(site["shared"] / "installs.log") == ["lin01: lin02 v6n01 "]
    # The post-hook undid lin02's drain (it saw pre_hook_failed); max_fail_percentage 0 ended the run.
    assert read(site["shared"] / "hooks.log") == ["lin01 post ok", "lin02 post pre_hook_failed"]
    assert sorted(read(site["shared"] / "pool")) == sorted(LINUX)
    assert state_of(lab, "v6n01", site["state"]) == []
    counts = recap(output)
    assert counts["lin02"]["failed"] == 1 and "v6n01" not in counts, counts
    nothing_left(lab, site, "hook-pre")


def test_a_failing_pre_hook_on_the_canary_stops_the_run(lab, site, tmp_path):
    # The canary is lin01 and lin02; lin01's maintenance mode is refused. max_fail_percentage 100:
    # the canary rule alone ends the run.
    output = run(lab, site, tmp_path, "hook-canary", [2, "100%"], refused="lin01\n", max_fail=100)
    assert "the canary wave failed on lin01: the later waves do not start" in output, output
    # A wave runs each step on all its hosts at once: lin01 was drained (its maintenance mode failed
    # after) while lin02 installed, and rejoined with lin02 by the post-hooks.
    assert read(site["shared"] / "installs.log") == ["lin02: v6n01 "]
    assert sorted(read(site["shared"] / "hooks.log")) == ["lin01 post pre_hook_failed", "lin02 post ok"]
    assert sorted(read(site["shared"] / "pool")) == sorted(LINUX)
    assert state_of(lab, "lin01", site["state"]) == [] and state_of(lab, "v6n01", site["state"]) == []
    counts = recap(output)
    assert set(counts) == {"lin01", "lin02"} and counts["lin01"]["failed"] == counts["lin02"]["failed"] == 1, counts
    nothing_left(lab, site, "hook-canary")
