# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Network faults during a run, made on the host side of the node's link with real parts: the
link taken down (``ip link set <veth> down``), random loss (an nftables bridge table of ours:
this kernel has no netem), the engine's port refused (an nftables table of ours). Downloads
are slowed with a tbf qdisc so that "mid-download" can be hit. Afterwards: nothing left.

The agent's downloader gives a stalled connection 15 s (FETCH_TIMEOUT in module_utils/agent/config.py)
before it reconnects with ``Range``, and gives up after two reconnects that get nothing; a
shorter outage is ridden out by TCP on the same connection. So a link down for 5 s completes on
the same connection, 18 s resumes with ``Range`` (the engine's ``component_resumed`` ledger line
says from which byte), 30 s ends the pull and ``delivery: auto`` pushes the file instead.
"""
from __future__ import annotations

import contextlib

import pytest

from fault_helpers import (IPV4_NODE, IPV6_NODE, MIB, assert_nothing_left, component_sha, deploy_playbook, fake_component,
                           ledger_events, make_fault_repo, prepare_nodes, state_dir)
from fault_kill_helpers import (downloaded_bytes, dropped, engine_events, engine_port_blocked, fresh_run_dir, installed, link_down,
                                lossy_link, qdisc, stages)
from firewall_helpers import wait_until

from ansible_collections.fleet.firmware.plugins.plugin_utils import engine as engine_mod

pytestmark = [pytest.mark.lab, pytest.mark.faults]

SLOW_LINK = ("tbf", "rate", "16mbit", "burst", "64kb", "latency", "2s")
BIG = 24 * MIB


def run_to_the_end(proc, timeout: float = 600) -> str:
    output = proc.communicate(timeout=timeout)[0]
    assert proc.returncode == 0, output
    return output


def verified_and_installed(lab, tag: str, node: str, name: str) -> None:
    """The node checked the SHA-256 of what it got (``verified``) and installed it."""
    events = [(e.get("stage"), e.get("component")) for e in ledger_events(lab, tag, node)]
    assert ("verified", name) in events and ("installed", name) in events, events
    assert installed(lab, node, name) == "1.0"


@pytest.mark.parametrize("outage, expected", [
    pytest.param(5, "same connection", id="5s"),
    pytest.param(18, "range", id="18s", marks=pytest.mark.faults_slow),
    pytest.param(30, "push", id="30s", marks=pytest.mark.faults_slow),
])
def test_the_link_down_mid_download_the_download_resumes_and_completes(lab, tmp_path, outage, expected):
    """5 s: TCP rides it out on the same connection (no fallback; a Range request is not needed).
    18 s: longer than the agent's 15 s stall timeout, shorter than its retries: it reconnects and
    asks for the rest with Range (the engine's ``component_resumed`` line says from which byte).
    30 s: the agent gives up two reconnects after the stall and ``auto`` pushes the whole file."""
    node, tag = IPV4_NODE, f"fn-link-{outage}"
    before = prepare_nodes(lab, (node,))
    fresh_run_dir(lab, tag)
    repo = make_fault_repo(tmp_path / "repo", state_dir(lab), [fake_component("fw", "1.0", pad=BIG)])
    with qdisc(lab, node, *SLOW_LINK):
        proc = deploy_playbook(lab, tmp_path, repo, tag, node, lease=120)
        try:
            assert wait_until(lambda: downloaded_bytes(lab, node, tag) > 2 * MIB or proc.poll() is not None, 240, step=0.2)
            got = downloaded_bytes(lab, node, tag)
            assert 0 < got < BIG, f"not mid-download: {got} bytes"
            link_down(lab, node, outage)
            output = run_to_the_end(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
    verified_and_installed(lab, tag, node, "fw")
    pushed = "pushing over the agent's port instead" in output
    resumed = engine_events(lab, tag, node, "component_resumed")
    assert pushed == (expected == "push"), output
    if expected == "same connection":
        # The agent reconnects only with a Range request (the engine's component_resumed line):
        # none means the one connection carried the download through the outage.
        assert resumed == [], resumed
    if expected == "range":
        assert resumed and resumed[0]["component"] == component_sha(repo, "fw"), ledger_events(lab, tag, node)
        start = int(resumed[0]["message"].split()[1].split("-")[0])
        assert got <= start < BIG + 4096, (got, resumed)
    assert_nothing_left(lab, tag, before, timeout=30)


def test_five_percent_packet_loss_the_run_completes(lab, tmp_path):
    node, tag = IPV6_NODE, "fn-loss"
    before = prepare_nodes(lab, (node,))
    fresh_run_dir(lab, tag)
    specs = [fake_component("fw", "1.0", pad=8 * MIB), fake_component("nic", "1.0", pad=1 * MIB)]
    repo = make_fault_repo(tmp_path / "repo", state_dir(lab), specs)
    with lossy_link(lab, node, 5) as table:
        proc = deploy_playbook(lab, tmp_path, repo, tag, node, lease=120)
        try:
            run_to_the_end(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert dropped(table) > 0, "no packet was lost: the fault did not happen"
    verified_and_installed(lab, tag, node, "fw")
    verified_and_installed(lab, tag, node, "nic")
    assert_nothing_left(lab, tag, before, timeout=30)


@pytest.mark.parametrize("delivery", ["auto", "pull"])
def test_the_engine_port_blocked_mid_download(lab, tmp_path, delivery):
    """``auto`` falls back to pushing over the agent's port; ``pull`` fails saying why. Either way
    nothing is left behind, and nothing half-downloaded is installed."""
    node, tag = IPV4_NODE, f"fn-block-{delivery}"
    before = prepare_nodes(lab, (node,))
    fresh_run_dir(lab, tag)
    repo = make_fault_repo(tmp_path / "repo", state_dir(lab), [fake_component("fw", "1.0", pad=BIG)])
    with contextlib.ExitStack() as stack:
        stack.enter_context(qdisc(lab, node, *SLOW_LINK))
        proc = deploy_playbook(lab, tmp_path, repo, tag, node, lease=120, delivery=delivery)
        stack.callback(lambda: proc.poll() is None and proc.kill())
        assert wait_until(lambda: downloaded_bytes(lab, node, tag) > 2 * MIB or proc.poll() is not None, 240, step=0.2)
        assert 0 < downloaded_bytes(lab, node, tag) < BIG, "not mid-download"
        table = stack.enter_context(engine_port_blocked(lab, node, engine_mod.DEFAULT_TLS_PORT))
        output = proc.communicate(timeout=600)[0]
        assert dropped(table, "inet") > 0, "the block never refused anything"
    events = ledger_events(lab, tag, node)
    if delivery == "auto":
        assert proc.returncode == 0, output
        assert "cannot reach the engine" in output and "pushing over the agent's port instead" in output, output
        verified_and_installed(lab, tag, node, "fw")
    else:
        assert proc.returncode != 0, output
        failed = [e for e in events if e.get("stage") == "failed"]
        assert failed and "pull delivery of fw failed" in failed[-1]["message"], events
        assert installed(lab, node, "fw") is None
    assert stages(lab, tag, node)[-1] == "cleaned", events
    assert_nothing_left(lab, tag, before, timeout=30)
