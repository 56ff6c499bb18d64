# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The real agent zipapp as a process on loopback: readiness, mutual TLS, lock, lease, shutdown.

No firewall here (``firewall.open`` false): the firewall half is exercised in the lab
(tests/integration/test_agent.py). The lock and control socket live in a private folder.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest

from ansible_collections.fleet.firmware.plugins.module_utils import agent as agent_utils
from ansible_collections.fleet.firmware.plugins.plugin_utils import agent_build, agent_client, tls


@pytest.fixture
def pki(tmp_path):
    run = str(tmp_path / "run")
    tls.create_ca(run, "unit")
    issued = tls.issue_agent(run, "n1", ["127.0.0.1"])

    def read(path):
        with open(path, encoding="ascii") as handle:
            return handle.read()
    return {"issued": issued, "ca_cert": read(issued["ca_cert"]), "server_cert": read(issued["server_cert"]),
            "server_key": read(issued["server_key"])}


@pytest.fixture
def pyz(tmp_path):
    return agent_build.build(str(tmp_path / "build"))[0]


def config(tmp_path, pki, tag="unit-a", **changes):
    document = {
        "tag": tag, "node_id": "n1", "port": free_port(), "bind": ["127.0.0.1"], "controller": ["127.0.0.1"], "lease": 60,
        "firewall": {"open": False}, "staging": str(tmp_path / f"staging-{tag}"), "token": "t0ken-" + tag,
        "ca_cert": pki["ca_cert"], "ca_fingerprint": pki["issued"]["ca_fingerprint"],
        "server_cert": pki["server_cert"], "server_key": pki["server_key"],
    }
    document.update(changes)
    return document


def free_port() -> int:
    import socket
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(pyz, tmp_path, document) -> tuple[subprocess.Popen, dict]:
    env = dict(os.environ, FLEET_AGENT_RUN_DIR=str(tmp_path / "run-fleet"))
    proc = subprocess.Popen([sys.executable, pyz], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, start_new_session=True)
    proc.stdin.write(json.dumps(document).encode())
    proc.stdin.close()
    answer = json.loads(proc.stdout.readline())
    return proc, answer


def client_for(pki, document, token=None) -> agent_client.AgentClient:
    issued = pki["issued"]
    context = agent_client.client_context(issued["ca_cert"], issued["ca_fingerprint"], issued["client_cert"], issued["client_key"])
    return agent_client.AgentClient(["127.0.0.1"], document["port"], token or document["token"], context, timeout=5)


def wait_exit(proc, timeout=20) -> int:
    return proc.wait(timeout=timeout)


def test_the_zipapp_is_reproducible_and_holds_the_agent_and_the_firewall_backends(tmp_path):
    first, second = agent_build.build_bytes(), agent_build.build_bytes()
    assert first == second
    path, _digest = agent_build.build(str(tmp_path))
    names = zipfile.ZipFile(path).namelist()
    prefix = "ansible_collections/fleet/firmware/plugins/module_utils/"
    for needed in ("agent/__init__.py", "agent/main.py", "agent/teardown.py", "route.py", "runtag.py", "filehash.py",
                   "firewall/api.py", "installers.py", "__init__.py", "firewall/__init__.py"):
        assert prefix + needed in names
    assert "__main__.py" in names and not any("__pycache__" in n for n in names)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"


def test_start_status_and_shutdown_remove_the_staging_folder_and_the_lock(pyz, pki, tmp_path):
    document = config(tmp_path, pki)
    proc, ready = start(pyz, tmp_path, document)
    assert ready["ready"] is True and ready["addresses"] == ["127.0.0.1"] and ready["firewall"] is False
    assert oct(os.stat(document["staging"]).st_mode & 0o777) == "0o700"
    client = client_for(pki, document)
    status = client.status()
    assert status["tag"] == "unit-a" and status["pid"] == proc.pid and status["job"] is None
    assert client.renew(30)["lease_remaining"] == 30.0
    assert client.shutdown()["stopping"] is True
    assert wait_exit(proc) == 0
    assert not os.path.exists(document["staging"])
    assert not os.path.exists(tmp_path / "run-fleet" / "agent.lock")


