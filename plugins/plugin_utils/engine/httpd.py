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
import threading
import typing as t

from ansible_collections.fleet.firmware.plugins.module_utils import connlimit
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


# The request line and headers of one request, at most: a client cannot make the engine buffer
# 100 headers of 64 KiB each (the standard library's own limits) on each of its connections.
MAX_HEADER_BYTES = 16 * 1024


class _HeadersTooLarge(Exception):
    pass


class _BoundedReader:
    """The connection's reader, with a byte budget for ``readline`` (request line and headers),
    renewed for each request; bodies (``read``) are bounded by their own Content-Length checks."""

    def __init__(self, raw: t.BinaryIO, budget: int) -> None:
        self._raw, self._budget, self.left = raw, budget, budget

    def renew(self) -> None:
        self.left = self._budget

    def readline(self, limit: int = -1) -> bytes:
        if self.left <= 0:
            raise _HeadersTooLarge()
        want = self.left + 1 if limit is None or limit < 0 else min(limit, self.left + 1)
        line = self._raw.readline(want)
        self.left -= len(line)
        if self.left < 0:
            raise _HeadersTooLarge()
        return line

    def __getattr__(self, name: str) -> t.Any:
        return getattr(self._raw, name)


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
        self.ticket = self.server.ticket_of_thread()
        # Before authentication the connection also has the limiter's overall deadline (the
        # reaper shuts it down): a client dripping a byte at a time is closed as a silent one is.
        self.request.settimeout(min(engine.settings.client_timeout, engine.settings.handshake_timeout))
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if engine.ssl_context is not None:
            # The handshake happens here, in the connection's own thread: a slow or broken
            # client never holds up the accept loop.
            self.request = engine.ssl_context.wrap_socket(self.request, server_side=True, do_handshake_on_connect=False)
            self.server.limiter.rebind(self.ticket, self.request)
            try:
                self.request.do_handshake()
            except (OSError, ValueError):
                self.request.close()
                raise
        super().setup()
        self.rfile = _BoundedReader(self.rfile, MAX_HEADER_BYTES)

    def handle(self) -> None:
        try:
            super().handle()
        except _HeadersTooLarge:
            self.send_error(431, f"request line and headers larger than the engine's limit of {MAX_HEADER_BYTES} bytes")
        except (OSError, ssl.SSLError, ValueError):
            # Timeouts, resets and TLS alerts end this connection only.
            self.close_connection = True

    def handle_one_request(self) -> None:
        self.rfile.renew()
        super().handle_one_request()

    def _authenticated(self, node_id: str) -> str:
        """The token was valid: the connection leaves the pre-authentication pool (no deadline,
        never evicted), or 503 when the authenticated pool is full."""
        limiter = self.server.limiter
        if not limiter.authenticated(self.ticket):
            raise _HTTPError(503, f"too many authenticated connections (limits: {limiter.max_authenticated} in total, "
                                  f"{limiter.max_authenticated_per_source} per source); try again", {"Retry-After": "1"})
        self.request.settimeout(self.server.engine.settings.client_timeout)
        return node_id

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
            self._authenticated(self.server.engine.authorize(self._token(), node_id))
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
        node_id = self._authenticated(engine.authorize(self._token(), None))
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
        settings = engine.settings
        self.limiter = connlimit.ConnectionLimiter(settings.max_unauthenticated, settings.max_unauthenticated_per_source,
                                                   settings.max_connections, settings.max_per_client, settings.handshake_timeout)
        self._local = threading.local()
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
        # Admission before any byte is read: a refused connection costs no thread.
        ticket = self.limiter.admit(client_address[0], request)
        if ticket is None:
            socketserver.TCPServer.shutdown_request(self, request)
            return
        self.engine.admit(client_address[0])
        threading.Thread(target=self._serve_one, args=(request, client_address, ticket), daemon=True).start()

    def _serve_one(self, request, client_address, ticket: connlimit.Ticket) -> None:
        self._local.ticket = ticket
        try:
            self.finish_request(request, client_address)
        except Exception:  # pylint: disable=broad-except
            self.handle_error(request, client_address)
        finally:
            self.limiter.release(ticket)
            socketserver.TCPServer.shutdown_request(self, request)
            self.engine.release(client_address[0])

    def ticket_of_thread(self) -> connlimit.Ticket:
        return self._local.ticket

    def server_close(self) -> None:
        self.limiter.stop()
        super().server_close()

    def handle_error(self, request, client_address) -> None:
        # Never print tracebacks of hostile input; the connection is simply closed.
        return
