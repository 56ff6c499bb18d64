# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""fleet.firmware.sweep against the lab: after a SIGKILLed run (ansible-playbook and its workers),
the sweep (run at once, the lease far from over) leaves nothing on the node or the controller."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
from pathlib import Path

import pytest

import conftest
from checks import recap
from deploy_helpers import component, lab_trust, left_behind, make_repo
from firewall_helpers import reset_firewall, snapshot, wait_until

from ansible_collections.fleet.firmware.plugins.plugin_utils import engine as engine_mod

pytestmark = pytest.mark.lab

NODE = "lin01"
PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


def engine_pids(run_dir: Path) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        try:
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0") if name.isdigit() else []
        except OSError:
            continue
        if b"serve" in argv and str(run_dir).encode() in argv:
            found.append(int(name))
    return found


def process_tree(root: int) -> list[int]:
    """``root`` and every process descended from it (Ansible's workers, though in sessions of
    their own, are still its children)."""
    parents: dict[int, int] = {}
    for name in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{name}/stat").read_text() if name.isdigit() else ""
        except OSError:
            continue
        if stat:
            parents[int(name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = {root}, True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= found
        grew = bool(found)
    return sorted(tree)


def kill_controller(proc: subprocess.Popen) -> None:
    """The controller dies whole (a crash, an OOM kill, a lost AWX pod): ansible-playbook and its
    workers at once, so that no orphaned worker can clean up and only the sweep (or the lease) can."""
    for pid in process_tree(proc.pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


def start_deploy(lab, tmp_path: Path, repo: Path, tag: str, run_dir: Path) -> subprocess.Popen:
    book = tmp_path / "deploy.yml"
    # A lease far longer than the test: a clean node proves the sweep cleaned it, not the lease.
    book.write_text(
        f"- hosts: {NODE}\n  gather_facts: false\n  tasks:\n"
        f"    - fleet.firmware.deploy:\n        repository: {repo}\n        tag: {tag}\n        trust: {lab_trust()}\n"
        f"        run_dir: {run_dir}\n        lease: 600\n        progress_interval: 1\n")
    argv = [conftest.ansible_bin("ansible-playbook"), "-i", str(lab.inventory), str(book)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=conftest.ansible_env(), start_new_session=True)


def test_sweep_after_a_sigkilled_run_leaves_nothing_on_the_node_or_the_controller(lab, tmp_path):
    reset_firewall(lab, NODE)
    state = f"{lab.lab.home}/node"
    lab.node_run(NODE, ["sh", "-c", f"rm -f {state}/*.version"])
    before = snapshot(lab, NODE)
    tag, run_dir = "swp-k", lab.lab.home / "runs" / "swp-k"
    repo = make_repo(tmp_path / "r", state, [component("slowfw", "1.0", sleep=6), component("later", "1.0")])
    sha = hashlib.sha256(next(repo.glob("slowfw-*.sh")).read_bytes()).hexdigest()
    proc = start_deploy(lab, tmp_path, repo, tag, run_dir)
    try:
        assert wait_until(lambda: lab.node_run(NODE, ["pgrep", "-f", sha], check=False).returncode == 0, 90), "the install never started"
        kill_controller(proc)
    finally:
        proc.wait()
    assert left_behind(lab, NODE, tag, before) != [], "nothing to sweep: the run was already clean"
    swept = lab.playbook(PLAYBOOKS / "sweep.yml", "-e", f"fleet_sweep_tag={tag}", "-e", f"fleet_sweep_hosts={NODE}",
                         "-e", f"fleet_runs_dir={run_dir.parent}", "-e", "fleet_sweep_stop_timeout=30")
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert f"/var/tmp/fleet-firmware-{tag}" in swept.stdout, swept.stdout
    # At once, not after the lease (600 s).
    assert left_behind(lab, NODE, tag, before) == []
    assert engine_pids(run_dir) == [] and engine_mod.attach(str(run_dir)) is None
    assert not (run_dir / "tls" / "ca.key").exists()
    assert lab.node_run(NODE, ["test", "-e", f"/run/fleet-firmware/agent-{tag}.sock"], check=False).returncode != 0


def test_sweep_of_a_clean_fleet_changes_nothing_and_refuses_a_bad_tag(lab):
    clean = lab.playbook(PLAYBOOKS / "sweep.yml", "-e", "fleet_sweep_tag=swp-none", "-e", "fleet_sweep_hosts=linux",
                         "-e", f"fleet_runs_dir={lab.lab.home / 'runs'}")
    assert clean.returncode == 0, clean.stdout
    counts = recap(clean.stdout)
    assert set(counts) == {"localhost", "lin01", "lin02", "v6n01"}, counts
    assert all(c["changed"] == 0 and c["failed"] == 0 and c["unreachable"] == 0 for c in counts.values()), counts
    bad = lab.playbook(PLAYBOOKS / "sweep.yml", "-e", "fleet_sweep_tag=Bad_Tag", "-e", f"fleet_sweep_hosts={NODE}")
    assert bad.returncode != 0 and "fleet_sweep_tag must be a run tag" in bad.stdout
