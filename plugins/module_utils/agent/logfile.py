# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The agent's log file (agent.log in the staging folder, 0600); nothing goes to stdout after "ready".

Node-side: Python 3.6+, standard library only.
"""
import os
import time
from typing import Any

from ansible_collections.fleet.firmware.plugins.module_utils.agent.config import utc

_LOG = None  # type: Any


def open_log(staging: str) -> None:
    global _LOG  # pylint: disable=global-statement
    _LOG = os.fdopen(os.open(os.path.join(staging, "agent.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "a", 1)


def close_log() -> None:
    global _LOG  # pylint: disable=global-statement
    if _LOG is not None:
        _LOG.close()
        _LOG = None


def log(message: str) -> None:
    if _LOG is not None:
        try:
            _LOG.write("%s %s\n" % (utc(time.time()), message))
        except (IOError, OSError, ValueError):
            pass
