# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The engine's registry: components hashed once by file identity, node sessions and their
bearer tokens (kept only as SHA-256, compared in constant time), jobs, served bytes.

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time.
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import threading
import typing as t

from ansible_collections.fleet.firmware.plugins.module_utils import filehash
from ansible_collections.fleet.firmware.plugins.plugin_utils import ledger as ledger_mod
from ansible_collections.fleet.firmware.plugins.plugin_utils.engine.httpd import _HTTPError
from ansible_collections.fleet.firmware.plugins.plugin_utils.engine.settings import SHA256_RE, EngineError, _log


@dataclasses.dataclass
class Component:
    sha256: str
    path: str
    size: int
    identity: tuple  # (dev, ino, size, mtime_ns, ctime_ns) when hashed


_identity = filehash.identity


def hash_file(path: str) -> tuple[str, os.stat_result]:
    """SHA-256 of a file and its stat from the same open file (the hashed object is that inode)."""
    try:
        return filehash.sha256_and_stat(path)
    except filehash.FileChanged:
        raise EngineError(f"component {path} changed while it was being hashed") from None


class Registry:
    """The engine's registry half (a part of ``daemon.Engine``, whose ``__init__`` holds the state)."""

    # -- registry ----------------------------------------------------------------------------

    def register_component(self, path: str, sha256: t.Optional[str] = None, node_id: t.Optional[str] = None) -> str:
        """Hash ``path`` once (here, in the serving process) and serve it under its SHA-256, to the
        nodes it is granted to (``node_id`` here, or ``grant``)."""
        if sha256 is not None and (not isinstance(sha256, str) or not SHA256_RE.match(sha256.lower())):
            raise EngineError(f"invalid sha256 {sha256!r}: 64 hex digits")
        real = os.path.realpath(path)
        if not os.path.isfile(real):
            raise EngineError(f"component {path} is not a regular file")
        digest, st = self._digest_of(real)
        if sha256 is not None and digest != sha256.lower():
            raise EngineError(f"component {path} has SHA-256 {digest}, expected {sha256.lower()}")
        with self._lock:
            self._components[digest] = Component(digest, real, st.st_size, _identity(st))
        if node_id is not None:
            self.grant(node_id, digest)
        return digest

    def grant(self, node_id: str, sha256: str) -> None:
        """Let ``node_id``'s token fetch the registered component ``sha256`` (what the controller
        assigned to that host); no other component is served to that token."""
        with self._lock:
            if node_id not in self._node_tokens:
                raise EngineError(f"no session for node {node_id!r}: register_node first")
            if sha256 not in self._components:
                raise EngineError(f"component {sha256!r} is not registered with the engine")
            self._grants.setdefault(node_id, set()).add(sha256)

    def end_session(self, node_id: str) -> bool:
        """The node's session ended: its token stops working and its grants go; False when it had none."""
        with self._lock:
            digest = self._node_tokens.pop(node_id, None)
            if digest is not None:
                self._tokens.pop(digest, None)
            self._grants.pop(node_id, None)
            self._jobs.pop(node_id, None)
        if digest is None:
            return False
        self.ledger.append(node_id, {"event": "session_closed"}, source="engine")
        return True

    def _digest_of(self, real: str) -> tuple[str, os.stat_result]:
        """SHA-256 of ``real``, hashed again only when the file's identity changed (serving checks the
        identity again). One lock per path: 50 nodes registering at once wait for one hash, not 50."""
        with self._lock:
            path_lock = self._hash_locks.setdefault(real, threading.Lock())
        with path_lock:
            st = os.stat(real)
            known = self._hashed.get(real)
            if known is not None and known[1] == _identity(st):
                return known[0], st
            digest, st = hash_file(real)
            self._hashed[real] = (digest, _identity(st))
            return digest, st

    def register_node(self, node_id: str) -> str:
        """Open (or renew) a node session; return its bearer token (only the hash is kept)."""
        ledger_mod.check_node_id(node_id)
        token = secrets.token_urlsafe(32)
        digest = hashlib.sha256(token.encode()).digest()
        with self._lock:
            old = self._node_tokens.pop(node_id, None)
            if old is not None:
                self._tokens.pop(old, None)
            self._node_tokens[node_id] = digest
            self._tokens[digest] = node_id
            self._grants.setdefault(node_id, set())
        self.ledger.append(node_id, {"event": "session_opened"}, source="engine")
        return token

    def set_job(self, node_id: str, job: dict) -> dict:
        """Set the node's job; components are named by registered SHA-256, sizes filled in."""
        if node_id not in self._node_tokens:
            raise EngineError(f"no session for node {node_id!r}: register_node first")
        if not isinstance(job, dict):
            raise EngineError(f"a job must be a dict, got {type(job).__name__}")
        components = []
        for item in job.get("components", []):
            sha = item.get("sha256") if isinstance(item, dict) else None
            if sha not in self._components:
                raise EngineError(f"job for {node_id}: component {sha!r} is not registered with the engine")
            components.append(dict(item, size=self._components[sha].size, url=f"/v1/components/{sha}"))
        full = dict(job, node=node_id, components=components)
        json.dumps(full)  # must be JSON as it is served
        with self._lock:
            self._jobs[node_id] = full
            self._grants.setdefault(node_id, set()).update(c["sha256"] for c in components)
        return full

    def stats(self) -> dict:
        with self._lock:
            return {"served": dict(self._served), "active": self._active, "components": len(self._components),
                    "nodes": sorted(self._node_tokens), "pid": os.getpid(), "port": self.port}

    # -- used by the handler -----------------------------------------------------------------

    def authorize(self, token: str, node_id: t.Optional[str]) -> str:
        """The node id of ``token``; 401 if no session has it, 403 if it is another node's."""
        digest = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        with self._lock:
            owner = self._tokens.get(digest)
            expected = self._node_tokens.get(owner) if owner else None
        # Constant-time comparison of the digests: no timing hint about a near-miss token.
        if owner is None or expected is None or not hmac.compare_digest(expected, digest):
            raise _HTTPError(401, "invalid token", {"WWW-Authenticate": "Bearer"})
        if node_id is not None and owner != node_id:
            raise _HTTPError(403, "this token is not for this node")
        return owner

    def job_for(self, node_id: str) -> dict:
        with self._lock:
            job = self._jobs.get(node_id)
        if job is None:
            raise _HTTPError(404, "no job for this node yet")
        return job

    def record_events(self, node_id: str, events: list) -> int:
        for event in events:
            self.ledger.append(node_id, event)
        # The byte offset after this request's events: what read_since continues from.
        return os.path.getsize(ledger_mod.ledger_path(self.run_dir, node_id))

    def open_component(self, sha256: str, node_id: str) -> tuple:
        with self._lock:
            granted = sha256 in self._grants.get(node_id, ())
            component = self._components.get(sha256) if granted else None
        if component is None:
            # Not registered, or not assigned to this node: the same answer, so a node's token
            # learns nothing about what other nodes get.
            raise _HTTPError(404, "no such component for this node")
        try:
            handle = open(component.path, "rb", buffering=0)  # pylint: disable=consider-using-with
            fd = handle.fileno()
            flags = fcntl.fcntl(fd, fcntl.F_GETFD)
            fcntl.fcntl(fd, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)
            current = _identity(os.fstat(fd))
        except OSError:
            current, handle = None, None
        if current != component.identity:
            if handle is not None:
                handle.close()
            message = f"component {sha256} changed on disk after registration ({component.path}); not served"
            self.ledger.append(node_id, {"event": "component_refused", "component": sha256, "message": message}, source="engine")
            _log(message)
            raise _HTTPError(409, "component changed on disk after registration; not served")
        return handle, component

    def note_resume(self, node_id: str, sha256: str, span: str) -> None:
        """A node resumes a download: the ledger's record of it (a link that went down, a reset)."""
        self.ledger.append(node_id, {"event": "component_resumed", "component": sha256, "message": span}, source="engine")

    def count_served(self, sha256: str, count: int) -> None:
        with self._lock:
            self._served[sha256] = self._served.get(sha256, 0) + count
