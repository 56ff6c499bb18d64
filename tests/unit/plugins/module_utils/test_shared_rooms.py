# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pieces that exist once: the route source, the run-tag pattern, the file hash, and the
node-side teardown the agent, the agent module and the sweep share."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ansible_collections.fleet.firmware.plugins.module_utils import filehash, route, runtag
from ansible_collections.fleet.firmware.plugins.module_utils import agent as agent_pkg
from ansible_collections.fleet.firmware.plugins.module_utils.agent import teardown
from ansible_collections.fleet.firmware.plugins.module_utils.agent.lock import NodeLock
from ansible_collections.fleet.firmware.plugins.module_utils.firewall import api as firewall_api
from ansible_collections.fleet.firmware.plugins.module_utils.firewall import common as firewall_common
from ansible_collections.fleet.firmware.plugins.plugin_utils import engine, preflight


# ---------------------------------------------------------------- route source


@pytest.mark.parametrize("address", ["127.0.0.1", "::1"])
def test_the_route_source_to_loopback_is_loopback(address):
    assert route.route_source(address) == address
    assert preflight.route_source(address) == address


def test_a_name_is_no_address_for_the_route_source():
    with pytest.raises(OSError):
        route.route_source("localhost")
    assert preflight.route_source("localhost") is None
    with pytest.raises(agent_pkg.AgentError, match="no route from this node to the controller address localhost"):
        agent_pkg.facing_addresses(["localhost"])


# ---------------------------------------------------------------- the run tag


def test_one_tag_pattern_everywhere():
    assert agent_pkg.TAG_RE is runtag.TAG_RE and firewall_common.TAG_RE is runtag.TAG_RE
    psm1 = (Path(__file__).resolve().parents[4] / "plugins/module_utils/FleetFirewall.psm1").read_text()
    assert re.search(r"^\$FleetTagPattern = '(.*)'$", psm1, re.M).group(1) == runtag.TAG_RE.pattern
    assert runtag.TAG_RE.pattern == "^%s$" % runtag.TAG_PATTERN


@pytest.mark.parametrize("tag,valid", [("run-1", True), ("a" * 32, True), ("a" * 33, False), ("Run", False), ("", False), ("a_b", False)])
def test_the_tag_pattern(tag, valid):
    assert bool(runtag.TAG_RE.match(tag)) is valid


def test_a_bad_tag_is_named_with_the_rule():
    with pytest.raises(agent_pkg.AgentError, match=r"tag 'Bad!' is invalid: 1 to 32 characters of a-z, 0-9 and '-'"):
        agent_pkg.validate_tag("Bad!")


# ---------------------------------------------------------------- the file hash


def test_the_file_hash_is_sha256_and_the_stat_is_the_files(tmp_path):
    path = tmp_path / "component.bin"
    path.write_bytes(os.urandom(3 * filehash.CHUNK + 17))
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    digest, st = filehash.sha256_and_stat(str(path))
    assert digest == expected == filehash.sha256_of(str(path))
    assert (st.st_ino, st.st_size) == (os.stat(path).st_ino, 3 * filehash.CHUNK + 17)
    assert engine.hash_file(str(path))[0] == expected
    assert agent_pkg.sha256_of(str(path)) == expected


def test_a_file_that_changes_while_hashed_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "component.bin"
    path.write_bytes(b"firmware" * 100)
    real = filehash._hash_open_file  # pylint: disable=protected-access

    def hash_then_change(fd):
        digest = real(fd)
        with open(path, "ab") as handle:
            handle.write(b"more")
        return digest

    monkeypatch.setattr(filehash, "_hash_open_file", hash_then_change)
    with pytest.raises(filehash.FileChanged, match="component.bin changed while it was being hashed"):
        filehash.sha256_and_stat(str(path))
    with pytest.raises(engine.EngineError, match="component .*component.bin changed while it was being hashed"):
        engine.hash_file(str(path))


def test_a_missing_file_is_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        filehash.sha256_of(str(tmp_path / "gone"))


# ---------------------------------------------------------------- the node-side teardown


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    folder = tmp_path / "run-fleet"
    monkeypatch.setenv("FLEET_AGENT_RUN_DIR", str(folder))
    return folder


def leftovers(folder, tag="gone-1"):
    """What an agent killed with SIGKILL leaves: lock, holder, socket (nobody holds the flock)."""
    folder.mkdir(mode=0o700)
    (folder / "agent.lock").write_text("")
    (folder / "agent.json").write_text(json.dumps({"tag": tag, "pid": 999999}))
    (folder / f"agent-{tag}.sock").write_text("")


def test_a_killed_agents_state_is_found_and_removed(run_dir):
    leftovers(run_dir)
    found = teardown.agent_state_files("gone-1")
    assert found == sorted(str(run_dir / n) for n in ("agent-gone-1.sock", "agent.json", "agent.lock"))
    assert teardown.agent_state_files("other") == []  # another run's holder: its lock stays
    teardown.remove_agent_state(found)
    assert not run_dir.exists()


def test_a_live_agents_state_is_left_alone(run_dir):
    leftovers(run_dir)
    fd = os.open(run_dir / "agent.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert NodeLock().held() and teardown.agent_state_files("*") == []
    finally:
        os.close(fd)


def test_forget_killed_agent_removes_lock_holder_and_socket(run_dir):
    leftovers(run_dir)
    teardown.forget_killed_agent("gone-1")
    assert sorted(os.listdir(run_dir)) == []


def test_an_agent_without_a_control_socket_is_stopped_by_signal(run_dir):
    run_dir.mkdir()
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert teardown.stop_agent("no-socket", process.pid, timeout=5, ask_timeout=1) == teardown.KILLED
        assert process.poll() is not None
    finally:
        process.kill()
        process.wait()


def test_the_rules_are_closed_by_tag_and_backend(monkeypatch):
    calls = []

    def close_tag(tag, backend="auto", check_mode=False):
        calls.append((tag, backend, check_mode))
        return {"rules": ["rule-1"]}

    monkeypatch.setattr(firewall_api, "close_tag", close_tag)
    assert teardown.close_rules("run-1", backend="nftables", check_mode=True) == ["rule-1"]
    assert teardown.close_rules_retrying("run-1", "auto") is True
    assert calls == [("run-1", "nftables", True), ("run-1", "auto", False)]


def test_a_close_that_keeps_failing_is_retried_and_logged(monkeypatch):
    monkeypatch.setattr(teardown.time, "sleep", lambda _s: None)

    def close_tag(*args, **kwargs):
        del args, kwargs
        raise firewall_api.FirewallError("busy")

    monkeypatch.setattr(firewall_api, "close_tag", close_tag)
    logged = []
    assert teardown.close_rules_retrying("run-1", "auto", attempts=3, log=logged.append) is False
    assert logged == ["closing the firewall failed (attempt %d): busy" % n for n in (1, 2, 3)]


def test_remove_staging(tmp_path):
    staging = tmp_path / "fleet-firmware-run-1"
    (staging / "components").mkdir(parents=True)
    (staging / "components" / "x").write_bytes(b"1")
    assert teardown.remove_staging(str(staging)) is True and not staging.exists()
