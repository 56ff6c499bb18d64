# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""nftables: a dedicated table per tag, plus tagged rules at the head of the user's base chains.

Our table is ``inet fleet_firmware_<tag>`` (``-`` becomes ``_``) with chains ``input`` and
``output`` at priority -10, every object commented ``fleet-firmware:<tag>...``. In nftables an
``accept`` ends only the chain it is in: a packet still passes every other base chain on the
same hook, and a DROP policy or drop rule there still drops it. So the same accept rules are
also inserted at the head of every other base chain on the input/output hooks (families ip,
ip6, inet), commented the same way. Each change is one ``nft -f`` transaction: all or nothing.
"""
import json
import re
from typing import Dict, List, Tuple

from ansible_collections.fleet.firmware.plugins.module_utils.firewall.common import (
    MARKER, SWEEP, Backend, FirewallError, OpenSpec, Result, Rule, comment_for, comment_prefix, find_tool, need_tool,
    output, rules_for, run,
)

TABLE_PREFIX = "fleet_firmware_"
HOOKS = {"in": "input", "out": "output"}
PRIORITY = -10
# Chains iptables-nft owns: native rules there break iptables-nft (it refuses the table).
IPTABLES_NFT_CHAINS = ("INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING")
FAMILY_OF = {"ip": 4, "ip6": 6, "inet": 0}


def table_name(tag: str) -> str:
    return TABLE_PREFIX + tag.replace("-", "_")


def rule_expr(rule: Rule, comment: str) -> str:
    """The nft rule text (after ``add rule <family> <table> <chain>``)."""
    words = []
    if rule.peer:
        words += ["ip" if rule.family == 4 else "ip6", "saddr" if rule.hook == "in" else "daddr", rule.peer]
    words += [rule.proto, "sport" if rule.reply else "dport", rule.port.text]
    if rule.reply:
        words += ["ct", "state", "established"]
    return " ".join(words + ["accept", "comment", json.dumps(comment)])


def rule_fits(rule: Rule, family: str) -> bool:
    return rule.family == 0 or FAMILY_OF[family] in (0, rule.family)


class NftablesBackend(Backend):
    name = "nftables"

    @property
    def tool(self) -> str:
        return "nft"

    def available(self) -> bool:
        return find_tool("nft") is not None

    def ruleset(self) -> List[Dict[str, Dict]]:
        out = output([need_tool("nft", self.name), "-j", "list", "ruleset"])
        try:
            return json.loads(out or "{}").get("nftables", [])
        except ValueError as exc:
            raise FirewallError("nft -j list ruleset printed no JSON: %s" % exc)

    @staticmethod
    def is_iptables_nft(items: List[Dict[str, Dict]], family: str, table: str) -> bool:
        return any("chain" in i and i["chain"]["family"] == family and i["chain"]["table"] == table
                   and i["chain"]["name"] in IPTABLES_NFT_CHAINS for i in items)

    def foreign_chains(self, items: List[Dict[str, Dict]]) -> Tuple[List[Tuple[str, str, str, str]], List[str]]:
        """(family, table, chain, hook) of the user's base chains we must insert into, and warnings."""
        chains, warnings = [], []
        for item in items:
            chain = item.get("chain")
            if not chain or chain.get("hook") not in HOOKS.values() or chain["family"] not in FAMILY_OF:
                continue
            if chain["table"].startswith(TABLE_PREFIX):
                continue
            if self.is_iptables_nft(items, chain["family"], chain["table"]):
                warnings.append("table %s %s belongs to iptables-nft; use backend=iptables for it" % (chain["family"], chain["table"]))
                continue
            chains.append((chain["family"], chain["table"], chain["name"], chain["hook"]))
        return chains, sorted(set(warnings))

    def _ours(self, items: List[Dict[str, Dict]], tag: str) -> Tuple[List[Tuple[str, str, str, int, str]], List[Tuple[str, str]]]:
        """Our rules (family, table, chain, handle, comment) outside our tables, and our tables."""
        prefix = comment_prefix(tag)
        tables = [(i["table"]["family"], i["table"]["name"]) for i in items if "table" in i
                  and i["table"]["name"].startswith(TABLE_PREFIX if tag == SWEEP else table_name(tag))
                  and (tag == SWEEP or i["table"]["name"] == table_name(tag))]
        rules = []
        for item in items:
            rule = item.get("rule")
            if rule and str(rule.get("comment", "")).startswith(prefix) and (rule["family"], rule["table"]) not in tables:
                rules.append((rule["family"], rule["table"], rule["chain"], rule["handle"], rule["comment"]))
        return rules, tables

    def list_tag(self, tag: str) -> List[str]:
        """Our objects as ``nft list ruleset`` prints them, each line prefixed with its chain."""
        out = output([need_tool("nft", self.name), "list", "ruleset"])
        found, table, chain = [], "", ""
        mine = table_name(tag) if tag != SWEEP else TABLE_PREFIX
        prefix = comment_prefix(tag)
        for raw in out.splitlines():
            line = raw.strip()
            head = re.match(r"^table (\S+) (\S+) \{", raw)
            if head:
                table, chain = head.group(1) + " " + head.group(2), ""
                if head.group(2).startswith(mine):
                    found.append(line.rstrip(" {"))
                continue
            match = re.match(r"^\tchain (\S+) \{", raw)
            if match:
                chain = match.group(1)
            elif chain and ('comment "%s' % prefix) in line and line.endswith('"'):
                found.append("%s %s: %s" % (table, chain, line))
        return found

    def _transaction(self, lines: List[str]) -> None:
        if lines:
            run([need_tool("nft", self.name), "-f", "-"], stdin="\n".join(lines) + "\n")

    def open(self, spec: OpenSpec, check_mode: bool = False) -> Result:
        result = Result(self.name, self.tool)
        items = self.ruleset()
        before = self.list_tag(spec.tag)
        result.before = before
        have_rules, have_tables = self._ours(items, spec.tag)
        chains, result.warnings = self.foreign_chains(items)
        table = table_name(spec.tag)
        marker = json.dumps("%s:%s" % (MARKER, spec.tag))
        # Our own table is rebuilt whole in the same transaction whenever anything differs.
        ours = ["add table inet %s { comment %s ; }" % (table, marker)]
        for hook in ("input", "output"):
            ours.append("add chain inet %s %s { type filter hook %s priority %d ; policy accept ; comment %s ; }"
                        % (table, hook, hook, PRIORITY, marker))
        wanted = []  # type: List[Tuple[str, str, str, str]]
        for rule in rules_for(spec):
            comment = comment_for(spec.tag, rule)
            ours.append("add rule inet %s %s %s" % (table, HOOKS[rule.hook], rule_expr(rule, comment)))
            for family, ftable, fchain, hook in chains:
                if hook == HOOKS[rule.hook] and rule_fits(rule, family):
                    wanted.append((family, ftable, fchain, comment))
        have = [(r[0], r[1], r[2], r[4]) for r in have_rules]
        # The comment encodes the whole rule (direction, protocol, port, peer): equal comments,
        # equal rules.
        own_current = self._own_table_comments(items, table)
        own_wanted = sorted(comment_for(spec.tag, r) for r in rules_for(spec))
        lines = []
        if own_current != own_wanted or ("inet", table) not in have_tables:
            if ("inet", table) in have_tables:
                lines.append("delete table inet %s" % table)
            lines += ours
        for family, ftable, fchain, handle, comment in have_rules:
            if (family, ftable, fchain, comment) not in wanted:
                lines.append("delete rule %s %s %s handle %d" % (family, ftable, fchain, handle))
        rules_by_comment = {comment_for(spec.tag, r): r for r in rules_for(spec)}
        for family, ftable, fchain, comment in wanted:
            if (family, ftable, fchain, comment) not in have:
                lines.append("insert rule %s %s %s %s" % (family, ftable, fchain, rule_expr(rules_by_comment[comment], comment)))
        result.changed = bool(lines)
        if result.changed and not check_mode:
            self._transaction(lines)
        result.after = self.list_tag(spec.tag) if not check_mode else self._would_be(before, lines)
        if result.changed:
            # ``rules`` are rules: the header line of our table stays in the diff only.
            result.added = [l for l in result.after if l not in before and not l.startswith("table ")]
            result.removed = [l for l in before if l not in result.after and not l.startswith("table ")]
        return result

    @staticmethod
    def _would_be(before: List[str], lines: List[str]) -> List[str]:
        """Check mode: our objects after ``lines``, in the listing's ``family table chain: rule`` form."""
        after = [] if any(l.startswith("delete table") for l in lines) else list(before)
        for line in lines:
            words = line.split(" ", 5)
            if words[0] in ("add", "insert") and words[1] == "rule":
                after.append("%s %s %s: %s" % (words[2], words[3], words[4], words[5]))
            elif words[0] == "add" and words[1] == "table":
                after.append("table %s %s" % (words[2], words[3]))
        return after

    @staticmethod
    def _own_table_comments(items: List[Dict[str, Dict]], table: str) -> List[str]:
        return sorted(str(i["rule"].get("comment", "")) for i in items
                      if "rule" in i and i["rule"]["table"] == table and i["rule"]["family"] == "inet")

    def close(self, tag: str, check_mode: bool = False) -> Result:
        result = Result(self.name, self.tool)
        items = self.ruleset()
        result.before = self.list_tag(tag)
        rules, tables = self._ours(items, tag)
        lines = ["delete rule %s %s %s handle %d" % r[:4] for r in rules]
        lines += ["delete table %s %s" % (family, name) for family, name in tables]
        result.changed = bool(lines)
        result.removed = [l for l in result.before if not l.startswith("table ")]
        if result.changed and not check_mode:
            self._transaction(lines)
        return result
