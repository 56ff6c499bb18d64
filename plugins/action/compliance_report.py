# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""fleet.firmware.compliance_report: the fleet against its baseline across runs (see the module's docs)."""
from __future__ import annotations

import json

from ansible.plugins.action import ActionBase

from ansible_collections.fleet.firmware.plugins.plugin_utils import compliance

ARGUMENT_SPEC = {
    "history_dir": {"type": "path", "required": True},
    "rows": {"type": "list", "elements": "dict", "default": []},
    "dest": {"type": "path"},
    "formats": {"type": "list", "elements": "str", "default": list(compliance.FORMATS), "choices": list(compliance.FORMATS)},
    "keep": {"type": "int", "default": 90},
    "keep_days": {"type": "float"},
    "runs_dir": {"type": "path"},
    "run_tag": {"type": "str"},
}


class ActionModule(ActionBase):
    """Runs on the controller only: adds a snapshot to the history, applies the retention, writes the files."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        rows = json.loads(json.dumps(args["rows"], default=str))
        try:
            if self._task.check_mode:
                model = compliance.build(args["history_dir"], runs_dir=args["runs_dir"])
                return dict(result, changed=False, summary=model["summary"], msg="check mode: no snapshot and no file written")
            snapshot, removed = (None, [])
            if rows:
                snapshot, removed = compliance.record(args["history_dir"], rows, keep=args["keep"], keep_days=args["keep_days"],
                                                      run_tag=args["run_tag"])
            model = compliance.build(args["history_dir"], runs_dir=args["runs_dir"])
            files = compliance.write(model, args["dest"] or args["history_dir"], args["formats"])
        except compliance.ComplianceError as exc:
            return dict(result, failed=True, msg=f"fleet.firmware.compliance_report: {exc}")
        summary = model["summary"]
        return dict(result, changed=True, snapshot=snapshot, removed=removed, summary=summary, files=files,
                    msg=(f"{summary['nodes_at_baseline']}/{summary['nodes']} nodes ({summary['nodes_at_baseline_pct']} %) and "
                         f"{summary['components_at_baseline_pct']} % of components at the baseline; {summary['drifted']} drifted since "
                         f"the last run; {len(model['snapshots'])} snapshot(s): {', '.join(files.values())}"))