def test_a_second_agent_for_another_run_is_refused_naming_the_first(pyz, pki, tmp_path):
    first_doc = config(tmp_path, pki, tag="unit-a")
    first, ready = start(pyz, tmp_path, first_doc)
    assert ready["ready"]
    try:
        second, refused = start(pyz, tmp_path, config(tmp_path, pki, tag="unit-b"))
        assert refused["ready"] is False and "held by run 'unit-a'" in refused["error"]
        assert wait_exit(second) == 1
        assert client_for(pki, first_doc).status()["tag"] == "unit-a"  # the first is unharmed
    finally:
        client_for(pki, first_doc).shutdown()
        wait_exit(first)


def test_the_lease_runs_out_and_the_agent_cleans_up_by_itself(pyz, pki, tmp_path):
    document = config(tmp_path, pki, lease=5)
    proc, ready = start(pyz, tmp_path, document)
    assert ready["ready"]
    assert wait_exit(proc, timeout=30) == 0
    assert not os.path.exists(document["staging"])


def test_wrong_token_is_401_and_unknown_paths_are_404(pyz, pki, tmp_path):
    document = config(tmp_path, pki)
    proc, _ready = start(pyz, tmp_path, document)
    try:
        with pytest.raises(agent_client.AgentClientError) as wrong:
            client_for(pki, document, token="nope").status()
        assert wrong.value.status == 401
        with pytest.raises(agent_client.AgentClientError) as missing:
            client_for(pki, document).request("GET", "/v1/nothing")
        assert missing.value.status == 404
        with pytest.raises(agent_client.AgentClientError) as bad_job:
            client_for(pki, document).submit([{"name": "x", "sha256": "abc"}])
        assert bad_job.value.status == 400 and "'abc'" in str(bad_job.value)
    finally:
        client_for(pki, document).shutdown()
        wait_exit(proc)


@pytest.mark.parametrize("change, message", [
    ({"tag": "Bad Tag"}, "tag 'Bad Tag' is invalid"),
    ({"port": 70000}, "port 70000 is out of range"),
    ({"lease": "soon"}, "lease 'soon' is not a number"),
    ({"controller": ["not-an-ip"]}, "controller address 'not-an-ip' is not an IP address"),
    ({"ca_fingerprint": "00" * 32}, "does not match the pinned fingerprint"),
    ({"staging": "relative/dir"}, "staging folder 'relative/dir' is invalid"),
    ({"token": ""}, "lacks token"),
])
def test_bad_configuration_is_refused_by_name_and_nothing_is_created(pyz, pki, tmp_path, change, message):
    document = config(tmp_path, pki, **change)
    proc, answer = start(pyz, tmp_path, document)
    assert answer["ready"] is False and message in answer["error"]
    assert wait_exit(proc) == 1
    assert not os.path.exists(tmp_path / "staging-unit-a")


def test_port_in_use_is_named(pyz, pki, tmp_path):
    import socket
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        document = config(tmp_path, pki, port=busy.getsockname()[1])
        proc, answer = start(pyz, tmp_path, document)
    assert answer["ready"] is False and f"port {document['port']} is already in use on 127.0.0.1" in answer["error"]
    assert wait_exit(proc) == 1
    assert not os.path.exists(tmp_path / "run-fleet" / "agent.lock")


def test_validate_job_names_the_bad_component():
    with pytest.raises(agent_utils.AgentError, match="component #1 \\(b\\)"):
        agent_utils.validate_job({"components": [{"name": "a", "sha256": "a" * 64}, {"name": "b", "sha256": "XYZ"}]})
    assert agent_utils.validate_job({"components": []}) == []
