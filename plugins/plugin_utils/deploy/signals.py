# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Ctrl-C and SIGTERM during a node session: one orderly cancel, then the cleanup.

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time.

On Ctrl-C Ansible sends SIGTERM to its workers, whose own handler exits at once, and
multiprocessing's exit handler sends another while it waits for them. While a node session runs,
the first SIGINT/SIGTERM becomes a KeyboardInterrupt instead (the component in flight finishes,
the rest is cancelled, the ``finally`` cleans up) and later ones are ignored until the cleanup
is done. SIGKILL still stops everything: the lease cleans up.
"""
from __future__ import annotations

import signal

TRAPPED = (signal.SIGINT, signal.SIGTERM)


def trap() -> dict:
    """Install the session's handlers; return the previous ones for ``restore``."""
    previous = {signum: signal.getsignal(signum) for signum in TRAPPED}

    def cleaning_up(signum, frame):
        pass  # the cleanup is under way; it ends the session

    def interrupted(signum, frame):
        for trapped in previous:
            signal.signal(trapped, cleaning_up)
        raise KeyboardInterrupt(f"signal {signum}")

    for signum in previous:
        signal.signal(signum, interrupted)
    return previous


def restore(previous: dict) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
