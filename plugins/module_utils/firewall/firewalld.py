# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""firewalld: runtime rich rules (never ``--permanent``), with ``--timeout`` as the lease.

Rich rules carry no comment, so the rules of a tag are recorded in a state file
(``/run/fleet-firmware/firewall/firewalld-<tag>.json``); only rules recorded there are ever
removed, and a rich rule the user added by hand, even an identical one, is never recorded
(``--query-rich-rule`` is asked first). Runtime rules die with a reload or reboot, and so does
/run. firewalld filters inbound traffic only; ``direction: out`` needs no rule there.
Tested for real in a lab node (its own D-Bus system bus and firewalld, see
tests/integration/test_firewall.py) and against recorded command lines.
"""
import os
from typing import List

from ansible_collections.fleet.firmware.plugins.module_utils.firewall.common import (
    SWEEP, Backend, OpenSpec, Result, Rule, find_tool, need_tool, rules_for, run,
)
from ansible_collections.fleet.firmware.plugins.module_utils.firewall import state

PRIORITY = -32000  # ahead of the zone's own rich rules and of its reject/drop
SYSTEM_BUS_SOCKETS = ("/run/dbus/system_bus_socket", "/var/run/dbus/system_bus_socket")


def system_bus_present() -> bool:
    """firewall-cmd reaches firewalld over the D-Bus system bus: is there one to reach?"""
    if os.environ.get("DBUS_SYSTEM_BUS_ADDRESS"):
        return True  # a bus elsewhere: only firewall-cmd can tell
    return any(os.path.exists(path) for path in SYSTEM_BUS_SOCKETS)


def rich_rule(rule: Rule) -> str:
    words = ['rule', 'priority="%d"' % PRIORITY]
    if rule.peer:
        words += ['family="ipv%d"' % rule.family, 'source address="%s"' % rule.peer]
    words += ['port port="%s" protocol="%s"' % (rule.port.text, rule.proto), 'accept']
    return " ".join(words)


class FirewalldBackend(Backend):
    name = "firewalld"

    @property
    def tool(self) -> str:
        return "firewall-cmd"

    def available(self) -> bool:
        return find_tool("firewall-cmd") is not None

    def running(self) -> bool:
        tool = find_tool("firewall-cmd")
        # Without a system bus no firewalld can be running; firewall-cmd (a Python program, run
        # at every auto-detection on every node) would only say so, at a cost.
        return bool(tool) and system_bus_present() and run([tool, "--state"], check=False)[0] == 0

    def _cmd(self, *args: str) -> List[str]:
        return [need_tool("firewall-cmd", self.name)] + list(args)

    def _recorded(self, tag: str) -> List[str]:
        tags = state.tags("firewalld-") if tag == SWEEP else [tag]
        found = []
        for one in tags:
            data = state.read("firewalld-" + one) or {}
            found += [r for r in data.get("rules", []) if run(self._cmd("--query-rich-rule=" + r), check=False)[0] == 0]
        return found

    def list_tag(self, tag: str) -> List[str]:
        return self._recorded(tag)

    def open(self, spec: OpenSpec, check_mode: bool = False) -> Result:
        result = Result(self.name, self.tool)
        have = self._recorded(spec.tag)
        wanted = [rich_rule(r) for r in rules_for(spec) if not r.reply and r.hook == "in"]
        # The same rich rule already there but not recorded is the user's: it opens the port
        # already, and it must never be ours to remove.
        users = [r for r in wanted if r not in have and run(self._cmd("--query-rich-rule=" + r), check=False)[0] == 0]
        for rule in users:
            result.warnings.append("firewalld already has the rich rule %s (not ours): left as it is, not recorded" % rule)
        wanted = [r for r in wanted if r not in users]
        result.before, result.after = have, wanted
        result.added = [r for r in wanted if r not in have]
        result.removed = [r for r in have if r not in wanted]
        if spec.direction == "out":
            result.warnings.append("firewalld does not filter outbound traffic: direction=out needs no rule")
        result.changed = bool(result.added or result.removed)
        # A lease renews by re-adding with a fresh --timeout (firewalld cannot extend one).
        renew = [r for r in wanted if r in have] if spec.lease else []
        if check_mode or not (result.changed or renew):
            return result
        self._apply(spec, result.added, result.removed, renew)
        return result

    def _timeout(self, spec: OpenSpec) -> List[str]:
        return ["--timeout=%ds" % spec.lease] if spec.lease else []

    def _apply(self, spec: OpenSpec, add: List[str], remove: List[str], renew: List[str]) -> None:
        done = []  # type: List[str]
        # Recorded before it is added: a crash half-way still leaves it findable for close.
        state.write("firewalld-" + spec.tag, {"rules": sorted(set(add + self._recorded(spec.tag)))})
        try:
            for rule in renew:
                run(self._cmd("--remove-rich-rule=" + rule))
                run(self._cmd("--add-rich-rule=" + rule, *self._timeout(spec)))
            for rule in add:
                run(self._cmd("--add-rich-rule=" + rule, *self._timeout(spec)))
                done.append(rule)
            for rule in remove:
                run(self._cmd("--remove-rich-rule=" + rule))
        except Exception:
            for rule in done:
                run(self._cmd("--remove-rich-rule=" + rule), check=False)
            raise
        finally:
            kept = self._recorded(spec.tag)
            if kept:
                state.write("firewalld-" + spec.tag, {"rules": kept})
            else:
                state.remove("firewalld-" + spec.tag)

    def close(self, tag: str, check_mode: bool = False) -> Result:
        result = Result(self.name, self.tool)
        result.before = result.removed = self._recorded(tag)
        result.changed = bool(result.removed)
        if not check_mode:
            for rule in result.removed:
                run(self._cmd("--remove-rich-rule=" + rule))
            for one in (state.tags("firewalld-") if tag == SWEEP else [tag]):
                state.remove("firewalld-" + one)
        return result
