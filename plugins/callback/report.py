# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
from __future__ import annotations

DOCUMENTATION = r"""
name: report
type: aggregate
author: fleet.firmware developers (@fleet-firmware)
short_description: Fleet report (JSON, JUnit XML, HTML) of every fleet.firmware.deploy run of a playbook
version_added: 0.1.0
description:
  - Collects the results of the M(fleet.firmware.deploy) tasks of the playbook (a task whose action
    name ends with C(deploy) and whose result has C(run_tag)), and when the playbook ends writes,
    per run, C(report.json), C(report.xml) and C(report.html).
  - C(report.json) holds every node, every component with its version before and after, status,
    return code, message and duration, the node's reboot, and the node's stages over time from
    the run's ledger. Its JSON schema is C(SCHEMA) in C(plugins/plugin_utils/report.py).
  - C(report.xml) is JUnit XML, a C(testsuite) per node and a C(testcase) per node and component,
    so that CI and AWX show the failures; C(failed) is a C(failure), C(skipped), C(not_attempted)
    and C(cancelled) are C(skipped). A node that failed, was cancelled or was unreachable with no
    failed component gets one more C(testcase) named C(session), a C(failure) (an C(error) when
    unreachable).
  - C(report.html) is one self-contained page (no script, no external resource) with the fleet's
    counts, a node by component matrix coloured by status, and a timeline of each node's stages
    drawn as inline SVG.
  - The stages and timeline come from the run folder's ledger (C(<run_dir>/ledger/<node>.jsonl)),
    found through the C(ledger) path of the results. A host that was unreachable in a deploy task
    is reported as C(unreachable) in that task's run.
  - "Every host of a play that ran a deploy task of the run (after C(--limit)) is in the run's report. A host the deploy never
    ran on is C(skipped) with its C(reason) (the earlier task that failed, such as a preflight or a pre-hook, a false
    condition, or a wave that never started because the run ended before it), or C(unreachable) with the message."
  - The same report can be rendered later from a ledger alone with the playbook
    C(fleet.firmware.report) (action M(fleet.firmware.render_report)).
  - This callback must be enabled, see the examples.
requirements:
  - Enabled in the C(callbacks_enabled) setting (C(ANSIBLE_CALLBACKS_ENABLED)).
options:
  output_dir:
    description:
      - The folder to write the files to (created when missing).
      - When a playbook has more than one run (deploy tasks with different tags), each run's files go
        to a sub-folder named after the run tag.
      - Default the run folder itself (next to its C(ledger) folder), or C(./fleet-report) when the
        results name no ledger (check mode).
    type: path
    env:
      - name: FLEET_REPORT_DIR
    ini:
      - section: callback_fleet_report
        key: output_dir
  formats:
    description: The files to write.
    type: list
    elements: str
    choices: [json, xml, html]
    default: [json, xml, html]
    env:
      - name: FLEET_REPORT_FORMATS
    ini:
      - section: callback_fleet_report
        key: formats
notes:
  - The files are replaced atomically; a reader never sees half a file.
  - Every value in the HTML page is escaped; a URL in a message is shown but is no link, and a
    Content-Security-Policy forbids the page any fetch.
seealso:
  - module: fleet.firmware.deploy
  - module: fleet.firmware.render_report
"""

EXAMPLES = r"""
# ansible.cfg
# [defaults]
# callbacks_enabled = fleet.firmware.report
#
# [callback_fleet_report]
# output_dir = /var/log/fleet/reports
# formats = json,xml,html

# or for one run:
# ANSIBLE_CALLBACKS_ENABLED=fleet.firmware.report FLEET_REPORT_DIR=./reports \
#   ansible-playbook -i inventory.yml fleet.firmware.update_fleet
"""

import json
import os
import typing as t

from ansible.plugins.callback import CallbackBase

from ansible_collections.fleet.firmware.plugins.plugin_utils import report as report_mod

DEFAULT_FOLDER = "fleet-report"


