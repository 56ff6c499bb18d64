# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers of the firewall tests: a rich user ruleset, snapshots without counters, probes."""
from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from typing import Callable

import fleetlab

# The user's own ruleset: DROP input policies on both families, custom chains, a REJECT
# catch-all, established traffic allowed, SSH open (the lab's Ansible must still get in), and
# counters that run (every rule counts, so a snapshot with counters would differ).
RICH_IPTABLES = """*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:USER-IN - [0:0]
:USER-LOG - [0:0]
-A INPUT -i lo -j ACCEPT
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -j USER-IN
-A INPUT -j USER-LOG
-A USER-IN -p tcp -m tcp --dport 22 -j ACCEPT
-A USER-IN -p tcp -m tcp --dport 4444 -m comment --comment "user rule, not ours" -j DROP
-A USER-LOG -j REJECT
COMMIT
"""
# IPv6 needs ICMPv6 (neighbour discovery) ahead of the catch-all, as any working IPv6 ruleset has.
RICH_IP6TABLES = RICH_IPTABLES.replace("-A INPUT -i lo -j ACCEPT", "-A INPUT -i lo -j ACCEPT\n-A INPUT -p ipv6-icmp -j ACCEPT")
# A native nftables ruleset of the user's (for the nftables backend): drop policy, a set, a
# named counter, a custom chain with a reject catch-all.
RICH_NFT = """table inet user_fw {
    counter seen { }
    set admins { type ipv4_addr; elements = { 198.18.99.1 } }
    chain input {
        type filter hook input priority 0; policy drop;
        iif lo accept
        ct state established,related accept
        meta l4proto ipv6-icmp accept
        tcp dport 22 counter name seen accept
        jump user_tail
    }
    chain user_tail {
        tcp dport 4444 drop
        counter reject
    }
}
table ip user_nat {
    chain post { type nat hook postrouting priority 100; policy accept; }
}
"""
COUNTERS = re.compile(r"\[\d+:\d+\]|counter packets \d+ bytes \d+|packets \d+ bytes \d+")


def strip_counters(text: str) -> str:
    """A ruleset listing without its counters and timestamp comments."""
    return "\n".join(COUNTERS.sub("", line) for line in text.splitlines() if not line.startswith("#"))


def tcp_state(address: str, port: int, timeout: float = 1.5, source: str | None = None) -> str:
    """open, closed (refused/rejected) or filtered (dropped), seen from the controller."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        if source:
            sock.bind((source, 0))
        try:
            sock.connect((address, port))
        except ConnectionRefusedError:
            return "closed"
        except OSError:
            return "filtered"
    return "open"


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes (a bound, not a timing test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def listen(run_in_node: Callable[[list[str]], subprocess.Popen], port: int) -> subprocess.Popen:
    """A TCP listener on every address of a node (python3 from the host's filesystem)."""
    code = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_INET6);s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
        "s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,0);s.bind(('::',%d));s.listen(50)\n"
        "print('ready',flush=True)\n"
        "while True:\n c=s.accept()[0];c.close()\n" % port
    )
    return run_in_node(["/usr/bin/python3", "-c", code])


# ---- the lab side: used by test_firewall.py ----------------------------------------------------

PORT = 62286  # the agent's port (DESIGN.md)
LEGACY = (("iptables-legacy-save", "iptables-legacy-restore", "iptables-legacy", RICH_IPTABLES),
          ("ip6tables-legacy-save", "ip6tables-legacy-restore", "ip6tables-legacy", RICH_IP6TABLES))
NFT_VARIANT = (("iptables-nft-save", "iptables-nft"), ("ip6tables-nft-save", "ip6tables-nft"))


def write(path, text: str):
    path.write_text(text)
    return path


def module_args(**kwargs) -> str:
    """Module arguments for ``ansible -a`` as JSON (lists and ``*`` pass unharmed)."""
    return json.dumps(kwargs)


