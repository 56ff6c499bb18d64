# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fake repositories for the deploy tests: shell scripts that write a version file in the
node's private state folder and exit with a chosen code, and a manifest that detects them."""
from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import yaml

import fleetlab
import spp_pki
from checks import wait_for
from firewall_helpers import ours, snapshot


def lab_trust() -> str:
    """The trust anchors folder that verifies every repository make_repo signs (pass it as ``trust``)."""
    return str(spp_pki.shared_lab_pki().anchors)


def component(name: str, version: str, rc: int = 0, requires: tuple = (), sleep: float = 0, kind: str = "firmware",
              install: str = "script", reboot: str = "none", writes: str | None = None, detect: str = "file") -> dict:
    """``writes``: the version the installer leaves (default its own; another one is a component
    that does not activate); ``detect: component``: one that cannot be re-detected."""
    return {"name": name, "version": version, "rc": rc, "requires": list(requires), "sleep": sleep, "kind": kind,
            "install": install, "reboot": reboot, "writes": writes or version, "detect": detect}


def make_repo(folder: Path, state_dir: str, specs: list[dict], sign: bool = True) -> Path:
    """Write the scripts and manifest.yml; return the folder. Each script gets a detached CMS
    signature (``<script>.compsig``, the ``signature`` field) by the lab signer (``lab_trust()``)."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for spec in specs:
        script = folder / f"{spec['name']}-{spec['version']}.sh"
        # Success codes write the version (what a real installer changes); a failure writes nothing.
        write = spec["rc"] in (0, 1) if spec["install"] == "smart_component" else spec["rc"] == 0
        body = "#!/bin/sh\n"
        if spec["sleep"]:
            body += f"sleep {spec['sleep']}\n"
        if write:
            body += f"echo {spec.get('writes', spec['version'])} > {state_dir}/{spec['name']}.version\n"
        body += f"echo {spec['name']} {spec['version']} rc {spec['rc']}\nexit {spec['rc']}\n"
        script.write_text(body)
        script.chmod(0o755)
        entries.append({
            "name": spec["name"], "version": spec["version"], "kind": spec["kind"], "os": "linux", "file": script.name,
            "sha256": hashlib.sha256(script.read_bytes()).hexdigest(), "size": script.stat().st_size,
            "detect": {"method": "component"} if spec.get("detect") == "component" else {"method": "file", "path": f"{state_dir}/{spec['name']}.version"},
            "install": spec["install"], "reboot": spec["reboot"], "requires": spec["requires"],
        })
        if sign:
            entries[-1]["signature"] = spp_pki.sign_file(script, spp_pki.shared_lab_pki().signer).name
    (folder / "manifest.yml").write_text(yaml.safe_dump({"format": 1, "components": entries}, sort_keys=False))
    return folder


def explain(result, watcher: RebootWatcher | None = None) -> str:
    """A failed deploy in one readable string (pytest shortens a dict): its message, each
    component's row, the reboot, what the lab's reboot watcher saw."""
    data = result.data
    rows = [f"{c.get('name')}: {c.get('status')} ({c.get('message')})" for c in data.get("components") or []]
    text = f"status {result.status}; msg {data.get('msg')!r}; rebooted {data.get('rebooted')}; reboot {data.get('reboot')}; " + "; ".join(rows)
    if watcher is not None:
        text += f"; the lab rebooted {watcher.rebooted}, errors {watcher.errors}"
    return text


def by_name(result_data: dict) -> dict[str, dict]:
    return {c["name"]: c for c in result_data["components"]}


class RebootWatcher(threading.Thread):
    """The lab's side of a node reboot: a node asks by touching /var/tmp/fleet-lab-reboot (the
    deploy's reboot_command in the tests); the lab then simulates the reboot (new boot id,
    processes restarted). The machine itself never reboots."""

    REQUEST = "var/tmp/fleet-lab-reboot"
    COMMAND = ["touch", "/var/tmp/fleet-lab-reboot"]  # an argument list, as reboot_command takes

    def __init__(self, lab: fleetlab.Lab) -> None:
        super().__init__(daemon=True)
        self.lab = lab
        self.halt = threading.Event()
        self.rebooted: list[str] = []
        self.errors: list[str] = []  # what stopped a simulated reboot (the thread itself goes on)

    def asking(self, node) -> list[int]:
        """The node's processes still running the reboot command (touch, or a shell around it)."""
        inode = fleetlab.netns_inode(node.netns)
        found = []
        for pid in fleetlab.pids_in_netns([inode] if inode else []):
            try:
                if self.REQUEST.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(pid)
            except OSError:
                continue
        return found

    def run(self) -> None:
        while not self.halt.wait(0.3):
            for node in self.lab.nodes():
                holder = self.lab.holder_pid(node)
                request = Path(f"/proc/{holder}/root") / self.REQUEST if holder else None
                if request is not None and request.exists():
                    request.unlink()
                    try:
                        # The command that asked ends and answers first, as with a real reboot (a bound, not a wait for time).
                        wait_for(lambda n=node: not self.asking(n), 60, f"the reboot command on {node.name} to end")
                        self.lab.reboot(node)
                    except Exception as exc:  # pylint: disable=broad-except  # said by explain(), not lost in a thread
                        self.errors.append(f"{node.name}: {exc}")
                        continue
                    self.rebooted.append(node.name)


def agent_processes(lab, node: str) -> list[int]:
    """Processes of the node running an agent zipapp."""
    inode = fleetlab.netns_inode(lab.node(node).netns)
    found = []
    for pid in fleetlab.pids_in_netns([inode] if inode else []):
        try:
            if b"agent.pyz" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


def left_behind(lab, node: str, tag: str, before: dict) -> list[str]:
    """Everything of the run still on the node: agent processes, its staging folder, rules that
    were not there before (empty: nothing)."""
    problems = []
    if agent_processes(lab, node):
        problems.append(f"agent processes {agent_processes(lab, node)}")
    if lab.node_run(node, ["test", "-e", f"/var/tmp/fleet-firmware-{tag}"], check=False).returncode == 0:
        problems.append("staging folder")
    if snapshot(lab, node) != before:
        problems.append(f"ruleset differs: {ours(lab, node)!r}")
    return problems
