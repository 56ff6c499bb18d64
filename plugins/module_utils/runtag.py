# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The run tag: one pattern for every place that names a run (firewall rules, staging folders,
the agent's lock and socket, the engine's run folder, the sweep).

Runs on nodes and on the controller: Python 3.6+, standard library only. The PowerShell twins
(FleetAgent.psm1, FleetFirewall.psm1) carry the same pattern; a unit test compares them.
"""
import re

TAG_PATTERN = "[a-z0-9-]{1,32}"
TAG_RE = re.compile("^%s$" % TAG_PATTERN)
TAG_RULE = "1 to 32 characters of a-z, 0-9 and '-'"
