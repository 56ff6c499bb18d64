# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The agent's request size limit, on the real zipapp over loopback (issue 9, the huge
manifest fault): a plan larger than 8 MiB of JSON is refused with a 413 the controller hears,
naming the limit, and the agent goes on serving."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from ansible_collections.fleet.firmware.plugins.module_utils import agent as agent_utils
from ansible_collections.fleet.firmware.plugins.plugin_utils import agent_build, agent_client, tls


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def running(tmp_path):
    """An agent on loopback (no firewall), and a client for it; shut down afterwards."""
    run = str(tmp_path / "run")
    tls.create_ca(run, "unit")
    issued = tls.issue_agent(run, "n1", ["127.0.0.1"])
    texts = {}
    for key in ("ca_cert", "server_cert", "server_key"):
        with open(issued[key], encoding="ascii") as handle:
            texts[key] = handle.read()
    document = dict(texts, tag="unit-limit", node_id="n1", port=free_port(), bind=["127.0.0.1"], controller=["127.0.0.1"], lease=60,
                    firewall={"open": False}, staging=str(tmp_path / "staging"), token="t0ken", ca_fingerprint=issued["ca_fingerprint"])
    env = dict(os.environ, FLEET_AGENT_RUN_DIR=str(tmp_path / "run-fleet"))
    proc = subprocess.Popen([sys.executable, agent_build.build(str(tmp_path / "build"))[0]], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    proc.stdin.write(json.dumps(document).encode())
    proc.stdin.close()
    assert json.loads(proc.stdout.readline())["ready"]
    context = agent_client.client_context(issued["ca_cert"], issued["ca_fingerprint"], issued["client_cert"], issued["client_key"])
    client = agent_client.AgentClient(["127.0.0.1"], document["port"], "t0ken", context, timeout=30)
    yield client
    client.shutdown()
    proc.wait(timeout=20)


def test_a_plan_over_the_body_limit_is_a_413_naming_the_limit_and_the_agent_goes_on(running):
    component = {"name": "c", "version": "1.0", "sha256": "0" * 64, "detect": {"method": "file", "path": "/nonexistent/" + "x" * 400}}
    count = agent_utils.MAX_JSON_BODY // 400 + 1000
    with pytest.raises(agent_client.AgentClientError) as refused:
        running.plan([dict(component, name=f"c{i}") for i in range(count)])
    assert refused.value.status == 413, refused.value
    assert "larger than the agent's limit of %d bytes" % agent_utils.MAX_JSON_BODY in str(refused.value)
    assert "split the repository" in str(refused.value)
    assert running.status()["tag"] == "unit-limit"
