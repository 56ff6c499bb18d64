# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The soak: 20 consecutive deploy runs on a 10-node lab (8 dual-stack, 2 IPv6-only), each with
a fault drawn from a seeded random generator (none, SIGINT or SIGKILL of ansible-playbook at a
random moment, the node's link down for 3 s, 5 % packet loss both ways, a component hanging past
its timeout, a failing component), each followed by the shared leftovers check on
every node. The tally (runs, faults by kind, leftovers) is printed at the end; leftovers must be 0.

FLEET_SOAK_SEED replays a soak (the seed is printed); FLEET_SOAK_RUNS changes the number of runs.
Every run brings new versions, so every run installs on every node it reaches. This kernel has
no ``sch_netem``: the loss is an nftables ``numgen random`` drop in a table of the node's own,
removed before the leftovers check.
"""
from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import threading
import time

import pytest

import conftest
import fleetlab
from fault_helpers import fake_component, leftovers, make_fault_repo, send, state_dir
from fault_node_helpers import finish, packet_loss, prepare_any, start_deploy, wait_for_stage, with_term_trap
from firewall_helpers import wait_until

pytestmark = [pytest.mark.lab, pytest.mark.faults, pytest.mark.faults_slow]

SOAK_LAB = {"linux": 8, "ipv6_only": 2, "ipv4_only": 0, "windows": 0}
KINDS = ("none", "sigint", "sigkill", "link_flap", "packet_loss", "hanging_component", "failing_component")
FAULT_KINDS = ("sigint", "sigkill", "link_flap", "packet_loss")
# The return code of a run that no injected fault reached (ansible-playbook: 2 = a host failed).
EXPECTED_RC = {"none": 0, "hanging_component": 2, "failing_component": 2}
# Long enough for a loaded 2-core machine between the agent's start and the first renewal.
LEASE = 30
# Lease, the firewall lease's grace (15 s) and an in-flight component: the bound of every wait.
SETTLE = 120


@pytest.fixture(scope="module")
def soak_lab(lab_session):
    """The 10-node lab; the next module's ``lab`` fixture brings the standard lab back."""
    lab_session.up(fleetlab.plan_nodes(**SOAK_LAB))
    return conftest.LabHandle(lab_session)


def repo_for(lab, folder, run: int, kind: str):
    specs = [fake_component("bmc", f"1.{run}", pad=2 << 20), fake_component("nic", f"2.{run}", sleep=2, requires=("bmc",)),
             fake_component("tool", f"3.{run}", sleep=1)]
    if kind == "hanging_component":
        specs.insert(1, fake_component("hang", f"9.{run}", sleep=600, timeout=2))
    if kind == "failing_component":
        specs.insert(1, fake_component("bad", f"9.{run}", rc=1))
    repo = make_fault_repo(folder, state_dir(lab), specs)
    if kind == "hanging_component":
        with_term_trap(repo, "hang", state_dir(lab), "rollback")
    return repo


