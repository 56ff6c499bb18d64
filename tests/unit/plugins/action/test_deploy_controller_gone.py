# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The deploy action when ``ansible-playbook`` is killed: its worker (which outlives a kill -9)
starts nothing new, and a signal while the agent starts still leads to the agent being stopped.
The agent and its client are stand-ins here; tests/faults/test_fault_kill.py does it for real."""
from __future__ import annotations

import subprocess
import sys

import pytest

from ansible_collections.fleet.firmware.plugins.action import deploy as deploy_mod


def gone_watch() -> deploy_mod.ControllerWatch:
    """A watch on a process that has exited: what an orphaned worker sees."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    watch = object.__new__(deploy_mod.ControllerWatch)
    watch.pid, watch.start = child.pid, 12345
    return watch


class DiesAfterSubmit:
    """ansible-playbook killed once the job has been submitted (while a component installs)."""

    def __init__(self, client: "Client") -> None:
        self.client, self.pid = client, 4242

    def alive(self) -> bool:
        return not self.client.submitted


class Client:
    """An agent whose job runs until it is cancelled, then ends."""

    def __init__(self) -> None:
        self.cancelled = False
        self.submitted: list = []

    def submit(self, job, policy) -> None:
        self.submitted.append(job)

    def status(self) -> dict:
        return {"job": "cancelled" if self.cancelled else "running", "events": [], "components": []}

    def cancel(self) -> dict:
        self.cancelled = True
        return {}


def test_a_live_controller_passes_the_checkpoint(tmp_path):
    session = deploy_mod.Session("lin01", "t1", str(tmp_path))
    assert session.controller.alive()
    session.checkpoint("planning")


def test_an_orphaned_worker_stops_before_the_next_step_and_says_why(tmp_path):
    session = deploy_mod.Session("lin01", "t1", str(tmp_path))
    session.controller = gone_watch()
    with pytest.raises(deploy_mod.ControllerGone, match=f"ansible-playbook \\(pid {session.controller.pid}\\) is gone"):
        session.checkpoint("planning")


def test_an_orphaned_worker_cancels_the_rest_of_the_job_and_waits_for_the_component_in_flight(tmp_path):
    session = deploy_mod.Session("lin01", "t1", str(tmp_path))
    session.client = Client()
    session.controller = DiesAfterSubmit(session.client)
    action = object.__new__(deploy_mod.ActionModule)
    with pytest.raises(deploy_mod.ControllerGone, match="while installing: .*the component in flight, if any, finished"):
        action._install(session, {"on_failed_dependency": "omit_component", "timeout": 3600, "progress_interval": 0},
                        [{"name": "fw", "path": "/x"}])
    assert session.client.submitted and session.client.cancelled


def test_a_signal_while_the_agent_module_runs_still_stops_the_agent_in_the_cleanup(tmp_path):
    """The module may have started the agent on the node when the signal arrives: the cleanup
    must then run ``state=absent`` (idempotent) rather than write ``cleaned`` over a live agent."""
    session = deploy_mod.Session("lin01", "t1", str(tmp_path))
    action = object.__new__(deploy_mod.ActionModule)

    def interrupted(name, args, task_vars):
        raise KeyboardInterrupt("signal 2")

    action._sub_action = interrupted
    args = {"agent_port": 62286, "lease": 30, "open_firewall": True, "firewall_backend": "auto", "staging_dir": None}
    with pytest.raises(KeyboardInterrupt):
        action._start_agent(session, args, {}, ["198.18.0.1"])
    assert session.agent_started


class Shell:
    tmpdir = "/root/.ansible/tmp/ansible-tmp-1-2-3"


class Connection:
    _shell = Shell()


def test_cleaned_is_written_only_after_the_agent_and_ansibles_temporary_folder_are_gone(tmp_path):
    """Ansible's temporary folder holds a copy of the agent that no lease removes: it goes before
    the ledger says ``cleaned``, and a failure to remove it is said instead."""
    order: list[str] = []
    session = deploy_mod.Session("lin01", "t1", str(tmp_path))
    session.stage = lambda stage, **fields: order.append(stage)
    action = object.__new__(deploy_mod.ActionModule)
    action._connection = Connection()
    action._stop_agent = lambda *args: order.append("agent stopped")
    action._remove_tmp_path = lambda path: order.append(f"removed {path}")
    action._clean(session, {}, {})
    assert order == ["agent stopped", f"removed {Shell.tmpdir}", "cleaned"]

    def unreachable(path):
        raise deploy_mod.AnsibleError("ssh: connection refused")

    order.clear()
    action._remove_tmp_path = unreachable
    action._clean(session, {}, {})
    assert order == ["agent stopped", "failed"] and "temporary folder" in session.cleanup[-1]
