# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Faults of the node itself, each through a whole deploy run, each ending with the shared
check on every node (fault_helpers.assert_nothing_left): a full staging folder, no usable
python3, sshd restarted mid-run, an installer that hangs past its timeout, a second run
against a node the first one holds.

"No component half-installed" (docs/agent.md, Timeouts): an installer that outlives its
``timeout`` gets SIGTERM on its whole process group, so it can roll back, and SIGKILL
``KILL_GRACE`` seconds later; no process of it survives. One that rolls back on SIGTERM leaves
nothing; one that ignores SIGTERM may leave a partial install, and the result and the ledger say
so ("may be half-installed") instead of hiding it.
"""
from __future__ import annotations

import pytest

from fault_helpers import (IPV4_NODE, IPV6_NODE, OTHER_NODE, assert_nothing_left, fake_component, half_installed, leftovers,
                           ledger_events, make_fault_repo, prepare_nodes, state_dir)
from fault_node_helpers import (agent_started, by_name, finish, gated, host_results, installer_processes, sshd_down, sshd_pids,
                                sshd_up, start_deploy, wait_for_stage, with_term_trap)

pytestmark = [pytest.mark.lab, pytest.mark.faults]

MIB = 1024 * 1024


def version_of(lab, node: str, name: str) -> str | None:
    proc = lab.node_run(node, ["cat", f"{state_dir(lab)}/{name}.version"], check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


# ---------------------------------------------------------------- staging folder full


def test_a_full_staging_folder_fails_naming_the_space_problem_and_leaves_nothing(lab, tmp_path):
    """A tmpfs with room for the agent but not for the component: the delivery fails with the
    node's 'No space left on device' and the staging folder; the cleanup empties the tmpfs."""
    node, tag, mount = OTHER_NODE, "flt-full", "/var/tmp/flt-small"
    before = prepare_nodes(lab, (node,))
    repo = make_fault_repo(tmp_path / "repo", state_dir(lab), [fake_component("bmc", "1.0", pad=4 * MIB)])
    lab.node_run(node, ["mkdir", "-p", mount])
    lab.node_run(node, ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mount])
    try:
        proc = start_deploy(lab, tmp_path, repo, tag, node, staging_dir=f"{mount}/fleet-firmware-{tag}")
        output = finish(proc)
        assert proc.returncode != 0, output
        result = host_results(output)[node]
        assert "No space left on device" in result["msg"] and mount in result["msg"], result["msg"]
        assert agent_started(lab, tag, node), "the agent started: the space ran out at the delivery"
        assert lab.node_run(node, ["ls", "-A", mount]).stdout.split() == []
        assert version_of(lab, node, "bmc") is None
        assert_nothing_left(lab, tag, before)
    finally:
        lab.node_run(node, ["umount", mount], check=False)
        lab.node_run(node, ["rmdir", mount], check=False)


# ---------------------------------------------------------------- no python3


def test_python3_missing_fails_with_the_cause_and_leaves_nothing(lab, tmp_path):
    """python3 hidden by a bind mount inside the node (its own mount namespace): the node's
    /usr/bin/python3 is a script that answers as a shell does for a missing command."""
    node, tag = OTHER_NODE, "flt-nopy"
    before = prepare_nodes(lab, (node,))
    repo = make_fault_repo(tmp_path / "repo", state_dir(lab), [fake_component("bmc", "1.0")])
    missing = lab.lab.home / "flt-python3-missing"
    missing.write_text("#!/bin/sh\necho \"sh: 1: python3: not found\" >&2\nexit 127\n")
    missing.chmod(0o755)
    lab.node_run(node, ["mount", "--bind", str(missing), "/usr/bin/python3"])
    try:
        assert lab.node_run(node, ["/usr/bin/python3", "-V"], check=False).returncode == 127
        proc = start_deploy(lab, tmp_path, repo, tag, node)
        output = finish(proc)
        assert proc.returncode != 0, output
        result = host_results(output)[node]
        assert "no usable Python on the node" in result["msg"], result["msg"]
        assert version_of(lab, node, "bmc") is None
    finally:
        lab.node_run(node, ["umount", "/usr/bin/python3"], check=False)
        missing.unlink()
    assert_nothing_left(lab, tag, before)
    # The cleanup could not run a module either: the ledger says why instead of "cleaned".
    assert ledger_events(lab, tag, node)[-1].get("message"), ledger_events(lab, tag, node)


# ---------------------------------------------------------------- sshd restarted


