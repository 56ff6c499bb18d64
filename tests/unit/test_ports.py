# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fixed ports of module_utils/ports.py are a contract: sites open them in firewalls by hand
from docs/ports.md, so a changed number is a breaking change, not a refactoring."""
from __future__ import annotations

from pathlib import Path

from ansible_collections.fleet.firmware.plugins.module_utils import ports

DOC = (Path(__file__).resolve().parents[2] / "docs" / "ports.md").read_text()


def test_the_fixed_ports_are_the_documented_ones():
    assert (ports.AGENT_PORT, ports.ENGINE_PORT, ports.ENGINE_PLAIN_PORT) == (62286, 63002, 63001)
    for number in (62286, 63002, 63001):
        assert str(number) in DOC, number
