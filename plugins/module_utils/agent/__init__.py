# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The node agent: a small mutual-TLS server that lives on a node for one run.

Runs on nodes: Python 3.6+, standard library only. The controller builds it, with the other
module_utils it needs, into one zipapp (``plugin_utils/agent_build.py``, whose ``__main__``
calls ``main()``); the agent module starts it (``agent.pyz`` in the staging folder) and hands
it its configuration on stdin. The protocol, the lease and the lock are in ``docs/agent.md``.

One room per concern:

- ``config``: defaults, names, patterns, the check of the stdin document, facing addresses
- ``lock``: the node lock (one agent per node) and who holds it
- ``control_socket``: the local control socket (server in the agent; client for the modules)
- ``core``: the Agent (state, events, start, lease, stop) made of ``jobs`` and ``delivery``
- ``jobs``: the job, its run, the plan on the node
- ``delivery``: push upload and pull download of components, hash checked
- ``api``: the node API (HTTP routes) and the inventory; ``httpd``: the TLS server
- ``teardown``: stop the agent, close the rules, remove the staging, release the lock
- ``logfile``, ``main``: the agent's log and the zipapp's entry point

The names below are re-exported so that ``from ...module_utils import agent`` keeps working.
"""
# pylint: disable=unused-import
from ansible_collections.fleet.firmware.plugins.module_utils.agent.config import (  # noqa: F401
    CHUNK, COMPONENTS, DEFAULT_LEASE, DEFAULT_PORT, FETCH_ATTEMPTS, FETCH_TIMEOUT, FIREWALL_GRACE, HOLDER_NAME, LOCK_NAME,
    MAX_JSON_BODY, NODE_RE, REQUIRED, RUN_DIR_ENV, SHA_RE, SOCKET_NAME, TAG_RE, AgentError, facing_addresses, pem_fingerprint,
    run_dir, utc, validate_config, validate_tag,
)
from ansible_collections.fleet.firmware.plugins.module_utils.agent.lock import NodeLock  # noqa: F401
from ansible_collections.fleet.firmware.plugins.module_utils.agent.control_socket import control, stop_process, wait_gone  # noqa: F401
from ansible_collections.fleet.firmware.plugins.module_utils.agent.jobs import ON_FAILED_DEPENDENCY, Job, validate_job  # noqa: F401
from ansible_collections.fleet.firmware.plugins.module_utils.agent.delivery import (  # noqa: F401
    FetchFailed, HashMismatch, NoSpace, free_bytes, sha256_of,
)
from ansible_collections.fleet.firmware.plugins.module_utils.agent.api import AgentHandler, inventory  # noqa: F401
from ansible_collections.fleet.firmware.plugins.module_utils.agent.httpd import AgentHTTPServer, make_server  # noqa: F401
from ansible_collections.fleet.firmware.plugins.module_utils.agent.core import Agent  # noqa: F401
from ansible_collections.fleet.firmware.plugins.module_utils.agent.logfile import close_log, log, open_log  # noqa: F401
from ansible_collections.fleet.firmware.plugins.module_utils.agent.main import main  # noqa: F401
