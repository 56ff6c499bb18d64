# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The firewall action picks firewall.py for POSIX hosts and firewall.ps1 for Windows hosts.

The loader is Ansible's own, on this collection. The connection is a stand-in (only its shell
family and module preferences matter); the real ssh path runs in tests/integration/test_firewall.py.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


COLLECTIONS = Path(__file__).resolve().parents[4] / "build" / "collections"
# Ansible's loader in a fresh interpreter: other tests of this session have already imported
# ansible_collections, and the loader's finder must own that package from the start.
RESOLVE = """
import sys
from ansible.plugins.loader import init_plugin_loader, module_loader
init_plugin_loader([sys.argv[1]])
for extension in sys.argv[2:]:
    found = module_loader.find_plugin_with_context("fleet.firmware.firewall", "" if extension == "-" else extension)
    if found.resolved:
        print(found.plugin_resolved_path.rsplit("/", 1)[1])
        break
"""


def resolve(preferences) -> str:
    argv = [sys.executable, "-c", RESOLVE, str(COLLECTIONS)] + [p or "-" for p in preferences]
    found = subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
    assert found, "fleet.firmware.firewall not found"
    return found


def test_without_the_action_a_posix_host_would_get_the_powershell_twin():
    """What the action exists for: an extension-less lookup takes the first file, firewall.ps1."""
    assert resolve(("",)) == "firewall.ps1"


class Shell:
    def __init__(self, family):
        self.SHELL_FAMILY = family
        self.tmpdir = None


class Connection:
    def __init__(self, family, preferences):
        self._shell = Shell(family)
        self.module_implementation_preferences = preferences


class Task:
    args = {"ports": ["62286/tcp"], "tag": "run-1"}
    async_val = 0
    check_mode = False
    diff = False
    action = "fleet.firmware.firewall"


@pytest.mark.parametrize("family, preferences, expected", [
    ("sh", ("",), "firewall.py"),                      # ssh, local
    ("powershell", (".ps1", ".exe", ""), "firewall.ps1"),  # winrm, psrp, ssh to Windows
])
def test_the_action_runs_the_implementation_of_the_host(monkeypatch, family, preferences, expected):
    from ansible_collections.fleet.firmware.plugins.action.firewall import ActionModule

    connection = Connection(family, preferences)
    action = ActionModule.__new__(ActionModule)
    action._connection = connection
    action._task = Task()
    seen = {}

    def execute(module_name, module_args, task_vars, wrap_async):
        seen["file"] = resolve(connection.module_implementation_preferences)
        seen["call"] = (module_name, module_args, task_vars, wrap_async)
        return {"changed": True, "backend": "nftables"}

    monkeypatch.setattr(action, "_execute_module", execute)
    monkeypatch.setattr("ansible.plugins.action.ActionBase.run", lambda self, tmp=None, task_vars=None: {"base": "kept"})
    task_vars = {"inventory_hostname": "n1"}
    result = action.run(task_vars=task_vars)
    # The module's own result on top of ActionBase's, the module called by its FQCN with the
    # task's arguments and variables, and the implementation that fits the host's shell.
    assert result == {"base": "kept", "changed": True, "backend": "nftables"}
    assert seen == {"file": expected, "call": ("fleet.firmware.firewall", Task.args, task_vars, Task.async_val)}
