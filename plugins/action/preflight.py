# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""fleet.firmware.preflight: one node's ports in both directions (see the module's docs).

Controller -> node: the shared probe, from this worker. Node -> controller: the
fleet.firmware.reach module on the node, towards the controller's engine port, while this worker
listens there (plugin_utils/preflight_listener.py says why that is safe with many workers).
"""
from __future__ import annotations

import typing as t

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.fleet.firmware.plugins.module_utils import ports as fleet_ports
from ansible_collections.fleet.firmware.plugins.module_utils import probe as fleet_probe
from ansible_collections.fleet.firmware.plugins.plugin_utils import preflight as pf
from ansible_collections.fleet.firmware.plugins.plugin_utils.preflight_listener import listening

ARGUMENT_SPEC = {
    "path": {"type": "str", "choices": list(fleet_ports.PATHS)},
    "addresses": {"type": "list", "elements": "str"},
    "controller_address": {"type": "list", "elements": "str", "default": []},
    "engine_port": {"type": "int", "default": fleet_ports.ENGINE_PORT},
    "agent_port": {"type": "int", "default": fleet_ports.AGENT_PORT},
    "engine_run_dir": {"type": "path"},
    "listen": {"type": "bool", "default": True},
    "timeout": {"type": "float", "default": 2.0},
    "delivery": {"type": "str", "choices": list(fleet_ports.DELIVERIES), "default": "auto"},
    "fail_on_blocking": {"type": "bool", "default": True},
}


class ActionModule(ActionBase):
    """Check one node's ports in both directions and say what each blocked port breaks."""

    TRANSFERS_FILES = False
    _supports_check_mode = True  # only probes; the same in check mode

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # tmp no longer has any effect
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        try:
            result.update(self._preflight(args, task_vars or {}))
        except (pf.PreflightError, fleet_probe.ProbeError) as exc:
            return {**result, "failed": True, "msg": f"fleet.firmware.preflight: {exc}"}
        if result["blocking"] and args["fail_on_blocking"]:
            result.update(failed=True, msg="; ".join(result["blocking"]))
        else:
            warnings = sum(1 for p in result["problems"] if p["severity"] == fleet_ports.WARNING)
            result["msg"] = "blocked: " + "; ".join(result["blocking"]) if result["blocking"] else f"ok ({warnings} warning(s))"
        return result

    # ---------------------------------------------------------------------------------------

    def _connection_facts(self) -> dict:
        """The connection's plugin, target and port, as the task's connection resolved them."""
        connection = self._connection
        kind = getattr(connection, "transport", "") or self._play_context.connection or ""
        host = self._option("host", "remote_addr") or self._play_context.remote_addr
        port = pf.connection_port(kind, self._option("port"), self._option("scheme", "protocol"))
        return {"type": kind, "host": host, "port": port, "shell": getattr(connection._shell, "SHELL_FAMILY", "")}

    def _option(self, *names: str) -> t.Any:
        for name in names:
            try:
                value = self._connection.get_option(name)
            except (AnsibleError, KeyError):
                continue
            if value not in (None, ""):
                return value
        return None

    def _preflight(self, args: dict, task_vars: dict) -> dict:
        conn = self._connection_facts()
        path = args["path"] or pf.default_path(conn["type"], conn["shell"])
        engine_port = pf.check_port("engine_port", args["engine_port"])
        plans = pf.plan_ports(path, pf.check_port("agent_port", args["agent_port"]), engine_port, conn["port"])
        node_addresses = pf.resolve_addresses(args["addresses"] or [conn["host"] or task_vars.get("inventory_hostname")])
        controller = pf.controller_addresses(node_addresses, args["controller_address"])
        to_node = [p for p in plans if p.direction == fleet_ports.TO_NODE]
        seen, _warnings = fleet_probe.check([a for _f, a in node_addresses], [p.label for p in to_node], timeout=args["timeout"])
        rows = [self._row(family, address, controller, to_node, ports) for (family, address), ports in zip(node_addresses, seen)]
        engine_label = plans[-1].label
        reach, listener = self._return_direction(args, conn, rows, controller, engine_port, task_vars)
        for row in rows:
            row["ports"][engine_label] = self._engine_entry(row, reach, engine_label, conn)
        problems = pf.evaluate(plans, rows, args["delivery"])
        blocking = pf.settle(problems, rows)
        return {"changed": False, "path": path, "connection": conn, "engine_port": engine_port, "controller": controller,
                "listener": listener, "rows": rows, "problems": problems, "blocking": blocking}

    @staticmethod
    def _row(family: str, address: str, controller: dict, plans: list, ports: dict) -> dict:
        entries = {}
        for plan in plans:
            seen = ports[plan.label]
            entries[plan.label] = {"state": seen["state"], "role": plan.role, "direction": plan.direction, "connection": plan.connection,
                                   "latency_ms": seen.get("latency_ms"), "error": seen.get("error")}
        return {"family": family, "address": address, "controller_address": controller.get(family), "ports": entries}

    def _return_direction(self, args: dict, conn: dict, rows: list, controller: dict, engine_port: int, task_vars: dict) -> tuple[dict, dict]:
        """Run the reach module on the node towards the controller's engine port, listening there
        meanwhile. Returns (reach results by controller address or an error text, listener status)."""
        targets = [a for a in dict.fromkeys(controller.values()) if a]
        if not targets:
            return {}, {}
        if not self._connection_usable(rows, conn):
            return {"error": f"Ansible cannot connect to the node ({conn['type']} port {conn['port']} not open)"}, {}
        listen_on = targets if args["listen"] else []
        with listening(listen_on, engine_port, args["engine_run_dir"]) as listener:
            return self._run_reach(targets, f"{engine_port}/tcp", args["timeout"], task_vars), listener

    @staticmethod
    def _connection_usable(rows: list, conn: dict) -> bool:
        if conn["port"] is None:
            return True
        label = f"{conn['port']}/tcp"
        return any(row["ports"].get(label, {}).get("state") == "open" for row in rows)

    def _run_reach(self, targets: list, label: str, timeout: float, task_vars: dict) -> dict:
        connection = self._connection
        if getattr(connection._shell, "SHELL_FAMILY", "") != "powershell":
            # As the reach action does: POSIX hosts must load reach.py, not its .ps1 twin.
            preferences = tuple(connection.module_implementation_preferences)
            connection.module_implementation_preferences = (".py",) + tuple(p for p in preferences if p != ".py")
        args = {"hosts": targets, "ports": [label], "timeout": timeout, "errors": "strict"}
        try:
            out = self._execute_module(module_name="fleet.firmware.reach", module_args=args, task_vars=task_vars)
        except (AnsibleConnectionFailure, AnsibleError) as exc:
            return {"error": f"the reach module could not run on the node: {exc}"}
        if out.get("failed") or out.get("unreachable") or "reach" not in out:
            return {"error": f"the reach module failed on the node: {out.get('msg') or out.get('module_stderr') or out}"}
        return out["reach"]

    @staticmethod
    def _engine_entry(row: dict, reach: dict, label: str, conn: dict) -> dict:
        base = {"role": "engine", "direction": fleet_ports.FROM_NODE, "connection": False, "latency_ms": None}
        target = row["controller_address"]
        if target is None:
            return {**base, "state": fleet_probe.UNRESOLVED,
                    "error": f"the controller has no {row['family']} address on a route to this node; set fleet_controller_address"}
        if "error" in reach:
            return {**base, "state": pf.NOT_CHECKED, "error": reach["error"]}
        seen = reach[target][label]
        return {**base, "state": seen["state"], "latency_ms": seen.get("latency_ms"), "error": seen.get("error"), "to": target}
