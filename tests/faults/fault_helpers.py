# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every fault scenario shares: a repository of fake components that mark themselves
half-installed while they run, a deploy playbook started in the background, and the one check
that runs after every scenario on every node (``leftovers``).

A fake component is a shell script: it writes ``<name>.partial`` in the node's private state
folder, sleeps, writes ``<name>.version`` and removes the marker. Killed half-way, the marker
stays: that is a half-installed component. Padding after the script's ``exit`` gives it a size
(download time) without changing what it does.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
from pathlib import Path

import yaml

import conftest
import spp_pki
from deploy_helpers import agent_processes
from firewall_helpers import load_nft, ours, reset_firewall, snapshot, wait_until

# Nodes of the standard lab (tests/conftest.py) the fault scenarios use.
IPV4_NODE, OTHER_NODE, IPV6_NODE = "lin01", "lin02", "v6n01"
LINUX_NODES = (IPV4_NODE, OTHER_NODE, IPV6_NODE)
MIB = 1024 * 1024


def state_dir(lab) -> str:
    """The node's private state folder (a tmpfs per node), where fake components write."""
    return str(lab.lab.home / "node")


def run_dir(lab, tag: str) -> str:
    return str(lab.lab.home / "runs" / tag)


def fake_component(name: str, version: str, *, sleep: float = 0, rc: int = 0, pad: int = 0, requires: tuple = (),
                   reboot: str = "none", timeout: float | None = None) -> dict:
    return {"name": name, "version": version, "sleep": sleep, "rc": rc, "pad": pad, "requires": list(requires),
            "reboot": reboot, "timeout": timeout}


def script_body(spec: dict, state: str) -> bytes:
    marker, version = f"{state}/{spec['name']}.partial", f"{state}/{spec['name']}.version"
    lines = ["#!/bin/sh", f"touch {marker}"]
    if spec["sleep"]:
        lines.append(f"sleep {spec['sleep']}")
    if spec["rc"] == 0:
        lines.append(f"echo {spec['version']} > {version}")
    lines += [f"rm -f {marker}", f"echo {spec['name']} {spec['version']} rc {spec['rc']}", f"exit {spec['rc']}", ""]
    # sh stops reading at `exit`: the padding is never parsed, only downloaded and hashed.
    return "\n".join(lines).encode() + b"#" * spec["pad"]


def make_fault_repo(folder: Path, state: str, specs: list[dict]) -> Path:
    """Write the scripts and manifest.yml of ``specs`` (see ``fake_component``); return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for spec in specs:
        script = folder / f"{spec['name']}-{spec['version']}.sh"
        script.write_bytes(script_body(spec, state))
        script.chmod(0o755)
        entry = {
            "name": spec["name"], "version": spec["version"], "kind": "firmware", "os": "linux", "file": script.name,
            "sha256": hashlib.sha256(script.read_bytes()).hexdigest(), "size": script.stat().st_size,
            "detect": {"method": "file", "path": f"{state}/{spec['name']}.version"},
            "install": "script", "reboot": spec["reboot"], "requires": spec["requires"],
        }
        if spec["timeout"] is not None:
            entry["timeout"] = spec["timeout"]
        entries.append(entry)
    (folder / "manifest.yml").write_text(yaml.safe_dump({"format": 1, "components": entries}, sort_keys=False))
    return folder


def sign_for_run(repo: Path) -> str:
    """Sign the repository's manifest as it is now (the scenarios edit it until they start a run)
    with the lab signer; return the trust anchors folder the deploy passes as ``trust``."""
    pki = spp_pki.shared_lab_pki()
    if (repo / "manifest.yml").is_file():
        spp_pki.sign_manifest(repo, pki.signer)
    return str(pki.anchors)


def component_sha(repo: Path, name: str) -> str:
    return hashlib.sha256(next(repo.glob(f"{name}-*.sh")).read_bytes()).hexdigest()


def prepare_nodes(lab, nodes=LINUX_NODES) -> dict[str, dict[str, str]]:
    """Each node: empty firewall plus the user's nftables ruleset (DROP policy), no component
    installed. Returns each node's ruleset snapshot, the "before" of ``leftovers``."""
    for node in nodes:
        if node == IPV6_NODE:
            # Legacy iptables tables never go away once made; the IPv6-only node stays on nftables.
            lab.node_run(node, ["nft", "flush", "ruleset"])
        else:
            reset_firewall(lab, node)
        load_nft(lab, node)
        lab.node_run(node, ["sh", "-c", f"rm -f {state_dir(lab)}/*.version {state_dir(lab)}/*.partial"])
    return {node: snapshot(lab, node) for node in nodes}


