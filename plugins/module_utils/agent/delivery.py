# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Delivery of components into the staging folder: push (the controller uploads) and pull
(the node downloads from the engine, or from a repository URL), hash checked, resumable.

Node-side: Python 3.6+, standard library only. ``Delivery`` is a part of ``core.Agent``.
"""
import errno
import hashlib
import http.client
import os
import ssl
import time
from typing import Any, Dict, Optional
from urllib.parse import urlsplit

from ansible_collections.fleet.firmware.plugins.module_utils.agent.config import CHUNK, COMPONENTS, FETCH_ATTEMPTS, FETCH_TIMEOUT, SHA_RE, AgentError
from ansible_collections.fleet.firmware.plugins.module_utils.agent.config import unlink_quietly as _unlink
from ansible_collections.fleet.firmware.plugins.module_utils.filehash import sha256_of


class HashMismatch(AgentError):
    """Bytes that do not hash to what the manifest says (409; nothing is kept)."""


class FetchFailed(AgentError):
    """The node cannot download a component (504: the controller may push it instead)."""


class NoSpace(AgentError):
    """The staging folder's file system is full (507): neither retried nor pushed instead."""


def free_bytes(folder: str) -> int:
    """Bytes an unprivileged writer may still use in ``folder``'s file system."""
    try:
        info = os.statvfs(folder)
    except OSError:
        return 0
    return info.f_bavail * info.f_frsize


