# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one node-side teardown of a run: stop its agent, close its tagged firewall rules, remove
its staged files, release its lock (and the files a killed agent left beside the lock).

Used by the agent itself at the end of its life (``core.Agent.cleanup``), by the agent module
(``state: absent``) and by the sweep module, so that all three take a run down the same way.

Node-side: Python 3.6+, standard library only.
"""
import glob
import os
import shutil
import time
from typing import Callable, List, Optional

from ansible_collections.fleet.firmware.plugins.module_utils.agent import control_socket as control
from ansible_collections.fleet.firmware.plugins.module_utils.agent.config import SOCKET_NAME, AgentError
from ansible_collections.fleet.firmware.plugins.module_utils.agent.config import unlink_quietly as _unlink
from ansible_collections.fleet.firmware.plugins.module_utils.agent.lock import NodeLock
from ansible_collections.fleet.firmware.plugins.module_utils.firewall import api as firewall_api

# What stop_agent found: it stopped by itself, it had to be killed, it does not stop.
STOPPED, KILLED, ALIVE = "stopped", "killed", "alive"


def stop_agent(tag: str, pid: int, timeout: float, ask_timeout: float = 10.0) -> str:
    """Ask the agent of ``tag`` to stop over its control socket (it finishes its component and
    cleans up after itself) and wait ``timeout`` s; then SIGTERM, then SIGKILL."""
    try:
        control.control(tag, {"op": "shutdown"}, timeout=ask_timeout)
        if control.wait_gone(pid, timeout):
            return STOPPED
    except (AgentError, OSError, ValueError):
        pass  # no socket (a killed agent's leftovers): signals instead
    if pid and not control.stop_process(pid, 10):
        return ALIVE
    return KILLED


def close_rules(tag: str, backend: str = "auto", check_mode: bool = False) -> List[str]:
    """Close (or, in check mode, list) the rules and leases tagged ``tag`` on this node.

    ``tag`` may be ``*`` (every run of the collection). Raises firewall_api.FirewallError.
    """
    result = firewall_api.close_tag(tag, backend=backend, check_mode=check_mode)
    return list(result.get("rules") or [])


def close_rules_retrying(tag: str, backend: str, attempts: int = 5, log: Optional[Callable[[str], None]] = None) -> bool:
    """close_rules, retried with a growing pause: a port must not stay open. False if every try failed
    (the firewall lease, a second guard, then still closes the rules)."""
    for attempt in range(attempts):
        try:
            close_rules(tag, backend=backend)
            return True
        except Exception as exc:  # pylint: disable=broad-except  # retry: a port must not stay open
            if log is not None:
                log("closing the firewall failed (attempt %d): %s" % (attempt + 1, exc))
            time.sleep(1 + attempt)
    return False


def remove_staging(path: str) -> bool:
    """Remove a run's staging folder; True when it is gone."""
    shutil.rmtree(path, ignore_errors=True)
    return not os.path.lexists(path)


# The file a launcher (agent_launch.py) stages the zipapp in, named by its pid, until its agent runs.
INCOMING_PATTERN = ".agent-*.pyz"


def staging_in_use(path: str) -> Optional[str]:
    """Why the staging folder ``path`` belongs to an agent being started or running now (not a
    leftover), or None.

    A new start of the same tag (a resume while the orphaned worker of a killed run still cleans
    up) reuses the folder: its launcher's file is there from the moment the folder is written,
    and its agent works in it (its cwd) until it has removed the folder itself.
    """
    for incoming in glob.glob(os.path.join(path, INCOMING_PATTERN)):
        pid = os.path.basename(incoming)[len(".agent-"):-len(".pyz")]
        if pid.isdigit() and _alive(int(pid)):
            return "the launcher pid %s is starting an agent in %s" % (pid, path)
    try:
        folder = os.stat(path)
    except OSError:
        return None
    for entry in glob.glob("/proc/[0-9]*/cwd"):
        try:
            # The folder itself (device and inode), not its name: another mount namespace may have its own.
            cwd = os.stat(entry)
        except OSError:
            continue  # gone, or not ours to read
        if (cwd.st_dev, cwd.st_ino) == (folder.st_dev, folder.st_ino):
            return "process %s works in %s" % (entry.split("/")[2], path)
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_socket(tag: str) -> None:
    """The agent's control socket (root's /run)."""
    _unlink(control.socket_path(tag))


def agent_state_files(wanted: str, lock: Optional[NodeLock] = None) -> List[str]:
    """The lock, holder and sockets a killed agent of ``wanted`` (a tag or ``*``) left beside the
    lock; nothing while a live agent holds the lock (its files are its own)."""
    lock = lock or NodeLock()
    if lock.held():
        return []
    holder = lock.holder() or {}
    paths = glob.glob(os.path.join(lock.folder, SOCKET_NAME % wanted))
    if holder.get("tag") is None or wanted in ("*", holder.get("tag")):
        paths += [p for p in (lock.holder_path, lock.lock_path) if os.path.lexists(p)]
    return sorted(paths)


def remove_agent_state(paths: List[str], lock: Optional[NodeLock] = None) -> None:
    """Remove what agent_state_files found, and the run folder once it is empty."""
    lock = lock or NodeLock()
    for path in paths:
        _unlink(path)
    try:
        os.rmdir(lock.folder)
    except OSError:
        pass


def forget_killed_agent(tag: str, lock: Optional[NodeLock] = None) -> None:
    """After a SIGKILL: the holder, the lock and the socket the agent of ``tag`` could not remove."""
    lock = lock or NodeLock()
    for path in (lock.holder_path, lock.lock_path, os.path.join(lock.folder, SOCKET_NAME % tag)):
        _unlink(path)
