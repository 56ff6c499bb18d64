# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``ansible-playbook`` process a deploy worker serves, and the run tag derived from it.

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time.
"""
from __future__ import annotations

import hashlib

from ansible_collections.fleet.firmware.plugins.plugin_utils import engine as engine_mod


class DeployError(Exception):
    """The session cannot go on; the message says why (the cleanup still runs)."""


def default_tag() -> str:
    """The same for every worker of one ansible-playbook run: its pid and start time."""
    pid = engine_mod.find_playbook_pid()
    seed = f"{pid}:{engine_mod.process_start_time(pid)}"
    return "run-" + hashlib.sha256(seed.encode()).hexdigest()[:12]


class ControllerWatch:
    """The ``ansible-playbook`` process this worker serves.

    Ansible's workers live in sessions of their own and outlive a ``kill -9`` of
    ``ansible-playbook``. Such an orphaned worker must not go on as if nothing happened (fall
    back to push once the engine is gone, start the next install): it starts nothing new, lets
    the component in flight finish, cleans up and says so in the ledger.
    """

    def __init__(self) -> None:
        self.pid = engine_mod.find_playbook_pid()
        self.start = engine_mod.process_start_time(self.pid)

    def alive(self) -> bool:
        return engine_mod.process_start_time(self.pid) == self.start


class ControllerGone(DeployError):
    """``ansible-playbook`` is gone (killed): the orphaned worker stops the session."""
