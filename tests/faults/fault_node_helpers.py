# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers of the node, input and soak fault scenarios (on top of fault_helpers).

* ``start_deploy``: fault_helpers.deploy_playbook with ``-v``, so that every host's task result
  is printed as one JSON line; ``host_results`` reads them back.
* ``with_term_trap``: turn a fake component into an installer that rolls back when it gets
  SIGTERM (removes its ``.partial`` marker), or one that ignores SIGTERM (only SIGKILL stops it);
  ``gated``: one that installs until the test creates a file on the node.
* ``node_processes`` / ``installer_processes``: what runs inside a node, read from /proc.
* ``sshd_down`` / ``sshd_up``: kill every sshd of a node (listener and sessions), start it again.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import yaml

import conftest
import fleetlab
from fault_helpers import ledger_events, run_dir, sign_for_run

RESULT_LINE = re.compile(r"^(?P<status>ok|changed|fatal|failed): \[(?P<host>[^\]]+)\](?:: [A-Z]+!)? => (?P<json>\{.*\})\s*$")


def deploy_book(lab, folder: Path, repo: Path, tag: str, hosts: str, lease: int = 30, **options) -> Path:
    """The one-task playbook of a ``fleet.firmware.deploy`` run on ``hosts``."""
    task = {"repository": str(repo), "tag": tag, "run_dir": run_dir(lab, tag), "lease": lease, "progress_interval": 1,
            "trust": sign_for_run(repo)}
    task.update(options)
    book = folder / f"deploy-{tag}.yml"
    book.write_text(yaml.safe_dump([{"hosts": hosts, "gather_facts": False, "tasks": [{"fleet.firmware.deploy": task}]}]))
    return book


