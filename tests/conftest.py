# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fixtures for tests against the real lab: root, network namespaces, sshd, Samba.

The session starts from a clean slate (any earlier lab is taken down), records the host's
network, and at the end takes the lab down and checks that the host's links, addresses,
routes and firewall rulesets are exactly as they were.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import fleetlab

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build"
# The lab every integration test module gets: 2 dual-stack Linux, 1 IPv6-only, 1 Windows-like.
STANDARD_LAB = {"linux": 2, "ipv6_only": 1, "ipv4_only": 0, "windows": 1}
# One host per line with `ansible -o`: "h | SUCCESS => {...}", "h | FAILED! => {...}",
# "h | CHANGED | rc=0 | (stdout) ...", "h | UNREACHABLE!: message".
ONELINE = re.compile(
    r"^(?P<host>\S+) \| (?P<status>[A-Z]+)!?"
    r"(?: \| rc=(?P<rc>\d+))?(?: \| \(stdout\) (?P<stdout>.*?)(?: \(stderr\).*)?|: (?P<msg>.*)| => (?P<json>\{.*\}))?$"
)


def ansible_bin(name: str) -> str:
    """An Ansible command from the interpreter's own venv (the one `make` built)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


def ansible_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(BUILD / "collections"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_HOST_KEY_CHECKING="True",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        ANSIBLE_DEPRECATION_WARNINGS="False",
        ANSIBLE_TIMEOUT="10",
    )
    return env


@dataclass
class HostResult:
    host: str
    status: str
    data: dict


class LabHandle:
    """The running lab plus helpers to drive Ansible against it."""

    def __init__(self, lab: fleetlab.Lab) -> None:
        self.lab = lab

    @property
    def inventory(self) -> Path:
        return self.lab.home / "inventory.yml"

    def node(self, name: str) -> fleetlab.Node:
        return self.lab.node(name)

    def nodes(self, kind: str | None = None) -> list[fleetlab.Node]:
        return [n for n in self.lab.nodes() if kind is None or n.kind == kind]

    def node_run(self, name: str, argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
        return self.lab.node_run(self.node(name), argv, check=check)

    def adhoc(self, pattern: str, module: str, args: str = "", extra: list[str] | None = None, timeout: int = 120) -> dict[str, HostResult]:
        """Run `ansible PATTERN -m MODULE -a ARGS -o` and return each host's parsed result."""
        argv = [ansible_bin("ansible"), pattern, "-i", str(self.inventory), "-m", module, "-o"]
        if args:
            argv += ["-a", args]
        argv += extra or []
        proc = subprocess.run(argv, capture_output=True, text=True, env=ansible_env(), timeout=timeout, check=False)
        results: dict[str, HostResult] = {}
        for line in proc.stdout.splitlines():
            match = ONELINE.match(line)
            if match:
                # -o folds the output onto one line, newlines written as a literal backslash-n.
                stdout = (match["stdout"] or "").replace("\\n", "\n")
                if match["json"]:
                    data = json.loads(match["json"])
                elif match["msg"] is not None:
                    data = {"msg": match["msg"]}
                else:
                    data = {"stdout": stdout, "rc": int(match["rc"] or 0)}
                results[match["host"]] = HostResult(match["host"], match["status"], data)
        if not results:
            raise AssertionError(f"no host results from {' '.join(argv)} (rc={proc.returncode})\n{proc.stdout}\n{proc.stderr}")
        return results

    def playbook(self, playbook: Path, *extra: str, timeout: int = 600) -> subprocess.CompletedProcess:
        argv = [ansible_bin("ansible-playbook"), "-i", str(self.inventory), str(playbook), *extra]
        return subprocess.run(argv, capture_output=True, text=True, env=ansible_env(), timeout=timeout, check=False)


def engine_daemons() -> list[int]:
    """Run engines still running (they stop by themselves once their ansible process is gone)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.endswith(b"plugin_utils.engine") for arg in argv) and b"serve" in argv:
            found.append(int(name))
    return found


def wait_for_engines_to_stop(timeout: float = 60.0) -> None:
    """An engine closes its port on the controller as it stops, a moment after its playbook ended:
    the host's rulesets are compared only after that."""
    deadline = time.monotonic() + timeout
    while engine_daemons() and time.monotonic() < deadline:
        time.sleep(0.2)


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.exit("the integration tests build the network-namespace lab and need root (make test runs as root in CI)", returncode=3)


@pytest.fixture(scope="session")
def lab_session():
    """The lab for the whole session; its teardown proves nothing of the host changed."""
    _require_root()
    lab = fleetlab.Lab()
    lab.down()
    before = fleetlab.host_network_snapshot()
    yield lab
    wait_for_engines_to_stop()
    lab.down()
    after = fleetlab.host_network_snapshot()
    changed = {key: (before[key], after[key]) for key in before if before[key] != after[key]}
    assert not changed, f"the lab changed the host's network: {changed}"
    assert not fleetlab.lab_namespaces(), "lab namespaces left after down"


@pytest.fixture(scope="module")
def lab(lab_session):
    """The standard lab, built (or repaired: `up` is idempotent) for each test module."""
    lab_session.up(fleetlab.plan_nodes(**STANDARD_LAB))
    return LabHandle(lab_session)
