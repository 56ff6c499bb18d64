#!/usr/bin/python
# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: preflight_report
author: fleet.firmware developers (@fleet-firmware)
short_description: One preflight table and JSON report for the whole run
version_added: 0.1.0
description:
  - Collects the registered results of M(fleet.firmware.preflight) of every host, prints one table
    (node, address family, each port's state, result) followed by what each blocked port breaks,
    and writes the same data as JSON to O(dest).
  - A host whose preflight task failed outright (bad input) is shown as failed with its message.
  - This is an action plugin; it runs on the controller only and needs no connection.
options:
  hosts:
    description: The hosts to report on. Default every host that has O(result_var).
    type: list
    elements: str
  result_var:
    description: The variable each host registered the M(fleet.firmware.preflight) result in.
    type: str
    default: fleet_preflight_result
  dest:
    description:
      - The JSON report file on the controller, replaced atomically. Not written in check mode.
      - No file when not given.
    type: path
  mode:
    description: The report file's permissions, octal.
    type: raw
    default: '0644'
  show:
    description: Print the table (as plain text, not as a task result).
    type: bool
    default: true
attributes:
  action:
    support: full
    description: Runs on the controller only.
  async:
    support: none
    description: Not applicable.
  check_mode:
    support: full
    description: Prints the table; does not write O(dest).
  diff_mode:
    support: none
    description: No diff.
  platform:
    support: full
    platforms: [posix]
    description: The controller.
seealso:
  - module: fleet.firmware.preflight
"""

EXAMPLES = r"""
- name: Print the run's table and write the JSON report
  fleet.firmware.preflight_report:
    dest: /var/log/fleet/preflight.json
"""

RETURN = r"""
report:
  description:
    - The report, as written to O(dest). C(generated_at) (UTC, ISO 8601), C(summary) (C(nodes),
      C(ok), C(failed), C(failed_nodes)) and C(hosts), one entry per host with C(node), C(ok),
      C(path), C(connection), C(engine_port), C(controller), C(listener), C(rows), C(problems)
      and C(blocking) as returned by M(fleet.firmware.preflight).
  returned: always
  type: dict
table:
  description: The printed table, one string per line.
  returned: always
  type: list
  elements: str
dest:
  description: The file written.
  returned: when written
  type: str
"""
