# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""fleet.firmware.deploy end to end against the lab: real engine, agent, firewall, installs.

Components are shell scripts that write a version file in the node's private state folder
and exit with a chosen code (deploy_helpers.make_repo). Reboots are the lab's simulation.
"""
from __future__ import annotations

import hashlib
import http.server
import json
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

import conftest
import fleetlab
from deploy_helpers import RebootWatcher, agent_processes, by_name, component, explain, lab_trust, left_behind, make_repo
from firewall_helpers import module_args, reset_firewall, snapshot, wait_until

from ansible_collections.fleet.firmware.plugins.plugin_utils import engine as engine_mod

pytestmark = pytest.mark.lab

MODULE = "fleet.firmware.deploy"
NODE, OTHER, V6 = "lin01", "lin02", "v6n01"
LINUX = (NODE, OTHER, V6)


def state_dir(lab) -> str:
    return str(lab.lab.home / "node")


def run_dir(lab, tag: str) -> str:
    return str(lab.lab.home / "runs" / tag)


def deploy(lab, pattern: str, repo: Path, tag: str, extra: list[str] | None = None, **kwargs) -> dict[str, conftest.HostResult]:
    args = dict(dict(repository=str(repo), tag=tag, run_dir=run_dir(lab, tag), lease=30, trust=lab_trust()), **kwargs)
    return lab.adhoc(pattern, MODULE, module_args(**args),
                     extra=extra, timeout=300)


def installed(lab, node: str, name: str) -> str | None:
    proc = lab.node_run(node, ["cat", f"{state_dir(lab)}/{name}.version"], check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def engines_stopped(lab) -> bool:
    """Every run's engine has stopped (and so closed its port on the controller)."""
    runs = lab.lab.home / "runs"
    return not runs.exists() or all(engine_mod.attach(str(run)) is None for run in runs.iterdir())


@pytest.fixture(scope="module")
def clean(lab):
    """Empty firewalls and no version files; each node's ruleset snapshot. Afterwards, the engines
    (which stop by themselves when their ansible process is gone) must all have stopped."""
    for node in LINUX:
        # The IPv6-only node gets nftables only: legacy iptables tables never go away, and
        # tests/integration/test_firewall.py needs that node free of them.
        if node == V6:
            lab.node_run(node, ["nft", "flush", "ruleset"])
        else:
            reset_firewall(lab, node)
        lab.node_run(node, ["sh", "-c", f"rm -f {state_dir(lab)}/*.version"])
    yield {node: snapshot(lab, node) for node in LINUX}
    assert wait_until(lambda: engines_stopped(lab), 60), "an engine of the deploy tests is still running"


@pytest.fixture
def fresh(lab, clean):
    for node in LINUX:
        lab.node_run(node, ["sh", "-c", f"rm -f {state_dir(lab)}/*.version"])
    return clean


def test_install_then_current_then_downgrade_only_when_allowed_and_rewrite(lab, fresh, tmp_path):
    # Listed dependent first: the install order must come from `requires`, not from the manifest's order.
    new = make_repo(tmp_path / "v2", state_dir(lab), [component("sw-b", "1.5", kind="software", requires=["fw-a"]), component("fw-a", "2.0")])
    first = deploy(lab, NODE, new, "dep-a")[NODE]
    assert first.status == "CHANGED", first.data
    rows = by_name(first.data)
    assert [c["name"] for c in first.data["components"]] == ["fw-a", "sw-b"]  # dependency order
    assert rows["fw-a"]["status"] == "installed" and rows["fw-a"]["before"] is None and rows["fw-a"]["after"] == "2.0"
    assert first.data["delivery"] == "pull" and first.data["transfer"] == "ssh"
    assert installed(lab, NODE, "sw-b") == "1.5"
    assert left_behind(lab, NODE, "dep-a", fresh[NODE]) == []

    again = deploy(lab, NODE, new, "dep-a2")[NODE]
    assert again.status == "SUCCESS" and again.data["changed"] is False
    assert {c["status"] for c in again.data["components"]} == {"skipped"}
    assert again.data["delivery"] is None  # nothing to deliver

    old = make_repo(tmp_path / "v1", state_dir(lab), [component("fw-a", "1.0")])
    refused = deploy(lab, NODE, old, "dep-a3")[NODE]
    assert refused.data["changed"] is False and "allow_downgrade" in by_name(refused.data)["fw-a"]["message"]
    allowed = deploy(lab, NODE, old, "dep-a4", allow_downgrade=True)[NODE]
    assert by_name(allowed.data)["fw-a"]["action"] == "downgrade" and installed(lab, NODE, "fw-a") == "1.0"
    rewrite = deploy(lab, NODE, old, "dep-a5", rewrite=True)[NODE]
    assert by_name(rewrite.data)["fw-a"]["action"] == "rewrite" and by_name(rewrite.data)["fw-a"]["status"] == "installed"
    forced = deploy(lab, NODE, new, "dep-a6", force=True, components=["fw-a"])[NODE]
    rows = by_name(forced.data)
    assert rows["fw-a"]["action"] == "upgrade" and rows["fw-a"]["status"] == "installed" and rows["sw-b"]["status"] == "skipped"
    forced_again = deploy(lab, NODE, new, "dep-a7", force=True, components=["fw-a"])[NODE]
    assert by_name(forced_again.data)["fw-a"]["action"] == "rewrite" and "force" in by_name(forced_again.data)["fw-a"]["message"]


