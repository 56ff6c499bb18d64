# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A fake command runner for the firewall backends: no real firewall is touched here.

Every command a backend runs goes through ``common.run`` (and ``common.output``, which calls
it). The fake records each argv (tool by its base name) and stdin, and answers from handlers
registered per argv prefix; a handler may be a small emulation of the tool (firewalld's rich
rule set, ufw's rule list) so that behaviour, not only argv, can be asserted.
The real firewalls are exercised in tests/integration/test_firewall*.py.
"""
from __future__ import annotations

import os
from typing import Callable

import pytest

from ansible_collections.fleet.firmware.plugins.module_utils.firewall import (
    api, common, firewalld, iptables, nftables, ufw,
)

Reply = tuple[int, str, str]
MODULES = (common, iptables, nftables, firewalld, ufw, api)


class FakeRunner:
    def __init__(self, tools: set[str]) -> None:
        self.tools = set(tools)
        self.calls: list[tuple[list[str], str | None]] = []
        self.handlers: list[tuple[tuple[str, ...], Callable[[list[str], str | None], Reply]]] = []

    def on(self, *prefix: str, rc: int = 0, out: str = "", err: str = "", handler=None) -> None:
        """Answer commands starting with ``prefix`` (the last registration wins)."""
        self.handlers.append((prefix, handler or (lambda argv, stdin: (rc, out, err))))

    def find_tool(self, name: str) -> str | None:
        return "/usr/sbin/" + name if name in self.tools else None

    def run(self, argv, stdin=None, check=True) -> Reply:
        argv = [os.path.basename(argv[0])] + list(argv[1:])
        self.calls.append((argv, stdin))
        rc, out, err = 0, "", ""
        for prefix, handler in reversed(self.handlers):
            if tuple(argv[:len(prefix)]) == prefix:
                rc, out, err = handler(argv, stdin)
                break
        if check and rc != 0:
            raise common.FirewallError("command failed (rc=%d): %s: %s" % (rc, " ".join(argv), (err or out).strip()))
        return rc, out, err

    def commands(self, tool: str | None = None) -> list[list[str]]:
        return [argv for argv, _stdin in self.calls if tool is None or argv[0] == tool]

    def batches(self, tool: str) -> list[str]:
        """What was fed on stdin to ``tool`` (iptables-restore batches, nft scripts), in order."""
        return [stdin for argv, stdin in self.calls if argv[0] == tool and stdin is not None]


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """Install a FakeRunner with every firewall tool present; state under tmp_path."""
    runner = FakeRunner({"iptables", "ip6tables", "iptables-save", "ip6tables-save", "iptables-restore", "ip6tables-restore",
                         "iptables-nft-save", "ip6tables-nft-save", "iptables-nft-restore", "ip6tables-nft-restore",
                         "nft", "firewall-cmd", "ufw"})
    monkeypatch.setenv("FLEET_FIREWALL_STATE_DIR", str(tmp_path / "state"))
    for module in MODULES:
        for name in ("run", "find_tool"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, getattr(runner, name))
    # need_tool and output live in common and call its (patched) globals.
    monkeypatch.setattr(iptables, "legacy_in_use", lambda: False)
    # A system bus, as on a host that runs firewalld: firewall-cmd --state decides (faked).
    monkeypatch.setattr(firewalld, "system_bus_present", lambda: True)
    return runner
