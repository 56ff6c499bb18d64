# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The node lock: one agent per node, an flock held for the agent's life, and who holds it.

Node-side: Python 3.6+, standard library only.
"""
import fcntl
import json
import os
import time
from typing import Any, Dict, Optional

from ansible_collections.fleet.firmware.plugins.module_utils.agent.config import HOLDER_NAME, LOCK_NAME, AgentError, run_dir, unlink_quietly, utc


class NodeLock(object):
    """One agent per node: an exclusive flock held for the agent's life, and who holds it."""

    def __init__(self, folder: Optional[str] = None) -> None:
        self.folder = folder or run_dir()
        self.fd = -1

    @property
    def lock_path(self) -> str:
        return os.path.join(self.folder, LOCK_NAME)

    @property
    def holder_path(self) -> str:
        return os.path.join(self.folder, HOLDER_NAME)

    def holder(self) -> Optional[Dict[str, Any]]:
        try:
            with open(self.holder_path) as handle:
                return json.load(handle)
        except (IOError, OSError, ValueError):
            return None

    def held(self) -> bool:
        """Is the lock held by a live process (ours or another)?"""
        try:
            fd = os.open(self.lock_path, os.O_RDWR)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False

    def acquire(self, tag: str, info: Dict[str, Any]) -> None:
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                other = self.holder() or {}
                raise AgentError("node is held by run %r (agent pid %s since %s): stop that run first, or wait for its lease to run out"
                                 % (other.get("tag", "?"), other.get("pid", "?"), other.get("since", "?")))
            # The holder before us may have unlinked the file after we opened it: lock the live one.
            try:
                if os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino:
                    break
            except OSError:
                pass
            os.close(fd)
        self.fd = fd
        data = dict(info, tag=tag, pid=os.getpid(), since=utc(time.time()))
        tmp = self.holder_path + ".tmp"
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            json.dump(data, handle)
        os.rename(tmp, self.holder_path)

    def release(self) -> None:
        if self.fd < 0:
            return
        for path in (self.holder_path, self.lock_path):
            unlink_quietly(path)
        os.close(self.fd)
        self.fd = -1
        try:
            os.rmdir(self.folder)  # only when nothing else of ours is left there
        except OSError:
            pass
