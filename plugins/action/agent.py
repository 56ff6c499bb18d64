# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Action for fleet.firmware.agent: certificates, build, transfer, start, check, and rollback.

Controller side of the agent's life (docs/agent.md). Every failure after something was put on
the node runs the module with ``state=absent`` before the task fails, so a failed start leaves
nothing behind; the remote temporary folder goes in a ``finally``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import shlex

from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.fleet.firmware.plugins.module_utils import agent_launch
from ansible_collections.fleet.firmware.plugins.module_utils.agent import AgentError, validate_tag
from ansible_collections.fleet.firmware.plugins.modules.agent import argument_spec
from ansible_collections.fleet.firmware.plugins.plugin_utils import agent_build, agent_client, agent_windows, smb_stage, tls
from ansible_collections.fleet.firmware.plugins.plugin_utils import engine as engine_mod
from ansible_collections.fleet.firmware.plugins.plugin_utils.smb_stage import SmbStageError, SmbTarget
from ansible_collections.fleet.firmware.plugins.plugin_utils._twin_action import prefer_native_twin
# Moved to the deploy's rooms (issue 15); the old names stay importable from here.
from ansible_collections.fleet.firmware.plugins.plugin_utils.deploy.addresses import (  # noqa: F401  pylint: disable=unused-import
    AddressError, check_run_dir, default_run_dir, facing_address, node_id_of, resolve, run_lock, unique_node_id,
)

display = Display()
MODULE = "fleet.firmware.agent"
WINDOWS_CONNECTIONS = ("winrm", "psrp", "ansible.builtin.winrm", "ansible.builtin.psrp", "ansible.windows.psrp")
# Arguments the module never needs (the action consumes them).
ACTION_ONLY = ("run_dir", "verify", "transfer", "smb_user", "smb_password")
TRANSFER_DETAILS = ("port", "share_path", "encrypted", "signed", "dialect", "fallback_reason")
# The whole program of the one command (agent_launch.py says what follows it on stdin).
LOADER = "import sys;b=sys.stdin.buffer;exec(b.read(int(b.readline())))"
PYTHONS = ("python3", "/usr/bin/python3", "/usr/libexec/platform-python")
STDIN_TRANSPORTS = ("ssh", "paramiko_ssh", "local")
TTY_REFUSAL = re.compile(r"must have a tty|a terminal is required|no tty present|must be run from a terminal", re.IGNORECASE)


class AgentActionError(Exception):
    """A failure with a message for the user (the task fails with it)."""


class StdinUnusable(Exception):
    """The node cannot take the agent on stdin (sudo's requiretty, ...): stage it as a file instead."""