class CallbackModule(CallbackBase):
    """Collects the deploy results per run; writes the run's report files at the end of the playbook."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "fleet.firmware.report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None) -> None:
        super().__init__(display=display)
        # run tag -> {"run_dir": str | None, "results": {host: result}}
        self.runs: dict[str, dict] = {}
        # task uuid -> run tag (to place an unreachable host, whose result names no run)
        self.task_runs: dict[str, str] = {}
        self.unreachable: list[tuple[str, str, dict]] = []
        # Every play's hosts (after --limit) and the runs its deploy tasks belong to; why a host has no deploy result.
        self.plays: list[dict] = []
        self.why: dict[str, dict] = {}

    def v2_playbook_on_play_start(self, play) -> None:
        try:
            inventory = play.get_variable_manager()._inventory  # pylint: disable=protected-access
            hosts = [h.get_name() for h in inventory.get_hosts(play.hosts)]
        except Exception:  # pylint: disable=broad-except  # a report never breaks the playbook
            hosts = []
        self.plays.append({"hosts": hosts, "tags": set()})

    # -- collecting

    def v2_runner_on_ok(self, result, **kwargs) -> None:
        self._collect(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False) -> None:
        self._collect(result, "failed")
        if not self._is_deploy(result._task) and not ignore_errors:
            msg = self._plain(result._result).get("msg") or "failed"
            self.why[result._host.get_name()] = {"skipped": True, "reason": f"task '{result._task.get_name()}' failed: {msg}"[:2000]}

    def v2_runner_on_skipped(self, result) -> None:
        if self._is_deploy(result._task):
            self.why.setdefault(result._host.get_name(), {"skipped": True, "reason": f"task '{result._task.get_name()}' was skipped (its condition)"})

    def v2_runner_on_unreachable(self, result) -> None:
        if not self._is_deploy(result._task):
            msg = self._plain(result._result).get("msg") or "unreachable"
            self.why[result._host.get_name()] = {"unreachable": True, "msg": str(msg)[:2000],
                                                 "reason": f"unreachable in task '{result._task.get_name()}'"}
        if self._is_deploy(result._task):
            data = self._plain(result._result)
            data["unreachable"] = True
            self.unreachable.append((result._task._uuid, result._host.get_name(), data))

    @staticmethod
    def _is_deploy(task) -> bool:
        names = (getattr(task, "resolved_action", None) or "", getattr(task, "action", None) or "")
        return any(str(name).endswith("deploy") for name in names)

    @staticmethod
    def _plain(data: t.Any) -> dict:
        """A plain copy (Ansible's result may hold tagged or lazy values)."""
        try:
            plain = json.loads(json.dumps(data, default=str))
        except (TypeError, ValueError):
            return {}
        return plain if isinstance(plain, dict) else {}

    def _collect(self, result, outcome: str) -> None:
        if not self._is_deploy(result._task):
            return
        data = self._plain(result._result)
        tag = data.get("run_tag")
        if not isinstance(tag, str) or not tag:
            return
        if outcome == "failed":
            data["failed"] = True
        run = self.runs.setdefault(tag, {"run_dir": None, "results": {}})
        ledger = data.get("ledger")
        if isinstance(ledger, str) and ledger.endswith(".jsonl") and run["run_dir"] is None:
            # <run_dir>/ledger/<node>.jsonl
            run["run_dir"] = os.path.dirname(os.path.dirname(ledger))
        run["results"][result._host.get_name()] = data
        self.task_runs[result._task._uuid] = tag
        if self.plays:
            self.plays[-1]["tags"].add(tag)

    # -- writing

    def v2_playbook_on_stats(self, stats) -> None:
        self._place_unreachable()
        self._place_absent()
        if not self.runs:
            return
        try:
            formats = report_mod.check_formats(self.get_option("formats") or report_mod.FORMATS)
        except report_mod.ReportError as exc:
            self._display.warning(f"fleet.firmware.report: {exc}")
            return
        for tag, run in sorted(self.runs.items()):
            folder = self._folder(tag, run)
            try:
                model = report_mod.build_model(run["run_dir"], run["results"], run_tag=tag)
                written = report_mod.write_reports(model, folder, formats)
            except report_mod.ReportError as exc:
                self._display.warning(f"fleet.firmware.report: the report of run {tag} was not written: {exc}")
                continue
            counts = ", ".join(f"{n} {s}" for s, n in model["summary"]["components_by_status"].items() if n) or "no components"
            self._display.display(f"fleet report of run {tag} ({model['summary']['nodes']} nodes; {counts}):")
            for path in written.values():
                self._display.display(f"  {path}")

    def _place_unreachable(self) -> None:
        for task_uuid, host, data in self.unreachable:
            tag = self.task_runs.get(task_uuid) or (next(iter(self.runs)) if len(self.runs) == 1 else None)
            if tag is None:
                self._display.warning(f"fleet.firmware.report: {host} was unreachable in a deploy task of no known run; not in any report")
                continue
            self.runs[tag]["results"].setdefault(host, data)

    def _place_absent(self) -> None:
        """Hosts of a play with deploy tasks of a run that have no deploy result in it, with why."""
        for play in self.plays:
            if len(play["tags"]) != 1:
                continue  # no run, or several: a host without a result belongs to none of them for sure
            run = self.runs[next(iter(play["tags"]))]
            for host in play["hosts"]:
                if host not in run["results"]:
                    why = self.why.get(host) or {"skipped": True, "reason": "not started: the run ended before this host's wave "
                                                 "(a failed canary, max_fail_percentage or any_errors_fatal)"}
                    run["results"][host] = dict(why)

    def _folder(self, tag: str, run: dict) -> str:
        chosen = self.get_option("output_dir")
        if chosen:
            base = os.path.abspath(os.path.expanduser(chosen))
            return os.path.join(base, tag) if len(self.runs) > 1 else base
        if run["run_dir"]:
            return run["run_dir"]
        return os.path.join(os.path.abspath(DEFAULT_FOLDER), tag) if len(self.runs) > 1 else os.path.abspath(DEFAULT_FOLDER)
