# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The node calls the controller (pull mode, issue 15): the agent's uplink and what the deploy
waits on.

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time.

An agent started without an inbound port posts ``POST /v1/nodes/<node>/uplink`` about once a
second over one keep-alive TLS connection: its new events (numbered by its own ``seq``), its
job's status, and at the very end ``final`` (it has cleaned up after itself). The engine writes
the events into the node's ledger (it is the ledger's only writer while it runs) and answers
with the deploy's orders: the job, the lease and a cancel. The deploy's worker sets those orders
and waits for news over the control socket (``node_order``, ``node_wait``), never over the
network.
"""
from __future__ import annotations

import dataclasses
import threading
import time
import typing as t

from ansible_collections.fleet.firmware.plugins.plugin_utils import ledger as ledger_mod
from ansible_collections.fleet.firmware.plugins.plugin_utils.engine.settings import EngineError

# Agent event states that are ledger stages of a component (the rest are the deploy's to write).
COMPONENT_STAGES = {"downloading": "downloading", "downloaded": "verified", "installing": "installing",
                    "installed": "installed", "failed": "failed", "skipped": "skipped"}
MAX_WAIT = 30.0


@dataclasses.dataclass
class NodeLink:
    """What the engine knows of one node's agent in pull mode, and the deploy's orders to it."""

    version: int = 0  # bumped on every uplink: what node_wait waits for
    acked: int = 0  # the agent's last event seq written to the ledger
    status: t.Optional[dict] = None
    final: bool = False
    seen: t.Optional[float] = None  # monotonic time of the last uplink
    cancel: t.Optional[str] = None
    lease_until: t.Optional[float] = None  # epoch; None: the agent keeps its own lease


def ledger_event(event: t.Any) -> t.Optional[dict]:
    """The ledger line of one agent event, or None for events that are not a component's stage."""
    if not isinstance(event, dict) or event.get("state") not in COMPONENT_STAGES or not event.get("component"):
        return None
    line: dict = {"stage": COMPONENT_STAGES[event["state"]], "component": str(event["component"])[:ledger_mod.MAX_COMPONENT]}
    if isinstance(event.get("rc"), int) and not isinstance(event.get("rc"), bool):
        line["rc"] = event["rc"]
    if isinstance(event.get("reason"), str) and event["reason"]:
        line["message"] = event["reason"][:ledger_mod.MAX_MESSAGE]
    return ledger_mod.validate_event(line)


class UplinkSide:
    """The engine's pull-mode half (a part of ``daemon.Engine``)."""

    def _links_init(self) -> None:
        self._links: dict[str, NodeLink] = {}
        self._links_changed = threading.Condition(threading.Lock())

    def _link(self, node_id: str) -> NodeLink:
        """The node's link (the caller holds ``_links_changed``)."""
        return self._links.setdefault(node_id, NodeLink())

    # -- the agent's side (HTTP, authorized as the node's own token)

    def uplink(self, node_id: str, body: t.Any) -> dict:
        if not isinstance(body, dict) or not isinstance(body.get("events", []), list):
            raise ValueError('an uplink is {"events": [...], "status": {...}, "has_job": bool, "final": bool}')
        with self._links_changed:
            link = self._link(node_id)
            for event in body.get("events", []):
                seq = event.get("seq") if isinstance(event, dict) else None
                if not isinstance(seq, int) or seq <= link.acked:
                    continue  # sent again after a lost answer: written once
                line = ledger_event(event)
                if line is not None:
                    self.ledger.append(node_id, line, source="agent")
                link.acked = seq
            if isinstance(body.get("status"), dict):
                link.status = body["status"]
            link.final = link.final or bool(body.get("final"))
            link.seen = time.monotonic()
            link.version += 1
            self._links_changed.notify_all()
            answer: dict = {"ack": link.acked, "cancel": link.cancel,
                            "lease": None if link.lease_until is None else max(0.0, round(link.lease_until - time.time(), 1))}
        if not body.get("has_job"):
            with self._lock:
                answer["job"] = self._jobs.get(node_id)
        return answer

    # -- the deploy's side (control socket)

    def record(self, node_id: str, event: dict, source: str = "deploy") -> int:
        """Append the deploy's own stage to the node's ledger; return its seq."""
        if source not in ("deploy", "engine"):
            raise EngineError(f"invalid ledger source {source!r}")
        ledger_mod.check_node_id(node_id)
        return self.ledger.append(node_id, ledger_mod.validate_event(event), source=source)["seq"]

    def node_order(self, node_id: str, cancel: t.Optional[str] = None, lease: t.Optional[int] = None) -> dict:
        """Orders the node's agent gets with its next uplink answer: a cancel, a lease (seconds from now)."""
        with self._links_changed:
            link = self._link(node_id)
            if cancel:
                link.cancel = str(cancel)[:400]
            if lease is not None:
                link.lease_until = time.time() + int(lease)
            return {"cancel": link.cancel, "lease_until": link.lease_until}

    def node_wait(self, node_id: str, version: int = 0, timeout: float = 5.0) -> dict:
        """Wait (at most ``timeout`` s) for an uplink newer than ``version``; the node's latest news."""
        deadline = time.monotonic() + min(max(float(timeout), 0.0), MAX_WAIT)
        with self._links_changed:
            link = self._link(node_id)
            while link.version <= version and not self._stopped.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._links_changed.wait(min(left, 1.0))
            silent = None if link.seen is None else round(time.monotonic() - link.seen, 1)
            return {"version": link.version, "status": link.status, "final": link.final, "silent": silent}
