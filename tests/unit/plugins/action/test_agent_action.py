# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The agent action's Windows branch and its rollback, with stand-ins for what cannot run here.

There is no Windows here: the WinRM connection, agent.ps1 and the admin$ copy are stand-ins
(the real admin$ copy against Samba is in tests/integration/test_agent_windows.py; the Linux
branch runs for real in tests/integration/test_agent.py). The certificates are real.
"""
from __future__ import annotations

import types

import pytest

from ansible_collections.fleet.firmware.plugins.action import agent as action_mod
from ansible_collections.fleet.firmware.plugins.modules.agent import argument_spec
from ansible_collections.fleet.firmware.plugins.plugin_utils import agent_client


def defaults(**changes) -> dict:
    args = {name: spec.get("default") for name, spec in argument_spec().items()}
    args.update(tag="win-run", **changes)
    return args


class Recorder:
    """Stands in for _execute_module: records the module arguments, answers like agent.ps1."""

    def __init__(self, answers):
        self.calls = []
        self.answers = list(answers)

    def __call__(self, module_name, module_args, task_vars):
        self.calls.append((module_name, module_args))
        return self.answers.pop(0)


def make_action(tmp_path, recorder, check_mode=False):
    action = object.__new__(action_mod.ActionModule)
    shell = types.SimpleNamespace(SHELL_FAMILY="powershell", tmpdir=None)
    action._connection = types.SimpleNamespace(_shell=shell, transport="winrm", module_implementation_preferences=(".ps1", ".exe", ""))
    action._task = types.SimpleNamespace(check_mode=check_mode, args={})
    action._templar = types.SimpleNamespace(template=lambda value: value)
    action._execute_module = recorder
    return action


TASK_VARS = {"inventory_hostname": "win01", "ansible_host": "127.0.0.1", "ansible_connection": "winrm"}
STARTED = {"changed": True, "agent_port": 62286, "pid": 4711, "address": ["127.0.0.1"],
           "staged_path": "C:\\Windows\\Temp\\fleet-firmware-win-run", "lease_expires": "2026-11-21T10:00:00Z"}


def test_windows_start_stages_over_smb_and_hands_the_ps1_a_pfx_and_the_staged_path(tmp_path, monkeypatch):
    staged = {"transfer": "smb", "port": 445, "staged_path": "C:\\Windows\\Temp\\fleet-firmware-win-run", "encrypted": True,
              "signed": True, "dialect": "3.1.1", "fallback_reason": None, "files": ["fleet_agent.ps1"], "sha256": {"fleet_agent.ps1": "ab" * 32}}
    monkeypatch.setattr(action_mod.agent_windows, "stage", lambda *a: staged)
    recorder = Recorder([STARTED])
    action = make_action(tmp_path, recorder)
    result = action._started(defaults(run_dir=str(tmp_path / "run"), verify=False), TASK_VARS)
    name, sent = recorder.calls[0]
    assert name == "fleet.firmware.agent"
    assert sent["staging_dir"] == staged["staged_path"] and sent["controller"] == ["127.0.0.1"] and sent["node_id"] == "win01"
    assert sent["agent_sha256"] == staged["sha256"]  # the task checks what was staged, hashed on the controller
    assert {"server_pfx", "server_pfx_password", "token", "ca_fingerprint"} <= set(sent["secrets"])
    assert not set(action_mod.ACTION_ONLY) & set(sent)
    assert result["transfer"] == "smb" and result["transfer_details"]["encrypted"] is True
    session = agent_client.load_session(str(tmp_path / "run"), "win01")
    assert session["port"] == 62286 and session["pid"] == 4711 and "secrets" not in session


def test_a_failed_windows_start_removes_the_staged_files(tmp_path, monkeypatch):
    staged = {"transfer": "winrm", "staged_path": "C:\\x", "fallback_reason": "445 filtered", "sha256": {}}
    monkeypatch.setattr(action_mod.agent_windows, "stage", lambda *a: staged)
    unstaged = []
    monkeypatch.setattr(action_mod.agent_windows, "unstage", lambda action, tv, tag, smb: unstaged.append(tag) or {"changed": True, "removed": ["C:\\x"]})
    recorder = Recorder([{"failed": True, "msg": "port 62286 is already in use"}])
    result = make_action(tmp_path, recorder)._started(defaults(run_dir=str(tmp_path / "run"), verify=False), TASK_VARS)
    assert result["failed"] and "already in use" in result["msg"]
    assert unstaged == ["win-run"]


def test_when_the_controller_cannot_reach_the_agent_it_is_removed_again(tmp_path, monkeypatch):
    monkeypatch.setattr(action_mod.agent_windows, "stage", lambda *a: {"transfer": "smb", "staged_path": "C:\\x", "sha256": {}})

    class Unreachable:
        def status(self):
            raise agent_client.AgentClientError("the agent cannot be reached over mutual TLS: timed out")

    monkeypatch.setattr(action_mod.agent_client.AgentClient, "from_session", classmethod(lambda cls, s, timeout=0: Unreachable()))
    recorder = Recorder([STARTED, {"changed": True, "removed": ["agent pid 4711"]}])
    with pytest.raises(action_mod.AgentActionError, match="cannot talk to it: .*timed out. It was stopped and removed"):
        make_action(tmp_path, recorder)._started(defaults(run_dir=str(tmp_path / "run")), TASK_VARS)
    assert recorder.calls[1][1]["state"] == "absent"


def test_transfer_choices_are_checked_per_path(tmp_path):
    with pytest.raises(action_mod.AgentActionError, match="transfer='connection' does not apply to a Windows node"):
        make_action(tmp_path, Recorder([]))._started(defaults(transfer="connection"), TASK_VARS)
    with pytest.raises(action_mod.AgentActionError, match="transfer='smb' does not apply to a Linux node"):
        action_mod.ActionModule._check_transfer("smb", windows=False)


def test_windows_absent_merges_what_the_module_and_the_unstage_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(action_mod.agent_windows, "unstage", lambda *a: {"changed": True, "removed": ["\\\\h\\ADMIN$\\Temp\\fleet-firmware-win-run"]})
    recorder = Recorder([{"changed": False, "removed": []}])
    result = make_action(tmp_path, recorder)._absent(defaults(state="absent", run_dir=str(tmp_path / "run")), TASK_VARS)
    assert result["changed"] is True and result["removed"] == ["\\\\h\\ADMIN$\\Temp\\fleet-firmware-win-run"]
