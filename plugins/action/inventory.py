# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller side of fleet.firmware.inventory: run ``inventory.py`` on POSIX hosts and ``inventory.ps1`` on
Windows hosts (see plugin_utils/_twin_action.py for why an action is needed).

With ``redfish_from: controller`` the controller asks the BMC for its firmware inventory (the same
client code the node would use) and hands the items to the module as ``redfish_inventory`` (or,
when the BMC cannot be read, the reason as ``redfish_inventory_error``, so that every redfish
component says so instead of looking absent). The BMC credentials are taken out of the module's
arguments: they never reach the node."""
from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.fleet.firmware.plugins.module_utils import detect as detect_mod
from ansible_collections.fleet.firmware.plugins.plugin_utils._twin_action import TwinModuleAction, prefer_native_twin

# Arguments only the controller needs once it asked the BMC itself.
CONTROLLER_ONLY = ("redfish_username", "redfish_password", "redfish_validate_certs", "redfish_ca_path", "redfish_timeout")


def controller_settings(args: dict) -> dict:
    return {
        "address": args.get("redfish_address"),
        "username": args.get("redfish_username"),
        "password": args.get("redfish_password"),
        "validate_certs": boolean(args.get("redfish_validate_certs", True), strict=False),
        "ca_path": args.get("redfish_ca_path"),
        "timeout": float(args.get("redfish_timeout") or detect_mod.DEFAULT_TIMEOUT),
        "origin": "controller",
    }


def asked_by_controller(args: dict) -> dict:
    """The module's arguments after the controller asked the BMC: the inventory (or why not), no credentials."""
    settings = controller_settings(args)
    problems = detect_mod.redfish_settings_problems(settings)
    if problems:
        raise AnsibleActionFail("redfish: %s" % detect_mod.mask("; ".join(problems), settings))
    module_args = {key: value for key, value in args.items() if key not in CONTROLLER_ONLY}
    try:
        module_args["redfish_inventory"] = detect_mod.fetch_firmware_inventory(settings)
    except detect_mod.RedfishError as exc:
        module_args["redfish_inventory_error"] = detect_mod.mask(str(exc), settings)
    return module_args


class ActionModule(TwinModuleAction):
    MODULE = "fleet.firmware.inventory"

    def run(self, tmp=None, task_vars=None):
        args = dict(self._task.args)
        if args.get("redfish_from", "node") != "controller" or args.get("redfish_inventory") is not None:
            return super().run(tmp, task_vars)
        result = ActionBase.run(self, tmp, task_vars)
        module_args = asked_by_controller(args)
        prefer_native_twin(self._connection)
        result.update(self._execute_module(module_name=self.MODULE, module_args=module_args, task_vars=task_vars,
                                           wrap_async=self._task.async_val))
        return result