def deploy_playbook(lab, folder: Path, repo: Path, tag: str, hosts: str, lease: int = 30, **options) -> subprocess.Popen:
    """Start ``fleet.firmware.deploy`` on ``hosts`` in the background, in a process group of its
    own (so that a signal reaches ansible-playbook as a Ctrl-C from a terminal would)."""
    task = {"repository": str(repo), "tag": tag, "run_dir": run_dir(lab, tag), "lease": lease, "progress_interval": 1,
            "trust": sign_for_run(repo)}
    task.update(options)
    book = folder / f"deploy-{tag}.yml"
    book.write_text(yaml.safe_dump([{"hosts": hosts, "gather_facts": False, "tasks": [{"fleet.firmware.deploy": task}]}]))
    argv = [conftest.ansible_bin("ansible-playbook"), "-i", str(lab.inventory), str(book)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=conftest.ansible_env(),
                            start_new_session=True)


def send(proc: subprocess.Popen, sig: signal.Signals) -> None:
    """Signal ansible-playbook's process group, as a terminal's Ctrl-C (SIGINT) or a kill would."""
    os.killpg(proc.pid, sig)


def ledger_events(lab, tag: str, node: str) -> list[dict]:
    path = Path(run_dir(lab, tag)) / "ledger" / f"{node}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def ledger_problem(lab, tag: str, node: str) -> str | None:
    """The ledger must end in ``cleaned``, or in the session's own ``failed`` that says why the
    cleanup did not finish (a message, no component: deploy's ``_clean``). A component's event or a
    stage in progress at the end is a problem, with or without a message."""
    events = ledger_events(lab, tag, node)
    if not events:
        return None  # the run never reached this node: nothing to account for
    last = events[-1]
    if last.get("stage") == "cleaned":
        return None
    if last.get("stage") == "failed" and last.get("message") and not last.get("component"):
        return None
    return f"ledger ends in {last.get('stage')!r}, not cleaned nor the session's failure saying why: {last}"


def half_installed(lab, node: str) -> list[str]:
    listing = lab.node_run(node, ["sh", "-c", f"ls {state_dir(lab)} | grep '[.]partial$' || true"]).stdout.split()
    return [name.removesuffix(".partial") for name in listing]


def staged_files(lab, node: str, tag: str) -> list[str]:
    """The run's files on the node: the staging folder and its control socket."""
    pattern = f"/var/tmp/fleet-firmware-{tag} /run/fleet-firmware/agent-{tag}.sock"
    return lab.node_run(node, ["sh", "-c", f"ls -d {pattern} 2>/dev/null || true"]).stdout.split()


def leftovers(lab, node: str, tag: str, before: dict[str, str]) -> list[str]:
    """Everything a scenario must not leave on ``node`` (empty: nothing left)."""
    problems = []
    if agent_processes(lab, node):
        problems.append(f"agent processes {agent_processes(lab, node)}")
    if staged_files(lab, node, tag):
        problems.append(f"staged files {staged_files(lab, node, tag)}")
    if snapshot(lab, node) != before:
        problems.append(f"ruleset differs: {ours(lab, node)!r}")
    if half_installed(lab, node):
        problems.append(f"half-installed {half_installed(lab, node)}")
    ledger = ledger_problem(lab, tag, node)
    if ledger:
        problems.append(ledger)
    return problems


def assert_nothing_left(lab, tag: str, before: dict[str, dict[str, str]], timeout: float = 60) -> None:
    """Wait up to ``timeout`` s (a lease may have to run out) until no node keeps anything of the run."""
    def clean() -> bool:
        return all(not leftovers(lab, node, tag, snap) for node, snap in before.items())

    if not wait_until(clean, timeout, step=0.5):
        found = {node: leftovers(lab, node, tag, snap) for node, snap in before.items()}
        raise AssertionError(f"left behind by run {tag}: { {n: p for n, p in found.items() if p} }")
