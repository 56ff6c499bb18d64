#!/usr/bin/python
# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
module: compliance_report
author: fleet.firmware developers (@fleet-firmware)
short_description: The fleet's firmware against its baseline across runs (JSON, CSV, HTML)
version_added: 0.1.0
description:
  - Adds one snapshot of the fleet's plan (O(rows), what the playbook C(fleet.firmware.inventory_report) found) to a history
    folder, removes the snapshots the retention rule (O(keep), O(keep_days)) no longer keeps, then writes C(compliance.json),
    C(compliance.csv) and C(compliance.html) from every snapshot kept.
  - Per node and component - the baseline's version, the installed version, whether it is at the baseline, when it last changed
    (and by which run, from the ledgers under O(runs_dir)), and its drift since the previous snapshot of that node; for the fleet,
    the share of nodes and of components at the baseline.
  - In AWX or Automation Controller the job's container and its run folders die with the job - put O(history_dir) on a mounted
    path (Settings > Jobs > Paths to expose to isolated jobs).
  - This is an action plugin; it runs on the controller only and needs no connection.
options:
  history_dir:
    description: The history folder (created, 0700). Only files named C(inventory-<UTC time>-<random>.json) are read or removed there.
    type: path
    required: true
  rows:
    description:
      - The snapshot to add, one row per node and component - C(node), C(component), C(installed), C(baseline) (or C(target)),
        C(action), C(reason). Rows of a node that could not be planned (C(action=ERROR)) are left out. Empty - add none, only
        render the history.
    type: list
    elements: dict
    default: []
  dest:
    description: The folder to write the files to. Default O(history_dir).
    type: path
  formats:
    description: The files to write.
    type: list
    elements: str
    choices: [json, csv, html]
    default: [json, csv, html]
  keep:
    description: Keep the newest this many snapshots (1 or more).
    type: int
    default: 90
  keep_days:
    description: Also remove snapshots older than this many days (the newest always stays). Default none.
    type: float
  runs_dir:
    description: The controller's run folders (C(~/.ansible/fleet-firmware/runs)), whose ledgers say which run installed what, and when.
    type: path
  run_tag:
    description: A tag recorded with the snapshot.
    type: str
attributes:
  action:
    support: full
    description: Runs on the controller only.
  async:
    support: none
    description: Not applicable.
  check_mode:
    support: full
    description: Builds the report from the history as it is and returns its summary; adds no snapshot, writes no file.
  diff_mode:
    support: none
    description: No diff.
  platform:
    support: full
    platforms: [posix]
    description: The controller.
seealso:
  - module: fleet.firmware.deploy
  - module: fleet.firmware.render_report
"""

EXAMPLES = r"""
- name: Add this run's plan to the history and write the compliance report
  fleet.firmware.compliance_report:
    history_dir: /mnt/fleet-history
    rows: "{{ fleet_report_rows }}"
    keep: 52
    runs_dir: /root/.ansible/fleet-firmware/runs
"""

RETURN = r"""
summary:
  description:
    - C(nodes), C(nodes_at_baseline), C(nodes_at_baseline_pct), C(components), C(components_at_baseline),
      C(components_at_baseline_pct), C(drifted), C(drifted_outside_runs).
  returned: success
  type: dict
snapshot:
  description: The snapshot added (none without O(rows)).
  returned: success
  type: str
removed:
  description: The snapshots the retention rule removed.
  returned: success
  type: list
  elements: str
files:
  description: Format (C(json), C(csv), C(html)) to the file written.
  returned: success
  type: dict
"""
