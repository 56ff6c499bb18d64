# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""fleet.firmware.agent against real lab nodes: sshd, sudo/su, iptables, mutual TLS, the lease.

lin01 carries the user's rich iptables ruleset (DROP policies, a REJECT catch-all): only the
agent's own tagged rule lets the controller in, and the ruleset after is compared with the one
before (counters stripped).
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import conftest
from checks import wait_for
from deploy_helpers import agent_processes, left_behind
from firewall_helpers import (
    load_iptables_legacy, module_args, ours, probe_from_node, reset_firewall, snapshot, start_listener,
)

from ansible_collections.fleet.firmware.plugins.plugin_utils import agent_client, tls

pytestmark = pytest.mark.lab

MODULE = "fleet.firmware.agent"
NODE, OTHER, V6 = "lin01", "lin02", "v6n01"
TAG = "agt-a"
# The kill -9 test's lease: long enough for a loaded 2-core machine between renewals (the logic of
# the lease itself is unit-tested against an injected clock: tests/unit/.../test_lease_clock.py).
LEASE = 30


def run_dir(lab) -> Path:
    return lab.lab.home / "runs" / TAG


def agent(lab, pattern: str, extra: list[str] | None = None, **kwargs) -> dict[str, conftest.HostResult]:
    kwargs.setdefault("tag", TAG)
    kwargs.setdefault("run_dir", str(run_dir(lab)))
    return lab.adhoc(pattern, MODULE, module_args(**kwargs), extra=extra)


def client(lab, node: str, **session_changes) -> agent_client.AgentClient:
    session = agent_client.load_session(str(run_dir(lab)), node)
    assert session, f"no session file for {node}"
    session.update(session_changes)
    return agent_client.AgentClient.from_session(session, timeout=5)


def exists_on(lab, node: str, path: str) -> bool:
    return lab.node_run(node, ["test", "-e", path], check=False).returncode == 0


def staging(tag: str = TAG) -> str:
    return f"/var/tmp/fleet-firmware-{tag}"


def nothing_left(lab, node: str, before: dict[str, str], tag: str = TAG) -> bool:
    return not left_behind(lab, node, tag, before)


def reset_all(lab) -> None:
    """Empty rulesets. The IPv6-only node gets nftables only: it must stay free of legacy
    iptables tables (they never go away), which tests/integration/test_firewall.py relies on."""
    for node in (NODE, OTHER):
        reset_firewall(lab, node)
    lab.node_run(V6, ["nft", "flush", "ruleset"])


@pytest.fixture(scope="module")
def ruleset(lab):
    """lin01 with the user's DROP-policy ruleset; its snapshot is what every test must leave."""
    reset_all(lab)
    load_iptables_legacy(lab, NODE)
    before = {node: snapshot(lab, node) for node in (NODE, OTHER, V6)}
    yield before
    agent(lab, "linux,ipv6_only", state="absent")
    reset_all(lab)


@pytest.fixture
def started(lab, ruleset):
    """The agent of TAG on lin01 and the IPv6-only node; removed (and checked gone) afterwards."""
    results = agent(lab, f"{NODE},{V6}", lease=120)
    yield results
    gone = agent(lab, f"{NODE},{V6}", state="absent")
    assert all(r.status in ("CHANGED", "SUCCESS") for r in gone.values()), gone
    for node in (NODE, V6):
        wait_for(lambda n=node: nothing_left(lab, n, ruleset[n]), 120, f"{node} clean after state=absent")


