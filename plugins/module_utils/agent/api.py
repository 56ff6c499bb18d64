# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The node API: the agent's HTTP routes, their authentication, limits and error codes, and
the inventory it answers (the protocol is described in docs/agent.md).

Node-side: Python 3.6+, standard library only.
"""
import errno
import hmac
import json
import os
import socket
import sys
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, Dict, Optional

from ansible_collections.fleet.firmware.plugins.module_utils.agent.config import MAX_JSON_BODY, SHA_RE, AgentError
from ansible_collections.fleet.firmware.plugins.module_utils.agent.delivery import FetchFailed, HashMismatch, NoSpace, _drain
from ansible_collections.fleet.firmware.plugins.module_utils.agent.jobs import validate_job
from ansible_collections.fleet.firmware.plugins.module_utils.agent.logfile import log

if TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.fleet.firmware.plugins.module_utils.agent.core import Agent  # noqa: F401  pylint: disable=unused-import


class AgentHandler(BaseHTTPRequestHandler):
    server_version = "fleet-firmware-agent/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # pylint: disable=redefined-builtin
        log("%s %s" % (self.client_address[0], format % args))

    @property
    def agent(self) -> "Agent":
        return self.server.agent  # type: ignore[attr-defined]

    def _send(self, status: int, body: Dict[str, Any]) -> None:
        data = (json.dumps(body, sort_keys=True) + "\n").encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        given = self.headers.get("Authorization", "")
        expected = "Bearer " + self.agent.config["token"]
        if hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
            return True
        self._send(401, {"error": "missing or wrong bearer token"})
        return False

    def _length(self, limit: Optional[int]) -> Optional[int]:
        text = self.headers.get("Content-Length")
        if text is None or not text.isdigit():
            self._send(411, {"error": "Content-Length is required"})
            return None
        if limit is not None and int(text) > limit:
            # Read the body first (the controller is authenticated): answering while it still
            # sends makes its TLS end with an EOF instead of this answer.
            _drain(self.rfile, int(text))
            self.close_connection = True
            # A plan or a job carries every component of the manifest: this is its size limit.
            self._send(413, {"error": "a request body of %s bytes is larger than the agent's limit of %d bytes (a plan or job of "
                                      "more than about 25,000 components): split the repository" % (text, limit)})
            return None
        return int(text)

    def _json_body(self) -> Any:
        length = self._length(MAX_JSON_BODY)
        if length is None:
            return None
        try:
            return json.loads(self.rfile.read(length).decode("utf-8") or "{}")
        except ValueError:
            self._send(400, {"error": "the body is not JSON"})
            return None

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_PUT(self) -> None:
        self._route("PUT")

    def _route(self, method: str) -> None:
        if not self._authorized():
            self.close_connection = True
            return
        path = self.path.split("?", 1)[0]
        routes = {
            ("GET", "/v1/status"): self._status, ("POST", "/v1/lease"): self._lease, ("POST", "/v1/cancel"): self._cancel,
            ("GET", "/v1/inventory"): self._inventory, ("POST", "/v1/jobs"): self._jobs, ("POST", "/v1/shutdown"): self._shutdown,
            ("POST", "/v1/fetch"): self._fetch, ("POST", "/v1/plan"): self._plan,
        }
        try:
            if (method, path) in routes:
                routes[(method, path)]()
            elif path.startswith("/v1/components/"):
                self._component(method, path[len("/v1/components/"):])
            elif any(route_path == path for _method, route_path in routes):
                self._send(405, {"error": "%s is not allowed on %s" % (method, path)})
            else:
                self._send(404, {"error": "no such resource: %s" % path})
        except HashMismatch as exc:
            self._send(409, {"error": str(exc)})
        except FetchFailed as exc:
            self._send(504, {"error": str(exc)})
        except NoSpace as exc:
            self._send(507, {"error": str(exc)})
        except AgentError as exc:
            self._send(409, {"error": str(exc)})
        except OSError as exc:
            status = 507 if exc.errno in (errno.ENOSPC, errno.EDQUOT) else 500
            self._send(status, {"error": "on the node: %s" % (exc.strerror or exc)})
            self.close_connection = True

    def _status(self) -> None:
        self._send(200, self.agent.status())

    def _lease(self) -> None:
        body = self._json_body()
        if body is not None:
            self._send(200, self.agent.renew(body.get("seconds") if isinstance(body, dict) else None))

    def _cancel(self) -> None:
        if self._json_body() is not None:
            self._send(200, self.agent.cancel("cancelled by the controller"))

    def _inventory(self) -> None:
        self._send(200, inventory(self.agent))

    def _jobs(self) -> None:
        body = self._json_body()
        if body is not None:
            try:
                components = validate_job(body)
            except AgentError as exc:
                self._send(400, {"error": str(exc)})
                return
            self._send(202, {"accepted": self.agent.submit(components, body.get("on_failed_dependency", "omit_component"))})

    def _fetch(self) -> None:
        body = self._json_body()
        if body is not None:
            self._send(200, self.agent.fetch(body if isinstance(body, dict) else {}))

    def _plan(self) -> None:
        body = self._json_body()
        if body is not None:
            self._send(200, self.agent.plan(body if isinstance(body, dict) else {}))

    def _shutdown(self) -> None:
        if self._json_body() is not None:
            self._send(202, {"stopping": True, "pid": os.getpid()})
            self.close_connection = True
            self.agent.request_stop("shutdown requested by the controller")

    def _component(self, method: str, sha256: str) -> None:
        if method != "PUT":
            self._send(405, {"error": "components are uploaded with PUT"})
            return
        if not SHA_RE.fullmatch(sha256):
            self._send(400, {"error": "%r is not a SHA-256 (64 lower-case hex digits)" % sha256[:80]})
            return
        length = self._length(None)
        if length is None:
            return
        self._send(201, self.agent.receive_component(sha256, self.rfile, length))


def inventory(agent: "Agent") -> Dict[str, Any]:
    """What the node is, and what it has of the job's components (detection is side-effect free)."""
    uname = os.uname()
    facts = {"hostname": socket.gethostname(), "system": uname.sysname, "kernel": uname.release, "machine": uname.machine,
             "python": "%d.%d.%d" % sys.version_info[:3], "boot_id": _read("/proc/sys/kernel/random/boot_id")}
    components = []
    for component in (agent.job.components if agent.job else []):
        entry = {"name": component["name"], "available": component.get("version")}
        if isinstance(component.get("detect"), dict):
            from ansible_collections.fleet.firmware.plugins.module_utils import detect
            found = detect.detect(component["detect"], "linux")
            entry.update(installed=found.get("version"), detect=found)
        components.append(entry)
    return {"facts": facts, "components": components}


def _read(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.read().strip()
    except (IOError, OSError):
        return ""