@pytest.mark.parametrize("policy, expected", [
    ("omit_component", {"bad": "failed", "needs-bad": "skipped", "free": "installed"}),
    ("omit_host", {"bad": "failed", "needs-bad": "skipped", "free": "skipped"}),
    ("force", {"bad": "failed", "needs-bad": "installed", "free": "installed"}),
])
def test_a_failing_component_with_each_on_failed_dependency(lab, fresh, tmp_path, policy, expected):
    repo = make_repo(tmp_path / "r", state_dir(lab), [
        component("bad", "1.0", rc=3), component("needs-bad", "1.0", requires=["bad"]), component("free", "1.0")])
    result = deploy(lab, OTHER, repo, f"dep-f-{policy.replace('_', '-')}", on_failed_dependency=policy)[OTHER]
    assert result.status == "FAILED" and "bad" in result.data["msg"]
    assert {name: row["status"] for name, row in by_name(result.data).items()} == expected
    assert by_name(result.data)["bad"]["rc"] == 3
    assert left_behind(lab, OTHER, f"dep-f-{policy.replace('_', '-')}", fresh[OTHER]) == []


def test_push_delivery_and_auto_falling_back_when_the_node_cannot_reach_the_engine(lab, fresh, tmp_path):
    repo = make_repo(tmp_path / "r", state_dir(lab), [component("fw-p", "1.0")])
    pushed = deploy(lab, NODE, repo, "dep-p1", delivery="push")[NODE]
    assert pushed.status == "CHANGED" and pushed.data["delivery"] == "push", pushed.data
    lab.node_run(NODE, ["sh", "-c", f"rm -f {state_dir(lab)}/*.version"])
    # The return direction blocked by a node OUTPUT rule (not ours: the user's), both families.
    for tool in ("iptables-legacy", "ip6tables-legacy"):
        lab.node_run(NODE, [tool, "-I", "OUTPUT", "-p", "tcp", "--dport", "63002", "-j", "REJECT"])
    try:
        auto = deploy(lab, NODE, repo, "dep-p2")[NODE]
        assert auto.status == "CHANGED" and auto.data["delivery"] == "push", auto.data
        assert installed(lab, NODE, "fw-p") == "1.0"
        lab.node_run(NODE, ["sh", "-c", f"rm -f {state_dir(lab)}/*.version"])
        pull = deploy(lab, NODE, repo, "dep-p3", delivery="pull")[NODE]
        assert pull.status == "FAILED" and "pull delivery of fw-p failed" in pull.data["msg"]
        assert by_name(pull.data)["fw-p"]["status"] == "not_attempted"
    finally:
        for tool in ("iptables-legacy", "ip6tables-legacy"):
            lab.node_run(NODE, [tool, "-D", "OUTPUT", "-p", "tcp", "--dport", "63002", "-j", "REJECT"])
    assert left_behind(lab, NODE, "dep-p3", fresh[NODE]) == []


