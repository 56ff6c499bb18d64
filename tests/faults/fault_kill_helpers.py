# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Holding a run in one stage long enough to hit it, with real parts: a traffic-control qdisc on
the node's host-side veth (latency, a slow link, loss, a link down), a slow detection tool, a
sleeping installer, the lab's reboot after a delay; and reading where a run is from its ledger
and from the node."""
from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import time
import typing as t
from pathlib import Path

import yaml

import fleetlab
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
    """The lab's reboot command (deploy_helpers.RebootWatcher.COMMAND) is waiting out its delay on
    the node. Processes of the node's network namespace only: the nodes share the host's pid
    namespace, and other labs' nodes may be rebooting too."""
    inode = fleetlab.netns_inode(lab.node(node).netns)
    for pid in fleetlab.pids_in_netns([inode] if inode else []):
        try:
            if b"fleet-lab-reboot" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


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


# -- network faults: the node's link, loss, the engine's port (host side, our own tables only)

def host_table(purpose: str) -> str:
    """The name of an nftables table of ours on the host (one per lab instance and purpose)."""
    return f"fleet_faults_{fleetlab.LAB_ID}_{purpose}"


def nft(*commands: str) -> None:
    for command in commands:
        subprocess.run(["nft", command], check=True, capture_output=True, text=True)


@contextlib.contextmanager
def lossy_link(lab, node: str, percent: int) -> t.Iterator[str]:
    """Drop ``percent`` % of the packets both ways on the node's bridge port, at random (a bridge
    table of our own on the host; this kernel has no netem). Yields the table's name."""
    table, veth = host_table("loss"), lab.node(node).veth
    nft(f"add table bridge {table}",
        f"add chain bridge {table} to_node {{ type filter hook output priority 0; }}",
        f"add chain bridge {table} from_node {{ type filter hook input priority 0; }}",
        f'add rule bridge {table} to_node oifname "{veth}" numgen random mod 100 < {percent} counter drop',
        f'add rule bridge {table} from_node iifname "{veth}" numgen random mod 100 < {percent} counter drop')
    try:
        yield table
    finally:
        subprocess.run(["nft", f"delete table bridge {table}"], check=False, capture_output=True)


def dropped(table: str, family: str = "bridge") -> int:
    """Packets the counters of our table dropped so far."""
    listing = subprocess.run(["nft", f"list table {family} {table}"], check=True, capture_output=True, text=True).stdout
    return sum(int(n) for n in re.findall(r"counter packets (\d+)", listing))


@contextlib.contextmanager
def engine_port_blocked(lab, node: str, port: int) -> t.Iterator[str]:
    """Refuse (TCP reset) the node's connections to the engine's port on the controller: a table
    of our own on the host, at a priority before any other input chain, removed afterwards."""
    table = host_table("block")
    rules = [f"add table inet {table}", f"add chain inet {table} input {{ type filter hook input priority -50; }}"]
    for address in lab.node(node).addresses:
        family = "ip6" if ":" in address else "ip"
        rules.append(f"add rule inet {table} input {family} saddr {address} tcp dport {port} counter reject with tcp reset")
    nft(*rules)
    try:
        yield table
    finally:
        subprocess.run(["nft", f"delete table inet {table}"], check=False, capture_output=True)


def link_down(lab, node: str, seconds: float) -> None:
    """The node's link down on the host side for ``seconds``, then up again (up whatever happens)."""
    veth = lab.node(node).veth
    subprocess.run(["ip", "link", "set", veth, "down"], check=True)
    try:
        time.sleep(seconds)
    finally:
        subprocess.run(["ip", "link", "set", veth, "up"], check=True)


def downloaded_bytes(lab, node: str, tag: str) -> int:
    """Bytes of the download in progress on the node (its ``.part`` file in the staging folder)."""
    script = f"cat /var/tmp/fleet-firmware-{tag}/components/*.part 2>/dev/null | wc -c"
    return int(lab.node_run(node, ["sh", "-c", script]).stdout.strip() or 0)


def engine_events(lab, tag: str, node: str, name: str) -> list[dict]:
    return [e for e in ledger_events(lab, tag, node) if e.get("source") == "engine" and e.get("event") == name]
