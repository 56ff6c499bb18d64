# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller side of fleet.firmware.inventory: run ``inventory.py`` on POSIX hosts and ``inventory.ps1`` on
Windows hosts (see plugin_utils/_twin_action.py for why an action is needed)."""
from __future__ import annotations

from ansible_collections.fleet.firmware.plugins.plugin_utils._twin_action import TwinModuleAction


class ActionModule(TwinModuleAction):
    MODULE = "fleet.firmware.inventory"