@pytest.mark.parametrize("delivery, back", [("push", "before_cleanup"), ("push", "after_the_run"), ("pull", "after_the_run")])
def test_sshd_restarted_mid_install_the_run_completes_or_fails_cleanly(lab, tmp_path, delivery, back):
    """Every sshd process of the node (listener and sessions) is killed while a component
    installs. The install goes on over the agent's mTLS channel. ``before_cleanup``: sshd is back
    a moment later, the run completes. ``after_the_run``: SSH stays down until the playbook ends.
    Push: the cleanup cannot reach the node; the agent's lease removes everything by itself. Pull:
    the agent ends its job, removes itself and tells the engine so, so the run ends ``cleaned``
    without SSH."""
    node, tag = IPV4_NODE, f"flt-sshd-{delivery}-{back.split('_')[0]}"
    before = prepare_nodes(lab, (node,))
    repo = make_fault_repo(tmp_path / "repo", state_dir(lab), [fake_component("bmc", "1.0", sleep=1), fake_component("nic", "2.0")])
    gate = f"{state_dir(lab)}/bmc.gate"
    gated(repo, "bmc", gate)  # bmc installs until sshd is back (or, after_the_run, until it is down)
    lab.node_run(node, ["rm", "-f", gate])
    proc = start_deploy(lab, tmp_path, repo, tag, node, lease=20, delivery=delivery)
    try:
        assert wait_for_stage(lab, tag, node, "installing", component="bmc"), finish(proc, 120)
        assert sshd_down(lab, node) >= 2, "the listener and the run's session"
        if back == "before_cleanup":
            sshd_up(lab, node)
        lab.node_run(node, ["touch", gate])
        output = finish(proc)
    finally:
        lab.node_run(node, ["touch", gate])
        if not sshd_pids(lab, node):
            sshd_up(lab, node)
    lab.node_run(node, ["rm", "-f", gate])
    assert version_of(lab, node, "bmc") == "1.0" and version_of(lab, node, "nic") == "2.0", output
    events = ledger_events(lab, tag, node)
    if back == "before_cleanup" or delivery == "pull":
        assert proc.returncode == 0, output
        assert events[-1]["stage"] == "cleaned", events
    else:
        # The installs succeeded; only the cleanup could not reach the node. The run says so in its
        # ledger and result, and fails only when Ansible's own temporary folder could not be removed
        # either (that depends on whether the connection had made one): both are clean endings.
        assert any("cleanup failed" in (e.get("message") or "") for e in events), \
            [(e.get("stage") or e.get("event"), e.get("component"), e.get("message")) for e in events]
        if proc.returncode == 0:
            cleanup = host_results(output)[node]["cleanup"]
            assert any("the agent's lease will finish it" in line for line in cleanup), cleanup
            assert f"[WARNING]: {node}: cleanup failed" in output, output  # an ok task still tells the operator
    # The lease (20 s) and the firewall's grace (15 s) bound the wait.
    assert_nothing_left(lab, tag, before, timeout=90)


# ---------------------------------------------------------------- an installer that hangs


HANG_EXPECTED = {
    # on_failed_dependency -> (status of the dependent, status of the unrelated component)
    "omit_component": ("skipped", "installed"),
    "omit_host": ("skipped", "skipped"),
    "force": ("installed", "installed"),
}


@pytest.mark.parametrize("policy", [
    "omit_component",
    pytest.param("omit_host", marks=pytest.mark.faults_slow),
    pytest.param("force", marks=pytest.mark.faults_slow),
])
def test_an_installer_hanging_past_its_timeout_is_stopped_and_the_rest_follows_the_policy(lab, tmp_path, policy):
    """``hang`` sleeps 600 s with a 3 s timeout and rolls back on SIGTERM; ``needs`` requires it;
    ``other`` is unrelated. The hang is stopped (its whole process group), reported failed with
    "timed out after 3 s", the others follow on_failed_dependency, nothing is half-installed."""
    node, tag = IPV6_NODE, f"flt-hang-{policy.replace('_', '-')}"
    before = prepare_nodes(lab, (node,))
    specs = [fake_component("hang", "1.0", sleep=600, timeout=3), fake_component("needs", "1.0", requires=("hang",)),
             fake_component("other", "1.0")]
    repo = make_fault_repo(tmp_path / "repo", state_dir(lab), specs)
    with_term_trap(repo, "hang", state_dir(lab), "rollback")
    proc = start_deploy(lab, tmp_path, repo, tag, node, on_failed_dependency=policy)
    output = finish(proc)
    assert proc.returncode != 0, output
    result = host_results(output)[node]
    assert "component(s) failed on" in result["msg"] and "hang" in result["msg"], result["msg"]
    components = by_name(result)
    assert components["hang"]["status"] == "failed", components
    assert "timed out after 3 s" in components["hang"]["message"] and "SIGTERM" in components["hang"]["message"], components["hang"]
    expected_needs, expected_other = HANG_EXPECTED[policy]
    assert components["needs"]["status"] == expected_needs, components["needs"]
    assert components["other"]["status"] == expected_other, components["other"]
    if expected_needs == "skipped":
        assert policy in components["needs"]["message"], components["needs"]
    failed = [e for e in ledger_events(lab, tag, node) if e.get("stage") == "failed" and e.get("component") == "hang"]
    assert failed and "timed out after 3 s" in failed[0]["message"], ledger_events(lab, tag, node)
    assert installer_processes(lab, node, "hang-1.0.sh") == []
    assert version_of(lab, node, "hang") is None
    assert_nothing_left(lab, tag, before)