class Fault(threading.Thread):
    """Injects one fault into a running deploy, at a random moment once the target node is at a
    random stage; undoes what it changed in the lab (link, qdisc) when done."""

    def __init__(self, lab, proc: subprocess.Popen, tag: str, kind: str, node: str, rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.lab, self.proc, self.tag, self.kind, self.node = lab, proc, tag, kind, node
        self.stage = rng.choice(("firewall_open", "downloading", "installing"))
        self.delay = round(rng.uniform(0, 2), 2)
        self.done = ""

    def run(self) -> None:
        if not wait_for_stage(self.lab, self.tag, self.node, self.stage, timeout=180) or self.proc.poll() is not None:
            self.done = f"not injected (never saw {self.stage})"
            return
        time.sleep(self.delay)
        if self.kind == "sigint":
            send(self.proc, signal.SIGINT)
        elif self.kind == "sigkill":
            send(self.proc, signal.SIGKILL)
        elif self.kind == "link_flap":
            veth = self.lab.node(self.node).veth
            subprocess.run(["ip", "link", "set", veth, "down"], check=True)
            time.sleep(3)
            subprocess.run(["ip", "link", "set", veth, "up"], check=True)
        elif self.kind == "packet_loss":
            with packet_loss(self.lab, self.node, 5):
                self.proc.wait()
        self.done = f"at {self.stage} + {self.delay} s on {self.node}"


def test_soak_20_runs_with_random_faults_leave_nothing(soak_lab, tmp_path):
    lab = soak_lab
    seed = int(os.environ.get("FLEET_SOAK_SEED") or random.SystemRandom().randrange(1 << 32))
    runs = int(os.environ.get("FLEET_SOAK_RUNS") or 20)
    rng = random.Random(seed)
    print(f"\nsoak seed {seed} (FLEET_SOAK_SEED={seed} replays it), {runs} runs")
    nodes = [n.name for n in lab.nodes()]
    before = prepare_any(lab, nodes)
    tally: collections.Counter = collections.Counter()
    outcomes: collections.Counter = collections.Counter()
    left: dict[str, dict] = {}
    wrong: dict[str, str] = {}  # runs whose outcome is fixed (no fault reached them) and was not that
    started = time.monotonic()
    for run in range(1, runs + 1):
        kind, node = rng.choice(KINDS), rng.choice(nodes)
        tag = f"flt-soak-{run:02d}"
        repo = repo_for(lab, tmp_path / tag, run, kind)
        proc = start_deploy(lab, tmp_path, repo, tag, "all", lease=LEASE, forks=len(nodes))
        fault = None
        if kind in FAULT_KINDS:
            fault = Fault(lab, proc, tag, kind, node, rng)
            fault.start()
        output = finish(proc, timeout=600)
        if fault is not None:
            fault.join(60)
        tally[kind] += 1
        if fault is not None and fault.done.startswith("not injected"):
            tally["not injected"] += 1  # the run ended before the chosen stage: a run without a fault
        outcomes["rc 0" if proc.returncode == 0 else f"rc {proc.returncode}"] += 1
        injected = fault is not None and not fault.done.startswith("not injected")
        if not injected and proc.returncode != EXPECTED_RC.get(kind, 0):
            # No fault reached this run: it must end as its repository says (a failing or hanging
            # component fails the host, rc 2; anything else succeeds).
            wrong[tag] = f"{kind} without an injected fault ended rc {proc.returncode}, not {EXPECTED_RC.get(kind, 0)}"
        tally["injected"] += injected

        def clean(tag=tag) -> bool:
            return all(not leftovers(lab, n, tag, before[n]) for n in nodes)

        if not wait_until(clean, SETTLE, step=1):
            left[tag] = {n: leftovers(lab, n, tag, before[n]) for n in nodes if leftovers(lab, n, tag, before[n])}
            before = prepare_any(lab, nodes)  # the next run starts clean; this one is counted
        print(f"run {run:2d} {tag}: {kind:18s} {fault.done if fault else '':40s} rc={proc.returncode} "
              f"t={time.monotonic() - started:5.0f} s{' LEFT ' + str(left[tag]) if tag in left else ''}")
        if proc.returncode not in (0, 2, -signal.SIGKILL, -signal.SIGINT) and kind != "sigint":
            print(output[-2000:])
    print(f"soak tally: runs {runs}, faults {dict(sorted(tally.items()))}, outcomes {dict(sorted(outcomes.items()))}, "
          f"leftovers {len(left)}, seed {seed}, {time.monotonic() - started:.0f} s")
    assert not left, f"runs left something behind (seed {seed}): {left}"
    assert not wrong, f"runs without a fault did not end as they must (seed {seed}): {wrong}"
    faulted = sum(tally[kind] for kind in FAULT_KINDS)
    # A soak whose faults never land proves nothing: most must be injected (a short run may end first).
    assert tally["injected"] * 2 >= faulted, f"only {tally['injected']} of {faulted} faults injected (seed {seed})"
