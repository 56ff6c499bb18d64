# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The run's engine against the lab: nodes download with curl in their own namespaces over
IPv4 and IPv6, the engine runs as the daemon a stand-in ansible-playbook's workers started."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import uuid

import pytest

import fleetlab
from checks import wait_for
from conftest import ansible_bin, ansible_env
from engine_helpers import REPO, StandInPlaybook, pid_alive, wait_gone

from ansible_collections.fleet.firmware.plugins.plugin_utils import engine, ledger

pytestmark = pytest.mark.lab

SIZE = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def workspace(lab):
    # In the lab's folder, which every node sees (the checkout may be under /tmp, which is
    # private inside nodes): curl inside a node needs the run's CA certificate.
    folder = lab.lab.home / "engine-tests" / uuid.uuid4().hex[:8]
    folder.mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def payload(workspace):
    path = workspace / "component.bin"
    path.write_bytes(os.urandom(SIZE))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tls_run(lab, workspace, payload):
    """A TLS engine on the controller's lab addresses, started by the first of two workers."""
    run_dir = workspace / "run-tls"
    settings = {"address": [str(fleetlab.CONTROLLER_IPV4), str(fleetlab.CONTROLLER_IPV6)], "port": 63002, "tls": True}
    playbook = StandInPlaybook(run_dir, settings, workers=2)
    handle = engine.attach(str(run_dir))
    assert handle is not None, playbook.log()
    handle.register_component(str(payload[0]), sha256=payload[1])
    yield playbook, handle
    playbook.kill()
    wait_gone(handle.pid, 60)


def curl(lab, node, url, *args, token=None, ca=None, check=False):
    argv = ["curl", "-sS", "--max-time", "30", "-o", "/tmp/out", "-w", "%{http_code}", "-g"]
    if ca:
        argv += ["--cacert", ca]
    if token is not None:
        argv += ["-H", f"Authorization: Bearer {token}"]
    proc = lab.node_run(node, argv + list(args) + [url], check=check)
    return proc.stdout.strip()


def node_sha(lab, node, path="/tmp/out"):
    return lab.node_run(node, ["sha256sum", path]).stdout.split()[0]


def test_two_workers_attach_to_one_engine_that_is_a_daemon_of_its_own(tls_run):
    playbook, handle = tls_run
    pids = {h["pid"] for h in playbook.handles}
    assert pids == {handle.pid}
    assert handle.pid not in (playbook.proc.pid, os.getpid()) and pid_alive(handle.pid)
    assert {h["ca_fingerprint"] for h in playbook.handles} == {handle.ca_fingerprint}
    assert os.stat(playbook.run_dir / "tls" / "ca.key").st_mode & 0o077 == 0


@pytest.mark.parametrize("node, family", [("lin01", 4), ("v6n01", 6), ("win01", 6)])
def test_a_node_downloads_a_component_over_tls_by_hash(lab, tls_run, payload, node, family):
    handle = tls_run[1]
    token = handle.register_node(node)
    handle.grant(node, payload[1])
    url = next(u for u in handle.urls if ("[" in u) == (family == 6))
    code = curl(lab, node, f"{url}/v1/components/{payload[1]}", token=token, ca=handle.ca_path)
    assert code == "200"
    assert node_sha(lab, node) == payload[1]


def test_resume_with_range_after_a_cut_connection(lab, tls_run, payload):
    handle = tls_run[1]
    token = handle.register_node("lin02")
    handle.grant("lin02", payload[1])
    url = f"{handle.urls[0]}/v1/components/{payload[1]}"
    # Cut: a slow download stopped by curl's own time limit leaves a partial file. On a loaded
    # machine the TLS handshake alone may outlast a short limit, so the limit grows until some
    # bytes arrived; at 512 KiB/s even the longest limit stays far below the file's size.
    partial = 0
    for limit in (2, 4, 6):
        lab.node_run("lin02", ["rm", "-f", "/tmp/out"])
        cut = curl(lab, "lin02", url, "--limit-rate", "512K", "--max-time", str(limit), token=token, ca=handle.ca_path)
        done = lab.node_run("lin02", ["stat", "-c", "%s", "/tmp/out"], check=False)
        partial = int(done.stdout) if done.returncode == 0 else 0
        if partial:
            break
    assert cut == "200" and 0 < partial < SIZE
    resumed = curl(lab, "lin02", url, "-C", "-", token=token, ca=handle.ca_path)
    assert resumed == "206"
    assert node_sha(lab, "lin02") == payload[1]


def test_range_beyond_the_end_is_416(lab, tls_run, payload):
    handle = tls_run[1]
    token = handle.register_node("lin02")
    handle.grant("lin02", payload[1])
    url = f"{handle.urls[1]}/v1/components/{payload[1]}"
    assert curl(lab, "lin02", url, "-r", f"{SIZE}-", token=token, ca=handle.ca_path) == "416"


