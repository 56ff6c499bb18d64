# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The node's reboot per the deploy's policy (Linux): the command, detached, then a new boot id.

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time.
"""
from __future__ import annotations

import time
import typing as t

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.fleet.firmware.plugins.plugin_utils.deploy.controller import DeployError

BOOT_ID = "cat /proc/sys/kernel/random/boot_id"


def decide(policy: str, outcomes: t.Sequence[dict]) -> tuple[bool, bool]:
    """(reboot now, a component needs one): ``always`` after any install attempt; ``if_needed``
    when every component succeeded and one needs it; ``never``."""
    needs = any(c.get("result") == "reboot_required" for c in outcomes)
    all_ok = all(c.get("status") == "installed" for c in outcomes)
    wanted = bool(policy == "always" and outcomes or policy == "if_needed" and needs and all_ok)
    return wanted, needs


class NodeReboot:
    """Reboots the node of ``action`` (an ActionBase on its connection) and waits for it."""

    def __init__(self, action) -> None:
        self.action = action

    def boot_id(self) -> str:
        answer = self.action._low_level_execute_command(BOOT_ID, sudoable=False)
        return to_text(answer.get("stdout", "")).strip()

    def trigger(self, command: str, delay: int, task_vars: dict) -> None:
        # Detached, through a module (a raw command's background job dies with its pty): the
        # command may take the connection down before it answers.
        self.action._execute_module(module_name="ansible.builtin.command", task_vars=task_vars, module_args={
            "_raw_params": f"nohup sh -c 'sleep {max(0, delay)}; {command}' >/dev/null 2>&1 &", "_uses_shell": True})

    def wait_for_new_boot(self, before: str, timeout: int) -> None:
        connection = self.action._connection
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(2)
            try:
                connection.reset()
                now = self.boot_id()
            except AnsibleError:
                continue
            if now and now != before:
                # The remote temporary folder went with the reboot (/root and /tmp start empty).
                connection._shell.tmpdir = None
                return
        raise DeployError(f"the node did not come back within {timeout} s (boot id still {before or 'unknown'})")
