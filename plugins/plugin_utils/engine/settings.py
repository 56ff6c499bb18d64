# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The engine's settings, names and errors, and the daemon's log line.

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import sys
import time
import typing as t
import uuid

DEFAULT_TLS_PORT = 63002
DEFAULT_PLAIN_PORT = 63001
MAX_EVENT_BODY = 64 * 1024
STATE_FILE = "engine.json"
SETTINGS_FILE = "engine-settings.json"
SOCKET_FILE = "engine.sock"
LOCK_FILE = "engine.lock"
LOG_FILE = "engine.log"
SHA256_RE = re.compile(r"^[0-9a-f]{64}\Z")
COMPONENT_PATH = re.compile(r"^/v1/components/([0-9a-f]{64})\Z")
NODE_PATH = re.compile(r"^/v1/nodes/([^/]{1,128})/(job|events|uplink)\Z")
# The agent's uplink (pull mode) carries its job status besides its events.
MAX_UPLINK_BODY = 1024 * 1024
# Control-socket operations a worker may call (EngineHandle methods of the same name).
FIREWALL_API = "ansible_collections.fleet.firmware.plugins.module_utils.firewall.api"
CONTROL_OPS = ("ping", "register_component", "register_node", "grant", "end_session", "set_job", "stats", "stop", "record",
               "node_wait", "node_order", "issue_agent")


class EngineError(Exception):
    """The engine cannot be started, attached or asked; the message says what and why."""


@dataclasses.dataclass
class EngineSettings:
    """How the run's engine listens and when it stops (validated by ``validate()``).

    ``address``: the addresses to listen on (``engine_address``); ``::`` is dual-stack IPv4 and
    IPv6. ``port`` (``engine_port``): default 63002 with TLS, 63001 without; 0 picks a free port.
    ``advertise``: the addresses/names nodes use to reach the engine (URLs and TLS SANs);
    default the listen addresses, or the host's name and loopback for a wildcard.
    ``watch_pid``: the process whose end stops the engine (``attach_or_start`` fills in the
    nearest ``ansible-playbook`` ancestor); None watches nothing (in-process use).
    ``open_firewall``: open the engine's port in the controller's firewall for the run, only for
    ``firewall_sources`` (addresses/networks; empty: any) and with ``firewall_lease`` seconds
    (0: none), under ``firewall_tag`` (default ``fleet-engine-<run_id>``); closed on stop.
    ``client_timeout``: seconds an authenticated connection may stay silent;
    ``max_connections`` and ``max_per_client``: caps on authenticated connections, in total and
    per source. Before authentication (a valid token) a connection counts against
    ``max_unauthenticated`` and ``max_unauthenticated_per_source`` (per IPv4 address or IPv6
    /64) and is closed ``handshake_timeout`` seconds after its accept (module_utils/connlimit.py).
    """

    address: list = dataclasses.field(default_factory=lambda: ["::"])
    port: t.Optional[int] = None
    tls: bool = True
    advertise: list = dataclasses.field(default_factory=list)
    idle_timeout: float = 1800.0
    watch_pid: t.Optional[int] = None
    watch_start: t.Optional[int] = None
    open_firewall: bool = False
    firewall_tag: t.Optional[str] = None
    firewall_sources: list = dataclasses.field(default_factory=list)
    firewall_lease: int = 0
    max_connections: int = 1024
    max_per_client: int = 256
    client_timeout: float = 30.0
    max_unauthenticated: int = 256
    max_unauthenticated_per_source: int = 16
    handshake_timeout: float = 10.0
    buffer_size: int = 256 * 1024
    run_id: str = ""

    def validate(self) -> "EngineSettings":
        if isinstance(self.address, str):
            self.address = [self.address]
        if not self.address:
            raise EngineError("engine_address must name at least one address")
        for addr in self.address:
            try:
                ipaddress.ip_address(addr)
            except ValueError:
                raise EngineError(f"invalid engine_address {addr!r}: an IPv4 or IPv6 address") from None
        if self.port is None:
            self.port = DEFAULT_TLS_PORT if self.tls else DEFAULT_PLAIN_PORT
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise EngineError(f"invalid engine_port {self.port!r}: 0-65535")
        for name in ("idle_timeout", "client_timeout", "handshake_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise EngineError(f"invalid {name} {value!r}: a number of seconds > 0")
        if isinstance(self.firewall_lease, bool) or not isinstance(self.firewall_lease, int) or self.firewall_lease < 0:
            raise EngineError(f"invalid firewall_lease {self.firewall_lease!r}: whole seconds >= 0")
        for name in ("max_connections", "max_per_client", "max_unauthenticated", "max_unauthenticated_per_source", "buffer_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise EngineError(f"invalid {name} {value!r}: a whole number >= 1")
        self.run_id = self.run_id or uuid.uuid4().hex[:12]
        if self.open_firewall and not self.firewall_tag:
            self.firewall_tag = f"fleet-engine-{self.run_id}"
        return self

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "EngineSettings":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise EngineError(f"unknown engine setting(s): {', '.join(unknown)}")
        return cls(**data).validate()


def _write_private(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _log(message: str) -> None:
    # The daemon's stderr is <run_dir>/engine.log; messages never contain tokens.
    sys.stderr.write(time.strftime("%Y-%m-%dT%H:%M:%SZ ", time.gmtime()) + message + "\n")
    sys.stderr.flush()