def test_four_nodes_at_once_with_four_forks_including_ipv6_only_and_windows_like(lab, fresh, tmp_path):
    repo = make_repo(tmp_path / "r", state_dir(lab), [component("fw-m", "3.1")])
    results = deploy(lab, "all", repo, "dep-m", extra=["--forks", "4"])
    for node in LINUX:
        assert results[node].status == "CHANGED", results[node].data
        assert installed(lab, node, "fw-m") == "3.1"
        assert left_behind(lab, node, "dep-m", fresh[node]) == []
    # The Samba node is reached over SSH: staged over admin$, then backed out (no PowerShell here).
    assert results["win01"].status == "FAILED" and "admin$" in results["win01"].data["msg"]


class FlippingRepository(http.server.ThreadingHTTPServer):
    """A repository server on the controller's lab address that can flip one bit of every file in transit."""

    def __init__(self, address: str, folder: Path, flip: bool) -> None:
        self.folder, self.flip = folder, flip
        super().__init__((address, 0), FlippingHandler)


class FlippingHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        data = (self.server.folder / self.path.lstrip("/")).read_bytes()
        if self.server.flip:
            data = data[:10] + bytes([data[10] ^ 0x01]) + data[11:]
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args) -> None:  # pylint: disable=redefined-builtin
        pass


def test_url_delivery_and_a_bit_flipped_in_transit_refused_before_install(lab, fresh, tmp_path):
    repo = make_repo(tmp_path / "r", state_dir(lab), [component("fw-u", "1.0")])
    address = str(fleetlab.CONTROLLER_IPV4)
    for flip in (True, False):
        server = FlippingRepository(address, repo, flip)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://{address}:{server.server_address[1]}"
            result = deploy(lab, NODE, repo, f"dep-u{int(flip)}", delivery="url", repository_url=url)[NODE]
        finally:
            server.shutdown()
            server.server_close()
        if flip:
            assert result.status == "FAILED" and "do not match the manifest's SHA-256" in result.data["msg"], result.data
            assert by_name(result.data)["fw-u"]["status"] == "not_attempted" and installed(lab, NODE, "fw-u") is None
        else:
            assert result.status == "CHANGED" and result.data["delivery"] == "url", result.data
            assert installed(lab, NODE, "fw-u") == "1.0"
        assert left_behind(lab, NODE, f"dep-u{int(flip)}", fresh[NODE]) == []


def test_check_mode_changes_nothing_on_the_node(lab, fresh, tmp_path):
    repo = make_repo(tmp_path / "r", state_dir(lab), [component("fw-c", "1.0")])
    listing = lab.node_run(NODE, ["ls", "-A", "/var/tmp", state_dir(lab)]).stdout
    result = deploy(lab, NODE, repo, "dep-c", extra=["--check"])[NODE]
    assert result.data["changed"] is True and by_name(result.data)["fw-c"]["action"] == "install"
    assert by_name(result.data)["fw-c"]["status"] == "not_attempted"
    assert lab.node_run(NODE, ["ls", "-A", "/var/tmp", state_dir(lab)]).stdout == listing
    assert snapshot(lab, NODE) == fresh[NODE] and not agent_processes(lab, NODE)
    assert not Path(run_dir(lab, "dep-c")).exists()


def test_a_file_changed_after_the_manifest_is_refused_before_anything_is_staged(lab, fresh, tmp_path):
    repo = make_repo(tmp_path / "r", state_dir(lab), [component("fw-h", "1.0")])
    script = next(repo.glob("fw-h-*.sh"))
    script.write_text(script.read_text().replace("exit 0", "exit 0 "))
    result = deploy(lab, NODE, repo, "dep-h")[NODE]
    assert result.status == "FAILED" and "fw-h" in result.data["msg"] and "sha256" in result.data["msg"]
    assert left_behind(lab, NODE, "dep-h", fresh[NODE]) == [] and installed(lab, NODE, "fw-h") is None


