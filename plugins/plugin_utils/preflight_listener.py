# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The preflight's stand-in for the engine: a listener on the engine port of the controller,
for as long as one node's return direction is checked.

Note that this plugin util is **PRIVATE** to the collection. Controller-only code.

Why this shape: each node's check runs in its own forked Ansible worker, several at once. Every
worker binds its own socket with ``SO_REUSEPORT`` (the kernel lets sockets of one user share an
address and port that way), only on the controller address its node should use, and closes it
when its check is done. So the port is open exactly while some node is being checked, no worker
waits for another, and nothing can stay behind: when a worker ends, also by Ctrl-C or
``kill -9``, the kernel closes its socket. No daemon, no state file.

A listener that does not use ``SO_REUSEPORT`` (the run's engine, or another program) makes the
bind fail with ``EADDRINUSE``; then the engine of the run named by ``engine_run_dir`` counts as
the listener (the check then tests the real engine), and any other program is reported.

The kernel completes the TCP handshake for a listening socket before anyone calls accept():
the node's connect succeeds, which is all the check needs; the connection is reset when the
socket closes. Nothing is ever read from or written to it.
"""
from __future__ import annotations

import contextlib
import errno
import socket
import typing as t

PREFLIGHT, ENGINE, OTHER, FAILED = "preflight", "engine", "other", "failed"
_BACKLOG = 1024


def _bind(address: str, port: int) -> socket.socket:
    host, _sep, zone = address.partition("%")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port, 0, socket.if_nametoindex(zone) if zone else 0))
        else:
            sock.bind((host, port))
        sock.listen(_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def _engine_port(engine_run_dir: str | None) -> int | None:
    """The port of the run's engine, when ``engine_run_dir`` names a running one."""
    if not engine_run_dir:
        return None
    # Imported here: the engine module is only needed when a run's engine is named.
    from ansible_collections.fleet.firmware.plugins.plugin_utils import engine  # pylint: disable=import-outside-toplevel

    try:
        handle = engine.attach(engine_run_dir)
    except (OSError, ValueError, engine.EngineError):
        return None
    return handle.port if handle is not None else None


@contextlib.contextmanager
def listening(addresses: t.Iterable[str], port: int, engine_run_dir: str | None = None) -> t.Iterator[dict[str, dict]]:
    """Listen on ``port`` at each address for the duration of the block.

    Yields, per address, ``{"listener": preflight|engine|other|failed, "detail": text}``; every
    socket of ours is closed when the block ends, whatever way it ends.
    """
    status: dict[str, dict] = {}
    sockets: list[socket.socket] = []
    try:
        for address in dict.fromkeys(addresses):
            status[address] = _listen_one(address, port, engine_run_dir, sockets)
        yield status
    finally:
        for sock in sockets:
            sock.close()


def _listen_one(address: str, port: int, engine_run_dir: str | None, sockets: list[socket.socket]) -> dict:
    where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    try:
        sockets.append(_bind(address, port))
        return {"listener": PREFLIGHT, "detail": f"the preflight listened on {where} for the check"}
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            if _engine_port(engine_run_dir) == port:
                return {"listener": ENGINE, "detail": f"the run's engine listens on {where}; the check used it"}
            return {"listener": OTHER,
                    "detail": f"another program listens on {where}: the check tested that program, and the run's engine cannot listen there while it does"}
        if exc.errno == errno.EADDRNOTAVAIL:
            return {"listener": FAILED, "detail": f"{address} is not an address of this controller: nothing listened on {where}"}
        return {"listener": FAILED, "detail": f"cannot listen on {where}: {exc.strerror or exc}"}
