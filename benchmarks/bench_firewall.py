#!/usr/bin/env python
# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark of the firewall backends (issue 4): one batch per change against rule-by-rule.

HP SUM (and most scripts) open a port with one ``iptables -I`` per rule and close it with one
``iptables -D`` per rule. The collection's backends write one ``iptables-restore --noflush``
batch per family, or one ``nft -f`` transaction. Both ways are measured side by side in one run,
inside a network namespace this benchmark makes (``ffl<ID>-fwbench``) and removes again, with a
user ruleset of 200 rules in place (the per-rule tools re-read and re-write the whole table).

Case: open N ports (tcp) for 2 sources (one IPv4, one IPv6) and close them again; every opening
has its reply rule, so N ports are 4N rules. Printed: median milliseconds of open+close over
``--rounds`` rounds, and the ratio rule-by-rule / batch. Nothing is asserted.

    FLEET_LAB_ID=5 build/venv/bin/python benchmarks/bench_firewall.py [--rounds 5] [--ports 4 16 64] [--quick] [--json out.json]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "build" / "collections"), str(REPO / "tests" / "lab"), str(Path(__file__).resolve().parent)]

import fleetlab  # noqa: E402  (the lab's naming: this benchmark's namespace carries the lab prefix)
import benchlib  # noqa: E402

NAMESPACE = fleetlab.PREFIX + "fwbench"
SOURCES = ("198.18.250.1", "fd00:f1ee:7ab:fa::1")
TOOLS = ("ip", "iptables-legacy", "ip6tables-legacy", "nft")


def user_ruleset(family: int) -> str:
    """200 rules of the user's, a DROP policy and a REJECT catch-all."""
    lines = ["*filter", ":INPUT DROP [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]", ":USER - [0:0]"]
    lines += ["-A USER -p tcp -m tcp --dport %d -j ACCEPT" % (20000 + i) for i in range(200)]
    lines += ["-A INPUT -j USER", "-A INPUT -j REJECT", "COMMIT", ""]
    return "\n".join(lines)


def naive_rules(ports, tool_family):
    """What a rule-by-rule script runs: (insert argv, delete argv) per rule."""
    tool, source = tool_family
    out = []
    for port in ports:
        for spec in (["INPUT", "-s", source, "-p", "tcp", "--dport", str(port)],
                     ["OUTPUT", "-d", source, "-p", "tcp", "--sport", str(port), "-m", "conntrack", "--ctstate", "ESTABLISHED"]):
            rule = spec[1:] + ["-m", "comment", "--comment", "naive:%d" % port, "-j", "ACCEPT"]
            out.append(([tool, "-w", "5", "-I", spec[0], "1"] + rule, [tool, "-w", "5", "-D", spec[0]] + rule))
    return out


def timed(func) -> float:
    start = time.perf_counter()
    func()
    return (time.perf_counter() - start) * 1000.0


