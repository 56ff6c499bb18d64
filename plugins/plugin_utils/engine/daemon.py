# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The engine itself: one run's HTTP(S) server in a detached daemon, its lifecycle (start, stop
and the on-stop hooks), the controller firewall opening, the watchdog, the connection caps.
Its registry and control halves live in registry.py and control.py.

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time.
"""
from __future__ import annotations

import argparse
import errno
import importlib
import ipaddress
import json
import os
import signal
import socket
import ssl
import threading
import time
import typing as t

from ansible_collections.fleet.firmware.plugins.plugin_utils import ledger as ledger_mod
from ansible_collections.fleet.firmware.plugins.plugin_utils import tls as tls_mod
from ansible_collections.fleet.firmware.plugins.plugin_utils.engine.control import ControlSide, _ControlServer
from ansible_collections.fleet.firmware.plugins.plugin_utils.engine.httpd import _Server
from ansible_collections.fleet.firmware.plugins.plugin_utils.engine.registry import Component, Registry
from ansible_collections.fleet.firmware.plugins.plugin_utils.engine.settings import (
    FIREWALL_API, SETTINGS_FILE, SOCKET_FILE, STATE_FILE, EngineError, EngineSettings, _log, _write_private,
)
from ansible_collections.fleet.firmware.plugins.plugin_utils.engine.uplink import UplinkSide
from ansible_collections.fleet.firmware.plugins.plugin_utils.engine.watch import _open_pidfd, _still_running, process_start_time


class Engine(Registry, ControlSide, UplinkSide):
    """One run's engine, in this process. ``start()``, then ``wait()`` or ``stop()``."""

    def __init__(self, run_dir: str, settings: t.Optional[EngineSettings] = None) -> None:
        self.run_dir = os.path.abspath(run_dir)
        self.settings = (settings or EngineSettings()).validate()
        self.ssl_context: t.Optional[ssl.SSLContext] = None
        self.on_stop: list[t.Callable[[], None]] = []
        self.ledger = None
        self.port = 0
        self.ca_fingerprint: t.Optional[str] = None
        self._servers: list[_Server] = []
        self._firewall_opened = False
        self._control: t.Optional[_ControlServer] = None
        self._components: dict[str, Component] = {}
        # Every node of a run registers the same files: each is hashed once per identity, not once per node.
        self._hashed: dict[str, tuple[str, tuple]] = {}  # real path -> (sha256, identity when hashed)
        self._hash_locks: dict[str, threading.Lock] = {}
        self._tokens: dict[bytes, str] = {}  # sha256(token) -> node id
        self._node_tokens: dict[str, bytes] = {}
        self._jobs: dict[str, dict] = {}
        self._grants: dict[str, set] = {}  # node id -> the component digests its token may fetch
        self._served: dict[str, int] = {}
        self._clients: dict[str, int] = {}
        self._active = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()  # stopping has begun
        self._done = threading.Event()  # stopping has finished: hooks ran, CA key gone
        self._stop_reason = ""
        self._last_activity = time.monotonic()
        self._links_init()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "Engine":
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        self.ledger = ledger_mod.LedgerWriter(self.run_dir)
        if self.settings.tls:
            self._setup_tls()
        try:
            self._listen()
            self._start_control()
            self._firewall("open")
        except Exception:
            self.stop("start failed")
            raise
        for server in self._servers:
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True).start()
        threading.Thread(target=self._watchdog, daemon=True, name="engine-watchdog").start()
        self._write_state()
        return self

    def _setup_tls(self) -> None:
        self.ca_fingerprint = tls_mod.create_ca(self.run_dir, self.settings.run_id)
        cert, key = tls_mod.issue(self.run_dir, "engine", "server", self.advertised())
        self.ssl_context = tls_mod.server_context(cert, key)

    def issue_agent(self, node_id: str, addresses: list) -> dict:
        """A node agent's two certificates, issued here: the engine has the run's CA and
        ``cryptography`` loaded already, so a worker neither imports it nor makes keys (issue 15)."""
        ledger_mod.check_node_id(node_id)
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise EngineError(f"addresses must be a list of strings, got {addresses!r}"[:200])
        if not os.path.exists(os.path.join(tls_mod.tls_dir(self.run_dir), "ca.pem")):
            tls_mod.create_ca(self.run_dir, self.settings.run_id)
        return tls_mod.issue_agent(self.run_dir, node_id, addresses)

    def _listen(self) -> None:
        port = self.settings.port
        for address in self.settings.address:
            try:
                server = _Server(self, address, port)
            except OSError as exc:
                hint = ""
                if exc.errno == errno.EADDRINUSE:
                    # Most often another run's engine on the same controller (one engine per run).
                    hint = (": another program, or the engine of another run on this controller, listens there;"
                            " give this run another engine_port (fleet_engine_port) or wait for the other run to end")
                raise EngineError(f"cannot listen on [{address}]:{port}: {exc.strerror}{hint}") from None
            self._servers.append(server)
            port = server.server_port  # port 0: the others take the same free port
        self.port = port

    def advertised(self) -> list:
        if self.settings.advertise:
            return list(self.settings.advertise)
        concrete = [a for a in self.settings.address if not ipaddress.ip_address(a).is_unspecified]
        return concrete or [socket.gethostname(), "localhost", "127.0.0.1", "::1"]

    def urls(self) -> list:
        scheme = "https" if self.settings.tls else "http"
        out = []
        for name in self.advertised():
            host = f"[{name}]" if ":" in name else name
            out.append(f"{scheme}://{host}:{self.port}")
        return out

    def _write_state(self) -> None:
        state = {"pid": os.getpid(), "start_time": process_start_time(os.getpid()), "port": self.port,
                 "urls": self.urls(), "tls": self.settings.tls, "ca_fingerprint": self.ca_fingerprint,
                 "ca_path": os.path.join(tls_mod.tls_dir(self.run_dir), "ca.pem") if self.settings.tls else None,
                 "run_id": self.settings.run_id}
        _write_private(os.path.join(self.run_dir, STATE_FILE), json.dumps(state).encode())

    def stop(self, reason: str = "stopped") -> None:
        """Stop serving, run the on-stop hooks, delete the CA key and the state files (idempotent)."""
        with self._lock:
            if self._stopped.is_set():
                return
            self._stop_reason = reason
            self._stopped.set()
        _log(f"engine {self.settings.run_id} stopping: {reason}")
        for server in self._servers:
            threading.Thread(target=server.shutdown, daemon=True).start()
            server.server_close()
        if self._control is not None:
            threading.Thread(target=self._control.shutdown, daemon=True).start()
            self._control.server_close()
        errors = []
        for hook in [lambda: self._firewall("close")] + list(self.on_stop):
            try:
                hook()
            except Exception as exc:  # pylint: disable=broad-exception-caught
                errors.append(str(exc))  # every hook runs, whatever the others do
        tls_mod.destroy_ca_key(self.run_dir)
        for name in (STATE_FILE, SOCKET_FILE):
            try:
                os.unlink(os.path.join(self.run_dir, name))
            except FileNotFoundError:
                pass
        if errors:
            _log("on-stop hook errors: " + "; ".join(errors))
        self._done.set()

    def wait(self, timeout: t.Optional[float] = None) -> bool:
        """Wait until the engine has stopped and cleaned up; False on timeout."""
        return self._done.wait(timeout)

    @property
    def stop_reason(self) -> str:
        return self._stop_reason

    def _firewall(self, action: str) -> None:
        """INTEGRATION POINT with issue 4 (``plugins/module_utils/firewall/api.py``): open, and
        on stop close, the controller's own tagged rule for the engine's port.

        Uses ``api.build_spec(tag, ["<port>/tcp"], sources=..., lease=...)``, ``api.open_ports``
        and ``api.close_tag(tag)``. The import is by name at run time so the engine keeps working
        (and says so in its log) where that module is not there.
        """
        if not self.settings.open_firewall:
            return
        try:
            api = importlib.import_module(FIREWALL_API)
        except ImportError:
            _log(f"open_firewall: no firewall module ({FIREWALL_API}); {action} of {self.settings.firewall_tag} skipped")
            return
        if action == "open":
            spec = api.build_spec(self.settings.firewall_tag, [f"{self.port}/tcp"], sources=self.settings.firewall_sources,
                                  lease=self.settings.firewall_lease)
            api.open_ports(spec)
            self._firewall_opened = True
            _log(f"open_firewall: opened {self.port}/tcp with tag {self.settings.firewall_tag}")
        elif self._firewall_opened:
            api.close_tag(self.settings.firewall_tag)
            _log(f"open_firewall: closed tag {self.settings.firewall_tag}")

    def _watchdog(self) -> None:
        pidfd = None
        if self.settings.watch_pid:
            pidfd = _open_pidfd(self.settings.watch_pid, self.settings.watch_start)
            if pidfd == -1:
                self.stop(f"watched process {self.settings.watch_pid} is gone")
                return
        try:
            while not self._stopped.is_set():
                if self.settings.watch_pid and not _still_running(pidfd, self.settings.watch_pid, self.settings.watch_start):
                    self.stop(f"watched process {self.settings.watch_pid} is gone")
                    return
                with self._lock:
                    idle = self._active == 0 and time.monotonic() - self._last_activity > self.settings.idle_timeout
                if idle:
                    self.stop(f"idle for {self.settings.idle_timeout} s")
                    return
                if pidfd is None:
                    self._stopped.wait(0.5)
        finally:
            if pidfd is not None:
                os.close(pidfd)

    # -- connections -------------------------------------------------------------------------

    def touch(self) -> None:
        self._last_activity = time.monotonic()

    def admit(self, client: str) -> bool:
        # The caps are the HTTP layer's (module_utils/connlimit.py, before and after
        # authentication); this counts connections for the idle watchdog and stats.
        with self._lock:
            self._active += 1
            self._clients[client] = self._clients.get(client, 0) + 1
            self._last_activity = time.monotonic()
            return True

    def release(self, client: str) -> None:
        with self._lock:
            self._active -= 1
            self._clients[client] -= 1
            if not self._clients[client]:
                del self._clients[client]
            self._last_activity = time.monotonic()


def serve(run_dir: str) -> int:
    """The daemon's body: run the engine of ``run_dir`` until it stops."""
    with open(os.path.join(run_dir, SETTINGS_FILE), "rb") as handle:
        settings = EngineSettings.from_json(json.load(handle))
    engine = Engine(run_dir, settings)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_args: threading.Thread(target=engine.stop, args=("signal",)).start())
    try:
        engine.start()
    except (EngineError, tls_mod.TLSError, OSError) as exc:
        _log(f"engine failed to start: {exc}")
        return 1
    _log(f"engine {settings.run_id} serving on {', '.join(engine.urls())} (pid {os.getpid()}, watching {settings.watch_pid})")
    while not engine.wait(1.0):
        pass
    _log(f"engine {settings.run_id} stopped: {engine.stop_reason}")
    return 0


def main(argv: t.Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="engine", description="fleet.firmware run engine (started by attach_or_start)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve").add_argument("run_dir")
    args = parser.parse_args(argv)
    return serve(os.path.abspath(args.run_dir))
