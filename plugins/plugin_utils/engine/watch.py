# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Process watching: the ``ansible-playbook`` the engine serves, its start time (pid reuse), its end (pidfd).

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time.
"""
from __future__ import annotations

import os
import select
import typing as t


def process_start_time(pid: int) -> t.Optional[int]:
    """Start time of ``pid`` in clock ticks since boot (/proc/PID/stat field 22), None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    fields = data[data.rfind(b")") + 2:].split()
    return int(fields[19])


def _open_pidfd(pid: int, start: t.Optional[int]) -> t.Optional[int]:
    """A pidfd for ``pid`` if it is still the process that started at ``start``; -1 if gone;
    None if pidfds are not available here (then /proc is polled)."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return -1
    except (AttributeError, OSError):
        return None
    if start is not None and process_start_time(pid) != start:
        os.close(pidfd)
        return -1  # the pid was reused: our process is gone
    return pidfd


def _still_running(pidfd: t.Optional[int], pid: int, start: t.Optional[int]) -> bool:
    if pidfd is not None:
        # A pidfd becomes readable when its process ends, also after SIGKILL.
        ready = select.select([pidfd], [], [], 0.5)[0]
        return not ready
    current = process_start_time(pid)
    return current is not None and (start is None or current == start)


def find_playbook_pid() -> int:
    """The ``ansible-playbook`` main process above us; else our parent.

    Forked workers carry the same command line as the main process, so this is the outermost
    of the chain of ``ansible-playbook`` processes that starts with us or our ancestors.
    """
    pid, found = os.getpid(), None
    for _depth in range(32):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")[:2]
            with open(f"/proc/{pid}/stat", "rb") as handle:
                data = handle.read()
        except OSError:
            break
        if any(os.path.basename(a) == b"ansible-playbook" for a in argv):
            found = pid
        elif found is not None:
            break
        pid = int(data[data.rfind(b")") + 2:].split()[1])
        if pid <= 1:
            break
    return found if found is not None else os.getppid()