def reset_firewall(lab, node: str) -> None:
    """Empty rulesets with ACCEPT policies in every variant (legacy tables, once made, stay listed)."""
    for tool in (entry[2] for entry in LEGACY):
        for flag in ("-F", "-X"):
            lab.node_run(node, [tool, flag], check=False)
        for chain in ("INPUT", "FORWARD", "OUTPUT"):
            lab.node_run(node, [tool, "-P", chain, "ACCEPT"], check=False)
    lab.node_run(node, ["nft", "flush", "ruleset"])


def load_iptables_legacy(lab, node: str) -> None:
    for entry in LEGACY:
        lab.lab.node_run(lab.node(node), [entry[1]], stdin=entry[3])


def load_nft(lab, node: str) -> None:
    lab.lab.node_run(lab.node(node), ["nft", "-f", "-"], stdin=RICH_NFT)


# A firewalld node's rules are also what firewalld says they are: every zone, runtime and permanent.
FIREWALLD_VIEWS = {"firewalld-runtime": ["firewall-cmd", "--list-all-zones"], "firewalld-permanent": ["firewall-cmd", "--permanent", "--list-all-zones"]}
# The priority the firewalld backend gives its rich rules (module_utils/firewall/firewalld.py): a
# rich rule with it is ours even when its record is gone.
FIREWALLD_OURS = 'priority="-32000"'
FIREWALLD_STATE = "/run/fleet-firmware/firewall"


def is_firewalld_node(lab, node: str) -> bool:
    return lab.node(node).kind == "firewalld"


def _listings(lab, node: str) -> dict[str, str]:
    tools = {"legacy4": ["iptables-legacy-save"], "legacy6": ["ip6tables-legacy-save"], "nft": ["nft", "list", "ruleset"]}
    if is_firewalld_node(lab, node):
        tools.update(FIREWALLD_VIEWS)
    return {key: lab.node_run(node, argv, check=False).stdout for key, argv in tools.items()}


def firewalld_ours(lab, node: str) -> list[str]:
    """Our rich rules in a firewalld node, as ``fleet-firmware:<tag>: <rule>`` (the tag from the
    backend's records; ``?`` for a rule of ours that no record names)."""
    listing = lab.node_run(node, FIREWALLD_VIEWS["firewalld-runtime"]).stdout
    present = [line.strip() for line in listing.splitlines() if FIREWALLD_OURS in line]
    tags = {}
    records = lab.node_run(node, ["sh", "-c", f"ls {FIREWALLD_STATE}/firewalld-*.json 2>/dev/null"], check=False).stdout.split()
    for path in records:
        for rule in json.loads(lab.node_run(node, ["cat", path]).stdout).get("rules", []):
            tags[rule] = path.rsplit("/firewalld-", 1)[1][: -len(".json")]
    return [f"fleet-firmware:{tags.get(rule, '?')}: {rule}" for rule in present]


def snapshot(lab, node: str) -> dict[str, str]:
    """The node's whole ruleset (legacy and nftables, which also shows iptables-nft) without counters."""
    return {key: strip_counters(text) for key, text in _listings(lab, node).items()}


def ours(lab, node: str) -> str:
    """Every line of the node's rulesets that carries our marker ('' when none). The iptables-nft
    saves too: `nft list ruleset` does not show an iptables-nft rule's comment."""
    texts = list(_listings(lab, node).values())
    texts += [lab.node_run(node, [tool], check=False).stdout for tool in ("iptables-nft-save", "ip6tables-nft-save")]
    if is_firewalld_node(lab, node):
        texts.append("\n".join(firewalld_ours(lab, node)))
    return "\n".join(line for text in texts for line in text.splitlines() if "fleet-firmware" in line)


def start_listener(lab, node: str, port: int = PORT) -> subprocess.Popen:
    def run_in_node(argv: list[str]) -> subprocess.Popen:
        return subprocess.Popen(lab.lab.node_exec_argv(lab.node(node), argv), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    proc = listen(run_in_node, port)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def probe_from_controller(address: str, port: int = PORT) -> str:
    return tcp_state(address, port)


def probe_from_node(lab, node: str, address: str, port: int = PORT) -> str:
    """The same probe, from another lab node (another lab address: the source restriction)."""
    code = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET);s.settimeout(1.5)\n"
        "try:\n s.connect((sys.argv[1],int(sys.argv[2])));print('open')\n"
        "except ConnectionRefusedError:\n print('closed')\n"
        "except OSError:\n print('filtered')\n"
    )
    return lab.node_run(node, ["/usr/bin/python3", "-c", code, address, str(port)]).stdout.strip()


