# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""iptables and ip6tables (legacy or nf_tables variant), through iptables-restore batches.

Rules are inserted at the head of the built-in INPUT/OUTPUT chains of the filter table, so
they act ahead of the user's jumps, REJECT/DROP rules and DROP policy. Each carries the
comment ``fleet-firmware:<tag>:<key>``. One ``iptables-restore --noflush`` batch per family
is one atomic commit; if the IPv6 batch fails, the IPv4 batch is undone: all or nothing.

With the nf_tables variant on a host without an ``ip``/``ip6`` ``filter`` table, the first rule
creates that table (in a table of the user's without ``INPUT``/``OUTPUT``, that chain). What it
is about to create is recorded in the state folder (``iptables-nft-created``) first, and a close
(or a failed open) deletes it again once it holds nothing but empty built-in chains with an
ACCEPT policy: the ruleset ends as it began. A table or chain that existed before, or that the
user has since put anything into, is never deleted.
"""
import json
import os
import shlex
from typing import Dict, List, Optional, Tuple

from ansible_collections.fleet.firmware.plugins.module_utils.firewall import state
from ansible_collections.fleet.firmware.plugins.module_utils.firewall.common import (
    MARKER, Backend, FirewallError, OpenSpec, Result, Rule, comment_for, comment_prefix, find_tool, need_tool, rules_for, run,
)

CHAINS = {"in": "INPUT", "out": "OUTPUT"}
VARIANTS = ("legacy", "nft", "")
# /proc lists the legacy tables of this network namespace; reading it creates none.
LEGACY_TABLES = ("/proc/net/ip_tables_names", "/proc/net/ip6_tables_names")
# The state record of the nf_tables ``filter`` tables our openings created (``ip filter``, ``ip6 filter``).
CREATED = "iptables-nft-created"
NFT_FAMILY = {4: "ip", 6: "ip6"}
BUILTIN_CHAINS = ("INPUT", "FORWARD", "OUTPUT")


def tool_names(variant: str) -> Dict[int, Tuple[str, str]]:
    """(save, restore) per family: ``iptables-legacy-save`` ... or the system's default."""
    infix = "-" + variant if variant else ""
    return {family: ("%s%s-save" % (base, infix), "%s%s-restore" % (base, infix))
            for family, base in ((4, "iptables"), (6, "ip6tables"))}


def legacy_in_use() -> bool:
    for path in LEGACY_TABLES:
        try:
            with open(path) as handle:
                if handle.read().strip():
                    return True
        except (IOError, OSError):
            continue
    return False


def legacy_table_exists(family: int) -> bool:
    try:
        with open(LEGACY_TABLES[0 if family == 4 else 1]) as handle:
            return "filter" in handle.read().split()
    except (IOError, OSError):
        return False


def rule_args(rule: Rule, comment: str) -> List[str]:
    """The rule as ``iptables-save`` prints it (after the chain), so listings compare equal."""
    args = []  # type: List[str]
    if rule.peer:
        args += ["-s" if rule.hook == "in" else "-d", rule.peer]
    port = rule.port.text.replace("-", ":")
    args += ["-p", rule.proto, "-m", rule.proto, "--sport" if rule.reply else "--dport", port]
    if rule.reply:
        args += ["-m", "conntrack", "--ctstate", "ESTABLISHED"]
    return args + ["-m", "comment", "--comment", comment, "-j", "ACCEPT"]


def as_insert(line: str) -> str:
    """``-A INPUT <rule>`` -> ``-I INPUT 1 <rule>``: ahead of every rule of the user."""
    words = line.split(" ", 2)
    return "-I %s 1 %s" % (words[1], words[2])


class IptablesBackend(Backend):
    name = "iptables"

    def __init__(self, variant: Optional[str] = None) -> None:
        if variant is None:
            variant = self.pick_variant()
        if variant not in VARIANTS:
            raise FirewallError("iptables variant %r is unknown: use legacy, nft or ''" % (variant,))
        self.variant = variant
        self.tools = tool_names(variant)

    @staticmethod
    def pick_variant() -> str:
        """Legacy when legacy tables exist here, else the system's own ``iptables``."""
        if find_tool("iptables-legacy-save") and legacy_in_use():
            return "legacy"
        return ""

    @property
    def tool(self) -> str:
        return self.tools[4][1].replace("-restore", "")

    def options(self) -> Dict[str, object]:
        return {"variant": self.variant}

    def available(self) -> bool:
        return all(find_tool(name) for pair in self.tools.values() for name in pair)

    def _need(self, family: int, which: int) -> str:
        return need_tool(self.tools[family][which], self.name)

    def _ours(self, family: int, prefix: str) -> List[str]:
        """Our ``-A ...`` lines of the filter table, in iptables-save's own words."""
        if self.variant == "legacy" and not legacy_table_exists(family):
            return []  # listing a legacy table would create it: there is nothing of ours anyway
        rc, out, err = run([self._need(family, 0), "-t", "filter"], check=False)
        if rc != 0:
            raise FirewallError("%s failed (rc=%d): %s" % (self.tools[family][0], rc, err.strip()))
        found = []
        for line in out.splitlines():
            if line.startswith("-A ") and "--comment" in line:
                words = shlex.split(line)
                comment = words[words.index("--comment") + 1]
                if comment.startswith(prefix):
                    found.append(" ".join(shlex.quote(w) for w in words))
        return found

    def list_tag(self, tag: str) -> List[str]:
        prefix = comment_prefix(tag)
        return ["%s: %s" % (self.tools[f][0].replace("-save", ""), line) for f in (4, 6) for line in self._ours(f, prefix)]

    def _desired(self, spec: OpenSpec) -> Dict[int, List[str]]:
        desired = {4: [], 6: []}  # type: Dict[int, List[str]]
        for rule in rules_for(spec):
            line = " ".join(shlex.quote(w) for w in ["-A", CHAINS[rule.hook]] + rule_args(rule, comment_for(spec.tag, rule)))
            for family in ((4, 6) if rule.family == 0 else (rule.family,)):
                desired[family].append(line)
        return desired

    def uses_nf_tables(self) -> bool:
        """Whether these tools write nf_tables (``iptables-nft``, or a system ``iptables`` that is it)."""
        if self.variant:
            return self.variant == "nft"
        tool = find_tool("iptables")
        return bool(tool) and "nf_tables" in run([tool, "--version"], check=False)[1]

    def _nft_items(self, family: int) -> Optional[List[Dict[str, Dict]]]:
        """``nft -j list table <family> filter`` as items; None when the table does not exist."""
        rc, out, _err = run([need_tool("nft", self.name), "-j", "list", "table", NFT_FAMILY[family], "filter"], check=False)
        if rc != 0:
            return None
        try:
            return json.loads(out or "{}").get("nftables", [])
        except ValueError:
            raise FirewallError("nft -j list table %s filter printed no JSON" % NFT_FAMILY[family])

    def _record_created(self, plan: Dict[int, Tuple[List[str], List[str]]]) -> None:
        """Before the first rule goes in, note the table or built-in chains it is about to create
        (recorded first: a crash half-way still leaves them findable)."""
        if find_tool("nft") is None or not self.uses_nf_tables():
            return  # legacy tables cannot be removed; without nft we cannot tell or tidy
        for family in (4, 6):
            chains = sorted(set(line.split(" ", 2)[1] for line in plan[family][0]))
            if not chains:
                continue
            items = self._nft_items(family)
            table = "%s filter" % NFT_FAMILY[family]
            if items is None:
                state.add_member(CREATED, table)
                continue
            have = set(i["chain"]["name"] for i in items if "chain" in i)
            for chain in chains:
                if chain not in have:
                    state.add_member(CREATED, "%s %s" % (table, chain))

    @staticmethod
    def _empty_chain(items: List[Dict[str, Dict]], name: str) -> bool:
        """A built-in chain with an ACCEPT policy and no rule in it."""
        chains = [i["chain"] for i in items if "chain" in i and i["chain"]["name"] == name]
        rules = [i for i in items if "rule" in i and i["rule"].get("chain") == name]
        return bool(chains) and name in BUILTIN_CHAINS and chains[0].get("policy", "accept") == "accept" and not rules

    def _only_empty_chains(self, items: List[Dict[str, Dict]]) -> bool:
        """Nothing but empty built-in chains with ACCEPT policies (no rule, set, chain of the user's)."""
        others = [i for i in items if not ("metainfo" in i or "table" in i or "chain" in i)]
        return not others and all(self._empty_chain(items, i["chain"]["name"]) for i in items if "chain" in i)

    def drop_created_tables(self) -> List[str]:
        """Delete the tables and chains our openings created once they are empty again; say which.

        A recorded object is forgotten once looked at: deleted when empty, kept for good when
        the user has put something in it since (it is theirs then), unless rules of another tag
        of ours still sit in that family's table (that tag's close comes back here).
        """
        dropped = []  # type: List[str]
        if not self.uses_nf_tables():
            return dropped  # the records are of nf_tables tables: only that variant sees their rules
        records = state.members(CREATED)
        nft = find_tool("nft")
        for family in (4, 6):
            mine = [r for r in records if r.split(" ")[0] == NFT_FAMILY[family]]
            if not mine or nft is None or self._ours(family, MARKER + ":"):
                continue
            items = self._nft_items(family)
            for record in mine:
                words = record.split(" ")
                if items is not None and len(words) == 2 and self._only_empty_chains(items):
                    run([nft, "delete", "table"] + words)
                    dropped.append("table " + record)
                elif items is not None and len(words) == 3 and self._empty_chain(items, words[2]):
                    run([nft, "delete", "chain"] + words)
                    dropped.append("chain " + record)
                state.discard_member(CREATED, record)
        return dropped

    def _apply(self, family: int, lines: List[str]) -> None:
        batch = "*filter\n" + "".join(line + "\n" for line in lines) + "COMMIT\n"
        run([self._need(family, 1), "-w", "5", "--noflush"], stdin=batch)

    def _change(self, plan: Dict[int, Tuple[List[str], List[str]]]) -> None:
        """Apply (add, remove) per family; undo the families done when a later one fails."""
        done = []  # type: List[Tuple[int, List[str], List[str]]]
        self._record_created(plan)
        try:
            for family in (4, 6):
                add, remove = plan[family]
                if add or remove:
                    self._apply(family, [as_insert(a) for a in add] + ["-D" + r[2:] for r in remove])
                    done.append((family, add, remove))
        except FirewallError:
            for family, add, remove in reversed(done):
                self._apply(family, ["-D" + a[2:] for a in add] + [as_insert(r) for r in remove])
            self.drop_created_tables()
            raise

    def open(self, spec: OpenSpec, check_mode: bool = False) -> Result:
        result = Result(self.name, self.tool)
        prefix = comment_prefix(spec.tag)
        desired = self._desired(spec)
        plan = {}
        for family in (4, 6):
            have = self._ours(family, prefix)
            result.before += have
            result.after += desired[family]
            plan[family] = ([d for d in desired[family] if d not in have], [h for h in have if h not in desired[family]])
            result.added += plan[family][0]
            result.removed += plan[family][1]
        result.changed = bool(result.added or result.removed)
        if result.changed and not check_mode:
            self._change(plan)
        return result

    def close(self, tag: str, check_mode: bool = False) -> Result:
        result = Result(self.name, self.tool)
        prefix = comment_prefix(tag)
        plan = {}
        for family in (4, 6):
            have = self._ours(family, prefix)
            result.before += have
            result.removed += have
            plan[family] = ([], have)
        result.changed = bool(result.removed)
        if result.changed and not check_mode:
            self._change(plan)
        if not check_mode and state.members(CREATED):
            # Also when nothing of the tag was left: a close after a crash still tidies up.
            dropped = self.drop_created_tables()
            result.changed = result.changed or bool(dropped)
            result.before += [d + " (made by an opening of ours, empty again)" for d in dropped]
        return result


def present_variants() -> List[str]:
    """Variants whose tools exist here (a sweep visits each: rules may sit in either)."""
    found = []
    for variant in ("legacy", "nft"):
        if all(find_tool(n) for pair in tool_names(variant).values() for n in pair):
            if variant != "legacy" or legacy_in_use():
                found.append(variant)
    if not found and all(find_tool(n) for pair in tool_names("").values() for n in pair):
        found.append("")
    return found


def exists() -> bool:
    return bool(os.path.exists("/proc/net") and present_variants())