def test_started_on_dual_stack_and_ipv6_only_nodes_listens_on_the_controller_facing_address(lab, started):
    for node in (NODE, V6):
        result = started[node]
        assert result.status == "CHANGED", result.data
        data = result.data
        assert data["agent_port"] == 62286 and data["transfer"] == "ssh" and data["firewall_opened"] is True
        assert data["staged_path"] == staging()
        expected = lab.node(node).ipv4 or lab.node(node).ipv6
        assert data["address"] == [expected]
        assert data["pid"] in agent_processes(lab, node)
        mode_owner = lab.node_run(node, ["stat", "-c", "%a %U", staging()]).stdout.split()
        assert mode_owner == ["700", "root"]
        assert f"fleet-firmware:{TAG}:" in ours(lab, node)
        status = client(lab, node).status()
        assert status["tag"] == TAG and status["pid"] == data["pid"] and status["state"] == "firewall_open"
        # The secrets reached the agent on stdin: none on its command line or in its environment.
        token = agent_client.load_session(str(run_dir(lab)), node)["token"]
        for name in ("cmdline", "environ"):
            assert token.encode() not in Path(f"/proc/{data['pid']}/{name}").read_bytes()


def test_starting_again_for_the_same_run_changes_nothing_and_renews_the_lease(lab, started):
    first = client(lab, NODE).status()["lease_expires"]
    again = agent(lab, NODE, lease=600)[NODE]  # started with 120 s: a later end, no need to wait
    assert again.status == "SUCCESS" and again.data["changed"] is False, again.data
    assert again.data["pid"] == started[NODE].data["pid"]
    assert client(lab, NODE).status()["lease_expires"] > first


def test_mutual_tls_refuses_a_client_without_the_runs_certificate_or_token(lab, started, tmp_path):
    session = agent_client.load_session(str(run_dir(lab)), NODE)
    bare = tls.pinned_client_context(session["ca_cert"], session["ca_fingerprint"])
    no_cert = agent_client.AgentClient(session["addresses"], session["port"], session["token"], bare, timeout=5)
    with pytest.raises(agent_client.AgentClientError):
        no_cert.status()
    other_run = tmp_path / "other-run"
    tls.create_ca(str(other_run), "other")
    cert, key = tls.issue(str(other_run), "intruder", "client")
    foreign = tls.pinned_client_context(session["ca_cert"], session["ca_fingerprint"])
    foreign.load_cert_chain(cert, key)
    with pytest.raises(agent_client.AgentClientError):
        agent_client.AgentClient(session["addresses"], session["port"], session["token"], foreign, timeout=5).status()
    with pytest.raises(agent_client.AgentClientError) as wrong_token:
        client(lab, NODE, token="not-the-token").status()
    assert wrong_token.value.status == 401
    assert client(lab, NODE).status()["tag"] == TAG  # the real client still gets in


def test_another_lab_address_is_refused_by_the_node_firewall(lab, started):
    address = lab.node(NODE).ipv4
    assert probe_from_node(lab, OTHER, address, 62286) != "open"
    assert client(lab, NODE).status()["state"] == "firewall_open"


def test_a_second_run_is_refused_while_the_first_holds_the_node(lab, started):
    second = agent(lab, NODE, tag="agt-b", run_dir=str(run_dir(lab).parent / "agt-b"))[NODE]
    assert second.status == "FAILED"
    assert "held by run 'agt-a'" in second.data["msg"]
    assert not exists_on(lab, NODE, staging("agt-b"))
    assert "fleet-firmware:agt-b:" not in ours(lab, NODE)


def script(tmp_path: Path, name: str, body: str) -> tuple[Path, str]:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_cancel_during_a_slow_install_finishes_it_and_skips_the_next(lab, started, tmp_path):
    # The slow installer runs until the test lets it go: the cancel lands while it runs, whatever the load.
    release = "/var/tmp/agt-release-slow"
    lab.node_run(NODE, ["rm", "-f", release])
    slow, slow_sha = script(tmp_path, "slow.sh", f"while [ ! -e {release} ]; do sleep 0.1; done\necho done > /var/tmp/agt-marker-slow\n")
    nxt, next_sha = script(tmp_path, "next.sh", "echo done > /var/tmp/agt-marker-next\n")
    agent_c = client(lab, NODE)
    for path, sha in ((slow, slow_sha), (nxt, next_sha)):
        assert agent_c.push(str(path), sha) == {"sha256": sha, "size": path.stat().st_size}
    agent_c.submit([{"name": "slow", "sha256": slow_sha, "install": "script"},
                    {"name": "next", "sha256": next_sha, "install": "script"}])
    wait_for(lambda: (agent_c.status()["current"] or {}).get("name") == "slow", 120, "the slow installer to start")
    assert agent_c.cancel()["current"]["name"] == "slow"
    lab.node_run(NODE, ["touch", release])
    wait_for(lambda: agent_c.status()["job"] == "cancelled", 120, "the job to end cancelled")
    lab.node_run(NODE, ["rm", "-f", release])
    components = {c["name"]: c for c in agent_c.status()["components"]}
    assert components["slow"]["status"] == "installed" and components["slow"]["rc"] == 0
    assert components["next"]["status"] == "skipped"
    assert exists_on(lab, NODE, "/var/tmp/agt-marker-slow") and not exists_on(lab, NODE, "/var/tmp/agt-marker-next")
    lab.node_run(NODE, ["rm", "-f", "/var/tmp/agt-marker-slow"])


