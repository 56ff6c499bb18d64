# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ufw: ``ufw prepend`` rules with the comment ``fleet-firmware:<tag>:<key>``.

``prepend`` puts a rule ahead of every user rule of its family (``insert 1`` refuses IPv6 rules
ahead of IPv4 ones). ufw keeps rules in its own files: an opening is removed again by the same
rule text that ``ufw show added`` prints. Tested for real in a lab node (with a private copy of
/etc/ufw, see tests/integration/test_firewall.py) and against recorded command lines.
"""
from typing import List

from ansible_collections.fleet.firmware.plugins.module_utils.firewall.common import (
    Backend, OpenSpec, Result, Rule, comment_for, comment_prefix, find_tool, need_tool, output, rules_for, run,
)


def ufw_args(rule: Rule, comment: str) -> List[str]:
    """``allow in proto tcp from 198.18.2.1/32 to any port 62286 comment '...'`` as argv."""
    peer = rule.peer or "any"
    ends = ["from", peer, "to", "any"] if rule.hook == "in" else ["from", "any", "to", peer]
    return ["allow", rule.hook, "proto", rule.proto] + ends + ["port", rule.port.text.replace("-", ":"), "comment", comment]


class UfwBackend(Backend):
    name = "ufw"

    @property
    def tool(self) -> str:
        return "ufw"

    def available(self) -> bool:
        return find_tool("ufw") is not None

    def active(self) -> bool:
        tool = find_tool("ufw")
        if not tool:
            return False
        # ``ufw status`` (a Python program) says inactive when iptables has no ufw-user-input
        # chain; asking iptables that same question first spares the program on every node
        # without ufw enabled. With the chain there, ufw itself has the last word.
        iptables = find_tool("iptables")
        if iptables and run([iptables, "-n", "-L", "ufw-user-input"], check=False)[0] != 0:
            return False
        return run([tool, "status"], check=False)[1].startswith("Status: active")

    def _ufw(self, *args: str) -> List[str]:
        return [need_tool("ufw", self.name)] + list(args)

    def list_tag(self, tag: str) -> List[str]:
        out = output(self._ufw("show", "added"))
        prefix = comment_prefix(tag)
        return [line.strip() for line in out.splitlines()
                if line.startswith("ufw ") and ("comment '%s" % prefix) in line]

    def open(self, spec: OpenSpec, check_mode: bool = False) -> Result:
        result = Result(self.name, self.tool)
        # ufw lets the replies of allowed connections through itself: no reply rules.
        wanted = {comment_for(spec.tag, r): ufw_args(r, comment_for(spec.tag, r)) for r in rules_for(spec) if not r.reply}
        have = self.list_tag(spec.tag)
        result.before = have
        result.added = ["ufw " + " ".join(a[:-1]) + " '%s'" % c for c, a in wanted.items()
                        if not any(("'%s'" % c) in h for h in have)]
        result.removed = [h for h in have if not any(("'%s'" % c) in h for c in wanted)]
        result.after = [h for h in have if h not in result.removed] + result.added
        result.changed = bool(result.added or result.removed)
        if result.changed and not check_mode:
            done = []  # type: List[List[str]]
            try:
                for comment, args in wanted.items():
                    if any(("'%s'" % comment) in a for a in result.added):
                        out = run(self._ufw("prepend", *args))[1]
                        if "Skipping" in out:
                            # The user has this very rule (without our comment): it is theirs, not ours.
                            self._skip(result, comment)
                            continue
                        done.append(args)
                for line in result.removed:
                    self._delete(line)
            except Exception:
                # Remove what this call added, by the text ufw itself prints for it.
                added = ["'%s'" % args[-1] for args in done]
                for line in self.list_tag(spec.tag):
                    if any(comment in line for comment in added):
                        self._delete(line, check=False)
                raise
        return result

    @staticmethod
    def _skip(result: Result, comment: str) -> None:
        line = [a for a in result.added if ("'%s'" % comment) in a][0]
        result.added.remove(line)
        result.after.remove(line)
        result.changed = bool(result.added or result.removed)
        result.warnings.append("ufw already has the rule of %s (not ours): left as it is" % line)

    def _delete(self, line: str, check: bool = True) -> None:
        words = line.split(" comment ")[0].split()[1:]
        run(self._ufw("--force", "delete", *words), check=check)

    def close(self, tag: str, check_mode: bool = False) -> Result:
        result = Result(self.name, self.tool)
        result.before = result.removed = self.list_tag(tag)
        result.changed = bool(result.removed)
        if result.changed and not check_mode:
            for line in result.removed:
                self._delete(line)
        return result
