# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The run's engine: one HTTP(S) server per playbook run that serves verified components and
takes node status into the ledger.

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time. Controller-only code (standard library plus ``cryptography`` for TLS).

API for the controller plugins (the deploy action)::

    from ansible_collections.fleet.firmware.plugins.plugin_utils import engine, ledger

    handle = engine.attach_or_start(run_dir, engine.EngineSettings(address=["198.18.3.1", "fd00::1"]))
    handle.url, handle.urls, handle.port, handle.tls, handle.ca_fingerprint, handle.ca_path
    sha = handle.register_component("/srv/fw/cp012345.exe", sha256="...")  # hashed once, here
    token = handle.register_node("lin01")   # a new bearer token; the old one stops working
    handle.set_job("lin01", {"components": [{"sha256": sha, "install": {...}}], "policy": {...}})
    events, offset = ledger.read_since(run_dir, "lin01", offset)
    handle.stop()   # or let it stop by itself

The first forked worker that calls ``attach_or_start`` starts the engine as a detached
daemon (``python -m ...engine serve RUN_DIR``), under an ``flock`` on ``<run_dir>/engine.lock``;
the others find ``<run_dir>/engine.json``, check the engine's pid and start time, ping it over
its control socket (``<run_dir>/engine.sock``, mode 0600) and attach. The daemon stops by itself
when the ``ansible-playbook`` process it watches is gone (pidfd, also after SIGKILL; pid reuse
is ruled out by the process start time), after ``idle_timeout`` seconds without a request, on
``handle.stop()`` or SIGTERM. On stopping it runs its on-stop hooks (closing the controller
firewall rule opened for it), deletes the run's CA key and its own state files.