def test_a_push_with_the_wrong_hash_keeps_nothing(lab, started, tmp_path):
    path, _sha = script(tmp_path, "x.sh", "true\n")
    wrong = "0" * 64
    with pytest.raises(agent_client.AgentClientError) as refused:
        client(lab, NODE).push(str(path), wrong)
    assert refused.value.status == 409
    listing = lab.node_run(NODE, ["ls", "-A", staging() + "/components"]).stdout.split()
    assert listing == []


def test_absent_removes_everything_and_again_changes_nothing(lab, ruleset):
    started = agent(lab, NODE, lease=120)[NODE]
    assert started.status == "CHANGED", started.data
    removed = agent(lab, NODE, state="absent")[NODE]
    assert removed.status == "CHANGED"
    assert f"agent pid {started.data['pid']}" in removed.data["removed"] and staging() in removed.data["removed"]
    assert any(r.startswith("firewall rule:") for r in removed.data["removed"])
    assert nothing_left(lab, NODE, ruleset[NODE])
    assert agent_client.load_session(str(run_dir(lab)), NODE) is None
    again = agent(lab, NODE, state="absent")[NODE]
    assert again.status == "SUCCESS" and again.data["changed"] is False and again.data["removed"] == []


def test_absent_for_another_agent_pid_leaves_the_newer_start_of_the_run_alone(lab, ruleset):
    """The cleanup of a killed run's orphaned worker names the agent it started (agent_pid); a
    resume of the same tag has started another one since: that one, its rules and folder stay."""
    started = agent(lab, NODE, lease=120)[NODE]
    pid = started.data["pid"]
    kept = agent(lab, NODE, state="absent", agent_pid=pid + 100000)[NODE]
    assert kept.status == "SUCCESS" and kept.data["changed"] is False and kept.data["removed"] == [], kept.data
    assert kept.data["left_alone"] is True and f"is pid {pid}, not the pid {pid + 100000}" in kept.data["msg"]
    assert agent_processes(lab, NODE) and exists_on(lab, NODE, staging())
    assert agent_client.load_session(str(run_dir(lab)), NODE) is not None  # the newer start's, in the same run folder
    assert client(lab, NODE).status()["pid"] == pid
    removed = agent(lab, NODE, state="absent", agent_pid=pid)[NODE]
    assert removed.status == "CHANGED" and f"agent pid {pid}" in removed.data["removed"] and "left_alone" not in removed.data
    assert nothing_left(lab, NODE, ruleset[NODE])


