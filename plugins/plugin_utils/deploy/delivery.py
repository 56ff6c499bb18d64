# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""How components reach the node: one strategy per session, chosen once.

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time.

``pull``: the agent downloads from the run's engine (mutual TLS, the node's token).
``push``: the controller uploads over the agent's port. ``url``: the agent downloads from an
existing repository server. ``auto``: pull, and push from the first component the node cannot
fetch because it cannot reach the engine (a 504 from the agent), or from the start when the
agent's launcher already found the engine's port closed from the node.
"""
from __future__ import annotations

import typing as t

from ansible.utils.display import Display

from ansible_collections.fleet.firmware.plugins.plugin_utils import agent_client, safe_text
from ansible_collections.fleet.firmware.plugins.plugin_utils.deploy.controller import DeployError

display = Display()


class Push:
    name = "push"

    def deliver(self, session, component: dict, sha: str) -> None:
        session.client.push(component["path"], sha)


class Url:
    name = "url"

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")

    def deliver(self, session, component: dict, sha: str) -> None:
        session.client.fetch(sha, [f"{self.base}/{component['file']}"], None, run_ca=False)


class Pull:
    name = "pull"

    def __init__(self, urls: t.Sequence[str], token: str) -> None:
        self.urls, self.token = list(urls), token

    def deliver(self, session, component: dict, sha: str) -> None:
        try:
            session.client.fetch(sha, [f"{u}/v1/components/{sha}" for u in self.urls], self.token)
        except agent_client.AgentClientError as exc:
            session.checkpoint(f"downloading {component['name']}")  # the engine went with ansible-playbook
            raise DeployError(f"pull delivery of {component['name']} failed: {exc}") from None


class Auto:
    """Pull until the node cannot reach the engine, then push (for this and every later component)."""

    def __init__(self, urls: t.Sequence[str], token: str) -> None:
        self.pull, self.push = Pull(urls, token), Push()
        self.current: Pull | Push | None = None  # None: nothing delivered yet

    @property
    def name(self) -> str:
        return self.current.name if self.current is not None else "pull"

    def deliver(self, session, component: dict, sha: str) -> None:
        if isinstance(self.current, Push):
            self.push.deliver(session, component, sha)
            return
        try:
            session.client.fetch(sha, [f"{u}/v1/components/{sha}" for u in self.pull.urls], self.pull.token)
            self.current = self.pull
        except agent_client.AgentClientError as exc:
            session.checkpoint(f"downloading {component['name']}")  # the engine went with ansible-playbook
            if exc.status != 504 or self.current is not None:
                raise DeployError(f"pull delivery of {component['name']} failed: {exc}") from None
            display.warning(safe_text.printable(f"{session.node}: the node cannot reach the engine ({exc}); pushing over the agent's port instead"))
            self.current = self.push
            self.push.deliver(session, component, sha)


def engine_urls(engine, facing: t.Sequence[str]) -> list[str]:
    """The engine URLs on the controller addresses this node faces, first."""
    wanted = [u for u in engine.urls if any(f"[{a}]" in u or f"//{a}:" in u for a in facing)]
    return wanted + [u for u in engine.urls if u not in wanted]


def choose(args: dict, session, engine, token: str, facing: t.Sequence[str]):
    """The session's strategy, from the delivery option and what the agent's launcher found."""
    mode = args["delivery"]
    if mode == "url":
        return Url(args["repository_url"])
    if mode == "push":
        return Push()
    urls = engine_urls(engine, facing)
    if mode == "pull":
        return Pull(urls, token)
    if session.engine_unreachable:
        display.warning(f"{session.node}: the node cannot reach the engine (its launcher's connection to the engine port failed); "
                        "pushing over the agent's port instead")
        return Push()
    return Auto(urls, token)


def deliver_all(session, strategy, engine, todo: t.Sequence[dict]) -> None:
    """Register each component with the engine and have it reach the node, in order."""
    for component in todo:
        session.checkpoint(f"delivering {component['name']}")
        sha = engine.register_component(component["path"], component["sha256"], node_id=session.node)
        session.stage("downloading", component=component["name"])
        strategy.deliver(session, component, sha)
        session.stage("verified", component=component["name"])
    session.delivery = strategy.name