HTTP API (every request but the component download carries ``Authorization: Bearer <token>``
of a node session; components need any valid session token)::

    GET|HEAD /v1/components/<sha256>   the bytes (Range, 206/416, ETag = "<sha256>")
    GET      /v1/nodes/<id>/job        that node's job (only with that node's token)
    POST     /v1/nodes/<id>/events     JSON event(s), at most 64 KiB (only that node's token)

Errors are short JSON objects ``{"error": "..."}`` with 400/401/403/404/405/409/411/413/414/416/
431/503. A component is served only while the file is the one hashed at registration (same
device, inode, size, mtime and ctime); otherwise 409 and a ``component_refused`` line in the
requesting node's ledger. A Range request (a node resuming a download) leaves a
``component_resumed`` line in its ledger, with the bytes asked for. Plain HTTP uses zero-copy ``sendfile``; TLS streams through one
bounded buffer per connection, so memory does not grow with file size.
"""
from __future__ import annotations

import argparse
import dataclasses
import fcntl
import hashlib
import hmac
import http.server
import importlib
import ipaddress
import errno
import json
import os
import re
import secrets
import select
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import typing as t
import uuid

from ansible_collections.fleet.firmware.plugins.plugin_utils import ledger as ledger_mod
from ansible_collections.fleet.firmware.plugins.plugin_utils import tls as tls_mod

DEFAULT_TLS_PORT = 63002
DEFAULT_PLAIN_PORT = 63001
MAX_EVENT_BODY = 64 * 1024
HASH_CHUNK = 1024 * 1024
STATE_FILE = "engine.json"
SETTINGS_FILE = "engine-settings.json"
SOCKET_FILE = "engine.sock"
LOCK_FILE = "engine.lock"
LOG_FILE = "engine.log"
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
COMPONENT_PATH = re.compile(r"^/v1/components/([0-9a-f]{64})$")
NODE_PATH = re.compile(r"^/v1/nodes/([^/]{1,128})/(job|events)$")
# Control-socket operations a worker may call (EngineHandle methods of the same name).
FIREWALL_API = "ansible_collections.fleet.firmware.plugins.module_utils.firewall.api"
CONTROL_OPS = ("ping", "register_component", "register_node", "set_job", "stats", "stop")


class EngineError(Exception):
    """The engine cannot be started, attached or asked; the message says what and why."""


@dataclasses.dataclass
class EngineSettings:
    """How the run's engine listens and when it stops (validated by ``validate()``).

    ``address``: the addresses to listen on (``engine_address``); ``::`` is dual-stack IPv4 and
    IPv6. ``port`` (``engine_port``): default 63002 with TLS, 63001 without; 0 picks a free port.
    ``advertise``: the addresses/names nodes use to reach the engine (URLs and TLS SANs);
    default the listen addresses, or the host's name and loopback for a wildcard.
    ``watch_pid``: the process whose end stops the engine (``attach_or_start`` fills in the
    nearest ``ansible-playbook`` ancestor); None watches nothing (in-process use).
    ``open_firewall``: open the engine's port in the controller's firewall for the run, only for
    ``firewall_sources`` (addresses/networks; empty: any) and with ``firewall_lease`` seconds
    (0: none), under ``firewall_tag`` (default ``fleet-engine-<run_id>``); closed on stop.
    ``client_timeout``: seconds a connection may stay silent; ``max_connections`` and
    ``max_per_client``: caps that keep one client from taking every thread.
    """

    address: list = dataclasses.field(default_factory=lambda: ["::"])
    port: t.Optional[int] = None
    tls: bool = True
    advertise: list = dataclasses.field(default_factory=list)
    idle_timeout: float = 1800.0
    watch_pid: t.Optional[int] = None
    watch_start: t.Optional[int] = None
    open_firewall: bool = False
    firewall_tag: t.Optional[str] = None
    firewall_sources: list = dataclasses.field(default_factory=list)
    firewall_lease: int = 0
    max_connections: int = 1024
    max_per_client: int = 256
    client_timeout: float = 30.0
    buffer_size: int = 256 * 1024
    run_id: str = ""

    def validate(self) -> "EngineSettings":
        if isinstance(self.address, str):
            self.address = [self.address]
        if not self.address:
            raise EngineError("engine_address must name at least one address")
        for addr in self.address:
            try:
                ipaddress.ip_address(addr)
            except ValueError:
                raise EngineError(f"invalid engine_address {addr!r}: an IPv4 or IPv6 address") from None
        if self.port is None:
            self.port = DEFAULT_TLS_PORT if self.tls else DEFAULT_PLAIN_PORT
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise EngineError(f"invalid engine_port {self.port!r}: 0-65535")
        for name in ("idle_timeout", "client_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise EngineError(f"invalid {name} {value!r}: a number of seconds > 0")
        if isinstance(self.firewall_lease, bool) or not isinstance(self.firewall_lease, int) or self.firewall_lease < 0:
            raise EngineError(f"invalid firewall_lease {self.firewall_lease!r}: whole seconds >= 0")
        for name in ("max_connections", "max_per_client", "buffer_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise EngineError(f"invalid {name} {value!r}: a whole number >= 1")
        self.run_id = self.run_id or uuid.uuid4().hex[:12]
        if self.open_firewall and not self.firewall_tag:
            self.firewall_tag = f"fleet-engine-{self.run_id}"
        return self

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "EngineSettings":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise EngineError(f"unknown engine setting(s): {', '.join(unknown)}")
        return cls(**data).validate()


@dataclasses.dataclass
class Component:
    sha256: str
    path: str
    size: int
    identity: tuple  # (dev, ino, size, mtime_ns, ctime_ns) when hashed


def _identity(st: os.stat_result) -> tuple:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def hash_file(path: str) -> tuple[str, os.stat_result]:
    """SHA-256 of a file and its stat from the same open file (the hashed object is that inode)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        before = os.fstat(fd)
        digest = hashlib.sha256()
        buffer = bytearray(HASH_CHUNK)
        view = memoryview(buffer)
        with os.fdopen(os.dup(fd), "rb", buffering=0) as handle:
            while True:
                count = handle.readinto(buffer)
                if not count:
                    break
                digest.update(view[:count])
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if _identity(before) != _identity(after):
        raise EngineError(f"component {path} changed while it was being hashed")
    return digest.hexdigest(), after


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


# --------------------------------------------------------------------------------------------
# The HTTP side
# --------------------------------------------------------------------------------------------


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


class _ControlServer(socketserver.ThreadingUnixStreamServer):
    """The engine's local control socket. Every fork of a run may call at once: with the default
    listen backlog (5), 50 nodes' connects failed with EAGAIN (benchmarks/fleet.py, issue 9)."""

    request_queue_size = 1024


def _connect_control(path: str, patience: float = 30.0) -> socket.socket:
    """Connect to the engine's control socket; a full backlog (EAGAIN) is waited out, not an error."""
    deadline = time.monotonic() + patience
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(600)
        try:
            sock.connect(path)
            return sock
        except BlockingIOError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        except OSError:
            sock.close()
            raise


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


# --------------------------------------------------------------------------------------------
# The engine itself
# --------------------------------------------------------------------------------------------


class Engine:
    """One run's engine, in this process. ``start()``, then ``wait()`` or ``stop()``."""

    def __init__(self, run_dir: str, settings: t.Optional[EngineSettings] = None) -> None:
        self.run_dir = os.path.abspath(run_dir)
        self.settings = (settings or EngineSettings()).validate()
        self.ssl_context: t.Optional[ssl.SSLContext] = None
        self.on_stop: list[t.Callable[[], None]] = []
        self.ledger = None
        self.port = 0
        self.ca_fingerprint: t.Optional[str] = None
        self._servers: list[_Server] = []
        self._firewall_opened = False
        self._control: t.Optional[_ControlServer] = None
        self._components: dict[str, Component] = {}
        # Every node of a run registers the same files: each is hashed once per identity, not once per node.
        self._hashed: dict[str, tuple[str, tuple]] = {}  # real path -> (sha256, identity when hashed)
        self._hash_locks: dict[str, threading.Lock] = {}
        self._tokens: dict[bytes, str] = {}  # sha256(token) -> node id
        self._node_tokens: dict[str, bytes] = {}
        self._jobs: dict[str, dict] = {}
        self._served: dict[str, int] = {}
        self._clients: dict[str, int] = {}
        self._active = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()  # stopping has begun
        self._done = threading.Event()  # stopping has finished: hooks ran, CA key gone
        self._stop_reason = ""
        self._last_activity = time.monotonic()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> "Engine":
        os.makedirs(self.run_dir, mode=0o700, exist_ok=True)
        self.ledger = ledger_mod.LedgerWriter(self.run_dir)
        if self.settings.tls:
            self._setup_tls()
        try:
            self._listen()
            self._start_control()
            self._firewall("open")
        except Exception:
            self.stop("start failed")
            raise
        for server in self._servers:
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True).start()
        threading.Thread(target=self._watchdog, daemon=True, name="engine-watchdog").start()
        self._write_state()
        return self

    def _setup_tls(self) -> None:
        self.ca_fingerprint = tls_mod.create_ca(self.run_dir, self.settings.run_id)
        cert, key = tls_mod.issue(self.run_dir, "engine", "server", self.advertised())
        self.ssl_context = tls_mod.server_context(cert, key)

    def _listen(self) -> None:
        port = self.settings.port
        for address in self.settings.address:
            try:
                server = _Server(self, address, port)
            except OSError as exc:
                hint = ""
                if exc.errno == errno.EADDRINUSE:
                    # Most often another run's engine on the same controller (one engine per run).
                    hint = (": another program, or the engine of another run on this controller, listens there;"
                            " give this run another engine_port (fleet_engine_port) or wait for the other run to end")
                raise EngineError(f"cannot listen on [{address}]:{port}: {exc.strerror}{hint}") from None
            self._servers.append(server)
            port = server.server_port  # port 0: the others take the same free port
        self.port = port

    def advertised(self) -> list:
        if self.settings.advertise:
            return list(self.settings.advertise)
        concrete = [a for a in self.settings.address if not ipaddress.ip_address(a).is_unspecified]
        return concrete or [socket.gethostname(), "localhost", "127.0.0.1", "::1"]

    def urls(self) -> list:
        scheme = "https" if self.settings.tls else "http"
        out = []
        for name in self.advertised():
            host = f"[{name}]" if ":" in name else name
            out.append(f"{scheme}://{host}:{self.port}")
        return out

    def _start_control(self) -> None:
        path = os.path.join(self.run_dir, SOCKET_FILE)
        if len(path.encode()) > 107:
            raise EngineError(f"run folder path too long for the engine's control socket: {path}")
        if os.path.exists(path):
            os.unlink(path)
        engine = self

        class ControlHandler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.request.settimeout(600)
                line = self.rfile.readline(16 * 1024 * 1024)
                self.wfile.write((json.dumps(engine.control(line)) + "\n").encode())

        old = os.umask(0o177)
        try:
            self._control = _ControlServer(path, ControlHandler)
        finally:
            os.umask(old)
        self._control.daemon_threads = True
        threading.Thread(target=self._control.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True).start()

    def _write_state(self) -> None:
        state = {"pid": os.getpid(), "start_time": process_start_time(os.getpid()), "port": self.port,
                 "urls": self.urls(), "tls": self.settings.tls, "ca_fingerprint": self.ca_fingerprint,
                 "ca_path": os.path.join(tls_mod.tls_dir(self.run_dir), "ca.pem") if self.settings.tls else None,
                 "run_id": self.settings.run_id}
        _write_private(os.path.join(self.run_dir, STATE_FILE), json.dumps(state).encode())

    def stop(self, reason: str = "stopped") -> None:
        """Stop serving, run the on-stop hooks, delete the CA key and the state files (idempotent)."""
        with self._lock:
            if self._stopped.is_set():
                return
            self._stop_reason = reason
            self._stopped.set()
        _log(f"engine {self.settings.run_id} stopping: {reason}")
        for server in self._servers:
            threading.Thread(target=server.shutdown, daemon=True).start()
            server.server_close()
        if self._control is not None:
            threading.Thread(target=self._control.shutdown, daemon=True).start()
            self._control.server_close()
        errors = []
        for hook in [lambda: self._firewall("close")] + list(self.on_stop):
            try:
                hook()
            except Exception as exc:  # pylint: disable=broad-exception-caught
                errors.append(str(exc))  # every hook runs, whatever the others do
        tls_mod.destroy_ca_key(self.run_dir)
        for name in (STATE_FILE, SOCKET_FILE):
            try:
                os.unlink(os.path.join(self.run_dir, name))
            except FileNotFoundError:
                pass
        if errors:
            _log("on-stop hook errors: " + "; ".join(errors))
        self._done.set()

    def wait(self, timeout: t.Optional[float] = None) -> bool:
        """Wait until the engine has stopped and cleaned up; False on timeout."""
        return self._done.wait(timeout)

    @property
    def stop_reason(self) -> str:
        return self._stop_reason

    def _firewall(self, action: str) -> None:
        """INTEGRATION POINT with issue 4 (``plugins/module_utils/firewall/api.py``): open, and
        on stop close, the controller's own tagged rule for the engine's port.

        Uses ``api.build_spec(tag, ["<port>/tcp"], sources=..., lease=...)``, ``api.open_ports``
        and ``api.close_tag(tag)``. The import is by name at run time so the engine keeps working
        (and says so in its log) where that module is not there.
        """
        if not self.settings.open_firewall:
            return
        try:
            api = importlib.import_module(FIREWALL_API)
        except ImportError:
            _log(f"open_firewall: no firewall module ({FIREWALL_API}); {action} of {self.settings.firewall_tag} skipped")
            return
        if action == "open":
            spec = api.build_spec(self.settings.firewall_tag, [f"{self.port}/tcp"], sources=self.settings.firewall_sources,
                                  lease=self.settings.firewall_lease)
            api.open_ports(spec)
            self._firewall_opened = True
            _log(f"open_firewall: opened {self.port}/tcp with tag {self.settings.firewall_tag}")
        elif self._firewall_opened:
            api.close_tag(self.settings.firewall_tag)
            _log(f"open_firewall: closed tag {self.settings.firewall_tag}")

    def _watchdog(self) -> None:
        pidfd = None
        if self.settings.watch_pid:
            pidfd = _open_pidfd(self.settings.watch_pid, self.settings.watch_start)
            if pidfd == -1:
                self.stop(f"watched process {self.settings.watch_pid} is gone")
                return
        try:
            while not self._stopped.is_set():
                if self.settings.watch_pid and not _still_running(pidfd, self.settings.watch_pid, self.settings.watch_start):
                    self.stop(f"watched process {self.settings.watch_pid} is gone")
                    return
                with self._lock:
                    idle = self._active == 0 and time.monotonic() - self._last_activity > self.settings.idle_timeout
                if idle:
                    self.stop(f"idle for {self.settings.idle_timeout} s")
                    return
                if pidfd is None:
                    self._stopped.wait(0.5)
        finally:
            if pidfd is not None:
                os.close(pidfd)

    # -- connections -------------------------------------------------------------------------

    def touch(self) -> None:
        self._last_activity = time.monotonic()

    def admit(self, client: str) -> bool:
        with self._lock:
            if self._active >= self.settings.max_connections or self._clients.get(client, 0) >= self.settings.max_per_client:
                return False
            self._active += 1
            self._clients[client] = self._clients.get(client, 0) + 1
            self._last_activity = time.monotonic()
            return True

    def release(self, client: str) -> None:
        with self._lock:
            self._active -= 1
            self._clients[client] -= 1
            if not self._clients[client]:
                del self._clients[client]
            self._last_activity = time.monotonic()

    # -- registry ----------------------------------------------------------------------------

    def register_component(self, path: str, sha256: t.Optional[str] = None) -> str:
        """Hash ``path`` once (here, in the serving process) and serve it under its SHA-256."""
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
        return digest

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
            component = self._components.get(sha256)
        if component is None:
            raise _HTTPError(404, "no such component")
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

    # -- control socket ----------------------------------------------------------------------

    def control(self, line: bytes) -> dict:
        try:
            request = json.loads(line)
            op, args = request["op"], request.get("args", {})
            if op not in CONTROL_OPS or not isinstance(args, dict):
                raise EngineError(f"unknown control operation {op!r}")
            if op == "ping":
                return {"ok": True, "result": {"pid": os.getpid()}}
            if op == "stop":
                threading.Thread(target=self.stop, args=("stop requested",), daemon=True).start()
                return {"ok": True, "result": None}
            return {"ok": True, "result": getattr(self, op)(**args)}
        except (EngineError, ledger_mod.EventError, tls_mod.TLSError, OSError, TypeError, KeyError, ValueError) as exc:
            return {"ok": False, "error": str(exc)}


