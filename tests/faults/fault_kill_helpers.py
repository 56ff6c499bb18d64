# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Holding a run in one stage long enough to hit it, with real parts: a traffic-control qdisc on
the node's host-side veth (latency, a slow link, loss, a link down), a slow detection tool, a
sleeping installer, the lab's reboot after a delay; and reading where a run is from its ledger
and from the node."""
from __future__ import annotations

import contextlib
import shutil
import subprocess
import typing as t
from pathlib import Path

import yaml

from fault_helpers import ledger_events, run_dir, state_dir
from firewall_helpers import wait_until

# Where an ansible-playbook can be signalled, in the order a run passes them.
STAGES = ("staged", "firewall_open", "downloading", "installing", "rebooting")
# The ledger stages that belong to each (the deploy writes staged/started/firewall_open at once,
# then "inventoried" while the agent plans).
LEDGER_STAGES = {
    "firewall_open": ("firewall_open", "inventoried"),
    "downloading": ("downloading",),
    "installing": ("installing",),
    "rebooting": ("rebooting",),
}
ORDER = ("preflight", "staged", "started", "firewall_open", "inventoried", "planned", "downloading", "verified",
         "installing", "installed", "skipped", "failed", "rebooting", "activated", "cancelled", "cleaned")


@contextlib.contextmanager
def qdisc(lab, node: str, *spec: str) -> t.Iterator[str]:
    """A root qdisc (``tbf rate ...``) on the node's host-side veth (egress: towards the node), removed
    afterwards. ``add``, not ``replace``: a qdisc that is not ours is never overwritten."""
    veth = lab.node(node).veth
    subprocess.run(["tc", "qdisc", "add", "dev", veth, "root", *spec], check=True, capture_output=True, text=True)
    try:
        yield veth
    finally:
        subprocess.run(["tc", "qdisc", "del", "dev", veth, "root"], check=False, capture_output=True)


def stages(lab, tag: str, node: str) -> list[str]:
    return [e["stage"] for e in ledger_events(lab, tag, node) if "stage" in e]


def last_stage(lab, tag: str, node: str) -> str | None:
    found = stages(lab, tag, node)
    return found[-1] if found else None


def fresh_run_dir(lab, tag: str) -> None:
    """A tag used by an earlier run of the same test: its ledger must not mix into this one."""
    shutil.rmtree(run_dir(lab, tag), ignore_errors=True)


def agent_files(lab, node: str, tag: str) -> list[str]:
    """The agent as staged on the node: in Ansible's temporary folder, or in its staging folder."""
    pattern = f"/root/.ansible/tmp/*/agent.pyz /var/tmp/fleet-firmware-{tag}"
    return lab.node_run(node, ["sh", "-c", f"ls -d {pattern} 2>/dev/null || true"]).stdout.split()


def stray_agent_copies(lab, node: str) -> list[str]:
    """Copies of the agent left in Ansible's temporary folders on the node (none after a run)."""
    return lab.node_run(node, ["sh", "-c", "ls -d /root/.ansible/tmp/*/agent.pyz 2>/dev/null || true"]).stdout.split()


def at_stage(lab, tag: str, node: str, stage: str) -> bool:
    """The run is in ``stage`` on ``node`` now (the ledger, and for "staged" the node itself)."""
    found = stages(lab, tag, node)
    if stage == "staged":
        # Transferred or starting, not yet recorded: the agent is on the node, the ledger has only "preflight".
        return found == ["preflight"] and bool(agent_files(lab, node, tag))
    if stage == "rebooting":
        # Recorded, and the node's delayed reboot command is running (the reboot will come).
        return found[-1:] == ["rebooting"] and reboot_pending(lab, node)
    return bool(found) and found[-1] in LEDGER_STAGES[stage]


def reboot_pending(lab, node: str) -> bool:
    """The lab's reboot command (deploy_helpers.RebootWatcher.COMMAND) is waiting out its delay on the node."""
    return lab.node_run(node, ["pgrep", "-f", "fleet-lab-reboot"], check=False).returncode == 0


def passed(lab, tag: str, node: str, stage: str) -> bool:
    """The run went past ``stage`` (so waiting for it is pointless)."""
    found = stages(lab, tag, node)
    if not found:
        return False
    if found[-1] in ("cleaned", "failed", "cancelled"):
        return True
    first = "staged" if stage == "staged" else LEDGER_STAGES[stage][-1]
    return ORDER.index(found[-1]) > ORDER.index(first) if found[-1] in ORDER else False


def wait_for_stage(lab, proc: subprocess.Popen, tag: str, node: str, stage: str, timeout: float = 240) -> None:
    """Poll until the run is in ``stage``; fail (with the playbook's output) if it never is."""
    def there() -> bool:
        return at_stage(lab, tag, node, stage) or passed(lab, tag, node, stage) or proc.poll() is not None

    wait_until(there, timeout, step=0.1)
    if not at_stage(lab, tag, node, stage):
        output = proc.stdout.read() if proc.poll() is not None and proc.stdout else "(still running)"
        raise AssertionError(f"the run never was in {stage!r} when polled: ledger {stages(lab, tag, node)}; playbook: {output}")


def slow_detection(repo: Path, name: str, seconds: int) -> None:
    """Give ``name`` a detection tool that takes ``seconds`` (a slow vendor inventory): the agent's
    plan, and with it the stage where the agent's port is open and nothing is delivered yet, lasts
    that long. The tool reads the same version file the fake installer writes."""
    manifest = repo / "manifest.yml"
    data = yaml.safe_load(manifest.read_text())
    for entry in data["components"]:
        if entry["name"] == name:
            path = entry["detect"]["path"]
            entry["detect"] = {"method": "command", "command": ["sh", "-c", f"sleep {seconds}; cat {path}"], "absent_rc": [1],
                               "regex": r"^(\S+)", "timeout": seconds + 60}
    manifest.write_text(yaml.safe_dump(data, sort_keys=False))


def installed(lab, node: str, name: str) -> str | None:
    proc = lab.node_run(node, ["cat", f"{state_dir(lab)}/{name}.version"], check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None
