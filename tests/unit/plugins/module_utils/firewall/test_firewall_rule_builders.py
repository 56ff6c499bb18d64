# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pure rule builders of the firewall backends, case by case: what the backend tests reach
only through whole scripts. Written for the mutants that survived those (make mutation)."""
from __future__ import annotations

import pytest

from ansible_collections.fleet.firmware.plugins.module_utils.firewall import nftables
from ansible_collections.fleet.firmware.plugins.module_utils.firewall.common import Port, Rule


def rule(family: int, peer=None) -> Rule:
    return Rule("in-tcp-62286-any", "in", family, "tcp", Port("tcp", 62286, 62286), peer, False)


@pytest.mark.parametrize("family, table, fits", [
    (0, "ip", True), (0, "ip6", True), (0, "inet", True),  # a rule without an address fits every table
    (4, "ip", True), (4, "ip6", False), (4, "inet", True),
    (6, "ip", False), (6, "ip6", True), (6, "inet", True),
])
def test_which_rule_goes_into_which_nftables_family(family, table, fits):
    assert nftables.rule_fits(rule(family, None if family == 0 else "x"), table) is fits