def test_reboot_only_when_every_component_succeeded_and_one_needs_it(lab, fresh, tmp_path):
    watcher = RebootWatcher(lab.lab)
    watcher.start()
    try:
        needs = make_repo(tmp_path / "r", state_dir(lab), [component("bios", "2.0", rc=1, install="smart_component", reboot="if_rc")])
        boot_before = lab.node_run(OTHER, ["cat", "/proc/sys/kernel/random/boot_id"]).stdout
        result = deploy(lab, OTHER, needs, "dep-r", reboot="if_needed", reboot_command=RebootWatcher.COMMAND, reboot_timeout=90)[OTHER]
        assert result.status == "CHANGED", explain(result, watcher)
        assert result.data["rebooted"] is True and watcher.rebooted == [OTHER], explain(result, watcher)
        assert lab.node_run(OTHER, ["cat", "/proc/sys/kernel/random/boot_id"]).stdout != boot_before
        assert by_name(result.data)["bios"]["after"] == "2.0"
        mixed = make_repo(tmp_path / "m", state_dir(lab), [
            component("bios", "3.0", rc=1, install="smart_component", reboot="if_rc"), component("nic", "1.0", rc=3)])
        failed = deploy(lab, OTHER, mixed, "dep-r2", reboot="if_needed", reboot_command=RebootWatcher.COMMAND)[OTHER]
        assert failed.status == "FAILED" and failed.data["rebooted"] is False and failed.data["reboot_required"] is True
        assert watcher.rebooted == [OTHER]
    finally:
        watcher.halt.set()
    assert left_behind(lab, OTHER, "dep-r2", fresh[OTHER]) == []


def test_after_the_reboot_a_component_not_running_its_version_is_not_activated(lab, fresh, tmp_path):
    """The activation check (issue 17 item 2), with the lab's simulated reboot: nic's installer
    succeeds but leaves 4.9 behind (as firmware that did not take), ilo cannot be re-detected."""
    watcher = RebootWatcher(lab.lab)
    watcher.start()
    try:
        repo = make_repo(tmp_path / "a", state_dir(lab), [
            component("bios", "2.0", rc=1, install="smart_component", reboot="if_rc"),
            component("nic", "5.0", writes="4.9"),
            component("ilo", "3.0", install="smart_component", detect="component")])
        result = deploy(lab, OTHER, repo, "dep-act", reboot="always", reboot_command=RebootWatcher.COMMAND, reboot_timeout=90)[OTHER]
        assert result.data["rebooted"] is True and watcher.rebooted == [OTHER], explain(result, watcher)
        rows = by_name(result.data)
        assert rows["bios"]["status"] == "installed" and rows["bios"]["after"] == "2.0"
        assert rows["nic"]["status"] == "not_activated" and rows["nic"]["after"] == "4.9"
        assert rows["nic"]["message"].endswith("after the reboot the node runs 4.9, not the installed 5.0")
        assert rows["ilo"]["status"] == "unverified" and "cannot be re-detected" in rows["ilo"]["message"]
        # not_activated fails the task (and so the report and the canary); unverified does not.
        assert result.status == "FAILED" and result.data["msg"] == f"component(s) failed on {OTHER}: nic (not activated)"
        assert result.data["reboot"]["os"] == "linux" and result.data["reboot"]["command"] == RebootWatcher.COMMAND
    finally:
        watcher.halt.set()
    assert left_behind(lab, OTHER, "dep-act", fresh[OTHER]) == []


def playbook(lab, tmp_path: Path, repo: Path, tag: str, host: str, lease: int = 30) -> subprocess.Popen:
    book = tmp_path / "deploy.yml"
    book.write_text(
        f"- hosts: {host}\n  gather_facts: false\n  tasks:\n"
        f"    - fleet.firmware.deploy:\n        repository: {repo}\n        tag: {tag}\n        trust: {lab_trust()}\n"
        f"        run_dir: {run_dir(lab, tag)}\n        lease: {lease}\n        progress_interval: 1\n"
    )
    argv = [conftest.ansible_bin("ansible-playbook"), "-i", str(lab.inventory), str(book)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=conftest.ansible_env(),
                            start_new_session=True)


def ledger_events(lab, tag: str, node: str) -> list[dict]:
    path = Path(run_dir(lab, tag)) / "ledger" / f"{node}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for_install_start(lab, node: str, repo: Path, name: str, timeout: float = 60) -> bool:
    """The agent runs the staged file, named by its SHA-256: wait for that process."""
    sha = hashlib.sha256(next(repo.glob(f"{name}-*.sh")).read_bytes()).hexdigest()
    return wait_until(lambda: lab.node_run(node, ["pgrep", "-f", sha], check=False).returncode == 0, timeout)


