# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller side of fleet.firmware.firewall: pick the implementation for the host's shell.

The module has two implementations side by side, ``firewall.py`` (Linux) and ``firewall.ps1``
(Windows). A POSIX connection (ssh, local) looks modules up without an extension, and the
loader then takes the first file in sorted order, ``firewall.ps1``. This action makes POSIX
hosts prefer ``.py``; PowerShell hosts keep their own preference (``.ps1`` first).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.plugins.action import ActionBase


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        connection = self._connection
        if getattr(connection._shell, "SHELL_FAMILY", "") != "powershell":
            preferences = tuple(connection.module_implementation_preferences)
            # Only this task's connection object is changed (one per task in the worker).
            connection.module_implementation_preferences = (".py",) + tuple(p for p in preferences if p != ".py")
        result.update(self._execute_module(module_name="fleet.firmware.firewall", module_args=self._task.args,
                                           task_vars=task_vars, wrap_async=self._task.async_val))
        return result
