# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The job: the components to install, in order, what became of each, and the plan on the node.

Node-side: Python 3.6+, standard library only. ``JobRunner`` is a part of ``core.Agent``.
"""
import os
import threading
import time
import traceback
from typing import Any, Dict, List

from ansible_collections.fleet.firmware.plugins.module_utils.agent.config import SHA_RE, AgentError, utc
from ansible_collections.fleet.firmware.plugins.module_utils.agent.logfile import log
from ansible_collections.fleet.firmware.plugins.module_utils.filehash import sha256_of


class Job(object):
    """The components to install, in order, and what became of each."""

    def __init__(self, components: List[Dict[str, Any]], on_failed_dependency: str = "omit_component") -> None:
        self.components = [dict(c) for c in components]
        self.on_failed_dependency = on_failed_dependency
        self.broken = set()  # type: set  # names that failed, or were left out because of a failure
        for entry in self.components:
            entry.setdefault("status", "pending")

    def public(self) -> List[Dict[str, Any]]:
        keep = ("name", "version", "sha256", "status", "result", "rc", "duration", "output", "reason")
        return [dict((k, c[k]) for k in keep if k in c) for c in self.components]


ON_FAILED_DEPENDENCY = ("omit_component", "omit_host", "force")


def validate_job(body: Any) -> List[Dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("components"), list):
        raise AgentError("a job is {\"components\": [...]}")
    if body.get("on_failed_dependency", "omit_component") not in ON_FAILED_DEPENDENCY:
        raise AgentError("on_failed_dependency %r is not one of %s" % (body.get("on_failed_dependency"), ", ".join(ON_FAILED_DEPENDENCY)))
    for index, component in enumerate(body["components"]):
        if not isinstance(component, dict):
            raise AgentError("component #%d is not an object" % index)
        sha = str(component.get("sha256", ""))
        if not SHA_RE.fullmatch(sha):
            raise AgentError("component #%d (%s): sha256 %r is not 64 lower-case hex digits" % (index, component.get("name"), sha))
        if not component.get("name"):
            raise AgentError("component #%d: name is missing" % index)
    return body["components"]


class JobRunner(object):
    """The agent's job half: submit, cancel, run one component after the other, plan."""

    def submit(self, components: List[Dict[str, Any]], on_failed_dependency: str = "omit_component") -> int:
        with self.mutex:
            if self.stopping.is_set():
                raise AgentError("the agent is stopping: no new job")
            if self.worker is not None and self.worker.is_alive():
                raise AgentError("a job is already running")
            self.job = Job(components, on_failed_dependency)
            self.worker = threading.Thread(target=self._run_job, args=(self.job,), name="job", daemon=True)
            self.worker.start()
        return len(components)

    def cancel(self, reason: str) -> Dict[str, Any]:
        with self.mutex:
            if not self.cancelled:
                self.cancelled, self.cancel_reason = True, reason
                self.event("cancelled", keep_state=True, reason=reason)
            return {"cancelled": True, "current": dict(self.current) if self.current else None}

    def _run_job(self, job: Job) -> None:
        for component in job.components:
            blocked = self._blocked_by(job, component)
            if self.cancelled or blocked:
                component.update(status="skipped", reason=blocked or self.cancel_reason or "cancelled")
                if blocked:
                    job.broken.add(component["name"])  # what depends on it is left out too
                self.event("skipped", component=component["name"], reason=component["reason"])
                continue
            with self.mutex:
                self.current = {"name": component["name"], "sha256": component["sha256"], "since": utc(time.time())}
            try:
                self._install_one(component)
            except Exception as exc:  # pylint: disable=broad-except  # one component's failure is reported, not fatal
                component.update(status="failed", reason=str(exc))
                log(traceback.format_exc())
            finally:
                with self.mutex:
                    self.current = None
            if component["status"] == "failed":
                job.broken.add(component["name"])
            self.event(component["status"], component=component["name"], rc=component.get("rc"), reason=component.get("reason"))
        self.event("cancelled" if self.cancelled else "done", components=len(job.components))

    @staticmethod
    def _blocked_by(job: Job, component: Dict[str, Any]) -> str:
        """Why a failure earlier in the job leaves this component out ('' when it does not)."""
        if not job.broken or job.on_failed_dependency == "force":
            return ""
        if job.on_failed_dependency == "omit_host":
            return "omit_host: %s failed earlier on this node" % ", ".join(sorted(job.broken))
        failed = sorted(set(component.get("requires") or []) & job.broken)
        return "omit_component: its dependency %s failed" % ", ".join(failed) if failed else ""

    def _install_one(self, component: Dict[str, Any]) -> None:
        path = self.component_path(component["sha256"])
        if not os.path.exists(path):
            raise AgentError("component %s (%s) was not delivered to the node" % (component["name"], component["sha256"]))
        if sha256_of(path) != component["sha256"]:
            raise AgentError("component %s: the staged file's SHA-256 does not match the manifest" % component["name"])
        self.event("verified", component=component["name"])
        from ansible_collections.fleet.firmware.plugins.module_utils import installers
        self.event("installing", component=component["name"])
        os.chmod(path, 0o700)
        outcome = installers.install(component, path, os_name="linux", timeout=component.get("timeout"), workdir=self.staging)
        component.update(rc=outcome.get("rc"), duration=outcome.get("duration"), output=outcome.get("output", "")[-2048:])
        status = outcome.get("status")
        component["status"] = "installed" if status in ("installed", "reboot_required", "not_needed") else "failed"
        component["result"], component["reason"] = status, outcome.get("message") or status

    # -- plan (inventory against a manifest, side-effect free)

    def plan(self, body: Dict[str, Any]) -> Dict[str, Any]:
        from ansible_collections.fleet.firmware.plugins.module_utils import plan as plan_mod
        components = body.get("components")
        if not isinstance(components, list):
            raise AgentError("a plan request is {\"components\": [...], \"policy\": {...}}")
        try:
            entries = plan_mod.plan(components, body.get("policy") or {}, os_name="linux",
                                    redfish=plan_mod.redfish_settings(body.get("redfish")))
        except ValueError as exc:
            raise AgentError(str(exc))
        self.event("planned", components=len(entries))
        return {"plan": entries}
