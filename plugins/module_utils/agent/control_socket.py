# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The agent's local control socket (root's /run, 0600): the server side in the agent, the
client side for the agent and sweep modules on the node (renew, status, stop without TLS).

Node-side: Python 3.6+, standard library only.
"""
import json
import os
import signal
import socket
import socketserver
import threading
import time
from typing import Any, Callable, Dict

from ansible_collections.fleet.firmware.plugins.module_utils.agent.config import SOCKET_NAME, AgentError, run_dir, unlink_quietly


def socket_path(tag: str) -> str:
    """Where the agent of run ``tag`` listens for local commands."""
    return os.path.join(run_dir(), SOCKET_NAME % tag)


def control(tag: str, request: Dict[str, Any], timeout: float = 10.0) -> Dict[str, Any]:
    """One request over the running agent's local socket (root's /run, mode 0600)."""
    path = socket_path(tag)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
        sock.sendall((json.dumps(request) + "\n").encode("utf-8"))
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    answer = json.loads(data.decode("utf-8") or "{}")
    if answer.get("error"):
        raise AgentError(answer["error"])
    return answer


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait until process ``pid`` is gone (reaped, if it is our child)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
            if os.waitpid(pid, os.WNOHANG)[0]:
                return True
        except ChildProcessError:
            pass  # not our child: kill(pid, 0) above still tells whether it lives
        except OSError:
            return True
        time.sleep(0.1)
    return False


def stop_process(pid: int, timeout: float) -> bool:
    """SIGTERM (the agent finishes and cleans up), then SIGKILL after ``timeout`` seconds."""
    for signum, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.kill(pid, signum)
        except OSError:
            return True
        if wait_gone(pid, wait):
            return True
    return False


def serve(tag: str, answer: Callable[[Dict[str, Any]], Dict[str, Any]]) -> socketserver.BaseServer:
    """Serve the control socket of run ``tag`` in a thread; ``answer`` turns a request into a reply."""
    path = socket_path(tag)
    unlink_quietly(path)

    class ControlHandler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            try:
                request = json.loads(self.rfile.readline(65536).decode("utf-8") or "{}")
                reply = answer(request)
            except Exception as exc:  # pylint: disable=broad-except  # answer, never die
                reply = {"error": str(exc)}
            self.wfile.write((json.dumps(reply) + "\n").encode("utf-8"))

    class ControlServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    server = ControlServer(path, ControlHandler)
    os.chmod(path, 0o600)
    threading.Thread(target=server.serve_forever, name="control", daemon=True).start()
    return server