def test_missing_wrong_and_other_nodes_tokens_are_refused(lab, tls_run, payload):
    handle = tls_run[1]
    lin01, win01 = handle.register_node("lin01"), handle.register_node("win01")
    handle.set_job("lin01", {"components": [{"sha256": payload[1], "install": {"type": "scexe"}}], "policy": {"reboot": "never"}})
    base = handle.urls[0]
    component = f"{base}/v1/components/{payload[1]}"
    assert curl(lab, "lin01", component, ca=handle.ca_path) == "401"
    assert curl(lab, "lin01", component, token="x" * 43, ca=handle.ca_path) == "401"
    job = f"{base}/v1/nodes/lin01/job"
    assert curl(lab, "win01", job, token=win01, ca=handle.ca_path) == "403"
    assert curl(lab, "lin01", job, token=lin01, ca=handle.ca_path) == "200"
    served = json.loads(lab.node_run("lin01", ["cat", "/tmp/out"]).stdout)
    assert served["components"][0]["size"] == SIZE and served["components"][0]["url"].endswith(payload[1])
    old = lin01
    handle.register_node("lin01")  # a renewed session: the old token is dead
    assert curl(lab, "lin01", job, token=old, ca=handle.ca_path) == "401"


def test_a_token_fetches_only_its_nodes_components_and_dies_with_its_session(lab, tls_run, payload, workspace):
    """Token scope (issue 18 item 2): lin02's token gets 404 for a registered component assigned to
    lin01 only, exactly as for an unregistered one; once lin01's session ends its token is 401."""
    handle = tls_run[1]
    other = workspace / "lin01-only.bin"
    other.write_bytes(b"for lin01 only" * 100)
    lin01, lin02 = handle.register_node("lin01"), handle.register_node("lin02")
    sha = handle.register_component(str(other), node_id="lin01")
    url = f"{handle.urls[0]}/v1/components/{sha}"
    assert curl(lab, "lin02", url, token=lin02, ca=handle.ca_path) == "404"
    assert curl(lab, "lin02", f"{handle.urls[0]}/v1/components/{'0' * 64}", token=lin02, ca=handle.ca_path) == "404"
    assert curl(lab, "lin01", url, token=lin01, ca=handle.ca_path) == "200"
    assert handle.end_session("lin01") is True
    assert curl(lab, "lin01", url, token=lin01, ca=handle.ca_path) == "401"
    assert handle.stats()["served"].get(sha, 0) == len(b"for lin01 only" * 100)
    assert "lin01" not in handle.stats()["nodes"]


def test_events_from_a_node_land_in_its_ledger_and_bad_ones_are_refused(lab, tls_run):
    handle = tls_run[1]
    token = handle.register_node("v6n01")
    events = f"{handle.urls[1]}/v1/nodes/v6n01/events"
    offset = ledger.read_since(handle.run_dir, "v6n01", 0)[1]
    ok = curl(lab, "v6n01", events, "-H", "Content-Type: application/json", "-d", '{"stage":"downloading","progress":50}', token=token, ca=handle.ca_path)
    assert ok == "200"
    new = ledger.read_since(handle.run_dir, "v6n01", offset)[0]
    assert [(e["stage"], e["progress"], e["source"]) for e in new] == [("downloading", 50, "node")]
    assert curl(lab, "v6n01", events, "-d", '{"stage":"hacked"}', token=token, ca=handle.ca_path) == "400"
    assert curl(lab, "v6n01", events, "-d", "{not json", token=token, ca=handle.ca_path) == "400"
    lab.node_run("v6n01", ["sh", "-c", "head -c 70000 /dev/zero > /tmp/big"])
    assert curl(lab, "v6n01", events, "--data-binary", "@/tmp/big", token=token, ca=handle.ca_path) == "413"
    assert ledger.node_state(handle.run_dir, "v6n01")["stage"] == "downloading"


def test_a_file_changed_after_registration_is_refused_and_logged(lab, tls_run, workspace):
    handle = tls_run[1]
    path = workspace / "tampered.bin"
    path.write_bytes(b"firmware v1" * 1000)
    token = handle.register_node("lin01")
    sha = handle.register_component(str(path), node_id="lin01")
    with open(path, "r+b") as f:
        f.write(b"FIRMWARE")  # same size, different bytes
    assert curl(lab, "lin01", f"{handle.urls[0]}/v1/components/{sha}", token=token, ca=handle.ca_path) == "409"
    refused = ledger.node_state(handle.run_dir, "lin01")["engine_errors"]
    assert refused and refused[-1]["component"] == sha and "changed on disk" in refused[-1]["message"]
    assert handle.stats()["served"].get(sha, 0) == 0


