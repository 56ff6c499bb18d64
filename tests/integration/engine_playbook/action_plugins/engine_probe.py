# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Test-only action: what the deploy action will do first, from a real forked worker."""
from __future__ import annotations

import os

from ansible.plugins.action import ActionBase

from ansible_collections.fleet.firmware.plugins.plugin_utils import engine


class ActionModule(ActionBase):
    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        settings = engine.EngineSettings(address=["127.0.0.1"], port=0, tls=True)
        handle = engine.attach_or_start(self._task.args["run_dir"], settings)
        token = handle.register_node(task_vars["inventory_hostname"])
        result.update(engine_pid=handle.pid, worker_pid=os.getpid(), url=handle.url, token_length=len(token),
                      watched=engine.find_playbook_pid(), changed=False)
        return result