def inner(rounds: int, counts) -> list:
    """Every case, printed; returns the rows (backend, ports, batch ms, per-rule ms)."""
    from ansible_collections.fleet.firmware.plugins.module_utils.firewall import api

    subprocess.run(["iptables-legacy-restore"], input=user_ruleset(4), text=True, check=True)
    subprocess.run(["ip6tables-legacy-restore"], input=user_ruleset(6), text=True, check=True)
    rows = []
    print("%-28s %6s %12s %12s %8s" % ("backend", "ports", "batch ms", "per-rule ms", "ratio"))
    for count in counts:
        ports = list(range(40000, 40000 + count))
        spec = api.build_spec("bench", ["%d/tcp" % p for p in ports], sources=list(SOURCES))
        naive = naive_rules(ports, ("iptables-legacy", SOURCES[0])) + naive_rules(ports, ("ip6tables-legacy", SOURCES[1]))
        ours, theirs = [], []
        for _round in range(rounds):
            ours.append(timed(lambda: (api.open_ports(spec, backend="iptables"), api.close_tag("bench", backend="iptables"))))
            theirs.append(timed(lambda: [subprocess.run(argv, check=True) for pair in (0, 1) for argv in [n[pair] for n in naive]]))
        batch, single = statistics.median(ours), statistics.median(theirs)
        print("%-28s %6d %12.1f %12.1f %7.1fx" % ("iptables-legacy (both fam.)", count, batch, single, single / batch))
        rows.append({"backend": "iptables-legacy", "ports": count, "batch_ms": batch, "per_rule_ms": single})
    subprocess.run(["iptables-legacy", "-F"], check=True)
    subprocess.run(["ip6tables-legacy", "-F"], check=True)
    rules = "".join("        tcp dport %d accept\n" % (20000 + i) for i in range(200))
    subprocess.run(["nft", "-f", "-"], check=True, text=True, input=(
        "table inet user {\n    chain input {\n        type filter hook input priority 0; policy drop;\n"
        + rules + "        counter reject\n    }\n}\n"))
    for count in counts:
        ports = list(range(40000, 40000 + count))
        spec = api.build_spec("bench", ["%d/tcp" % p for p in ports], sources=list(SOURCES))
        ours, theirs = [], []
        for _round in range(rounds):
            ours.append(timed(lambda: (api.open_ports(spec, backend="nftables"), api.close_tag("bench", backend="nftables"))))
            theirs.append(timed(lambda: naive_nft(ports)))
        batch, single = statistics.median(ours), statistics.median(theirs)
        print("%-28s %6d %12.1f %12.1f %7.1fx" % ("nftables", count, batch, single, single / batch))
        rows.append({"backend": "nftables", "ports": count, "batch_ms": batch, "per_rule_ms": single})
    return rows


def measurements(rows: list) -> dict:
    """Every figure measured, by name (benchmarks/README.md: what the smoke test checks)."""
    found = {}
    for row in rows:
        found["%s %d ports batch ms" % (row["backend"], row["ports"])] = row["batch_ms"]
        found["%s %d ports per-rule ms" % (row["backend"], row["ports"])] = row["per_rule_ms"]
    return found


def naive_nft(ports) -> None:
    """Rule by rule with nft: one process per rule to add, one listing + one process per rule to delete."""
    for port in ports:
        for rule in ("ip saddr %s tcp dport %d" % (SOURCES[0], port), "ip6 saddr %s tcp dport %d" % (SOURCES[1], port)):
            subprocess.run(["nft", "insert", "rule", "inet", "user", "input", rule, "accept", "comment", '"naive"'], check=True)
    listing = subprocess.run(["nft", "-a", "list", "chain", "inet", "user", "input"], capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        if 'comment "naive"' in line:
            subprocess.run(["nft", "delete", "rule", "inet", "user", "input", "handle", line.rsplit(" ", 1)[1]], check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--ports", type=int, nargs="+", default=[4, 16, 64])
    parser.add_argument("--quick", action="store_true", help="smoke test (make test): 4 ports, one round")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.ports = 1, [4]
    if args.inner:
        rows = inner(args.rounds, args.ports)
        if args.json:
            Path(args.json).write_text(json.dumps({"rows": rows, "measurements": measurements(rows)}, indent=2))
        return 0
    if os.geteuid() != 0:
        print("bench_firewall: needs root (it makes a network namespace)")
        return 1
    benchlib.require_tools("bench_firewall", TOOLS)
    subprocess.run(["ip", "netns", "del", NAMESPACE], capture_output=True, check=False)
    subprocess.run(["ip", "netns", "add", NAMESPACE], check=True)
    try:
        with tempfile.TemporaryDirectory(prefix="fleet-fwbench-") as state:
            env = dict(os.environ, FLEET_FIREWALL_STATE_DIR=state)
            argv = ["ip", "netns", "exec", NAMESPACE, sys.executable, __file__, "--inner", "--rounds", str(args.rounds)]
            argv += ["--json", str(Path(args.json).resolve())] if args.json else []
            return subprocess.run(argv + ["--ports"] + [str(p) for p in args.ports], env=env, check=False).returncode
    finally:
        subprocess.run(["ip", "netns", "del", NAMESPACE], check=True)


if __name__ == "__main__":
    sys.exit(main())
