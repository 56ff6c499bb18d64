# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The main job run the way AWX / Automation Controller runs it, against the lab.

AWX does not call ansible-playbook itself: it writes a private data dir (project/ checked out
from SCM, inventory/, env/extravars from the survey, env/envvars, ...) and hands it to
ansible-runner, either in process (`ansible_runner.run`) or, for a remote execution node, as a
stream: `ansible-runner transmit` (controller) | `ansible-runner worker` (execution node) |
`ansible-runner process` (controller, which turns the stream back into events and artefacts).
Both are done here for real, with the job's events and artefacts checked.

The project's playbook imports `fleet.firmware.update_fleet` (an AWX job template must name a
playbook file of the project); the collection is found through env/envvars, as it would be in an
execution environment. Only the Linux nodes take part (the lab's Windows-like node has no
PowerShell to run the agent).
"""
from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import ansible_runner
import pytest
import yaml

import conftest
import fleetlab
from deploy_helpers import component, lab_trust, make_repo
from firewall_helpers import wait_until

from ansible_collections.fleet.firmware.plugins.plugin_utils import engine as engine_mod

pytestmark = pytest.mark.lab

LINUX = ("lin01", "lin02", "v6n01")
PLAYBOOK = "update_fleet.yml"
BIN = Path(sys.executable).parent
DEPLOY_ACTIONS = {"fleet.firmware.deploy"}


def state_dir(lab) -> str:
    return str(lab.lab.home / "node")


def write_private_data_dir(root: Path, lab, repo: Path, tag: str) -> Path:
    """What AWX writes for a job: project, inventory, survey answers as extra vars, environment."""
    (root / "project").mkdir(parents=True)
    (root / "project" / PLAYBOOK).write_text(yaml.safe_dump([
        {"name": "The fleet update of this project", "ansible.builtin.import_playbook": "fleet.firmware.update_fleet"}], sort_keys=False))
    (root / "inventory").mkdir()
    (root / "inventory" / "hosts.yml").write_text(lab.inventory.read_text())
    (root / "env").mkdir()
    # The survey: repository, waves, reboot policy; and the run tag, so that no two jobs share a run.
    (root / "env" / "extravars").write_text(yaml.safe_dump({
        "fleet_repository": str(repo), "fleet_trust": lab_trust(), "fleet_hosts": "linux", "fleet_waves": [1, 2], "fleet_reboot": "never",
        "fleet_run_tag": tag, "fleet_run_dir": str(lab.lab.home / "runs" / tag), "fleet_lease": 30,
    }))
    env = conftest.ansible_env()
    (root / "env" / "envvars").write_text(yaml.safe_dump({
        "ANSIBLE_COLLECTIONS_PATH": env["ANSIBLE_COLLECTIONS_PATH"], "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "True", "ANSIBLE_DEPRECATION_WARNINGS": "False",
        "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}:/usr/sbin:/sbin",
    }))
    return root


def reset_nodes(lab) -> None:
    for node in LINUX:
        lab.node_run(node, ["sh", "-c", f"rm -f {state_dir(lab)}/awx-*.version"])


def installed(lab, node: str, name: str) -> str | None:
    proc = lab.node_run(node, ["cat", f"{state_dir(lab)}/{name}.version"], check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def deploy_oks(events: list[dict]) -> dict[str, dict]:
    """host -> the result of its deploy task, from the runner_on_ok events."""
    found = {}
    for event in events:
        data = event.get("event_data", {})
        if event.get("event") == "runner_on_ok" and data.get("resolved_action", data.get("task_action")) in DEPLOY_ACTIONS:
            found[data["host"]] = data["res"]
    return found


def stats(events: list[dict]) -> dict:
    [last] = [e for e in events if e.get("event") == "playbook_on_stats"]
    return last["event_data"]


def events_on_disk(artifacts: Path) -> list[dict]:
    files = sorted((artifacts / "job_events").glob("*.json"), key=lambda p: int(p.name.split("-", 1)[0]))
    return [json.loads(p.read_text()) for p in files]


def assert_job_updated_every_node(lab, events: list[dict], artifacts: Path, version: str) -> None:
    results = deploy_oks(events)
    assert sorted(results) == sorted(LINUX), sorted(results)
    for host, res in results.items():
        assert res["changed"] is True and [c["status"] for c in res["components"]] == ["installed"], (host, res)
        assert installed(lab, host, "awx-fw") == version
    summary = stats(events)
    assert summary["failures"] == {} and summary["dark"] == {}, summary
    assert set(summary["ok"]) >= set(LINUX) and set(summary["changed"]) == set(LINUX), summary
    # The artefacts AWX reads: one file per event, the job's stdout, rc and status.
    assert (artifacts / "rc").read_text().strip() == "0"
    assert (artifacts / "status").read_text().strip() == "successful"
    stdout = (artifacts / "stdout").read_text()
    assert "PLAY RECAP" in stdout and all(f"{host}" in stdout for host in LINUX)
    uuids = {e["uuid"] for e in events if "uuid" in e}
    assert len(uuids) == len([e for e in events if "uuid" in e]), "an event was written twice"


@pytest.fixture
def tag() -> str:
    return f"awx-{uuid.uuid4().hex[:10]}"


def test_update_fleet_through_ansible_runner_as_awx_runs_a_job(lab, tmp_path, tag):
    reset_nodes(lab)
    repo = make_repo(tmp_path / "repo", state_dir(lab), [component("awx-fw", "2.0")])
    private = write_private_data_dir(tmp_path / "job", lab, repo, tag)
    runner = ansible_runner.run(private_data_dir=str(private), playbook=PLAYBOOK, ident="job-41", quiet=True, timeout=170)
    artifacts = private / "artifacts" / "job-41"
    assert runner.status == "successful" and runner.rc == 0, (artifacts / "stdout").read_text()[-4000:]
    events = list(runner.events)
    # What the runner handed the caller and what it wrote to disk are the same events.
    assert [e["uuid"] for e in events_on_disk(artifacts)] == [e["uuid"] for e in events]
    assert_job_updated_every_node(lab, events, artifacts, "2.0")
    assert wait_until(lambda: engine_mod.attach(str(lab.lab.home / "runs" / tag)) is None, 60), "the run's engine is still up"


def test_update_fleet_through_the_transmit_worker_process_stream(lab, tmp_path, tag):
    """controller | execution node | controller, as AWX does it over receptor: three processes,
    connected by pipes; the worker unpacks into its own folder, process into a fresh one."""
    reset_nodes(lab)
    repo = make_repo(tmp_path / "repo", state_dir(lab), [component("awx-fw", "3.0")])
    private = write_private_data_dir(tmp_path / "job", lab, repo, tag)
    worker_dir, process_dir = tmp_path / "execution-node", tmp_path / "received"
    process_dir.mkdir()
    transmit = subprocess.Popen([str(BIN / "ansible-runner"), "transmit", str(private), "-p", PLAYBOOK, "--ident", "job-42"],
                                stdout=subprocess.PIPE)
    worker = subprocess.Popen([str(BIN / "ansible-runner"), "worker", "--private-data-dir", str(worker_dir)],
                              stdin=transmit.stdout, stdout=subprocess.PIPE, env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})
    process = subprocess.Popen([str(BIN / "ansible-runner"), "process", str(process_dir)], stdin=worker.stdout,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    transmit.stdout.close()  # the worker's stdin now belongs to the worker alone
    worker.stdout.close()
    try:
        out, err = process.communicate(timeout=170)
        assert worker.wait(timeout=30) == 0 and transmit.wait(timeout=30) == 0
    finally:
        for proc in (transmit, worker, process):
            if proc.poll() is None:
                proc.kill()
    assert process.returncode == 0, out[-3000:] + err[-3000:]
    # `process` writes the job's artefacts straight into <its folder>/artifacts (no ident level);
    # the execution node keeps its own copy under artifacts/<ident>.
    artifacts = process_dir / "artifacts"
    events = events_on_disk(artifacts)
    assert "PLAY RECAP" in out
    assert events and events[0]["event"] == "playbook_on_start", [e.get("event") for e in events[:3]]
    assert_job_updated_every_node(lab, events, artifacts, "3.0")
    # The processing side only received: nothing ran there, and the worker's folder was its own.
    assert not (process_dir / "project").exists()
    assert (worker_dir / "project" / PLAYBOOK).is_file()
    # The execution node ran the job under AWX's ident (its event files are streamed, then removed).
    assert (worker_dir / "artifacts" / "job-42" / "rc").read_text().strip() == "0"
    assert wait_until(lambda: engine_mod.attach(str(lab.lab.home / "runs" / tag)) is None, 60), "the run's engine is still up"


# --------------------------------------------------------------------------------------------
# The job behind NAT (issue 20 item 2): the controller runs in a network namespace of its own
# (an AWX job's container) behind a router namespace that masquerades its connections to the
# nodes and forwards the engine port to it. The nodes see the controller as the router's lab
# address; the controller's own address is one the nodes have no route to.
# --------------------------------------------------------------------------------------------

NAT_NODE = "lin01"
NAT_ROUTER = f"{fleetlab.PREFIX}natr"  # names the lab's `down` removes too, should a run crash
NAT_CONTROLLER = f"{fleetlab.PREFIX}natc"
NAT_HOST_LINK = f"{fleetlab.VETH_PREFIX}901"  # beyond every node's index (MAX_NODES)
NAT_INSIDE = ipaddress.IPv4Network(f"198.19.{100 + fleetlab.LAB_ID}.0/24")  # the container's net (the BMCs use 198.19.<id>)
NAT_OUTSIDE = str(fleetlab.IPV4_NET.network_address + 250)  # the router on the lab bridge: the controller as nodes see it
NAT_CONTROLLER_OWN = str(NAT_INSIDE.network_address + 2)


def _ns(name: str, *argv: str) -> None:
    fleetlab.run(["ip", "netns", "exec", name, *argv])


def _nat_down() -> None:
    inodes = [i for i in (fleetlab.netns_inode(n) for n in (NAT_ROUTER, NAT_CONTROLLER)) if i]
    fleetlab.kill_all(fleetlab.pids_in_netns(inodes))  # the run's engine, should it still run
    for name in (NAT_CONTROLLER, NAT_ROUTER):
        fleetlab.run(["ip", "netns", "del", name], check=False, quiet=True)
    if Path(f"/sys/class/net/{NAT_HOST_LINK}").exists():
        fleetlab.run(["ip", "link", "del", NAT_HOST_LINK], check=False, quiet=True)


@pytest.fixture
def nat(lab):
    """controller namespace -- router (masquerade out, engine port forwarded in) -- lab bridge."""
    _nat_down()
    inside = str(NAT_INSIDE.network_address + 1)
    try:
        for name in (NAT_ROUTER, NAT_CONTROLLER):
            fleetlab.run(["ip", "netns", "add", name])
            fleetlab.run(["ip", "-n", name, "link", "set", "lo", "up"])
        fleetlab.run(["ip", "link", "add", NAT_HOST_LINK, "type", "veth", "peer", "name", "eth0", "netns", NAT_ROUTER])
        fleetlab.run(["ip", "link", "set", NAT_HOST_LINK, "master", fleetlab.BRIDGE, "up"])
        fleetlab.run(["ip", "-n", NAT_ROUTER, "link", "add", "in0", "type", "veth", "peer", "name", "eth0", "netns", NAT_CONTROLLER])
        fleetlab.run(["ip", "-n", NAT_ROUTER, "addr", "add", f"{NAT_OUTSIDE}/{fleetlab.IPV4_NET.prefixlen}", "dev", "eth0"])
        fleetlab.run(["ip", "-n", NAT_ROUTER, "addr", "add", f"{inside}/{NAT_INSIDE.prefixlen}", "dev", "in0"])
        fleetlab.run(["ip", "-n", NAT_CONTROLLER, "addr", "add", f"{NAT_CONTROLLER_OWN}/{NAT_INSIDE.prefixlen}", "dev", "eth0"])
        for name, link in ((NAT_ROUTER, "eth0"), (NAT_ROUTER, "in0"), (NAT_CONTROLLER, "eth0")):
            fleetlab.run(["ip", "-n", name, "link", "set", link, "up"])
        fleetlab.run(["ip", "-n", NAT_CONTROLLER, "route", "add", str(fleetlab.IPV4_NET), "via", inside])
        _ns(NAT_ROUTER, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")  # the router's namespace only
        port = engine_mod.DEFAULT_TLS_PORT
        fleetlab.run(["ip", "netns", "exec", NAT_ROUTER, "nft", "-f", "-"], stdin=(
            "table ip fleetlabnat {\n"
            "  chain pre { type nat hook prerouting priority dstnat;\n"
            f"    iifname \"eth0\" ip daddr {NAT_OUTSIDE} tcp dport {port} dnat to {NAT_CONTROLLER_OWN}\n  }}\n"
            "  chain post { type nat hook postrouting priority srcnat;\n"
            "    oifname \"eth0\" masquerade\n  }\n"
            "}\n"))
        fleetlab.run(["ip", "neigh", "flush", "dev", fleetlab.BRIDGE, "to", NAT_OUTSIDE], check=False)
        yield
    finally:
        _nat_down()


def write_nat_job(root: Path, lab, repo: Path, tag: str, controller_address: list[str] | None) -> Path:
    """The AWX job of the container behind NAT: one node, by its IPv4 address (the container has
    no IPv6), pull delivery (the engine must be reached through the forwarded port: auto would
    fall back to push), the controller's firewall left alone (an execution environment may not
    change it)."""
    write_private_data_dir(root, lab, repo, tag)
    inventory = yaml.safe_load(lab.inventory.read_text())
    node = lab.node(NAT_NODE)
    host = dict(inventory["all"]["children"]["linux"]["hosts"][NAT_NODE], ansible_host=node.ipv4)
    inventory["all"]["children"] = {"linux": {"hosts": {NAT_NODE: host}}}
    (root / "inventory" / "hosts.yml").write_text(yaml.safe_dump(inventory))
    extravars = yaml.safe_load((root / "env" / "extravars").read_text())
    # The preflight listens on the addresses it checks, and the router's is none of the controller's.
    extravars.update(fleet_waves=[1], fleet_delivery="pull", fleet_open_controller_firewall=False, fleet_preflight=False)
    if controller_address is not None:
        extravars["fleet_controller_address"] = controller_address
    (root / "env" / "extravars").write_text(yaml.safe_dump(extravars))
    return root


def run_in_controller_namespace(private: Path, ident: str) -> subprocess.CompletedProcess:
    argv = ["ip", "netns", "exec", NAT_CONTROLLER, str(BIN / "ansible-runner"), "run", str(private), "-p", PLAYBOOK, "--ident", ident]
    return subprocess.run(argv, capture_output=True, text=True, timeout=400, check=False,
                          env={**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"})


def deploy_failures(events: list[dict]) -> dict[str, dict]:
    found = {}
    for event in events:
        data = event.get("event_data", {})
        if event.get("event") == "runner_on_failed" and data.get("resolved_action", data.get("task_action")) in DEPLOY_ACTIONS:
            found[data["host"]] = data["res"]
    return found


def test_behind_nat_the_controller_address_the_nodes_see_makes_the_job_work(lab, nat, tmp_path, tag):
    reset_nodes(lab)
    repo = make_repo(tmp_path / "repo", state_dir(lab), [component("awx-fw", "4.0")])
    private = write_nat_job(tmp_path / "job", lab, repo, tag, [NAT_OUTSIDE])
    proc = run_in_controller_namespace(private, "job-nat")
    artifacts = private / "artifacts" / "job-nat"
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    events = events_on_disk(artifacts)
    res = list(deploy_oks(events).values())[0]
    assert res["changed"] is True and [c["status"] for c in res["components"]] == ["installed"], res
    assert installed(lab, NAT_NODE, "awx-fw") == "4.0"
    assert stats(events)["failures"] == {} and stats(events)["dark"] == {}
    # The node fetched the component from the engine through the router's forwarded port: pull, not push.
    assert res["delivery"] == "pull", res


def test_behind_nat_without_the_controller_address_the_job_fails_saying_why(lab, nat, tmp_path, tag):
    reset_nodes(lab)
    repo = make_repo(tmp_path / "repo", state_dir(lab), [component("awx-fw", "5.0")])
    private = write_nat_job(tmp_path / "job", lab, repo, tag, None)
    proc = run_in_controller_namespace(private, "job-nat-bare")
    assert proc.returncode != 0, proc.stdout[-4000:]
    events = events_on_disk(private / "artifacts" / "job-nat-bare")
    res = list(deploy_failures(events).values())[0]
    assert installed(lab, NAT_NODE, "awx-fw") is None
    assert NAT_CONTROLLER_OWN in res["msg"] and "controller_address" in res["msg"], res["msg"]