def _out_of_space(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _drain(stream: Any, remaining: int) -> None:
    """Read and drop what is left of a request body (bounded by its Content-Length)."""
    while remaining > 0:
        chunk = stream.read(min(CHUNK, remaining))
        if not chunk:
            return
        remaining -= len(chunk)


class Delivery(object):
    """The agent's delivery half: where components go, the upload, the download."""

    def component_path(self, sha256: str) -> str:
        return os.path.join(self.staging, COMPONENTS, sha256)

    def no_space(self, needed: Optional[int] = None) -> "NoSpace":
        """The error a full staging folder gives: the OS's words, the folder, the numbers."""
        numbers = "%d bytes free" % free_bytes(self.staging)
        if needed is not None:
            numbers = "%d more bytes needed, %s" % (needed, numbers)
        return NoSpace("No space left on device in the staging folder %s (%s): free some space or choose another staging_dir"
                       % (self.staging, numbers))

    # -- component upload (push delivery)

    def receive_component(self, sha256: str, stream: Any, length: int) -> Dict[str, Any]:
        final = self.component_path(sha256)
        partial = final + ".part"
        digest = hashlib.sha256()
        remaining = length
        try:
            if length > free_bytes(self.staging):
                raise self.no_space(length)
            with open(partial, "wb") as handle:
                while remaining:
                    chunk = stream.read(min(CHUNK, remaining))
                    if not chunk:
                        raise AgentError("the upload ended after %d of %d bytes" % (length - remaining, length))
                    digest.update(chunk)
                    remaining -= len(chunk)
                    try:
                        handle.write(chunk)
                    except OSError as exc:
                        if _out_of_space(exc):
                            raise self.no_space(remaining + len(chunk))
                        raise
                handle.flush()
                os.fsync(handle.fileno())
            if digest.hexdigest() != sha256:
                raise HashMismatch("the uploaded bytes hash to %s, not %s: nothing kept" % (digest.hexdigest(), sha256))
            os.rename(partial, final)
        except NoSpace:
            _unlink(partial)
            _drain(stream, remaining)  # read the rest of the body: the controller then hears why
            raise
        except BaseException:
            _unlink(partial)
            raise
        self.event("downloaded", sha256=sha256, size=length, delivery="push")
        return {"sha256": sha256, "size": length}

    # -- pull delivery (the node downloads from the engine, or from a repository URL)

    def fetch(self, body: Dict[str, Any]) -> Dict[str, Any]:
        """Download one component into the staging folder, resuming with Range, hash checked.

        Retries with back-off while bytes keep coming (a link down for a few seconds); gives up
        at once when no URL can be reached at all (the controller then pushes instead).
        """
        sha256, urls = str(body.get("sha256", "")), body.get("urls") or []
        if not SHA_RE.fullmatch(sha256) or not isinstance(urls, list) or not urls:
            raise AgentError("a fetch is {\"sha256\": <64 hex>, \"urls\": [...], \"token\": ..., \"size\": ...}")
        final = self.component_path(sha256)
        named = {"component": body["component"]} if body.get("component") else {}  # pull mode: the ledger names it
        if os.path.exists(final) and sha256_of(final) == sha256:
            if named:
                self.event("downloaded", sha256=sha256, size=os.path.getsize(final), delivery="pull", cached=True, **named)
            return {"sha256": sha256, "size": os.path.getsize(final), "cached": True}
        partial, errors = final + ".part", []  # type: str, list
        self.event("downloading", sha256=sha256, delivery="pull", **named)
        for attempt in range(FETCH_ATTEMPTS):
            before = _size(partial)
            for url in urls:
                try:
                    self._download(str(url), body.get("token"), partial, sha256, bool(body.get("run_ca", True)))
                except NoSpace:
                    _unlink(partial)  # a full disk is no network trouble: no retry, no push instead
                    raise
                except (OSError, ssl.SSLError, http.client.HTTPException, AgentError) as exc:
                    errors.append("%s: %s" % (url, exc))
                    continue
                return self._finish_fetch(partial, final, sha256, named)
            if _size(partial) == before and (attempt >= 2 or before == 0 and attempt >= 1):
                break
            time.sleep(min(2.0 ** attempt, 5.0))
        raise FetchFailed("the node cannot download %s: %s" % (sha256[:12], "; ".join(errors[-len(urls):])))

    def _finish_fetch(self, partial: str, final: str, sha256: str, named: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        if sha256_of(partial) != sha256:
            _unlink(partial)
            raise HashMismatch("the downloaded bytes of %s do not match the manifest's SHA-256: nothing kept" % sha256[:12])
        os.rename(partial, final)
        with self.mutex:
            self.transfers.pop(sha256, None)
        self.event("downloaded", sha256=sha256, size=os.path.getsize(final), delivery="pull", **(named or {}))
        return {"sha256": sha256, "size": os.path.getsize(final), "cached": False}

    def _download(self, url: str, token: Optional[str], partial: str, sha256: str, run_ca: bool) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AgentError("URL %r is not http(s)" % url)
        if parts.scheme == "https":
            context = ssl.create_default_context(cadata=self.config["ca_cert"]) if run_ca else ssl.create_default_context()
            connection = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=FETCH_TIMEOUT, context=context)
        else:
            connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=FETCH_TIMEOUT)
        have = _size(partial)
        headers = {"Range": "bytes=%d-" % have} if have else {}
        if token:
            headers["Authorization"] = "Bearer " + token
        try:
            connection.request("GET", parts.path or "/", headers=headers)
            response = connection.getresponse()
            if response.status == 416:
                _unlink(partial)  # more than the file: start again
                raise AgentError("the server refused the resume point (416)")
            if response.status not in (200, 206):
                raise AgentError("HTTP %d %s" % (response.status, response.reason))
            self._stream(response, partial, sha256, append=response.status == 206)
        finally:
            connection.close()

    def _stream(self, response: Any, partial: str, sha256: str, append: bool) -> None:
        total = response.getheader("Content-Range", "").rpartition("/")[2] if append else response.getheader("Content-Length", "")
        with open(partial, "ab" if append else "wb") as handle:
            done = handle.tell()
            if total.isdigit() and int(total) - done > free_bytes(self.staging):
                raise self.no_space(int(total) - done)
            try:
                while True:
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    handle.write(chunk)
                    done += len(chunk)
                    with self.mutex:
                        self.transfers[sha256] = {"bytes": done, "size": int(total) if total.isdigit() else None}
                handle.flush()
                os.fsync(handle.fileno())
            except OSError as exc:
                if _out_of_space(exc):
                    raise self.no_space(int(total) - done if total.isdigit() else None)
                raise
        if total.isdigit() and done < int(total):
            raise AgentError("the download stopped after %d of %s bytes" % (done, total))
