# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later


class ModuleDocFragment:
    """The options of the shared port probe (module_utils/probe.py), documented once for the
    fleet.firmware.reachable_ports lookup and the fleet.firmware.reach module."""

    DOCUMENTATION = r"""
options:
  timeout:
    description:
      - Seconds to wait for an answer, per probe (all probes wait at the same time).
    type: float
    default: 1.0
  family:
    description:
      - Which addresses of a name to probe. V(auto) probes every A and AAAA address.
      - A literal address of the other family is an error.
    type: str
    choices: [auto, ipv4, ipv6]
    default: auto
"""
