#!/usr/bin/env python
# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark of the port probe (issue 3): 100 hosts x 6 ports, all filtered, 1 s timeout.

The target of issue 3 is under 3 s for that call. Measured side by side in one run:

* ``probe.check``: the collection's probe (what the reachable_ports lookup and the reach module
  run): every probe at once in one thread (non-blocking sockets, ``selectors``);
* the same through the real lookup, ``ansible localhost -m debug`` with
  ``query('fleet.firmware.reachable_ports', ...)``, with the bare startup of that command
  (same command, no lookup) measured beside it;
* a thread pool of blocking connects (``--threads`` workers, the usual "make it parallel" fix);
* a sequential loop of blocking connects (what a shell loop of ``nc -w 1`` or a naive script
  does), measured on a sample of ``--sample`` probes and extrapolated to all 600 (it would take
  about ten minutes in full).

Only lab addresses are probed: ``--hosts`` extra addresses on the lab node lin01 (half IPv4 in
198.18.<ID>.128/25, half IPv6 in fd00:f1ee:7ab:<ID>::f:0/112 by default), each dropped by a DROP
rule in lin01's INPUT chain, so every SYN really crosses the lab's veth link and is dropped by a
real firewall: "filtered" as in the field. The addresses and the rules (tagged
``fleet-bench-probe``) are removed afterwards; the lab is taken down again if this run brought
it up. Nothing is asserted: the numbers are printed, with the ratios.

    FLEET_LAB_ID=<id> build/venv/bin/python benchmarks/bench_reachable_ports.py [--rounds 3] [--sample 12]
        [--quick] [--json out.json]
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "build" / "collections"), str(REPO / "tests" / "lab")]

import fleetlab  # noqa: E402  (the lab: nodes, addresses, namespaces)

from ansible_collections.fleet.firmware.plugins.module_utils import probe  # noqa: E402

PORTS = [22, 139, 445, 5985, 5986, 62286]  # 6 TCP ports of the Windows and Linux paths
TIMEOUT = 1.0
NODE = "lin01"
TAG = "fleet-bench-probe"
V4_BLOCK = ipaddress.ip_network(f"198.18.{fleetlab.LAB_ID}.128/25")
V6_BLOCK = ipaddress.ip_network(f"{fleetlab.IPV6_NET.network_address + 0xF0000}/112")


def bench_addresses(lab, count: int, families: str) -> list[str]:
    """``count`` free lab addresses inside the DROP blocks (none of them a node's)."""
    taken = {a for n in lab.nodes() for a in n.addresses}
    v4 = [str(a) for a in list(V4_BLOCK.hosts())[1:] if str(a) not in taken]
    v6 = [str(a) for a in list(V6_BLOCK.hosts())[:4096] if str(a) not in taken]
    if families == "ipv4":
        return v4[:count]
    if families == "ipv6":
        return v6[:count]
    return [a for pair in zip(v4, v6) for a in pair][:count]


class DroppedAddresses:
    """Extra addresses on the node, and a tagged DROP rule per family in its INPUT chain."""

    def __init__(self, lab, node: str, addresses: list[str]) -> None:
        self.lab, self.node, self.addresses = lab, lab.node(node), addresses
        self.rules: list[list[str]] = []
        self.added: list[str] = []

    def _run(self, argv: list[str], check: bool = True) -> None:
        self.lab.node_run(self.node, argv, check=check)

    def __enter__(self) -> "DroppedAddresses":
        try:
            for tool, block in (("iptables", V4_BLOCK), ("ip6tables", V6_BLOCK)):
                rule = [tool, "-w", "INPUT", "-d", str(block), "-p", "tcp", "-m", "comment", "--comment", TAG, "-j", "DROP"]
                self._run(rule[:2] + ["-I"] + rule[2:])
                self.rules.append(rule)
            for address in self.addresses:
                v6 = ":" in address
                prefix = f"{address}/{64 if v6 else 24}"
                self._run(["ip", "addr", "add", prefix, "dev", "eth0"] + (["nodad"] if v6 else []))
                self.added.append(prefix)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_exc) -> None:
        for prefix in self.added:
            self._run(["ip", "addr", "del", prefix, "dev", "eth0"], check=False)
        for rule in self.rules:
            self._run(rule[:2] + ["-D"] + rule[2:], check=False)


def timed(func) -> tuple[float, object]:
    start = time.perf_counter()
    out = func()
    return time.perf_counter() - start, out


def blocking_connect(address: str, port: int) -> str:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(TIMEOUT)
        try:
            sock.connect((address, port))
            return "open"
        except ConnectionRefusedError:
            return "closed"
        except OSError:
            return "filtered"


def ours(hosts: list[str]) -> tuple[float, dict]:
    seconds, (results, _warnings) = timed(lambda: probe.check(hosts, PORTS, timeout=TIMEOUT))
    states: dict = {}
    for host in results:
        for entry in host.values():
            states[entry["state"]] = states.get(entry["state"], 0) + 1
    return seconds, states


