# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The kill matrix: SIGINT, SIGTERM and SIGKILL of ``ansible-playbook`` (its process group, as a
terminal's Ctrl-C or a kill would) at each stage of a node's session, on the IPv4 node and the
IPv6-only node. Each stage is held long enough to hit with real parts:

- staged: the node's link shaped to 256 kbit/s (tbf; this kernel has no netem), so that the
  agent's transfer and start take a few seconds; hit while the agent is on the node and the
  ledger has only ``preflight``;
- firewall_open: a detection tool that takes 10 s, so the agent (port open) plans that long;
- downloading: a 24 MiB component over a link shaped to 16 Mbit/s (tbf);
- installing: an installer that sleeps 12 s, with a second component after it;
- rebooting: ``reboot: always`` with a 10 s ``reboot_delay`` (the lab's simulated reboot); hit
  once the node's delayed reboot command is running.

Afterwards, on the node: nothing of the run is left (``assert_nothing_left``: no agent, no
staged file, ruleset as before, no half-installed component, a ledger that ends ``cleaned`` or
says why) and no copy of the agent in Ansible's temporary folders, already at the moment the
ledger says ``cleaned``; plus each stage's own expectations. SIGINT and SIGTERM run with a 300 s
lease: a clean node then proves the deploy's ``finally`` cleaned it, not the lease. SIGKILL
leaves Ansible's worker (a session of its own) orphaned: it must start nothing new, let the
component in flight finish, clean up and say why in the ledger; had it died too, the 20 s lease
would have cleaned up (tests/integration/test_deploy.py kills the lease's way).
"""
from __future__ import annotations

import itertools
import signal
from contextlib import ExitStack

import pytest

from deploy_helpers import RebootWatcher
from fault_helpers import (IPV4_NODE, IPV6_NODE, MIB, assert_nothing_left, deploy_playbook, fake_component, leftovers,
                           ledger_events, make_fault_repo, prepare_nodes, send, state_dir)
from fault_kill_helpers import (LEDGER_STAGES, ORDER, STAGES, fresh_run_dir, installed, qdisc, slow_detection, stages,
                                stray_agent_copies, wait_for_stage)
from firewall_helpers import wait_until

from ansible_collections.fleet.firmware.plugins.plugin_utils import ledger

pytestmark = [pytest.mark.lab, pytest.mark.faults]

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
NODES = (IPV4_NODE, IPV6_NODE)
KILL_LEASE, CLEAN_LEASE = 20, 300
INSTALL_SLEEP = 12
# The fast half (make test): every stage at least once, every signal twice, both families.
DIAGONAL = {
    ("staged", signal.SIGTERM, IPV6_NODE),
    ("firewall_open", signal.SIGINT, IPV4_NODE),
    ("downloading", signal.SIGKILL, IPV6_NODE),
    ("installing", signal.SIGINT, IPV6_NODE),
    ("installing", signal.SIGKILL, IPV4_NODE),
    ("rebooting", signal.SIGTERM, IPV4_NODE),
}


def matrix() -> list:
    cases = []
    for stage, sig, node in itertools.product(STAGES, SIGNALS, NODES):
        marks = [] if (stage, sig, node) in DIAGONAL else [pytest.mark.faults_slow]
        cases.append(pytest.param(stage, sig, node, marks=marks, id=f"{stage}-{sig.name}-{node}"))
    return cases


def scenario(lab, stage: str, stack: ExitStack, node: str) -> tuple[list[dict], dict, RebootWatcher | None]:
    """The components and deploy options that hold a run in ``stage``, and the reboot watcher if
    it needs one; a qdisc or watcher is entered on ``stack`` (undone whatever happens)."""
    if stage == "staged":
        stack.enter_context(qdisc(lab, node, "tbf", "rate", "256kbit", "burst", "8kb", "latency", "5s"))
        return [fake_component("fw", "1.0")], {}, None
    if stage == "firewall_open":
        # Push: in pull mode (issue 15) the agent opens no port, so only push has this stage.
        return [fake_component("fw", "1.0")], {"delivery": "push"}, None
    if stage == "downloading":
        stack.enter_context(qdisc(lab, node, "tbf", "rate", "16mbit", "burst", "64kb", "latency", "2s"))
        return [fake_component("fw", "1.0", pad=24 * MIB)], {}, None
    if stage == "installing":
        return [fake_component("fw", "1.0", sleep=INSTALL_SLEEP), fake_component("later", "1.0")], {}, None
    watcher = RebootWatcher(lab.lab)
    watcher.start()
    stack.callback(watcher.halt.set)
    options = {"reboot": "always", "reboot_command": RebootWatcher.COMMAND, "reboot_delay": 10, "reboot_timeout": 180}
    return [fake_component("fw", "1.0")], options, watcher


@pytest.mark.parametrize("stage, sig, node", matrix())
def test_a_signal_to_ansible_playbook_leaves_nothing_behind(lab, tmp_path, stage, sig, node):
    before = prepare_nodes(lab, (node,))
    tag = f"fk-{STAGES.index(stage)}-{sig.name[3:].lower()}-{node}"
    fresh_run_dir(lab, tag)
    lease = KILL_LEASE if sig == signal.SIGKILL else CLEAN_LEASE
    with ExitStack() as stack:
        specs, options, watcher = scenario(lab, stage, stack, node)
        repo = make_fault_repo(tmp_path / "repo", state_dir(lab), specs)
        if stage == "firewall_open":
            slow_detection(repo, "fw", 10)
        proc = deploy_playbook(lab, tmp_path, repo, tag, node, lease=lease, **options)
        stack.callback(lambda: proc.poll() is None and send(proc, signal.SIGKILL))
        wait_for_stage(lab, proc, tag, node, stage)
        if stage != "staged":
            # The agent runs from its staging folder: its copy in Ansible's temporary folder is gone already.
            assert stray_agent_copies(lab, node) == []
        send(proc, sig)
        output = proc.communicate(timeout=300)[0]
        # SIGINT/SIGTERM: the deploy's cancel and cleanup; SIGKILL: the orphaned worker's (the
        # component in flight finishes first). Either way the ledger ends "cleaned", and it is true
        # when written: nothing of the run is on the node at that moment.
        assert wait_until(lambda: stages(lab, tag, node)[-1:] == ["cleaned"], KILL_LEASE + INSTALL_SLEEP + 180), \
            (stages(lab, tag, node), output)
        assert leftovers(lab, node, tag, before[node]) == [] and stray_agent_copies(lab, node) == []
        expect_ledger(lab, tag, node, stage, sig)
        if watcher is not None:
            # The reboot was on its way: the node comes back (new boot) and is clean.
            assert wait_until(lambda: node in watcher.rebooted, 120), "the node never rebooted"
    assert_nothing_left(lab, tag, before, timeout=lease + INSTALL_SLEEP + 60)
    assert stray_agent_copies(lab, node) == []
    expect_components(lab, node, stage)


def expect_ledger(lab, tag: str, node: str, stage: str, sig: signal.Signals) -> None:
    events = [e for e in ledger_events(lab, tag, node) if "stage" in e]
    if sig != signal.SIGKILL:
        # The signal became a cancel: the component in flight finished, the rest was cancelled.
        assert [e["stage"] for e in events][-2:] == ["cancelled", "cleaned"], events
    elif stage != "rebooting":
        # The orphaned worker started nothing new and says why; after a reboot command there was
        # nothing left to stop, so it waited for the node to come back.
        gone = [e for e in events if e["stage"] == "cancelled" and "ansible-playbook" in e.get("message", "")]
        assert gone and "is gone" in gone[-1]["message"], events


def expect_components(lab, node: str, stage: str) -> None:
    if stage == "installing":
        # The component in flight finished; the one after it was never started.
        assert installed(lab, node, "fw") == "1.0" and installed(lab, node, "later") is None
    elif stage == "rebooting":
        assert installed(lab, node, "fw") == "1.0"
    else:
        # Nothing was being installed: nothing is, not even after the controller is gone.
        assert installed(lab, node, "fw") is None


# The ledger stages a session does not stay in (written on the way, or the end): no kill aims at them.
PASSING_STAGES = {"preflight", "started", "planned", "verified", "installed", "skipped", "failed", "reboot_pending",
                  "activated", "cancelled", "cleaned"}


def test_the_matrix_kills_in_every_stage_the_product_stays_in():
    """Against the product's ledger vocabulary: a stage added there must be held and hit here
    (or named a passing one), and the helpers' order of stages is the ledger's."""
    held = set(ledger.STAGES) - PASSING_STAGES
    hit = {"staged"} | {each for stage in STAGES if stage != "staged" for each in LEDGER_STAGES[stage]}
    assert hit == held, f"stages held but never hit: {sorted(held - hit)}; hit but not held: {sorted(hit - held)}"
    assert PASSING_STAGES <= set(ledger.STAGES), sorted(PASSING_STAGES - set(ledger.STAGES))
    assert [stage for stage in ledger.STAGES if stage in ORDER] == list(ORDER)


def test_the_diagonal_covers_every_stage_signal_and_family():
    assert {stage for stage, _sig, _node in DIAGONAL} == set(STAGES)
    assert all(sum(1 for _s, sig, _n in DIAGONAL if sig == wanted) >= 2 for wanted in SIGNALS)
    assert {node for _stage, _sig, node in DIAGONAL} == set(NODES)
    assert len(matrix()) == 30
