# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pull mode from the deploy's side: the job goes to the engine, the worker waits on the engine's
control socket (issue 15, engine/uplink.py, module_utils/agent/uplink.py).

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time.

The worker never connects to the node here: the agent fetches its job, components, lease and
any cancel from the engine, whose answers carry the worker's orders (``node_order``), and the
engine tells the worker what the agent reported (``node_wait``). Only when the engine has heard
nothing from the node for ``SILENCE`` seconds does the worker try the agent's port: an agent
that may fall back (``auto``) opens it once it cannot reach the engine, and the deploy then
takes over as in push mode (``TakeOver``).
"""
from __future__ import annotations

import time
import typing as t

from ansible.utils.display import Display

from ansible_collections.fleet.firmware.plugins.plugin_utils import agent_client, engine as engine_mod
from ansible_collections.fleet.firmware.plugins.plugin_utils.deploy.controller import DeployError

display = Display()
# Seconds without an uplink after which the worker looks for the agent's fallback port (the
# agent beats every second, and opens that port after 10 s without the engine).
SILENCE = 15.0
# Seconds a final report may lag behind the job's end before the worker cleans up without it.
FINAL_GRACE = 15.0
CANCEL_WAIT = 600.0


class TakeOver(Exception):
    """The node cannot reach the engine; its agent listens on its port: push from here on."""

    def __init__(self, status: dict) -> None:
        super().__init__("the node cannot reach the engine")
        self.status = status


def job_for(todo: t.Sequence[dict], on_failed_dependency: str, plan_after: dict | None) -> dict:
    """The node's job as the engine serves it: components in order, and the plan after the installs."""
    job = {"components": [{k: v for k, v in c.items() if k != "path"} for c in todo], "on_failed_dependency": on_failed_dependency}
    if plan_after is not None:
        job["plan_after"] = plan_after
    return job


def probe_agent(session, why: list | None = None) -> dict | None:
    """The agent's status over its port, if it listens there now (short timeouts: it usually does not)."""
    try:
        client = agent_client.AgentClient(session.client.addresses, session.client.port, session.client._token,  # pylint: disable=protected-access
                                          session.client.context, timeout=3.0)
        status = client.status()
    except agent_client.AgentClientError as exc:
        if why is not None:
            why[:] = [str(exc)]
        return None
    return status  # it answers on its port: it listens there (it opens it only to fall back)


class EngineWait:
    """Wait for the node's job to end, as the engine hears of it; cancel through the engine."""

    def __init__(self, session, engine, args: dict, fallback: bool) -> None:
        self.session, self.engine, self.args, self.fallback = session, engine, args, fallback
        self.version = 0
        self.status: dict = {}
        self.final = False
        self.cancelled = False
        self.probe_error: list = []

    def _wait(self, timeout: float = 5.0) -> dict:
        news = self.engine.node_wait(self.session.node, self.version, timeout=timeout)
        self.version = news["version"]
        self.status = news.get("status") or self.status
        self.final = bool(news.get("final"))
        return news

    def cancel(self, reason: str) -> None:
        if not self.cancelled:
            self.engine.node_order(self.session.node, cancel=reason)
            self.cancelled = True

    def until_done(self, progress: t.Callable[[dict], None] | None = None) -> dict:
        """The agent's last status (its components' outcomes); raises ``TakeOver`` or ``DeployError``."""
        started = time.monotonic()
        deadline = started + self.args["timeout"]
        ended_at = None
        last_line = 0.0
        while True:
            try:
                news = self._wait()
            except engine_mod.EngineError:
                self.session.checkpoint("installing", in_flight=True)  # gone with ansible-playbook: ControllerGone
                raise
            except KeyboardInterrupt:
                self.cancel_and_wait("cancelled by the controller (Ctrl-C)")
                raise
            if self.final:
                return self.status
            if self.status.get("job") in ("done", "cancelled") and ended_at is None:
                ended_at = time.monotonic()
            if ended_at is not None and time.monotonic() - ended_at > FINAL_GRACE:
                return self.status  # the final report is late or lost: the cleanup will find out
            if not self.session.controller.alive():
                self.cancel_and_wait("the controller is gone", limit=60)
                self.session.checkpoint("installing", in_flight=True)
            if time.monotonic() > deadline:
                self.cancel(f"timeout: the job took longer than {self.args['timeout']} s")
            self._silence(news, started)
            if progress is not None and self.args["progress_interval"] and time.monotonic() - last_line >= self.args["progress_interval"]:
                progress(self.status)
                last_line = time.monotonic()

    def _silence(self, news: dict, started: float) -> None:
        if self.fallback and self.status.get("inbound"):
            # It said so while it still could (a download failed, the uplink did not): take over now.
            status = probe_agent(self.session)
            if status is not None:
                raise TakeOver(dict(status, pull_error=self.status.get("pull_error")))
        silent = news.get("silent")
        silent = time.monotonic() - started if silent is None else silent
        if silent < SILENCE:
            return
        status = probe_agent(self.session, self.probe_error) if self.fallback else None
        if status is not None:
            raise TakeOver(status)
        if self.fallback and silent >= self.args["lease"] + 2 * SILENCE:
            # Its lease has run out unheard and it never opened its port: it stopped by itself.
            raise DeployError(f"the agent on {self.session.node} has not been heard from for {silent:.0f} s (neither through the "
                              f"engine nor on its own port: {'; '.join(self.probe_error) or 'no answer'}): the cleanup finds out what it left")
        if not self.fallback and silent >= 2 * SILENCE:
            current = self.status.get("fetching") or (self.status.get("current") or {}).get("name")
            what = f"pull delivery of {current}" if current else "pull delivery"
            raise DeployError(f"{what} failed: the agent on {self.session.node} has not reached the engine for {silent:.0f} s "
                              "(delivery=pull: no fallback; use delivery=auto or push where the node cannot reach the controller)")

    def cancel_and_wait(self, reason: str, limit: float = CANCEL_WAIT) -> None:
        """The component in flight finishes, the rest are cancelled (bounded wait; the cleanup follows)."""
        try:
            self.cancel(reason)
            deadline = time.monotonic() + limit
            while time.monotonic() < deadline and not self.final and self.status.get("job") not in ("done", "cancelled"):
                news = self._wait()
                if news.get("silent") is not None and news["silent"] > SILENCE:
                    return  # nobody answers: the cleanup over SSH stops the agent, or its lease does
        except (engine_mod.EngineError, KeyboardInterrupt):
            return