@pytest.mark.parametrize("starting", ["launcher file", "working folder"])
def test_absent_leaves_a_staging_folder_that_a_new_start_is_writing(lab, ruleset, starting):
    """Before the new agent holds the node's lock, its launcher's .agent-<pid>.pyz (or the agent's
    working folder) is what tells a cleanup that the folder is not a leftover."""
    folder = staging()
    # A process that stands for the new start: a launcher (cwd elsewhere, its file in the folder
    # named by its pid) or an agent (working in the folder).
    body = f"touch {folder}/.agent-$$.pyz; exec sleep 120" if starting == "launcher file" else "exec sleep 120"
    cwd = "/" if starting == "launcher file" else folder
    command = f"mkdir -p -m 0700 {folder} && cd {cwd} && setsid sh -c '{body}' </dev/null >/dev/null 2>&1 & echo $!"
    pid = lab.node_run(OTHER, ["sh", "-c", command]).stdout.strip()
    try:
        if starting == "launcher file":
            wait_for(lambda: exists_on(lab, OTHER, f"{folder}/.agent-{pid}.pyz"), 10, "the launcher's file")
        kept = agent(lab, OTHER, state="absent")[OTHER]
        assert kept.status == "SUCCESS" and kept.data["left_alone"] is True, kept.data
        assert folder in kept.data["msg"] and pid in kept.data["msg"] and exists_on(lab, OTHER, folder)
    finally:
        lab.node_run(OTHER, ["kill", pid], check=False)
    wait_for(lambda: lab.node_run(OTHER, ["kill", "-0", pid], check=False).returncode != 0, 10, "the stand-in to end")
    removed = agent(lab, OTHER, state="absent")[OTHER]
    assert removed.status == "CHANGED" and folder in removed.data["removed"] and not exists_on(lab, OTHER, folder)


def holder_process(lab, node: str) -> subprocess.Popen:
    """A controller-side lease holder, as the deploy action is: renews every 2 s."""
    code = (
        "import sys, time\n"
        "from ansible_collections.fleet.firmware.plugins.plugin_utils import agent_client as c\n"
        "client = c.AgentClient.from_session(c.load_session(sys.argv[1], sys.argv[2]))\n"
        "while True:\n"
        "    client.renew(%d)\n"
        "    print('renewed', flush=True)\n"
        "    time.sleep(2)\n" % LEASE
    )
    env = dict(os.environ, PYTHONPATH=str(conftest.BUILD / "collections"))
    return subprocess.Popen([sys.executable, "-c", code, str(run_dir(lab)), node], stdout=subprocess.PIPE, text=True, env=env)


@pytest.mark.parametrize("node", [NODE, V6])
def test_lease_expiry_after_kill_9_of_the_holder_leaves_nothing(lab, ruleset, node):
    started = agent(lab, node, lease=LEASE)[node]
    assert started.status == "CHANGED", started.data
    holder = holder_process(lab, node)
    try:
        assert holder.stdout.readline().strip() == "renewed"
        first = client(lab, node).status()["lease_expires"]
        # Two more renewals (the holder says each one): they moved the lease's end, and the agent lives on.
        assert [holder.stdout.readline().strip() for _renewal in range(2)] == ["renewed", "renewed"]
        assert client(lab, node).status()["lease_expires"] > first and agent_processes(lab, node)
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        # Nothing else can clean up now: only the lease. The deadline only keeps a failure from hanging.
        wait_for(lambda: nothing_left(lab, node, ruleset[node]), LEASE + 180,
                 f"{node} clean by its lease: agent {agent_processes(lab, node)}, staged {exists_on(lab, node, staging())}, ours: {ours(lab, node)!r}")
    finally:
        holder.kill()
        holder.wait()


def test_become_through_sudo_and_su_with_the_non_root_operator(lab, ruleset):
    as_operator = ["-e", "ansible_user={{ fleet_lab_become_user }}", "-b"]
    sudo = agent(lab, NODE, extra=as_operator + ["-e", "ansible_become_password={{ fleet_lab_become_password }}"], lease=60)[NODE]
    assert sudo.status == "CHANGED", sudo.data
    assert lab.node_run(NODE, ["stat", "-c", "%U", staging()]).stdout.strip() == "root"
    assert client(lab, NODE).status()["pid"] == sudo.data["pid"]
    su = agent(lab, NODE, extra=as_operator + ["--become-method", "su", "-e", "ansible_become_password={{ fleet_lab_root_password }}"],
               state="absent")[NODE]
    assert su.status == "CHANGED", su.data
    assert nothing_left(lab, NODE, ruleset[NODE])


