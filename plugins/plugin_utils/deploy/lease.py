# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The deploy's heartbeat: the thread that renews the node agent's lease.

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time.
"""
from __future__ import annotations

import threading
import time
import typing as t

from ansible_collections.fleet.firmware.plugins.plugin_utils import agent_client, engine as engine_mod
from ansible_collections.fleet.firmware.plugins.plugin_utils.deploy.controller import ControllerWatch


class LeaseKeeper(threading.Thread):
    """Renews the agent's lease every lease/3 until stopped (the deploy's heartbeat).

    Once ``ansible-playbook`` is gone (see ``ControllerWatch``) the keeper stops renewing, so
    the node's lease runs out as it should when the controller dies, even if this worker dies
    too before it has cleaned up.
    """

    def __init__(self, client: agent_client.AgentClient, lease: int, controller: ControllerWatch,
                 renew: t.Optional[t.Callable[[int], t.Any]] = None) -> None:
        super().__init__(name="fleet-lease", daemon=True)
        self.client, self.lease, self.controller = client, lease, controller
        # Over the agent's port (push), or through the engine's answers to the agent (pull mode).
        self.renew = renew or client.renew
        self.halt = threading.Event()
        self.failures = 0
        self.renewed_at = time.time()  # the agent was just started with a full lease

    def lease_ends(self) -> str:
        """When the node's lease runs out if nobody renews it again (UTC, ISO 8601)."""
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.renewed_at + self.lease))

    def run(self) -> None:
        while not self.halt.wait(max(1.0, self.lease / 3)):
            if not self.controller.alive():
                return
            try:
                self.renew(self.lease)
                self.renewed_at = time.time()
                self.failures = 0
            except (agent_client.AgentClientError, engine_mod.EngineError):
                self.failures += 1  # the lease still has two thirds left; try again next beat
