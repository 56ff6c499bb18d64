# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The engine's HTTP side: components by SHA-256 (Range, sendfile), jobs and events of node sessions.

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time.
"""
from __future__ import annotations

import http.server
import ipaddress
import json
import re
import socket
import socketserver
import ssl
import typing as t

from ansible_collections.fleet.firmware.plugins.plugin_utils import ledger as ledger_mod
from ansible_collections.fleet.firmware.plugins.plugin_utils.engine.settings import COMPONENT_PATH, MAX_EVENT_BODY, MAX_UPLINK_BODY, NODE_PATH

if t.TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.fleet.firmware.plugins.plugin_utils.engine.daemon import Engine  # noqa: F401  pylint: disable=unused-import


def parse_range(header: t.Optional[str], size: int) -> t.Optional[tuple[int, int]]:
    """Return ``(start, end_inclusive)`` for a single satisfiable byte range, None to send
    the whole file (no, malformed or multi-range header: RFC 9110 lets a server ignore
    those), or raise ``ValueError`` when the range cannot be satisfied (416)."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    spec = header[6:].strip()
    match = re.fullmatch(r"(\d{0,19})-(\d{0,19})", spec)
    if not match or spec == "-":
        return None
    first, last = match.groups()
    if first == "":
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise ValueError("empty suffix range")
        return max(0, size - suffix), size - 1
    start = int(first)
    if start >= size:
        raise ValueError("range starts beyond the end")
    end = int(last) if last else size - 1
    if end < start:
        return None
    return start, min(end, size - 1)


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: t.Optional[dict] = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fleet-engine"
    sys_version = ""
    server: "_Server"

    def setup(self) -> None:
        engine = self.server.engine
        self.request.settimeout(engine.settings.client_timeout)
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if engine.ssl_context is not None:
            # The handshake happens here, in the connection's own thread: a slow or broken
            # client never holds up the accept loop.
            self.request = engine.ssl_context.wrap_socket(self.request, server_side=True)
        super().setup()

    def handle(self) -> None:
        try:
            super().handle()
        except (OSError, ssl.SSLError, ValueError):
            # Timeouts, resets and TLS alerts end this connection only.
            self.close_connection = True

    def log_message(self, format: str, *args: t.Any) -> None:  # pylint: disable=redefined-builtin
        # Request lines can be long and hostile; the ledger is the record, not an access log.
        return

    def __getattr__(self, name: str) -> t.Any:
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def parse_request(self) -> bool:
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":
            # HTTP/0.9 has no status line and no headers: no way to say 401 or 416. Refused.
            self.send_error(400, "HTTP/0.9 is not supported")
            return False
        return True

    def send_error(self, code: int, message: t.Optional[str] = None, explain: t.Optional[str] = None) -> None:
        # Called by the standard library for malformed requests: answer in JSON, then close.
        self.close_connection = True
        # A request line too broken to carry a version leaves the default "HTTP/0.9", under
        # which no status line would be sent; a client always gets one.
        self.request_version = "HTTP/1.0" if self.request_version == "HTTP/0.9" else self.request_version
        self._send_json(code, {"error": message or http.server.BaseHTTPRequestHandler.responses.get(code, ("error",))[0]},
                        {"Connection": "close"})

    def _send_json(self, status: int, body: dict, headers: t.Optional[dict] = None) -> None:
        data = (json.dumps(body, separators=(",", ":")) + "\n").encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-store")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except (OSError, ValueError):
            self.close_connection = True

    def _dispatch(self) -> None:
        self.server.engine.touch()
        path = self.path.split("?", 1)[0]
        try:
            match = COMPONENT_PATH.match(path)
            if match:
                self._only(("GET", "HEAD"))
                self._component(match.group(1))
                return
            match = NODE_PATH.match(path)
            if not match:
                raise _HTTPError(404, "not found")
            node_id, what = match.groups()
            self._only(("GET", "HEAD") if what == "job" else ("POST",))
            self.server.engine.authorize(self._token(), node_id)
            if what == "job":
                self._send_json(200, self.server.engine.job_for(node_id))
            elif what == "uplink":
                self._uplink(node_id)
            else:
                self._events(node_id)
        except _HTTPError as exc:
            if exc.status >= 400 and self.command == "POST":
                self.close_connection = True  # the body may be unread
            self._send_json(exc.status, {"error": exc.message}, exc.headers)

    do_GET = do_HEAD = do_POST = _dispatch

    def _not_allowed(self) -> None:
        self.close_connection = True
        self._send_json(405, {"error": f"method {self.command[:16]!r} not allowed"}, {"Allow": "GET, HEAD, POST"})

    def _only(self, methods: tuple) -> None:
        if self.command not in methods:
            raise _HTTPError(405, f"method {self.command} not allowed here", {"Allow": ", ".join(methods)})

    def _token(self) -> str:
        header = self.headers.get("Authorization", "")
        scheme, _sep, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _HTTPError(401, "a bearer token is required", {"WWW-Authenticate": "Bearer"})
        return token.strip()

    def _uplink(self, node_id: str) -> None:
        """The agent's events and status in, the deploy's orders out (engine/uplink.py)."""
        body = self._body(MAX_UPLINK_BODY)
        try:
            answer = self.server.engine.uplink(node_id, json.loads(body.decode("utf-8")))
        except (UnicodeDecodeError, ValueError, ledger_mod.EventError) as exc:
            raise _HTTPError(400, f"invalid uplink: {exc}"[:300]) from None
        self._send_json(200, answer)

    def _body(self, limit: int) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise _HTTPError(411, "send a Content-Length, not chunked")
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise _HTTPError(411, "Content-Length required")
        if not raw.isdigit() or len(raw) > 12:
            raise _HTTPError(400, "invalid Content-Length")
        length = int(raw)
        if length > limit:
            raise _HTTPError(413, f"body of {length} bytes exceeds {limit}")
        body = self.rfile.read(length)
        if len(body) != length:
            raise _HTTPError(400, "truncated body")
        return body

    def _events(self, node_id: str) -> None:
        if self.headers.get("Transfer-Encoding"):
            raise _HTTPError(411, "send events with a Content-Length, not chunked")
        raw = self.headers.get("Content-Length")
        if raw is None:
            raise _HTTPError(411, "Content-Length required")
        if not raw.isdigit() or len(raw) > 12:
            raise _HTTPError(400, "invalid Content-Length")
        length = int(raw)
        if length > MAX_EVENT_BODY:
            raise _HTTPError(413, f"event body of {length} bytes exceeds {MAX_EVENT_BODY}")
        body = self.rfile.read(length)
        if len(body) != length:
            raise _HTTPError(400, "truncated body")
        try:
            events = ledger_mod.parse_events(body)
        except ledger_mod.EventError as exc:
            raise _HTTPError(400, str(exc)) from None
        offset = self.server.engine.record_events(node_id, events)
        self._send_json(200, {"accepted": len(events), "offset": offset})

    def _component(self, sha256: str) -> None:
        engine = self.server.engine
        node_id = engine.authorize(self._token(), None)
        handle, component = engine.open_component(sha256, node_id)
        with handle:
            size = component.size
            try:
                wanted = parse_range(self.headers.get("Range"), size)
            except ValueError:
                raise _HTTPError(416, "range not satisfiable", {"Content-Range": f"bytes */{size}"}) from None
            if_range = self.headers.get("If-Range")
            if wanted is not None and if_range is not None and if_range != f'"{sha256}"':
                wanted = None
            start, end = wanted if wanted is not None else (0, size - 1)
            count = end - start + 1 if size else 0
            if wanted is not None and self.command == "GET":
                engine.note_resume(node_id, sha256, f"bytes {start}-{end}/{size}")
            self.send_response(206 if wanted is not None else 200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(count))
            self.send_header("ETag", f'"{sha256}"')
            self.send_header("Accept-Ranges", "bytes")
            if wanted is not None:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if self.command == "HEAD" or count == 0:
                return
            sent = self._send_body(handle, start, count)
            engine.count_served(sha256, sent)
            if sent != count:
                self.close_connection = True

    def _send_body(self, handle: t.BinaryIO, start: int, count: int) -> int:
        if not isinstance(self.connection, ssl.SSLSocket):
            # Zero-copy: the kernel moves page-cache pages to the socket.
            return self.connection.sendfile(handle, start, count)
        buffer = bytearray(min(self.server.engine.settings.buffer_size, count))
        view = memoryview(buffer)
        sent = 0
        handle.seek(start)
        while sent < count:
            got = handle.readinto(view[: min(len(buffer), count - sent)])
            if not got:
                break
            self.connection.sendall(view[:got])
            sent += got
        return sent


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, engine: "Engine", address: str, port: int) -> None:
        self.engine = engine
        self.address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
        super().__init__((address, port), _Handler, bind_and_activate=False)
        try:
            if self.address_family == socket.AF_INET6 and ipaddress.ip_address(address).is_unspecified:
                self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # :: = IPv4 and IPv6
            self.server_bind()
            self.server_activate()
        except OSError:
            self.server_close()
            raise

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN (DNS); we need no name.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def process_request(self, request, client_address) -> None:
        if not self.engine.admit(client_address[0]):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.engine.release(client_address[0])

    def handle_error(self, request, client_address) -> None:
        # Never print tracebacks of hostile input; the connection is simply closed.
        return
