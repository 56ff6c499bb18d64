# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The controller's side of the agent protocol (docs/agent.md): mutual TLS, pinned run CA.

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time.

    session = agent_client.load_session(run_dir, "lin01")   # written by the agent action
    client = agent_client.AgentClient.from_session(session)
    client.status(); client.renew(120); client.push("/srv/fw/x.bin", sha256)
    client.submit([component, ...]); client.cancel(); client.shutdown()

A session file (``<run_dir>/agents/<node>.json``, 0600) holds the node's addresses, the port,
the bearer token and the paths of our client certificate and the run's CA: enough for the
deploy action, a lease holder or a test to talk to that node's agent.
"""
from __future__ import annotations

import http.client
import json
import os
import ssl
import typing as t

from ansible_collections.fleet.firmware.plugins.plugin_utils import tls as tls_mod

SESSIONS = "agents"
CHUNK = 1024 * 1024
# The largest answer read from an agent: a plan of ~25,000 components is about 8 MiB.
MAX_RESPONSE = 32 * 1024 * 1024


class AgentClientError(Exception):
    """The agent could not be reached or refused a request; the message says which and why."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def session_path(run_dir: str, node: str) -> str:
    return os.path.join(run_dir, SESSIONS, f"{node}.json")


def save_session(run_dir: str, node: str, data: dict) -> str:
    path = session_path(run_dir, node)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
        json.dump(data, handle)
    os.replace(tmp, path)
    return path


def load_session(run_dir: str, node: str) -> dict | None:
    try:
        with open(session_path(run_dir, node), encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None


def remove_session(run_dir: str, node: str) -> bool:
    try:
        os.unlink(session_path(run_dir, node))
        return True
    except FileNotFoundError:
        return False


def client_context(ca_cert: str, ca_fingerprint: str, client_cert: str, client_key: str) -> ssl.SSLContext:
    context = tls_mod.pinned_client_context(ca_cert, ca_fingerprint)
    context.load_cert_chain(client_cert, client_key)
    return context


class AgentClient:
    """One agent, reached at the first of its addresses that answers."""

    def __init__(self, addresses: t.Sequence[str], port: int, token: str, context: ssl.SSLContext, timeout: float = 15.0) -> None:
        if not addresses:
            raise AgentClientError("no address to reach the agent at")
        self.addresses = list(addresses)
        self.port = port
        self._token = token
        self.context = context
        self.timeout = timeout

    @classmethod
    def from_session(cls, session: dict, timeout: float = 15.0) -> "AgentClient":
        context = client_context(session["ca_cert"], session["ca_fingerprint"], session["client_cert"], session["client_key"])
        return cls(session["addresses"], int(session["port"]), session["token"], context, timeout)

    def __repr__(self) -> str:  # never the token
        return f"AgentClient({self.addresses!r}, {self.port})"

    def _connect(self, timeout: float | None = None) -> http.client.HTTPSConnection:
        errors = []
        for address in self.addresses:
            connection = http.client.HTTPSConnection(address, self.port, timeout=timeout or self.timeout, context=self.context)
            try:
                connection.connect()
                return connection
            except (OSError, ssl.SSLError) as exc:
                connection.close()
                errors.append(f"[{address}]:{self.port}: {exc}")
        raise AgentClientError("the agent cannot be reached over mutual TLS: " + "; ".join(errors))

    def request(self, method: str, path: str, body: t.Any = None, raw: t.BinaryIO | None = None, length: int = 0,
                timeout: float | None = None) -> dict:
        """One request; ``timeout`` (seconds) for answers that take long to come (a download)."""
        connection = self._connect(timeout)
        try:
            headers = {"Authorization": f"Bearer {self._token}"}
            if raw is not None:
                headers.update({"Content-Length": str(length), "Content-Type": "application/octet-stream"})
                connection.putrequest(method, path)
                for key, value in headers.items():
                    connection.putheader(key, value)
                connection.endheaders()
                for chunk in iter(lambda: raw.read(CHUNK), b""):
                    connection.send(chunk)
            else:
                data = b"" if body is None and method == "GET" else json.dumps(body or {}).encode("utf-8")
                if method != "GET":
                    headers.update({"Content-Type": "application/json", "Content-Length": str(len(data))})
                connection.request(method, path, body=data or None, headers=headers)
            response = connection.getresponse()
            # Bounded: an agent (or whoever answers in its place) cannot make the controller buffer without end.
            payload = response.read(MAX_RESPONSE + 1)
            if len(payload) > MAX_RESPONSE:
                raise AgentClientError(f"{method} {path}: the agent's answer is larger than the controller's limit of {MAX_RESPONSE} bytes")
        except (OSError, ssl.SSLError, http.client.HTTPException) as exc:
            raise AgentClientError(f"{method} {path} failed: {exc}") from None
        finally:
            connection.close()
        try:
            answer = json.loads(payload.decode("utf-8") or "{}")
        except ValueError:
            answer = {"error": payload[:200].decode("utf-8", "replace")}
        if response.status >= 400:
            raise AgentClientError(f"{method} {path}: {response.status} {answer.get('error', '')}".rstrip(), response.status)
        return answer

    def status(self) -> dict:
        return self.request("GET", "/v1/status")

    def renew(self, seconds: int | None = None) -> dict:
        return self.request("POST", "/v1/lease", {} if seconds is None else {"seconds": seconds})

    def cancel(self) -> dict:
        return self.request("POST", "/v1/cancel", {})

    def inventory(self) -> dict:
        return self.request("GET", "/v1/inventory")

    def submit(self, components: list, on_failed_dependency: str = "omit_component") -> dict:
        return self.request("POST", "/v1/jobs", {"components": components, "on_failed_dependency": on_failed_dependency})

    def push(self, path: str, sha256: str) -> dict:
        with open(path, "rb") as handle:
            return self.request("PUT", f"/v1/components/{sha256}", raw=handle, length=os.fstat(handle.fileno()).st_size)

    def fetch(self, sha256: str, urls: list, token: str | None = None, run_ca: bool = True, timeout: float = 3600.0) -> dict:
        """Have the agent download a component (pull delivery); 504 when it cannot reach any URL."""
        return self.request("POST", "/v1/fetch", {"sha256": sha256, "urls": urls, "token": token, "run_ca": run_ca}, timeout=timeout)

    def plan(self, components: list, policy: dict | None = None, redfish: dict | None = None) -> list:
        body = {"components": components, "policy": policy or {}}
        if redfish:  # detect stream: the BMC settings (deploy's redfish_* options), in the body over mutual TLS, never argv
            body["redfish"] = redfish
        return self.request("POST", "/v1/plan", body, timeout=600)["plan"]

    def shutdown(self) -> dict:
        return self.request("POST", "/v1/shutdown", {})