def through_ansible(hosts: list[str]) -> tuple[float, float, str]:
    """Wall time of the lookup run by ``ansible localhost -m debug``, and of the same command
    without the lookup (Ansible's own start-up)."""
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / "build" / "collections"), ANSIBLE_NOCOLOR="1")
    ansible = str(Path(sys.executable).parent / "ansible")
    terms = ", ".join(repr(h) for h in hosts)
    lookup = f"query('fleet.firmware.reachable_ports', {terms}, ports={PORTS}, timeout={TIMEOUT})"
    expression = f"{lookup} | map('dict2items') | flatten | map(attribute='value.state') | unique"

    def run(msg: str) -> subprocess.CompletedProcess:
        argv = [ansible, "localhost", "-m", "ansible.builtin.debug", "-a", "msg={{ %s }}" % msg, "-o"]
        return subprocess.run(argv, capture_output=True, text=True, env=env, check=True, timeout=300)

    bare, _out = timed(lambda: run("1"))
    full, proc = timed(lambda: run(expression))
    seen = proc.stdout.split("=>", 1)[-1].strip()
    return full, bare, json.loads(seen).get("msg") if seen.startswith("{") else seen


def threads(hosts: list[str], workers: int) -> float:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        seconds, _states = timed(lambda: list(pool.map(lambda pair: blocking_connect(*pair), [(h, p) for h in hosts for p in PORTS])))
    return seconds


def sequential(hosts: list[str], sample: int) -> tuple[float, int]:
    pairs = [(h, p) for h in hosts for p in PORTS][:sample]
    seconds, _states = timed(lambda: [blocking_connect(h, p) for h, p in pairs])
    return seconds, len(pairs)


def measure(hosts: list[str], args: argparse.Namespace, total: int) -> dict:
    """Every way side by side; returns the figures by name (the concurrent probe's median first)."""
    probe.check(hosts[:2], PORTS[:1], timeout=TIMEOUT)  # neighbour discovery once, outside the timing
    rounds = [ours(hosts) for _round in range(args.rounds)]
    best = statistics.median(r[0] for r in rounds)
    each = ", ".join(f"{r[0]:.2f}" for r in rounds)
    print(f"probe.check (concurrent, one thread)    {best:7.2f} s  (median of {args.rounds}: {each}; states {rounds[0][1]})")
    found = {"probe.check s": best}
    if not args.no_ansible:
        full, bare, states = through_ansible(hosts)
        print(f"lookup via ansible localhost (wall)     {full:7.2f} s  "
              f"(ansible start-up alone {bare:.2f} s, so the lookup {full - bare:.2f} s; states {states})")
        found.update({"lookup through ansible s": full, "ansible start-up s": bare})
    if args.threads:
        pool = threads(hosts, args.threads)
        print(f"thread pool, {args.threads} blocking connects      {pool:7.2f} s  ({pool / best:.1f}x the concurrent probe)")
        found["thread pool s"] = pool
    seconds, count = sequential(hosts, args.sample)
    estimate = seconds / count * total
    print(f"sequential blocking connects            {estimate:7.1f} s  "
          f"(extrapolated: {count} probes took {seconds:.2f} s; {estimate / best:.0f}x the concurrent probe)")
    found["sequential s (extrapolated)"] = estimate
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--hosts", type=int, default=100, help="hosts (default 100)")
    parser.add_argument("--family", choices=["both", "ipv4", "ipv6"], default="both", help="address families of the hosts (default both, half each)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the concurrent probe, median reported (default 3)")
    parser.add_argument("--threads", type=int, default=64, help="workers of the thread-pool alternative (default 64; 0 skips it)")
    parser.add_argument("--sample", type=int, default=12, help="probes the sequential loop really makes before extrapolating (default 12)")
    parser.add_argument("--no-ansible", action="store_true", help="skip the measurement through ansible")
    parser.add_argument("--keep-lab", action="store_true", help="leave the lab up even if this run brought it up")
    parser.add_argument("--quick", action="store_true", help="smoke test (make test): 10 hosts, one round, 8 threads, 2 sequential probes")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.quick:
        args.hosts, args.rounds, args.threads, args.sample = 10, 1, 8, 2
    if os.geteuid() != 0:
        print("bench_reachable_ports: the lab needs root", file=sys.stderr)
        return 2

    lab, was_up = fleetlab.up_standard()
    total = args.hosts * len(PORTS)
    try:
        hosts = bench_addresses(lab, args.hosts, args.family)
        print(f"machine: {os.cpu_count()} CPUs, Linux {platform.release()}, Python {platform.python_version()}; "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.1f}; lab {fleetlab.LAB_ID}")
        print(f"case: {len(hosts)} hosts x {len(PORTS)} ports = {total} probes, all filtered (DROP in {NODE}'s INPUT), timeout {TIMEOUT:g} s")
        with DroppedAddresses(lab, NODE, hosts):
            found = measure(hosts, args, total)
        best = found["probe.check s"]
        print(f"target: under 3 s for the call -> {'met' if best < 3.0 else 'NOT met'} ({best:.2f} s)")
        if args.json:
            args.json.write_text(json.dumps({"hosts": len(hosts), "probes": total, "measurements": found}, indent=2))
    finally:
        if not was_up and not args.keep_lab:
            lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
