# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The entry point of agent.pyz: configuration on stdin, one readiness line on stdout, then serve.

Node-side: Python 3.6+, standard library only.
"""
import json
import os
import signal
import sys

from ansible_collections.fleet.firmware.plugins.module_utils.agent.config import AgentError, validate_config
from ansible_collections.fleet.firmware.plugins.module_utils.agent.core import Agent
from ansible_collections.fleet.firmware.plugins.module_utils.agent.logfile import log, open_log


def _detach_streams() -> None:
    """After "ready": stdout and stdin are the module's pipes; let go of them."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    os.close(devnull)


def main() -> int:
    """Entry point of agent.pyz: configuration on stdin, one readiness line on stdout."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        config = validate_config(json.loads(sys.stdin.read() or "null"))
    except (AgentError, ValueError) as exc:
        return _not_ready("invalid configuration: %s" % exc)
    agent = Agent(config)
    try:
        ready = agent.start()
        open_log(config["staging"])
    except AgentError as exc:
        return _not_ready(str(exc))
    except Exception as exc:  # pylint: disable=broad-except  # the module must hear why
        return _not_ready("the agent failed to start: %r" % (exc,))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: agent.request_stop("stopped by signal"))
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()
    _detach_streams()
    log("ready: %s" % json.dumps(ready, sort_keys=True))
    agent.wait_and_clean()
    return 0


def _not_ready(message: str) -> int:
    sys.stdout.write(json.dumps({"ready": False, "error": message}) + "\n")
    sys.stdout.flush()
    return 1