class ActionModule(ActionBase):
    TRANSFERS_FILES = True
    _requires_connection = True
    # Set by the deploy action on its sub-action (not options of the agent module): how to start
    # the agent (start: auto|stdin|staged) and what the launcher answers along (plan, engine).
    launch_extras: dict = {}

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        validation, args = self.validate_argument_spec(argument_spec=argument_spec())
        args = dict(args)
        try:
            validate_tag(args["tag"])
            if args["state"] == "absent":
                result.update(self._absent(args, task_vars))
            else:
                result.update(self._started(args, task_vars))
        except (AgentActionError, AddressError, AgentError, agent_client.AgentClientError, tls.TLSError) as exc:
            result.update(failed=True, msg=str(exc))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    # -- helpers

    def _powershell(self) -> bool:
        return getattr(self._connection._shell, "SHELL_FAMILY", "") == "powershell"

    def _windows(self, task_vars: dict) -> bool:
        if self._powershell():
            return True
        return self._connection.transport in WINDOWS_CONNECTIONS or task_vars.get("fleet_path") == "windows"

    def _host(self, task_vars: dict) -> str:
        host = task_vars.get("ansible_host") or task_vars.get("inventory_hostname")
        return to_text(self._templar.template(host))

    def _module(self, args: dict, task_vars: dict) -> dict:
        prefer_native_twin(self._connection)
        module_args = {k: v for k, v in args.items() if k not in ACTION_ONLY and v is not None}
        answer = self._execute_module(module_name=MODULE, module_args=module_args, task_vars=task_vars)
        if answer.get("failed") and self._no_python(answer):
            interpreter = task_vars.get("ansible_python_interpreter") or "the discovered Python"
            answer["msg"] = (f"no usable Python on the node ({interpreter}): the Linux agent needs Python 3.6 or later; "
                             "install python3 or set ansible_python_interpreter")
        return answer

    @staticmethod
    def _no_python(answer: dict) -> bool:
        text = " ".join(to_text(answer.get(k, "")) for k in ("module_stderr", "module_stdout", "msg"))
        return answer.get("rc") == 127 or ("python" in text.lower() and ("not found" in text or "No such file" in text))

    # -- started

    def _started(self, args: dict, task_vars: dict) -> dict:
        windows = self._windows(task_vars)
        self._check_transfer(args["transfer"], windows)
        tag = args["tag"]
        run_dir = check_run_dir(args["run_dir"] or default_run_dir(tag))
        node = unique_node_id(to_text(task_vars.get("inventory_hostname", "node")),
                              [to_text(h) for h in task_vars.get("ansible_play_hosts_all") or []])
        node_addresses = resolve(self._host(task_vars))
        controller = args["controller"] or list(dict.fromkeys(facing_address(a) for a in node_addresses))
        session = self._credentials(run_dir, tag, node, node_addresses)
        module_args = dict(args, controller=controller, node_id=node, run_id=tag, secrets=session.pop("secrets"))
        if self._task.check_mode:
            return self._module(module_args, task_vars)
        if windows:
            staged = self._stage_windows(args, task_vars)
            module_args.update(secrets=agent_windows.windows_secrets(module_args["secrets"]), staging_dir=staged["staged_path"],
                               agent_sha256=staged["sha256"])
            transfer = {"transfer": staged["transfer"], "transfer_details": {k: staged.get(k) for k in TRANSFER_DETAILS}}
        else:
            transfer = {"transfer": self._connection.transport.rsplit(".", 1)[-1]}
        if windows and not self._powershell():
            # admin$ worked, but agent.ps1 needs a PowerShell connection (WinRM/PSRP) to run.
            self._unstage_windows(args, task_vars)
            raise AgentActionError(f"the agent was staged over admin$ ({transfer['transfer']}) but cannot start: this Windows host is "
                                   f"reached over {self._connection.transport!r}, and the Windows agent needs a WinRM or PSRP connection; "
                                   "the staged files were removed")
        answer = None
        if not windows and self._start_mode() == "stdin":
            try:
                answer = self._launch_over_stdin(module_args, run_dir, task_vars)
                transfer["agent_start"] = "stdin"
            except StdinUnusable as exc:
                if self.launch_extras.get("start") == "stdin":
                    raise AgentActionError(f"agent_start=stdin cannot be used on this node: {exc}") from None
                display.vvv(f"the agent cannot start over stdin here ({exc}); staging it as a file instead")
        if answer is None:
            if not windows:
                module_args["agent_src"] = self._transfer_agent(run_dir)
                transfer["agent_start"] = "staged"
            answer = self._module(module_args, task_vars)
        if answer.get("failed") and windows:
            self._unstage_windows(args, task_vars)  # the module removed what it started; the files go here
        if answer.get("failed") or not answer.get("changed"):
            return answer
        session.update(addresses=answer["address"], port=answer["agent_port"], pid=answer["pid"], staged_path=answer["staged_path"])
        if args["verify"] and answer.get("inbound", True):
            # Pull mode has no port to verify: the agent's first uplink to the engine is its sign of life.
            self._verify_or_roll_back(args, task_vars, session)
        answer.update(transfer, session=agent_client.save_session(run_dir, node, session))
        return answer

    @staticmethod
    def _check_transfer(transfer: str, windows: bool) -> None:
        allowed = ("auto", "smb", "winrm") if windows else ("auto", "connection")
        if transfer not in allowed:
            kind = "Windows" if windows else "Linux"
            raise AgentActionError(f"transfer={transfer!r} does not apply to a {kind} node: use one of {', '.join(allowed)}")

    def _smb_target(self, args: dict, task_vars: dict) -> SmbTarget | None:
        target = agent_windows.smb_target_from_vars(self, task_vars)
        if args["smb_user"] or args["smb_password"]:
            if target is None:
                target = SmbTarget(self._host(task_vars), args["smb_user"] or "", args["smb_password"] or "")
            target = dataclasses.replace(target, user=args["smb_user"] or target.user, password=args["smb_password"] or target.password)
        return target

    def _stage_windows(self, args: dict, task_vars: dict) -> dict:
        """admin$ first (or only, with transfer=smb), WinRM when admin$ cannot be used (or with transfer=winrm)."""
        smb = self._smb_target(args, task_vars)
        try:
            if args["transfer"] == "winrm":
                return agent_windows.stage_winrm(self, args["tag"], smb_stage.read_files(agent_windows.agent_files()))
            if args["transfer"] == "smb":
                if smb is None:
                    raise AgentActionError("transfer=smb needs SMB credentials: smb_user and smb_password, or fleet_smb_user/fleet_smb_password")
                return smb_stage.stage_files(smb, args["tag"], smb_stage.read_files(agent_windows.agent_files())) | {"fallback_reason": None}
            return agent_windows.stage(self, task_vars, args["tag"], agent_windows.agent_files(), smb)
        except (SmbStageError, agent_windows.AgentStageError) as exc:
            raise AgentActionError(f"cannot stage the agent on the node: {exc}") from None

    def _unstage_windows(self, args: dict, task_vars: dict) -> dict:
        try:
            return agent_windows.unstage(self, task_vars, args["tag"], self._smb_target(args, task_vars))
        except (SmbStageError, agent_windows.AgentStageError) as exc:
            display.warning(f"removing the staged agent files failed: {exc}")
            return {"changed": False, "removed": []}

    def _credentials(self, run_dir: str, tag: str, node: str, node_addresses: list[str]) -> dict:
        """The run's CA (made once), this node's two certificates and a new token."""
        # The run's engine (a deploy started it) issues them: this worker then never imports cryptography.
        engine = engine_mod.attach(run_dir) if os.path.exists(os.path.join(run_dir, engine_mod.STATE_FILE)) else None
        issued = None
        if engine is not None:
            try:
                issued = engine.issue_agent(node, node_addresses)
            except engine_mod.EngineError as exc:
                display.vvv(f"the run's engine did not issue the agent's certificates ({exc}); issuing them here")
        if issued is None:
            with run_lock(run_dir):
                if not os.path.exists(os.path.join(tls.tls_dir(run_dir), "ca.pem")):
                    tls.create_ca(run_dir, tag)
                issued = tls.issue_agent(run_dir, node, node_addresses)
        token = secrets.token_urlsafe(32)
        with open(issued["ca_cert"], encoding="ascii") as ca, open(issued["server_cert"], encoding="ascii") as cert, \
                open(issued["server_key"], encoding="ascii") as key:
            agent_secrets = {"token": token, "ca_cert": ca.read(), "ca_fingerprint": issued["ca_fingerprint"],
                             "server_cert": cert.read(), "server_key": key.read()}
        # The agent has its key now (on stdin); the controller keeps no copy of it.
        os.unlink(issued["server_key"])
        return {"tag": tag, "node": node, "token": token, "ca_cert": issued["ca_cert"], "ca_fingerprint": issued["ca_fingerprint"],
                "client_cert": issued["client_cert"], "client_key": issued["client_key"], "secrets": agent_secrets}

    def _transfer_agent(self, run_dir: str) -> str:
        local, _digest = agent_build.build(os.path.join(run_dir, "build"))
        tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
        remote = self._connection._shell.join_path(tmpdir, "agent.pyz")
        try:
            self._transfer_file(local, remote)
        except AnsibleError as exc:
            raise AgentActionError(f"cannot transfer the agent to the node: {exc}") from None
        self._fixup_perms2((tmpdir, remote))
        return remote

    # -- one command, the loader and the zipapp on stdin (issue 15)

    def _start_mode(self) -> str:
        """``stdin`` (one command, no file transfer) or ``staged`` (today's path: the zipapp as a
        file in Ansible's temporary folder, then the agent module). ``auto`` picks stdin unless the
        connection or the become method cannot carry binary stdin: su reads its password from a
        terminal (no terminal while stdin carries data); a node whose sudo has ``requiretty`` is
        found out on the first try and staged instead."""
        wanted = self.launch_extras.get("start", "staged")
        if wanted == "staged":
            return "staged"
        transport = (self._connection.transport or "").rsplit(".", 1)[-1]
        problem = None
        if transport not in STDIN_TRANSPORTS:
            problem = f"the {transport!r} connection is not one of {', '.join(STDIN_TRANSPORTS)}"
        become = self._connection.become if self._play_context.become else None
        if become is not None and (getattr(become, "require_tty", False) or not getattr(become, "pipelining", True)):
            problem = f"become_method {become.name.rsplit('.', 1)[-1]!r} needs a terminal"
        if problem and wanted == "stdin":
            raise AgentActionError(f"agent_start=stdin cannot be used on this node: {problem}; use agent_start=auto or staged")
        return "staged" if problem else "stdin"

    def _python_command(self, task_vars: dict) -> str:
        interpreter = task_vars.get("ansible_python_interpreter")
        interpreter = to_text(self._templar.template(interpreter)) if interpreter else ""
        if interpreter and not interpreter.startswith("auto"):
            return f"{shlex.quote(interpreter)} -c {shlex.quote(LOADER)}"
        candidates = " ".join(PYTHONS)
        return (f"for p in {candidates}; do if command -v \"$p\" >/dev/null 2>&1; then exec \"$p\" -c {shlex.quote(LOADER)}; fi; done; "
                "echo 'no python3 on the node' >&2; exit 127")

    def _launch_over_stdin(self, module_args: dict, run_dir: str, task_vars: dict) -> dict:
        """Start the agent with one command through become: loader, parameters (with the secrets)
        and zipapp on its stdin; the answer (one line) is the module's, plus the plan, the free
        space and whether the node reaches the engine."""
        local, _digest = agent_build.build(os.path.join(run_dir, "build"))
        with open(local, "rb") as handle:
            data = handle.read()
        with open(agent_launch.__file__, "rb") as handle:
            loader = handle.read()
        config = {"tag": module_args["tag"], "run_id": module_args["run_id"], "node_id": module_args["node_id"],
                  "port": module_args["agent_port"], "bind": module_args.get("bind") or [], "controller": module_args["controller"],
                  "lease": module_args["lease"], "firewall": {"open": module_args["open_firewall"], "backend": module_args["firewall_backend"]}}
        staging = (module_args.get("staging_dir") or f"/var/tmp/fleet-firmware-{module_args['tag']}").rstrip("/")
        params = {"tag": module_args["tag"], "staging": staging, "agent_size": len(data), "secrets": module_args["secrets"],
                  "config": config, "start_timeout": module_args.get("start_timeout") or 30,
                  "plan": self.launch_extras.get("plan"), "engine": self.launch_extras.get("engine"), "pull": self.launch_extras.get("pull")}
        in_data = str(len(loader)).encode() + b"\n" + loader + json.dumps(params).encode("utf-8") + b"\n" + data
        try:
            out = self._low_level_execute_command(self._python_command(task_vars), sudoable=True, in_data=in_data)
        except AnsibleError as exc:
            if TTY_REFUSAL.search(str(exc)):
                raise StdinUnusable(str(exc)) from None
            raise AgentActionError(f"the agent's launcher could not run on the node: {exc}") from None
        for line in to_text(out.get("stdout", "")).splitlines():
            if line.startswith("FLEET-LAUNCH "):
                return json.loads(line[len("FLEET-LAUNCH "):])
        said = to_text(out.get("stderr") or out.get("stdout") or "").strip()[-500:]
        if out.get("rc") == 127 and "python" in said:
            raise AgentActionError("no usable Python on the node: the Linux agent needs Python 3.6 or later; "
                                   "install python3 or set ansible_python_interpreter")
        if TTY_REFUSAL.search(said):
            raise StdinUnusable(said)
        raise AgentActionError(f"the agent's launcher gave no answer (rc={out.get('rc')}): {said}")

    def _verify_or_roll_back(self, args: dict, task_vars: dict, session: dict) -> None:
        try:
            agent_client.AgentClient.from_session(session, timeout=10).status()
        except agent_client.AgentClientError as exc:
            rollback = self._module(dict(args, state="absent"), task_vars)
            left = "" if not rollback.get("failed") else f"; removing it failed too: {rollback.get('msg')}"
            raise AgentActionError(f"the agent started, but the controller cannot talk to it: {exc}. It was stopped and removed{left}") from None

    # -- absent

    def _absent(self, args: dict, task_vars: dict) -> dict:
        windows = self._windows(task_vars)
        if windows and not self._powershell():
            # No PowerShell to stop an agent with (none could have started): only the staged files.
            answer = {"changed": False, "removed": []}
        else:
            answer = self._module(args, task_vars)
        if answer.get("failed") or self._task.check_mode or answer.get("left_alone"):
            return answer  # left_alone: the session file is the newer start's too (the same run folder)
        if windows:
            # The module stopped the agent and removed its folder; this releases what SMB staged, if anything is left.
            unstaged = self._unstage_windows(args, task_vars)
            answer["removed"] = list(answer.get("removed", [])) + [r for r in unstaged.get("removed", []) if r not in answer.get("removed", [])]
            answer["changed"] = bool(answer.get("changed") or unstaged.get("changed"))
        node = node_id_of(to_text(task_vars.get("inventory_hostname", "node")))
        agent_client.remove_session(args["run_dir"] or default_run_dir(args["tag"]), node)
        return answer
