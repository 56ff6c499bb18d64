# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a worker holds: the handle to the run's engine, and how it attaches to or starts the
daemon (under an ``flock`` in the run folder: the first fork starts it, the others attach).

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time.
"""
from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import subprocess
import sys
import time
import typing as t

from ansible_collections.fleet.firmware.plugins.plugin_utils.engine.control import _connect_control
from ansible_collections.fleet.firmware.plugins.plugin_utils.engine.settings import (
    LOCK_FILE, LOG_FILE, SETTINGS_FILE, SOCKET_FILE, STATE_FILE, EngineError, EngineSettings, _write_private,
)
from ansible_collections.fleet.firmware.plugins.plugin_utils.engine.watch import find_playbook_pid, process_start_time


@dataclasses.dataclass
class EngineHandle:
    """What a worker holds: where the engine is and how to ask it (over its control socket)."""

    run_dir: str
    pid: int
    port: int
    urls: list
    tls: bool
    ca_fingerprint: t.Optional[str]
    ca_path: t.Optional[str]
    run_id: str

    @property
    def url(self) -> str:
        return self.urls[0]

    def _call(self, op: str, **args: t.Any) -> t.Any:
        path = os.path.join(self.run_dir, SOCKET_FILE)
        try:
            with _connect_control(path) as sock:
                sock.sendall((json.dumps({"op": op, "args": args}) + "\n").encode())
                with sock.makefile("rb") as reader:
                    reply = json.loads(reader.readline() or b"null")
        except (OSError, ValueError) as exc:
            raise EngineError(f"the run's engine (pid {self.pid}) does not answer on {path}: {exc}") from None
        if not isinstance(reply, dict) or not reply.get("ok"):
            raise EngineError((reply or {}).get("error", "no answer") if isinstance(reply, dict) else "no answer")
        return reply["result"]

    def ping(self) -> bool:
        return self._call("ping")["pid"] == self.pid

    def register_component(self, path: str, sha256: t.Optional[str] = None, node_id: t.Optional[str] = None) -> str:
        """Register a component; with ``node_id``, that node's token may fetch it (``grant``)."""
        return self._call("register_component", path=os.path.abspath(path), sha256=sha256, node_id=node_id)

    def grant(self, node_id: str, sha256: str) -> None:
        """Let ``node_id``'s token fetch the registered component ``sha256`` (and only what is granted)."""
        self._call("grant", node_id=node_id, sha256=sha256)

    def end_session(self, node_id: str) -> bool:
        """Revoke ``node_id``'s token and grants (its session ended)."""
        return self._call("end_session", node_id=node_id)

    def register_node(self, node_id: str) -> str:
        return self._call("register_node", node_id=node_id)

    def set_job(self, node_id: str, job: dict) -> dict:
        return self._call("set_job", node_id=node_id, job=job)

    def stats(self) -> dict:
        return self._call("stats")

    def issue_agent(self, node_id: str, addresses: list) -> dict:
        return self._call("issue_agent", node_id=node_id, addresses=list(addresses))

    # -- pull mode (engine/uplink.py): the ledger's one writer, the agent's orders, its news

    def record(self, node_id: str, event: dict, source: str = "deploy") -> int:
        return self._call("record", node_id=node_id, event=event, source=source)

    def node_order(self, node_id: str, cancel: t.Optional[str] = None, lease: t.Optional[int] = None) -> dict:
        return self._call("node_order", node_id=node_id, cancel=cancel, lease=lease)

    def node_wait(self, node_id: str, version: int = 0, timeout: float = 5.0) -> dict:
        return self._call("node_wait", node_id=node_id, version=version, timeout=timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the engine to stop and wait until its process is gone."""
        start = process_start_time(self.pid)
        try:
            self._call("stop")
        except EngineError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and start is not None and process_start_time(self.pid) == start:
            time.sleep(0.05)


class _RunLock:
    """``flock`` on ``<run_dir>/engine.lock``: one worker at a time starts or attaches."""

    def __init__(self, run_dir: str) -> None:
        self.path = os.path.join(run_dir, LOCK_FILE)
        self.fd = -1

    def __enter__(self) -> "_RunLock":
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: t.Any) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _read_handle(run_dir: str) -> t.Optional[EngineHandle]:
    try:
        with open(os.path.join(run_dir, STATE_FILE), "rb") as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        return None
    if process_start_time(state["pid"]) != state["start_time"]:
        return None
    handle = EngineHandle(run_dir, state["pid"], state["port"], state["urls"], state["tls"],
                          state["ca_fingerprint"], state["ca_path"], state["run_id"])
    try:
        return handle if handle.ping() else None
    except EngineError:
        return None


def attach(run_dir: str) -> t.Optional[EngineHandle]:
    """The running engine of this run, or None."""
    return _read_handle(os.path.abspath(run_dir))


def attach_or_start(run_dir: str, settings: t.Optional[EngineSettings] = None, timeout: float = 30.0) -> EngineHandle:
    """Attach to the run's engine, starting it (as a detached daemon) if none runs.

    Safe to call from many forked workers at once: an ``flock`` in the run folder makes the
    first one start the engine and the others attach to it.
    """
    run_dir = os.path.abspath(run_dir)
    settings = dataclasses.replace(settings or EngineSettings()).validate()
    if settings.watch_pid is None:
        settings.watch_pid = find_playbook_pid()
    if settings.watch_start is None:
        settings.watch_start = process_start_time(settings.watch_pid)
    os.makedirs(run_dir, mode=0o700, exist_ok=True)
    with _RunLock(run_dir):
        handle = _read_handle(run_dir)
        if handle is not None:
            return handle
        return _spawn(run_dir, settings, timeout)


def _collections_root() -> str:
    parts = os.path.abspath(__file__).split(os.sep)
    if "ansible_collections" not in parts:
        raise EngineError(f"{__file__} is not inside an ansible_collections folder; cannot start the engine daemon")
    index = len(parts) - 1 - parts[::-1].index("ansible_collections")
    return os.sep.join(parts[:index]) or os.sep


def _spawn(run_dir: str, settings: EngineSettings, timeout: float) -> EngineHandle:
    _write_private(os.path.join(run_dir, SETTINGS_FILE), json.dumps(settings.to_json()).encode())
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_collections_root(), env.get("PYTHONPATH")]))
    log = os.open(os.path.join(run_dir, LOG_FILE), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        # A session of its own: Ctrl-C in the playbook's terminal does not reach it; it stops
        # when the watched ansible-playbook is gone instead, after cleaning up.
        proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, "-m", "ansible_collections.fleet.firmware.plugins.plugin_utils.engine", "serve", run_dir],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True, env=env, cwd="/")
    finally:
        os.close(log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        handle = _read_handle(run_dir)
        if handle is not None and handle.pid == proc.pid:
            return handle
        if proc.poll() is not None:
            raise EngineError(f"the engine exited with rc={proc.returncode} while starting: {_log_tail(run_dir)}")
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise EngineError(f"the engine did not come up within {timeout} s: {_log_tail(run_dir)}")


def _log_tail(run_dir: str) -> str:
    try:
        with open(os.path.join(run_dir, LOG_FILE), "rb") as handle:
            return handle.read()[-2000:].decode("utf-8", "replace").strip()
    except OSError:
        return "(no log)"