# --------------------------------------------------------------------------------------------
# Processes: the watched parent, the daemon, the handle workers hold
# --------------------------------------------------------------------------------------------


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


def _write_private(path: str, data: bytes) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _log(message: str) -> None:
    # The daemon's stderr is <run_dir>/engine.log; messages never contain tokens.
    sys.stderr.write(time.strftime("%Y-%m-%dT%H:%M:%SZ ", time.gmtime()) + message + "\n")
    sys.stderr.flush()


@dataclasses.dataclass
class EngineHandle:
    """What a worker holds: where the engine is and how to ask it (over its control socket)."""

    run_dir: str
    pid: int
    port: int
    urls: list
    tls: bool
    ca_fingerprint: t.Optional[str]
    ca_path: t.Optional[str]
    run_id: str

    @property
    def url(self) -> str:
        return self.urls[0]

    def _call(self, op: str, **args: t.Any) -> t.Any:
        path = os.path.join(self.run_dir, SOCKET_FILE)
        try:
            with _connect_control(path) as sock:
                sock.sendall((json.dumps({"op": op, "args": args}) + "\n").encode())
                with sock.makefile("rb") as reader:
                    reply = json.loads(reader.readline() or b"null")
        except (OSError, ValueError) as exc:
            raise EngineError(f"the run's engine (pid {self.pid}) does not answer on {path}: {exc}") from None
        if not isinstance(reply, dict) or not reply.get("ok"):
            raise EngineError((reply or {}).get("error", "no answer") if isinstance(reply, dict) else "no answer")
        return reply["result"]

    def ping(self) -> bool:
        return self._call("ping")["pid"] == self.pid

    def register_component(self, path: str, sha256: t.Optional[str] = None) -> str:
        return self._call("register_component", path=os.path.abspath(path), sha256=sha256)

    def register_node(self, node_id: str) -> str:
        return self._call("register_node", node_id=node_id)

    def set_job(self, node_id: str, job: dict) -> dict:
        return self._call("set_job", node_id=node_id, job=job)

    def stats(self) -> dict:
        return self._call("stats")

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the engine to stop and wait until its process is gone."""
        start = process_start_time(self.pid)
        try:
            self._call("stop")
        except EngineError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and start is not None and process_start_time(self.pid) == start:
            time.sleep(0.05)


class _RunLock:
    """``flock`` on ``<run_dir>/engine.lock``: one worker at a time starts or attaches."""

    def __init__(self, run_dir: str) -> None:
        self.path = os.path.join(run_dir, LOCK_FILE)
        self.fd = -1

    def __enter__(self) -> "_RunLock":
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: t.Any) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _read_handle(run_dir: str) -> t.Optional[EngineHandle]:
    try:
        with open(os.path.join(run_dir, STATE_FILE), "rb") as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        return None
    if process_start_time(state["pid"]) != state["start_time"]:
        return None
    handle = EngineHandle(run_dir, state["pid"], state["port"], state["urls"], state["tls"],
                          state["ca_fingerprint"], state["ca_path"], state["run_id"])
    try:
        return handle if handle.ping() else None
    except EngineError:
        return None


def attach(run_dir: str) -> t.Optional[EngineHandle]:
    """The running engine of this run, or None."""
    return _read_handle(os.path.abspath(run_dir))


def attach_or_start(run_dir: str, settings: t.Optional[EngineSettings] = None, timeout: float = 30.0) -> EngineHandle:
    """Attach to the run's engine, starting it (as a detached daemon) if none runs.

    Safe to call from many forked workers at once: an ``flock`` in the run folder makes the
    first one start the engine and the others attach to it.
    """
    run_dir = os.path.abspath(run_dir)
    settings = dataclasses.replace(settings or EngineSettings()).validate()
    if settings.watch_pid is None:
        settings.watch_pid = find_playbook_pid()
    if settings.watch_start is None:
        settings.watch_start = process_start_time(settings.watch_pid)
    os.makedirs(run_dir, mode=0o700, exist_ok=True)
    with _RunLock(run_dir):
        handle = _read_handle(run_dir)
        if handle is not None:
            return handle
        return _spawn(run_dir, settings, timeout)


def _collections_root() -> str:
    parts = os.path.abspath(__file__).split(os.sep)
    if "ansible_collections" not in parts:
        raise EngineError(f"{__file__} is not inside an ansible_collections folder; cannot start the engine daemon")
    index = len(parts) - 1 - parts[::-1].index("ansible_collections")
    return os.sep.join(parts[:index]) or os.sep


def _spawn(run_dir: str, settings: EngineSettings, timeout: float) -> EngineHandle:
    _write_private(os.path.join(run_dir, SETTINGS_FILE), json.dumps(settings.to_json()).encode())
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [_collections_root(), env.get("PYTHONPATH")]))
    log = os.open(os.path.join(run_dir, LOG_FILE), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        # A session of its own: Ctrl-C in the playbook's terminal does not reach it; it stops
        # when the watched ansible-playbook is gone instead, after cleaning up.
        proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [sys.executable, "-m", "ansible_collections.fleet.firmware.plugins.plugin_utils.engine", "serve", run_dir],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True, env=env, cwd="/")
    finally:
        os.close(log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        handle = _read_handle(run_dir)
        if handle is not None and handle.pid == proc.pid:
            return handle
        if proc.poll() is not None:
            raise EngineError(f"the engine exited with rc={proc.returncode} while starting: {_log_tail(run_dir)}")
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    raise EngineError(f"the engine did not come up within {timeout} s: {_log_tail(run_dir)}")


def _log_tail(run_dir: str) -> str:
    try:
        with open(os.path.join(run_dir, LOG_FILE), "rb") as handle:
            return handle.read()[-2000:].decode("utf-8", "replace").strip()
    except OSError:
        return "(no log)"


def serve(run_dir: str) -> int:
    """The daemon's body: run the engine of ``run_dir`` until it stops."""
    with open(os.path.join(run_dir, SETTINGS_FILE), "rb") as handle:
        settings = EngineSettings.from_json(json.load(handle))
    engine = Engine(run_dir, settings)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_args: threading.Thread(target=engine.stop, args=("signal",)).start())
    try:
        engine.start()
    except (EngineError, tls_mod.TLSError, OSError) as exc:
        _log(f"engine failed to start: {exc}")
        return 1
    _log(f"engine {settings.run_id} serving on {', '.join(engine.urls())} (pid {os.getpid()}, watching {settings.watch_pid})")
    while not engine.wait(1.0):
        pass
    _log(f"engine {settings.run_id} stopped: {engine.stop_reason}")
    return 0


def main(argv: t.Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="engine", description="fleet.firmware run engine (started by attach_or_start)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve").add_argument("run_dir")
    args = parser.parse_args(argv)
    return serve(os.path.abspath(args.run_dir))


if __name__ == "__main__":
    sys.exit(main())
