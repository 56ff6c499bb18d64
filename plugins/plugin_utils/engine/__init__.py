# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The run's engine: one HTTP(S) server per playbook run that serves verified components and
takes node status into the ledger.

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time. Controller-only code (standard library plus ``cryptography`` for TLS).

API for the controller plugins (the deploy action)::

    from ansible_collections.fleet.firmware.plugins.plugin_utils import engine, ledger

    handle = engine.attach_or_start(run_dir, engine.EngineSettings(address=["198.18.3.1", "fd00::1"]))
    handle.url, handle.urls, handle.port, handle.tls, handle.ca_fingerprint, handle.ca_path
    sha = handle.register_component("/srv/fw/cp012345.exe", sha256="...")  # hashed once, here
    token = handle.register_node("lin01")   # a new bearer token; the old one stops working
    handle.set_job("lin01", {"components": [{"sha256": sha, "install": {...}}], "policy": {...}})
    events, offset = ledger.read_since(run_dir, "lin01", offset)
    handle.stop()   # or let it stop by itself

The first forked worker that calls ``attach_or_start`` starts the engine as a detached
daemon (``python -m ...engine serve RUN_DIR``), under an ``flock`` on ``<run_dir>/engine.lock``;
the others find ``<run_dir>/engine.json``, check the engine's pid and start time, ping it over
its control socket (``<run_dir>/engine.sock``, mode 0600) and attach. The daemon stops by itself
when the ``ansible-playbook`` process it watches is gone (pidfd, also after SIGKILL; pid reuse
is ruled out by the process start time), after ``idle_timeout`` seconds without a request, on
``handle.stop()`` or SIGTERM. On stopping it runs its on-stop hooks (closing the controller
firewall rule opened for it), deletes the run's CA key and its own state files.

HTTP API (every request but the component download carries ``Authorization: Bearer <token>``
of a node session; components need any valid session token)::

    GET|HEAD /v1/components/<sha256>   the bytes (Range, 206/416, ETag = "<sha256>")
    GET      /v1/nodes/<id>/job        that node's job (only with that node's token)
    POST     /v1/nodes/<id>/events     JSON event(s), at most 64 KiB (only that node's token)

Errors are short JSON objects ``{"error": "..."}`` with 400/401/403/404/405/409/411/413/414/416/
431/503. A component is served only while the file is the one hashed at registration (same
device, inode, size, mtime and ctime); otherwise 409 and a ``component_refused`` line in the
requesting node's ledger. A Range request (a node resuming a download) leaves a
``component_resumed`` line in its ledger, with the bytes asked for. Plain HTTP uses zero-copy ``sendfile``; TLS streams through one
bounded buffer per connection, so memory does not grow with file size.

One room per concern: ``settings`` (names, errors, EngineSettings), ``httpd`` (the HTTP side),
``registry`` (components, node sessions and tokens, jobs), ``control`` (the control RPC),
``watch`` (the watched process, start times, pidfds), ``daemon`` (the Engine: lifecycle,
firewall, watchdog; ``serve``), ``client`` (EngineHandle, attach, attach_or_start). The names
below are re-exported, so ``from ...plugin_utils import engine`` keeps working.
"""
from __future__ import annotations

# pylint: disable=unused-import
from ansible_collections.fleet.firmware.plugins.plugin_utils.engine.settings import (  # noqa: F401
    COMPONENT_PATH, CONTROL_OPS, DEFAULT_PLAIN_PORT, DEFAULT_TLS_PORT, FIREWALL_API, LOCK_FILE, LOG_FILE,
    MAX_EVENT_BODY, NODE_PATH, SETTINGS_FILE, SHA256_RE, SOCKET_FILE, STATE_FILE, EngineError, EngineSettings,
)
from ansible_collections.fleet.firmware.plugins.plugin_utils.engine.watch import find_playbook_pid, process_start_time  # noqa: F401
from ansible_collections.fleet.firmware.plugins.plugin_utils.engine.httpd import parse_range  # noqa: F401
from ansible_collections.fleet.firmware.plugins.plugin_utils.engine.registry import Component, hash_file  # noqa: F401
from ansible_collections.fleet.firmware.plugins.plugin_utils.engine.control import _connect_control  # noqa: F401
from ansible_collections.fleet.firmware.plugins.plugin_utils.engine.daemon import Engine, main, serve  # noqa: F401
from ansible_collections.fleet.firmware.plugins.plugin_utils.engine.client import EngineHandle, attach, attach_or_start  # noqa: F401
