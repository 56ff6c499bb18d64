# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The engine's control RPC: a 0600 Unix socket in the run folder, never reachable from the
network. Workers register nodes and components and set jobs over it (``client.EngineHandle``).

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time.
"""
from __future__ import annotations

import json
import os
import socket
import socketserver
import threading
import time

from ansible_collections.fleet.firmware.plugins.plugin_utils import ledger as ledger_mod
from ansible_collections.fleet.firmware.plugins.plugin_utils import tls as tls_mod
from ansible_collections.fleet.firmware.plugins.plugin_utils.engine.settings import CONTROL_OPS, SOCKET_FILE, EngineError


class _ControlServer(socketserver.ThreadingUnixStreamServer):
    """The engine's local control socket. Every fork of a run may call at once: with the default
    listen backlog (5), 50 nodes' connects failed with EAGAIN (benchmarks/fleet.py, issue 9)."""

    request_queue_size = 1024


def _connect_control(path: str, patience: float = 30.0) -> socket.socket:
    """Connect to the engine's control socket; a full backlog (EAGAIN) is waited out, not an error."""
    deadline = time.monotonic() + patience
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(600)
        try:
            sock.connect(path)
            return sock
        except BlockingIOError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        except OSError:
            sock.close()
            raise


class ControlSide:
    """The engine's control half (a part of ``daemon.Engine``)."""

    def _start_control(self) -> None:
        path = os.path.join(self.run_dir, SOCKET_FILE)
        if len(path.encode()) > 107:
            raise EngineError(f"run folder path too long for the engine's control socket: {path}")
        if os.path.exists(path):
            os.unlink(path)
        engine = self

        class ControlHandler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(600)
                line = self.rfile.readline(16 * 1024 * 1024)
                self.wfile.write((json.dumps(engine.control(line)) + "\n").encode())

        old = os.umask(0o177)
        try:
            self._control = _ControlServer(path, ControlHandler)
        finally:
            os.umask(old)
        self._control.daemon_threads = True
        threading.Thread(target=self._control.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True).start()

    # -- control socket ----------------------------------------------------------------------

    def control(self, line: bytes) -> dict:
        try:
            request = json.loads(line)
            op, args = request["op"], request.get("args", {})
            if op not in CONTROL_OPS or not isinstance(args, dict):
                raise EngineError(f"unknown control operation {op!r}")
            if op == "ping":
                return {"ok": True, "result": {"pid": os.getpid()}}
            if op == "stop":
                threading.Thread(target=self.stop, args=("stop requested",), daemon=True).start()
                return {"ok": True, "result": None}
            return {"ok": True, "result": getattr(self, op)(**args)}
        except (EngineError, ledger_mod.EventError, tls_mod.TLSError, OSError, TypeError, KeyError, ValueError) as exc:
            return {"ok": False, "error": str(exc)}
