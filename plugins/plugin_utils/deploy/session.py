# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What one node's deploy holds, and its ledger lines.

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time.
"""
from __future__ import annotations

import typing as t

from ansible_collections.fleet.firmware.plugins.plugin_utils import agent_client, engine as engine_mod, ledger as ledger_mod
from ansible_collections.fleet.firmware.plugins.plugin_utils.deploy.controller import ControllerGone, ControllerWatch
from ansible_collections.fleet.firmware.plugins.plugin_utils.deploy.lease import LeaseKeeper


class Session:
    """What one node's deploy holds; ``result()`` turns it into the task result."""

    def __init__(self, node: str, tag: str, run_dir: str) -> None:
        self.node, self.tag, self.run_dir = node, tag, run_dir
        self.ledger = ledger_mod.LedgerWriter(run_dir)
        self.components: list[dict] = []
        self.plan: dict[str, dict] = {}
        self.delivery: str | None = None
        self.transfer: str | None = None
        self.cleanup: list[str] = []
        self.cleanup_problems: list[str] = []
        self.rebooted = False
        self.reboot_required = False
        self.client: agent_client.AgentClient | None = None
        self.keeper: LeaseKeeper | None = None
        self.agent_started = False
        self.agent_pid: int | None = None  # the agent this session started: its cleanup stops that one only
        self.installed: list[dict] = []
        self.controller = ControllerWatch()
        self.agent_start: str | None = None  # stdin or staged
        self.engine_unreachable = False  # the launcher could not open the engine's port from the node
        self.engine: t.Any = None  # the run's engine once attached: the ledger's one writer
        self.uplink = False  # pull mode: the agent calls the engine, no inbound port (engine/uplink.py)
        self.agent_gone = False
        self.after: list | None = None  # pull mode: the agent's plan after its installs  # the agent said it tore itself down (its final uplink)

    def checkpoint(self, doing: str, in_flight: bool = False) -> None:
        """Raise ``ControllerGone`` if ``ansible-playbook`` is gone; called before each new step."""
        if self.controller.alive():
            return
        finished = "; the component in flight, if any, finished" if in_flight else ""
        lease = f" by {self.keeper.lease_ends()}" if self.keeper is not None else ""
        raise ControllerGone(
            f"ansible-playbook (pid {self.controller.pid}) is gone (killed?) while {doing}: nothing new was started{finished}; "
            f"its orphaned worker cleans the node up now (had the worker died too, the node's lease would have done it{lease})")

    def stage(self, stage: str, **fields: t.Any) -> None:
        event = {"stage": stage}
        event.update({k: v for k, v in fields.items() if k in ("component", "progress", "rc", "message") and v is not None})
        if self.engine is not None:
            try:
                self.engine.record(self.node, event, source="deploy")
                return
            except engine_mod.EngineError:
                self.engine = None  # gone (with ansible-playbook): this worker writes its last lines itself
        self.ledger.append(self.node, event, source="deploy")