def ssh_sessions(lab, node: str) -> set[int]:
    """sshd session processes of one node (the PID namespace is the host's: filter by netns)."""
    wanted = fleetlab.netns_inode(lab.node(node).netns)
    found = set()
    for pid in fleetlab.pids_in_netns([wanted] if wanted else []):
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
        except OSError:
            continue
        if cmdline.startswith("sshd") and "@" in cmdline:
            found.add(pid)
    return found


def host_rulesets() -> dict[str, str]:
    """The host's own rulesets without comment lines (timestamps), to prove they stay as they were."""
    commands = {"nft": ["nft", "list", "ruleset"], "ip6": ["ip6tables-save"], "ip4": ["iptables-save"]}
    return {key: "\n".join(line for line in subprocess.run(argv, capture_output=True, text=True, check=False).stdout.splitlines()
                           if not line.startswith("#")) for key, argv in commands.items()}


# ---- firewalld and ufw, for real, inside a lab node -------------------------------------------
# Both run in a node's own namespaces and never reach the host: ufw's /etc/ufw is a private copy
# (bind-mounted in the node's mount namespace, with its sysctl list emptied), firewalld talks to
# a D-Bus system bus of its own in the node's private /run and reads a private /etc/firewalld.

def node_private(lab, name: str) -> str:
    """A folder only this node sees (the lab home's ``node`` folder is a tmpfs per node)."""
    return f"{lab.lab.home}/node/{name}"


def ufw_up(lab, node: str) -> None:
    """ufw enabled in ``node`` with the user's SSH rule (the lab's Ansible must still get in)."""
    copy = node_private(lab, "etc-ufw")
    lab.node_run(node, ["sh", "-c", f"rm -rf {copy} && cp -a /etc/ufw {copy} && : > {copy}/sysctl.conf && mount --bind {copy} /etc/ufw"])
    lab.node_run(node, ["ufw", "allow", "22/tcp"])
    lab.node_run(node, ["ufw", "--force", "enable"])


def ufw_down(lab, node: str) -> None:
    lab.node_run(node, ["ufw", "--force", "disable"], check=False)
    lab.node_run(node, ["umount", "/etc/ufw"], check=False)
    lab.node_run(node, ["rm", "-rf", node_private(lab, "etc-ufw")], check=False)
    lab.node_run(node, ["nft", "flush", "ruleset"])  # ufw drove iptables-nft: no legacy table to touch


def ufw_listing(lab, node: str) -> str:
    """ufw's rules as ufw prints them (``show added``) plus the running ruleset, counters aside."""
    added = lab.node_run(node, ["ufw", "show", "added"]).stdout
    return added + strip_counters(lab.node_run(node, ["iptables-save"]).stdout + lab.node_run(node, ["ip6tables-save"]).stdout)


def fail_bin(lab, node: str, tool: str, real: str, awk: str) -> str:
    """A stand-in ``tool`` first in PATH inside ``node``: it feeds the real tool the batch on its
    stdin rewritten by ``awk`` (e.g. its third rule broken), so the real tool fails for real."""
    folder = "/tmp/fw-failbin"
    script = f"#!/bin/sh\nif [ \"$1 $2\" = '-f -' ] || [ \"${{0##*/}}\" != nft ]; then\n  awk '{awk}' | {real} \"$@\"\n  exit $?\nfi\nexec {real} \"$@\"\n"
    lab.node_run(node, ["mkdir", "-p", folder])
    lab.lab.node_run(lab.node(node), ["sh", "-c", f"cat > {folder}/{tool} && chmod 0755 {folder}/{tool}"], stdin=script)
    return folder