def test_a_become_failure_fails_with_the_cause_and_stages_nothing(lab, ruleset):
    wrong = ["-e", "ansible_user={{ fleet_lab_become_user }}", "-b", "-e", "ansible_become_password=wrong"]
    result = agent(lab, OTHER, extra=wrong)[OTHER]
    assert result.status == "FAILED"
    assert "password" in result.data["msg"].lower()
    assert not exists_on(lab, OTHER, staging()) and ours(lab, OTHER) == "" and not agent_processes(lab, OTHER)


def test_no_python_on_the_node_fails_with_the_cause_and_stages_nothing(lab, ruleset):
    result = agent(lab, OTHER, extra=["-e", "ansible_python_interpreter=/usr/bin/python-missing"])[OTHER]
    assert result.status == "FAILED"
    assert "no usable Python" in result.data["msg"]
    assert not exists_on(lab, OTHER, staging()) and ours(lab, OTHER) == ""


def test_port_in_use_fails_with_the_port_and_leaves_nothing(lab, ruleset):
    listener = start_listener(lab, OTHER, 62399)
    try:
        result = agent(lab, OTHER, agent_port=62399)[OTHER]
    finally:
        listener.kill()
        listener.wait()
    assert result.status == "FAILED"
    assert "port 62399 is already in use" in result.data["msg"]
    assert nothing_left(lab, OTHER, ruleset[OTHER])
    assert not exists_on(lab, OTHER, "/run/fleet-firmware/agent.lock")


def test_a_full_staging_folder_fails_with_the_cause_and_leaves_nothing(lab, ruleset):
    mount = "/var/tmp/agt-small"
    lab.node_run(OTHER, ["mkdir", "-p", mount])
    lab.node_run(OTHER, ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", mount])
    try:
        result = agent(lab, OTHER, staging_dir=f"{mount}/fleet-firmware-{TAG}")[OTHER]
        assert result.status == "FAILED"
        assert "No space left on device" in result.data["msg"] and mount in result.data["msg"]
        assert lab.node_run(OTHER, ["ls", "-A", mount]).stdout.split() == []
        assert ours(lab, OTHER) == "" and not agent_processes(lab, OTHER)
    finally:
        lab.node_run(OTHER, ["umount", mount], check=False)
        lab.node_run(OTHER, ["rmdir", mount], check=False)


def test_a_wrong_ssh_key_is_unreachable_and_stages_nothing(lab, ruleset, tmp_path):
    key = tmp_path / "wrong_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    # No shared master connection (it would carry the right key) and only the given key.
    fresh = ["-e", f"ansible_ssh_private_key_file={key}", "-e", "ansible_ssh_args='-o ControlMaster=no -o IdentitiesOnly=yes'"]
    result = agent(lab, OTHER, extra=fresh)[OTHER]
    assert result.status == "UNREACHABLE"
    assert "Permission denied" in result.data["msg"]
    assert not exists_on(lab, OTHER, staging())


def test_a_bad_tag_is_refused_by_name(lab, ruleset):
    result = agent(lab, OTHER, tag="Bad_Tag")[OTHER]
    assert result.status == "FAILED"
    assert "'Bad_Tag'" in result.data["msg"]


def test_the_windows_like_node_is_staged_over_admin_share_and_backed_out_cleanly(lab, ruleset):
    """win01 is Samba reached over SSH: admin$ staging works for real, agent.ps1 cannot run
    (no Windows here), so the action must remove what it staged and say why."""
    temp = f"{lab.lab.home}/node/windows/Temp"
    before = lab.node_run("win01", ["ls", "-A", temp]).stdout.split()
    result = agent(lab, "win01", tag="agt-w")["win01"]
    assert result.status == "FAILED"
    assert "staged over admin$ (smb)" in result.data["msg"] and "WinRM or PSRP" in result.data["msg"]
    assert lab.node_run("win01", ["ls", "-A", temp]).stdout.split() == before
    absent = agent(lab, "win01", tag="agt-w", state="absent")["win01"]
    assert absent.status == "SUCCESS" and absent.data["changed"] is False and absent.data["removed"] == []
    assert lab.node_run("win01", ["ls", "-A", temp]).stdout.split() == before
