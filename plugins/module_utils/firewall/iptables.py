# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""iptables and ip6tables (legacy or nf_tables variant), through iptables-restore batches.

Rules are inserted at the head of the built-in INPUT/OUTPUT chains of the filter table, so
they act ahead of the user's jumps, REJECT/DROP rules and DROP policy. Each carries the
comment ``fleet-firmware:<tag>:<key>``. One ``iptables-restore --noflush`` batch per family
is one atomic commit; if the IPv6 batch fails, the IPv4 batch is undone: all or nothing.
"""
import os
import shlex
from typing import Dict, List, Optional, Tuple

from ansible_collections.fleet.firmware.plugins.module_utils.firewall.common import (
    Backend, FirewallError, OpenSpec, Result, Rule, comment_for, comment_prefix, find_tool, need_tool, rules_for, run,
)

CHAINS = {"in": "INPUT", "out": "OUTPUT"}
VARIANTS = ("legacy", "nft", "")
# /proc lists the legacy tables of this network namespace; reading it creates none.
LEGACY_TABLES = ("/proc/net/ip_tables_names", "/proc/net/ip6_tables_names")


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

    def _apply(self, family: int, lines: List[str]) -> None:
        batch = "*filter\n" + "".join(line + "\n" for line in lines) + "COMMIT\n"
        run([self._need(family, 1), "-w", "5", "--noflush"], stdin=batch)

    def _change(self, plan: Dict[int, Tuple[List[str], List[str]]]) -> None:
        """Apply (add, remove) per family; undo the families done when a later one fails."""
        done = []  # type: List[Tuple[int, List[str], List[str]]]
        try:
            for family in (4, 6):
                add, remove = plan[family]
                if add or remove:
                    self._apply(family, [as_insert(a) for a in add] + ["-D" + r[2:] for r in remove])
                    done.append((family, add, remove))
        except FirewallError:
            for family, add, remove in reversed(done):
                self._apply(family, ["-D" + a[2:] for a in add] + [as_insert(r) for r in remove])
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
