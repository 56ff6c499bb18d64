# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The node-side state of openings: small 0600 JSON files under /run, and one lock.

/run is a tmpfs: the state goes away with a reboot, and so do runtime firewall rules, so the
two never disagree for long. Removing the last file removes the folders too (nothing left).
``FLEET_FIREWALL_STATE_DIR`` moves it (tests of the controller side use a private folder).
"""
import contextlib
import fcntl
import json
import os
from typing import Dict, Iterator, List, Optional

STATE_DIR = os.environ.get("FLEET_FIREWALL_STATE_DIR", "/run/fleet-firmware/firewall")


def state_dir() -> str:
    return os.environ.get("FLEET_FIREWALL_STATE_DIR", STATE_DIR)


def path(name: str) -> str:
    return os.path.join(state_dir(), name + ".json")


def read(name: str) -> Optional[Dict]:
    try:
        with open(path(name)) as handle:
            return json.load(handle)
    except (IOError, OSError, ValueError):
        return None


def write(name: str, data: Dict) -> None:
    """Atomic: a reader (the watchdog) sees the old or the new file, never half of one."""
    os.makedirs(state_dir(), mode=0o700, exist_ok=True)
    tmp = path(name) + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    os.rename(tmp, path(name))


def remove(name: str) -> None:
    try:
        os.unlink(path(name))
    except OSError:
        pass
    prune()


def tags(prefix: str) -> List[str]:
    try:
        names = os.listdir(state_dir())
    except OSError:
        return []
    return sorted(n[len(prefix):-5] for n in names if n.startswith(prefix) and n.endswith(".json"))


def members(name: str) -> List[str]:
    """The items of a small recorded set (e.g. the tables an opening of ours created)."""
    return list((read(name) or {}).get("items", []))


def add_member(name: str, item: str) -> None:
    items = members(name)
    if item not in items:
        write(name, {"items": items + [item]})


def discard_member(name: str, item: str) -> None:
    items = [i for i in members(name) if i != item]
    if items:
        write(name, {"items": items})
    elif read(name) is not None:
        remove(name)


def prune() -> None:
    """Remove our folders when they hold nothing any more."""
    folder = state_dir()
    for candidate in (folder, os.path.dirname(folder)):
        if os.path.basename(candidate) in ("firewall", "fleet-firmware"):
            try:
                os.rmdir(candidate)
            except OSError:
                return


@contextlib.contextmanager
def lock() -> Iterator[None]:
    """One firewall change at a time on this host (modules, watchdogs, the agent)."""
    os.makedirs(state_dir(), mode=0o700, exist_ok=True)
    fd = os.open(state_dir(), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
