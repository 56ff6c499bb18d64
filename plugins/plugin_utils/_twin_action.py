# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action base for modules with a Python and a PowerShell implementation side by side.

A POSIX connection (ssh, local) looks modules up without an extension, and the loader then
takes the first file in sorted order: ``<name>.ps1`` before ``<name>.py``. An action of the
module's name built on this class makes POSIX hosts prefer ``.py``; PowerShell hosts keep
their own preference (``.ps1`` first).
"""
from __future__ import annotations

from ansible.plugins.action import ActionBase


def prefer_native_twin(connection) -> None:
    """Make a POSIX connection load ``<module>.py`` rather than ``<module>.ps1``."""
    if getattr(connection._shell, "SHELL_FAMILY", "") != "powershell":
        preferences = tuple(connection.module_implementation_preferences)
        # Only this task's connection object changes (one per task in the worker).
        connection.module_implementation_preferences = (".py",) + tuple(p for p in preferences if p != ".py")


class TwinModuleAction(ActionBase):
    """Runs ``MODULE`` with the implementation that fits the host's shell."""

    MODULE = ""  # the module's FQCN, set by each action
    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        prefer_native_twin(self._connection)
        result.update(self._execute_module(module_name=self.MODULE, module_args=self._task.args,
                                           task_vars=task_vars, wrap_async=self._task.async_val))
        return result