def test_an_installer_ignoring_sigterm_is_killed_and_reported_as_maybe_half_installed(lab, tmp_path):
    """The installer ignores SIGTERM (and so does its ``sleep``): SIGKILL after the grace. Its
    marker stays (it never rolled back): the result says the component may be half-installed,
    no process of it is left, and apart from that marker nothing of the run is left."""
    node, tag = IPV4_NODE, "flt-stubborn"
    before = prepare_nodes(lab, (node,))
    repo = make_fault_repo(tmp_path / "repo", state_dir(lab), [fake_component("hang", "1.0", sleep=600, timeout=2)])
    with_term_trap(repo, "hang", state_dir(lab), "ignore")
    proc = start_deploy(lab, tmp_path, repo, tag, node)
    output = finish(proc)
    assert proc.returncode != 0, output
    hang = by_name(host_results(output)[node])["hang"]
    assert hang["status"] == "failed" and "timed out after 2 s" in hang["message"], hang
    assert "SIGKILL" in hang["message"] and "may be half-installed" in hang["message"], hang
    assert installer_processes(lab, node, "hang-1.0.sh") == []
    assert half_installed(lab, node) == ["hang"]
    problems = leftovers(lab, node, tag, before[node])
    assert problems == ["half-installed ['hang']"], problems
    lab.node_run(node, ["rm", "-f", f"{state_dir(lab)}/hang.partial"])
    assert_nothing_left(lab, tag, before)


# ---------------------------------------------------------------- a second run


@pytest.mark.parametrize("engine_port", ["its_own", pytest.param("the_same", marks=pytest.mark.faults_slow)])
def test_a_second_run_against_a_held_node_is_refused_and_the_first_completes(lab, tmp_path, engine_port):
    """``its_own``: the second run (as from another controller) has an engine port of its own and
    reaches the node: the node lock refuses it, naming the first run. ``the_same``: both runs on
    this controller want the default engine port: the second one's engine cannot listen, so it
    stops before touching any node. Either way the first completes and nothing of the second is left."""
    node, first, second = IPV4_NODE, f"flt-first-{engine_port[4:]}", f"flt-second-{engine_port[4:]}"
    before = prepare_nodes(lab, (node,))
    repo = make_fault_repo(tmp_path / "repo", state_dir(lab), [fake_component("bmc", "1.0", sleep=1), fake_component("nic", "2.0")])
    gate = f"{state_dir(lab)}/bmc.gate"
    gated(repo, "bmc", gate)  # the first run installs bmc until the second has been refused
    lab.node_run(node, ["rm", "-f", gate])
    running = start_deploy(lab, tmp_path, repo, first, node)
    try:
        assert wait_for_stage(lab, first, node, "installing", component="bmc"), finish(running, 120)
        options = {"engine_port": 63102} if engine_port == "its_own" else {}
        intruder = start_deploy(lab, tmp_path, repo, second, node, **options)
        refused_output = finish(intruder)
        still_running = running.poll() is None
    finally:
        lab.node_run(node, ["touch", gate])
    assert intruder.returncode != 0, refused_output
    refused = host_results(refused_output)[node]
    if engine_port == "its_own":
        assert f"node is held by run '{first}'" in refused["msg"], refused["msg"]
    else:
        assert "63002" in refused["msg"] and "Address already in use" in refused["msg"], refused["msg"]
        assert "another run on this controller" in refused["msg"] and "engine_port" in refused["msg"], refused["msg"]
    assert not agent_started(lab, second, node)
    assert still_running, "the first run was still installing when the second was refused"
    output = finish(running)
    assert running.returncode == 0, output
    assert version_of(lab, node, "bmc") == "1.0" and version_of(lab, node, "nic") == "2.0"
    assert ledger_events(lab, first, node)[-1]["stage"] == "cleaned"
    lab.node_run(node, ["rm", "-f", gate])
    for tag in (first, second):
        assert_nothing_left(lab, tag, before)
