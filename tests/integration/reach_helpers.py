# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers for the port-reachability tests: real rules in a node's firewall, a real listener in
a node, the lookup run through real Ansible, and a private resolver for name tests."""
from __future__ import annotations

import contextlib
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import fleetlab
from conftest import ansible_bin, ansible_env

# Tags our rules so a failed test can never leave an anonymous rule behind in a node.
RULE_COMMENT = "fleet-test-reach"
LISTENER = r"""
import socket, sys, time
socks = []
for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        s.bind((address, int(sys.argv[1])))
    except OSError:
        continue
    s.listen(64)
    socks.append(s)
print("listening", flush=True)
time.sleep(600)
"""


def iptables(family: str) -> str:
    return "ip6tables" if family == "ipv6" else "iptables"


@contextlib.contextmanager
def node_rule(lab, node: str, chain: str, rule: list[str], families=("ipv4", "ipv6")) -> Iterator[None]:
    """Insert ``rule`` at the top of ``chain`` in the node's firewall (both families), remove it after."""
    spec = [chain, *rule, "-m", "comment", "--comment", RULE_COMMENT]
    added = []
    try:
        for family in families:
            lab.node_run(node, [iptables(family), "-w", "-I", *spec])
            added.append(family)
        yield
    finally:
        for family in added:
            lab.node_run(node, [iptables(family), "-w", "-D", *spec], check=False)


@contextlib.contextmanager
def node_listener(lab, node: str, port: int) -> Iterator[None]:
    """A TCP listener on every address of the node (IPv4 and IPv6), stopped after."""
    argv = lab.lab.node_exec_argv(lab.node(node), ["/usr/bin/python3", "-c", LISTENER, str(port)])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # pylint: disable=consider-using-with
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def lookup(expression: str, wrap: list[str] | None = None, check: bool = True) -> dict:
    """Evaluate a Jinja expression with `ansible localhost -m debug`; returns {'status', 'data', 'stderr'}.
    (Not `-o`: the oneline callback drops the plugin's warnings, which some tests check.)"""
    argv = [ansible_bin("ansible"), "localhost", "-m", "ansible.builtin.debug", "-a", "msg={{ %s }}" % expression]
    proc = subprocess.run((wrap or []) + argv, capture_output=True, text=True, env=ansible_env(), timeout=120, check=False)
    marker = proc.stdout.find("localhost | ")
    if marker < 0:
        raise AssertionError(f"no result for {expression}: rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    head, _sep, payload = proc.stdout[marker + len("localhost | "):].partition(" => ")
    data, _end = json.JSONDecoder().raw_decode(payload.strip())
    out = {"status": head.strip().rstrip("!"), "data": data, "stderr": proc.stderr}
    if check:
        assert out["status"] == "SUCCESS", f"{expression}: {proc.stdout}\n{proc.stderr}"
    return out


@contextlib.contextmanager
def private_resolver(names: dict[str, list[str]]) -> Iterator[list[str]]:
    """argv prefix that runs a command with its own /etc/hosts (``names``) and a resolver that
    answers nothing (nameserver on loopback): names resolve without any DNS traffic leaving the
    machine. A private mount namespace: the host's files are not touched."""
    with tempfile.TemporaryDirectory(prefix=f"{fleetlab.PREFIX}resolver-") as tmp:
        hosts = Path(tmp) / "hosts"
        hosts.write_text("127.0.0.1 localhost\n" + "".join(f"{a} {n}\n" for n, addrs in names.items() for a in addrs))
        resolv = Path(tmp) / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        script = f"mount --bind {hosts} /etc/hosts && mount --bind {resolv} /etc/resolv.conf && exec \"$@\""
        yield ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh"]


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