def start_deploy(lab, folder: Path, repo: Path, tag: str, hosts: str, lease: int = 30, forks: int = 5, **options) -> subprocess.Popen:
    """The deploy on ``hosts`` in the background, in its own process group, with ``-v``."""
    book = deploy_book(lab, folder, repo, tag, hosts, lease, **options)
    argv = [conftest.ansible_bin("ansible-playbook"), "-v", "-f", str(forks), "-i", str(lab.inventory), str(book)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=conftest.ansible_env(),
                            start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    """Wait for the playbook; its whole output."""
    return proc.communicate(timeout=timeout)[0]


def host_results(output: str) -> dict[str, dict]:
    """Each host's task result (the JSON ``-v`` prints), with ``_status`` (ok, changed, fatal)."""
    found = {}
    for line in output.splitlines():
        match = RESULT_LINE.match(line)
        if match:
            found[match["host"]] = dict(json.loads(match["json"]), _status=match["status"])
    return found


def by_name(result: dict) -> dict[str, dict]:
    return {c["name"]: c for c in result.get("components", [])}


def with_term_trap(repo: Path, name: str, state: str, mode: str) -> None:
    """Make component ``name`` of ``repo`` react to SIGTERM: ``rollback`` removes its marker and
    exits 143 (a well-behaved installer), ``ignore`` ignores SIGTERM (its children inherit that).
    Rewrites the script and its hash and size in the manifest."""
    script = next(repo.glob(f"{name}-*.sh"))
    marker = f"{state}/{name}.partial"
    trap = {"rollback": f"trap 'rm -f {marker}; exit 143' TERM", "ignore": "trap '' TERM"}[mode]
    head, rest = script.read_bytes().split(b"\n", 1)
    script.write_bytes(head + b"\n" + trap.encode() + b"\n" + rest)
    _rehash(repo, name, script)


def node_processes(lab, node: str) -> dict[int, str]:
    """pid -> command line of every process in the node's network namespace."""
    inode = fleetlab.netns_inode(lab.node(node).netns)
    found = {}
    for pid in fleetlab.pids_in_netns([inode] if inode else []):
        try:
            found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
    return found


def installer_processes(lab, node: str, script_name: str) -> list[str]:
    """Processes of a fake installer still running on the node (the script or its ``sleep``)."""
    return [cmd for cmd in node_processes(lab, node).values() if script_name in cmd or cmd.startswith("sleep 600")]


def sshd_pids(lab, node: str) -> list[int]:
    pids = []
    for pid in node_processes(lab, node):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip().startswith("sshd"):
                pids.append(pid)
        except OSError:
            continue
    return pids


def sshd_down(lab, node: str) -> int:
    """Kill every sshd process of the node (the listener and each session's): SSH is gone, as
    when sshd crashes. Returns how many were killed."""
    pids = sshd_pids(lab, node)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while sshd_pids(lab, node) and time.monotonic() < deadline:
        time.sleep(0.1)
    return len(pids)


def sshd_up(lab, node: str) -> None:
    """Start the node's sshd again, as the lab does (same config, waits for port 22)."""
    lab.lab._start_services(lab.node(node))  # pylint: disable=protected-access


def wait_for_stage(lab, tag: str, node: str, stage: str, timeout: float = 120, component: str | None = None) -> bool:
    """Wait until the run's ledger for ``node`` holds ``stage`` (for ``component``, when given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in ledger_events(lab, tag, node):
            if event.get("stage") == stage and (component is None or event.get("component") == component):
                return True
        time.sleep(0.2)
    return False


def agent_started(lab, tag: str, node: str) -> bool:
    """Did the run ever start an agent on ``node`` (its ledger says ``staged``)?"""
    return any(e.get("stage") in ("staged", "started", "firewall_open") for e in ledger_events(lab, tag, node))


MEASURE = ("import resource, subprocess, sys, time\n"
           "started = time.monotonic()\n"
           "rc = subprocess.call(sys.argv[1:])\n"
           "print('MEASURED %.3f %d' % (time.monotonic() - started, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss), flush=True)\n"
           "sys.exit(rc)\n")


def measured_deploy(lab, folder: Path, repo: Path, tag: str, hosts: str, timeout: float = 600, **options) -> tuple[str, float, int]:
    """Run the deploy to its end under a small wrapper that measures it: (output, wall seconds,
    peak RSS in KiB of the largest process of the run: ansible-playbook, a worker or the engine)."""
    book = deploy_book(lab, folder, repo, tag, hosts, **options)
    argv = [sys.executable, "-c", MEASURE, conftest.ansible_bin("ansible-playbook"), "-v", "-i", str(lab.inventory), str(book)]
    run = subprocess.run(argv, capture_output=True, text=True, env=conftest.ansible_env(), timeout=timeout, check=False)
    measured = [line for line in run.stdout.splitlines() if line.startswith("MEASURED ")][-1].split()
    return run.stdout + run.stderr, float(measured[1]), int(measured[2])


def prepare_any(lab, nodes) -> dict[str, dict[str, str]]:
    """fault_helpers.prepare_nodes for any node names: IPv6-only nodes (``v6n..``) stay on
    nftables (legacy iptables tables never go away), the others get the reset of the standard lab."""
    from fault_helpers import prepare_nodes
    from firewall_helpers import load_nft, snapshot
    v6 = [n for n in nodes if n.startswith("v6n")]
    others = [n for n in nodes if n not in v6]
    snapshots = prepare_nodes(lab, others) if others else {}
    for node in v6:
        lab.node_run(node, ["nft", "flush", "ruleset"])
        load_nft(lab, node)
        lab.node_run(node, ["sh", "-c", "rm -f {0}/*.version {0}/*.partial".format(lab.lab.home / "node")])
        snapshots[node] = snapshot(lab, node)
    return snapshots


@contextlib.contextmanager
def packet_loss(lab, node: str, percent: int) -> t.Iterator[None]:
    """``percent`` % of the node's packets dropped both ways, by an nftables table of its own
    (``tc netem`` needs sch_netem, which this kernel lacks); the table goes afterwards."""
    table = "inet flt_packet_loss"
    rules = (f"add table {table}\n"
             f"add chain {table} in {{ type filter hook input priority -300; }}\n"
             f"add chain {table} out {{ type filter hook output priority -300; }}\n"
             f"add rule {table} in numgen random mod 100 < {percent} drop\n"
             f"add rule {table} out numgen random mod 100 < {percent} drop\n")
    lab.lab.node_run(lab.node(node), ["nft", "-f", "-"], stdin=rules)
    try:
        yield
    finally:
        lab.node_run(node, ["nft", f"delete table {table}"], check=False)


def gated(repo: Path, name: str, gate: str, limit: int = 300) -> None:
    """Make component ``name`` of ``repo`` wait until the file ``gate`` exists on the node (at most
    ``limit`` seconds) instead of sleeping: a test decides when the install ends, whatever the load."""
    script = next(repo.glob(f"{name}-*.sh"))
    lines = script.read_bytes().split(b"\n")
    wait = f"i=0; while [ ! -e {gate} ] && [ $i -lt {limit * 5} ]; do sleep 0.2; i=$((i+1)); done".encode()
    lines = [wait if line.startswith(b"sleep ") else line for line in lines]
    script.write_bytes(b"\n".join(lines))
    _rehash(repo, name, script)


def _rehash(repo: Path, name: str, script: Path) -> None:
    manifest_path = repo / "manifest.yml"
    manifest = yaml.safe_load(manifest_path.read_text())
    for entry in manifest["components"]:
        if entry["name"] == name:
            entry.update(sha256=hashlib.sha256(script.read_bytes()).hexdigest(), size=script.stat().st_size)
    manifest_path.write_text(yaml.safe_dump(manifest, sort_keys=False))