def test_plain_http_engine_serves_with_sendfile_over_ipv6(lab, workspace, payload):
    run_dir = workspace / "run-plain"
    playbook = StandInPlaybook(run_dir, {"address": [str(fleetlab.CONTROLLER_IPV6)], "tls": False}, workers=1)
    try:
        handle = engine.attach(str(run_dir))
        assert handle.port == 63001 and handle.url.startswith("http://[")
        token = handle.register_node("lin02")
        handle.register_component(str(payload[0]), node_id="lin02")
        assert curl(lab, "lin02", f"{handle.url}/v1/components/{payload[1]}", token=token) == "200"
        assert node_sha(lab, "lin02") == payload[1]
        assert curl(lab, "lin02", f"{handle.url}/v1/components/{payload[1]}", "-r", "100-199", token=token) == "206"
        assert lab.node_run("lin02", ["stat", "-c", "%s", "/tmp/out"]).stdout.strip() == "100"
    finally:
        playbook.kill()


def test_the_engine_is_gone_within_5_s_after_its_playbook_is_sigkilled(lab, workspace):
    run_dir = workspace / "run-kill"
    playbook = StandInPlaybook(run_dir, {"address": [str(fleetlab.CONTROLLER_IPV4)], "port": 0}, workers=1)
    pid = playbook.handles[0]["pid"]
    assert pid_alive(pid) and (run_dir / "tls" / "ca.key").exists()
    playbook.kill()  # SIGKILL: the playbook cleans up nothing itself
    wait_for(lambda: not pid_alive(pid), 120, f"engine {pid} to stop after its ansible-playbook was killed")
    assert not (run_dir / "tls" / "ca.key").exists()
    assert not (run_dir / "engine.json").exists() and not (run_dir / "engine.sock").exists()
    assert "watched process" in (run_dir / "engine.log").read_text()
    assert engine.attach(str(run_dir)) is None


def test_an_idle_engine_stops_by_itself(workspace):
    eng = engine.Engine(str(workspace / "run-idle"), engine.EngineSettings(address=["127.0.0.1"], port=0, idle_timeout=0.5)).start()
    closed = []
    eng.on_stop.append(lambda: closed.append("firewall"))
    assert eng.wait(120), "idle engine did not stop"  # a bound against hanging, not a speed
    assert "idle" in eng.stop_reason and closed == ["firewall"]


def test_bad_registrations_through_the_handle_name_the_bad_value(tls_run, workspace, payload):
    handle = tls_run[1]
    with pytest.raises(engine.EngineError, match="expected " + "0" * 64):
        handle.register_component(str(payload[0]), sha256="0" * 64)
    with pytest.raises(engine.EngineError, match="not a regular file"):
        handle.register_component(str(workspace / "missing.bin"))
    with pytest.raises(engine.EngineError, match="invalid node id"):
        handle.register_node("../etc")
    handle.register_node("lin01")
    with pytest.raises(engine.EngineError, match="f" * 64):
        handle.set_job("lin01", {"components": [{"sha256": "f" * 64}]})
    with pytest.raises(engine.EngineError, match="no session for node 'nobody'"):
        handle.set_job("nobody", {"components": []})


def test_real_ansible_playbook_workers_share_one_engine_that_ends_with_the_playbook(workspace):
    """ansible-playbook itself (two hosts, two forks): the engine watches the main process,
    not the short-lived worker that started it, and is gone once the playbook has ended."""
    run_dir = workspace / "run-ansible"
    argv = [ansible_bin("ansible-playbook"), "-i", "alpha,beta,", "-c", "local", "-f", "2",
            str(REPO / "tests" / "integration" / "engine_playbook" / "playbook.yml"), "-e", f"engine_run_dir={run_dir}"]
    proc = subprocess.run(argv, capture_output=True, text=True, env=ansible_env(), timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [line.split("ENGINE ", 1)[1].strip('"') for line in proc.stdout.splitlines() if "ENGINE " in line]
    reports = {fields[0]: fields[1:] for fields in (line.split() for line in lines)}
    assert set(reports) == {"alpha", "beta"}, proc.stdout
    engine_pids = {r[0] for r in reports.values()}
    assert len(engine_pids) == 1
    assert {r[2] for r in reports.values()} != {r[1] for r in reports.values()}  # watched = main, not a worker
    pid = int(engine_pids.pop())
    wait_for(lambda: not pid_alive(pid), 120, f"engine {pid} to stop once its ansible-playbook ended")
    assert not (run_dir / "tls" / "ca.key").exists()
    assert "watched process" in (run_dir / "engine.log").read_text()
