# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""fleet.firmware.preflight_report: the run's one preflight table and JSON (see the module's docs)."""
from __future__ import annotations

import json
import os
import tempfile

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.fleet.firmware.plugins.plugin_utils import preflight as pf

display = Display()

ARGUMENT_SPEC = {
    "hosts": {"type": "list", "elements": "str"},
    "result_var": {"type": "str", "default": "fleet_preflight_result"},
    "dest": {"type": "path"},
    "mode": {"type": "raw", "default": "0644"},
    "show": {"type": "bool", "default": True},
}


class ActionModule(ActionBase):
    """Collect every host's preflight result, print the table, write the JSON."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        hostvars = (task_vars or {}).get("hostvars", {})
        names = args["hosts"] if args["hosts"] is not None else [h for h in hostvars if args["result_var"] in hostvars[h]]
        results = {name: self._result_of(hostvars, name, args["result_var"]) for name in names}
        report = pf.build_report(results)
        table = pf.render_table(report)
        if args["show"]:
            display.display("\n".join(table))
        result.update(changed=False, report=report, table=table)
        if args["dest"]:
            if self._task.check_mode:
                result["msg"] = f"check mode: {args['dest']} not written"
            else:
                try:
                    self._write(args["dest"], report, args["mode"])
                except (OSError, ValueError) as exc:
                    return {**result, "failed": True, "msg": f"fleet.firmware.preflight_report: cannot write {args['dest']}: {exc}"}
                result.update(changed=True, dest=args["dest"])
        return result

    @staticmethod
    def _result_of(hostvars, name: str, var: str) -> dict:
        try:
            return json.loads(json.dumps(hostvars[name].get(var) or {}, default=str))
        except (KeyError, TypeError, ValueError):
            return {}

    @staticmethod
    def _write(dest: str, report: dict, mode) -> None:
        """Write atomically (a reader never sees half a report) with the given mode."""
        folder = os.path.dirname(os.path.abspath(dest))
        os.makedirs(folder, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=".preflight-", dir=folder)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(report, out, indent=2, sort_keys=False)
                out.write("\n")
            os.chmod(temp, int(str(mode), 8) if not isinstance(mode, int) else mode)
            os.replace(temp, dest)
        except BaseException:
            if os.path.exists(temp):
                os.unlink(temp)
            raise
