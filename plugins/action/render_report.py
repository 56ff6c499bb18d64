# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""fleet.firmware.render_report: the fleet report of a run from its ledger (see the module's docs)."""
from __future__ import annotations

import json
import os

from ansible.plugins.action import ActionBase

from ansible_collections.fleet.firmware.plugins.plugin_utils import report as report_mod

ARGUMENT_SPEC = {
    "run_dir": {"type": "path", "required": True},
    "dest": {"type": "path"},
    "formats": {"type": "list", "elements": "str", "default": list(report_mod.FORMATS), "choices": list(report_mod.FORMATS)},
    "results": {"type": "dict", "default": {}},
}


class ActionModule(ActionBase):
    """Runs on the controller only: reads the ledger, writes the files."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        run_dir = args["run_dir"]
        if not os.path.isdir(os.path.join(run_dir, "ledger")):
            return dict(result, failed=True, msg=f"{run_dir} is not a run folder: it has no ledger/ folder")
        results = self._plain(args["results"])
        try:
            model = report_mod.build_model(run_dir, results)
        except report_mod.ReportError as exc:
            return dict(result, failed=True, msg=f"fleet.firmware.render_report: {exc}")
        dest = args["dest"] or run_dir
        paths = {fmt: os.path.join(dest, report_mod.FILE_NAMES[fmt]) for fmt in args["formats"]}
        result.update(changed=False, summary=model["summary"], nodes=[n["node"] for n in model["nodes"]], files=paths)
        if self._task.check_mode:
            result["msg"] = "check mode: the report files were not written"
            return result
        try:
            report_mod.write_reports(model, dest, args["formats"])
        except report_mod.ReportError as exc:
            return dict(result, failed=True, msg=f"fleet.firmware.render_report: {exc}")
        result.update(changed=True, msg=f"report of run {model['run_tag']}: {', '.join(paths.values())}")
        return result

    @staticmethod
    def _plain(results: dict) -> dict:
        try:
            plain = json.loads(json.dumps(results, default=str))
        except (TypeError, ValueError):
            return {}
        return {str(host): value for host, value in plain.items() if isinstance(value, dict)}