def test_sigkill_of_the_playbook_mid_install_leaves_nothing_after_the_lease(lab, fresh, tmp_path):
    # The component outlasts the lease: the lease runs out while it installs.
    repo = make_repo(tmp_path / "r", state_dir(lab), [component("slowfw", "1.0", sleep=12), component("later", "1.0")])
    proc = playbook(lab, tmp_path, repo, "dep-k", NODE, lease=8)
    try:
        assert wait_for_install_start(lab, NODE, repo, "slowfw"), "the install never started"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert wait_until(lambda: left_behind(lab, NODE, "dep-k", fresh[NODE]) == [], 12 + 8 + 15), left_behind(lab, NODE, "dep-k", fresh[NODE])
    assert installed(lab, NODE, "slowfw") == "1.0"  # the in-flight component finished
    assert installed(lab, NODE, "later") is None  # the rest was skipped when the lease ran out


def test_ctrl_c_mid_install_finishes_the_component_cancels_the_rest_and_cleans_up(lab, fresh, tmp_path):
    repo = make_repo(tmp_path / "r", state_dir(lab), [component("slowfw", "1.0", sleep=4), component("later", "1.0")])
    # A lease far longer than the wait below: a clean node then proves the finally ran, not the lease.
    proc = playbook(lab, tmp_path, repo, "dep-i", OTHER, lease=300)
    assert wait_for_install_start(lab, OTHER, repo, "slowfw"), "the install never started"
    os.killpg(proc.pid, signal.SIGINT)
    output = proc.communicate(timeout=120)[0]
    assert "User interrupted execution" in output
    # ansible-playbook is gone at once; its worker finishes the component and cleans up.
    assert wait_until(lambda: left_behind(lab, OTHER, "dep-i", fresh[OTHER]) == [], 60), left_behind(lab, OTHER, "dep-i", fresh[OTHER])
    assert installed(lab, OTHER, "slowfw") == "1.0" and installed(lab, OTHER, "later") is None
    # The node's stages (the engine's own events, such as session_closed, carry no stage).
    events = [e["stage"] for e in ledger_events(lab, "dep-i", OTHER) if "stage" in e]
    assert events[-2:] == ["cancelled", "cleaned"], events


def test_resume_after_a_killed_run_skips_what_was_installed(lab, fresh, tmp_path):
    repo = make_repo(tmp_path / "r", state_dir(lab), [
        component("first", "1.0"), component("slow", "1.0", sleep=12), component("third", "1.0")])
    proc = playbook(lab, tmp_path, repo, "dep-s", V6, lease=8)
    try:
        assert wait_for_install_start(lab, V6, repo, "slow")
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert wait_until(lambda: left_behind(lab, V6, "dep-s", fresh[V6]) == [], 12 + 8 + 15)
    assert installed(lab, V6, "third") is None  # the lease ran out during "slow"
    lab.node_run(V6, ["sh", "-c", f"rm -f {state_dir(lab)}/first.version"])  # so only the ledger says it is done
    resumed = deploy(lab, V6, repo, "dep-s", resume=True)[V6]
    rows = by_name(resumed.data)
    assert rows["first"]["status"] == "skipped" and "resume" in rows["first"]["message"], explain(resumed)
    assert rows["third"]["status"] == "installed" and installed(lab, V6, "first") is None


def test_the_windows_path_stages_over_admin_share_and_backs_out_cleanly(lab, clean, tmp_path):
    """win01 is Samba reached over SSH: deploy gets as far as the admin$ staging (real SMB), cannot
    start the PowerShell agent (no Windows here), and leaves the share as it was."""
    temp = f"{lab.lab.home}/node/windows/Temp"
    before = lab.node_run("win01", ["ls", "-A", temp]).stdout.split()
    repo = make_repo(tmp_path / "r", state_dir(lab), [component("fw-w", "1.0")])
    result = deploy(lab, "win01", repo, "dep-w")["win01"]
    assert result.status == "FAILED"
    assert "staged over admin$ (smb)" in result.data["msg"] and "the staged files were removed" in result.data["msg"]
    assert lab.node_run("win01", ["ls", "-A", temp]).stdout.split() == before
    assert [e.get("stage") for e in ledger_events(lab, "dep-w", "win01")][-1] == "cleaned"
