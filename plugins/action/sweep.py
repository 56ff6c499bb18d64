# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action for fleet.firmware.sweep: the node part is the module; ``controller: true`` runs here.

On the controller, only dead runs are swept: a run is dead when the ``ansible-playbook`` its engine
watched is gone (its settings keep the pid and the process start time). Then its engine, if it
still runs, is stopped (and killed if it does not answer), its engine port rule on the controller
is closed, its CA key destroyed, and with ``remove_runs_older_than`` its folder removed.
"""
from __future__ import annotations

import json
import os
import shutil
import time

from ansible.plugins.action import ActionBase

from ansible_collections.fleet.firmware.plugins.module_utils.agent.config import AgentError, validate_tag
from ansible_collections.fleet.firmware.plugins.module_utils.agent.control_socket import stop_process
from ansible_collections.fleet.firmware.plugins.modules.sweep import ARGUMENT_SPEC
from ansible_collections.fleet.firmware.plugins.plugin_utils import engine as engine_mod, tls

ENGINE_ARGV = "ansible_collections.fleet.firmware.plugins.plugin_utils.engine"


def engine_processes() -> dict[str, int]:
    """run folder -> pid of every engine daemon of this user (``... engine serve <run_dir>``)."""
    found: dict[str, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                argv = handle.read().decode("utf-8", "replace").split("\0")
            if os.stat(f"/proc/{name}").st_uid != os.getuid():
                continue
        except OSError:
            continue
        if ENGINE_ARGV in argv and "serve" in argv:
            found[os.path.abspath(argv[argv.index("serve") + 1])] = int(name)
    return found


def run_is_dead(run_dir: str) -> bool:
    """The playbook the run's engine watched is gone (or the run never had an engine)."""
    try:
        with open(os.path.join(run_dir, engine_mod.SETTINGS_FILE), "rb") as handle:
            settings = json.load(handle)
    except (OSError, ValueError):
        return True
    pid, start = settings.get("watch_pid"), settings.get("watch_start")
    return not pid or engine_mod.process_start_time(pid) != start


def kill(pid: int) -> bool:
    """SIGTERM, 10 s, then SIGKILL, 5 s (the engine cleans up on SIGTERM): the agent's own stop_process."""
    return stop_process(pid, 10.0)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if args["tag"] != "*":
            try:
                validate_tag(args["tag"])
            except AgentError as exc:
                return dict(result, failed=True, msg=f"{exc} (or '*' for every run)")
        if not args["controller"]:
            result.update(self._execute_module(module_name="fleet.firmware.sweep", module_args=self._task.args, task_vars=task_vars))
            return result
        removed, live, warnings = self._controller(args)
        for warning in warnings:
            self._display.warning(warning)
        return dict(result, changed=bool(removed), removed=removed, live_runs=live, warnings_list=warnings)

    # -- the controller

    def _controller(self, args: dict) -> tuple[list[str], list[str], list[str]]:
        runs_dir = os.path.abspath(os.path.expanduser(args["runs_dir"]))
        removed: list[str] = []
        live: list[str] = []
        warnings: list[str] = []
        engines = engine_processes()
        folders = {os.path.join(runs_dir, n) for n in (os.listdir(runs_dir) if os.path.isdir(runs_dir) else [])}
        folders |= {f for f in engines if os.path.dirname(f) == runs_dir}
        for run_dir in sorted(folders):
            tag = os.path.basename(run_dir)
            if args["tag"] not in ("*", tag):
                continue
            if not run_is_dead(run_dir):
                live.append(tag)
                continue
            self._sweep_run(run_dir, tag, engines.get(run_dir), args, removed, warnings)
        return removed, live, warnings

    def _sweep_run(self, run_dir: str, tag: str, pid: int | None, args: dict, removed: list, warnings: list) -> None:
        check = self._task.check_mode
        if pid is not None:
            removed.append(f"engine pid {pid} ({tag})")
            if not check:
                handle = engine_mod.attach(run_dir)
                if handle is not None:
                    handle.stop()
                if engine_mod.process_start_time(pid) is not None and not kill(pid):
                    warnings.append(f"engine pid {pid} ({tag}) does not stop")
        self._close_engine_rule(tag, check, removed, warnings)
        if os.path.exists(os.path.join(tls.tls_dir(run_dir), "ca.key")):
            removed.append(f"CA key of {tag}")
            if not check:
                tls.destroy_ca_key(run_dir)
        days = args["remove_runs_older_than"]
        if days is not None and os.path.isdir(run_dir) and time.time() - os.path.getmtime(run_dir) > days * 86400:
            removed.append(run_dir)
            if not check:
                shutil.rmtree(run_dir, ignore_errors=True)

    @staticmethod
    def _close_engine_rule(tag: str, check: bool, removed: list, warnings: list) -> None:
        """The engine's port on the controller, opened under the run's tag (a killed engine leaves it)."""
        if os.geteuid() != 0:
            return
        from ansible_collections.fleet.firmware.plugins.module_utils.firewall import api
        try:
            result = api.close_tag(tag, check_mode=check)
        except api.FirewallError as exc:
            if "no firewall tool found" not in str(exc):
                warnings.append(f"controller firewall ({tag}): {exc}")
            return
        removed.extend(f"controller firewall rule: {rule}" for rule in result.get("rules") or [])
