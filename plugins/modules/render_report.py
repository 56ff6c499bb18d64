#!/usr/bin/python
# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: render_report
author: fleet.firmware developers (@fleet-firmware)
short_description: Render the fleet report (JSON, JUnit XML, HTML) of a run from its ledger
version_added: 0.1.0
description:
  - Reads the ledger files of a run folder (C(<run_dir>/ledger/<node>.jsonl)) written by
    M(fleet.firmware.deploy) and writes C(report.json), C(report.xml) (JUnit) and C(report.html),
    the same files as the callback C(fleet.firmware.report) writes at the end of a playbook.
  - From the ledger alone a component's status, return code, message and install duration are
    known, but not its versions before and after; pass the deploy task results in O(results) to
    have them.
  - This is an action plugin; it runs on the controller only and needs no connection. The playbook
    C(fleet.firmware.report) runs it.
  - The name differs from the callback's (C(fleet.firmware.report)) on purpose, so that the
    documentation of each is found by its own name.
options:
  run_dir:
    description: The run folder (the deploy's O(fleet.firmware.deploy#module:run_dir)), which holds C(ledger/).
    type: path
    required: true
  dest:
    description: The folder to write the files to (created when missing). Default O(run_dir).
    type: path
  formats:
    description: The files to write.
    type: list
    elements: str
    choices: [json, xml, html]
    default: [json, xml, html]
  results:
    description:
      - Optional M(fleet.firmware.deploy) results by inventory host name (for example from
        C(hostvars)), for the versions before and after and the reboot.
    type: dict
    default: {}
attributes:
  action:
    support: full
    description: Runs on the controller only.
  async:
    support: none
    description: Not applicable.
  check_mode:
    support: full
    description: Builds the report and returns its summary; writes no file.
  diff_mode:
    support: none
    description: No diff.
  platform:
    support: full
    platforms: [posix]
    description: The controller.
seealso:
  - module: fleet.firmware.deploy
"""

EXAMPLES = r"""
- name: Render the report of a run next to its ledger
  fleet.firmware.render_report:
    run_dir: /root/.ansible/fleet-firmware/runs/run-3f2a9c1e4b7d

- name: Only the JUnit file, somewhere else, with the versions from registered results
  fleet.firmware.render_report:
    run_dir: "{{ run_folder }}"
    dest: /var/log/fleet/junit
    formats: [xml]
    results: "{{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, 'deploy_result'))) }}"
"""

RETURN = r"""
summary:
  description:
    - The report's counts - C(nodes), C(nodes_by_status), C(components), C(components_by_status),
      C(rebooted) and C(reboot_required).
  returned: success
  type: dict
nodes:
  description: The node ids in the report.
  returned: success
  type: list
  elements: str
files:
  description: Format (C(json), C(xml), C(html)) to the file written (or that would be, in check mode).
  returned: success
  type: dict
"""
