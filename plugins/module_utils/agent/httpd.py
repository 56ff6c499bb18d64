# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The agent's HTTPS server: one per controller-facing address, TLS handshakes in the request's
thread, limits before authentication (module_utils/connlimit.py).

A connection is authenticated once its TLS handshake verified the run's client certificate
(the bearer token is checked on each request after that). Before, it counts against
``MAX_UNAUTHENTICATED`` (``MAX_UNAUTHENTICATED_PER_SOURCE`` per IPv4 address or IPv6 /64) and
is shut down ``HANDSHAKE_DEADLINE`` seconds after its accept; the controller's own
connections have their own pool (``MAX_AUTHENTICATED``) which slow strangers cannot fill.
Threads: one per admitted connection, so at most the sum of the two pools.

Node-side: Python 3.6+, standard library only. (Not named http.py: that would read like the
standard library's package.)
"""
import socket
import socketserver
import ssl
import threading
import traceback
from http.server import HTTPServer
from typing import TYPE_CHECKING

from ansible_collections.fleet.firmware.plugins.module_utils import connlimit
from ansible_collections.fleet.firmware.plugins.module_utils.agent.api import AgentHandler
from ansible_collections.fleet.firmware.plugins.module_utils.agent.logfile import log

if TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.fleet.firmware.plugins.module_utils.agent.core import Agent  # noqa: F401  pylint: disable=unused-import

# Only the controller talks to an agent, with a handful of connections at a time.
MAX_UNAUTHENTICATED = 32
MAX_UNAUTHENTICATED_PER_SOURCE = 8
MAX_AUTHENTICATED = 32
HANDSHAKE_DEADLINE = 10.0
IDLE_TIMEOUT = 30

# ---------------------------------------------------------------- HTTP


class AgentHTTPServer(socketserver.ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, agent: "Agent", context: ssl.SSLContext, address: str, port: int) -> None:
        self.address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.agent = agent
        self.context = context
        self.serving = False
        self.limiter = connlimit.ConnectionLimiter(MAX_UNAUTHENTICATED, MAX_UNAUTHENTICATED_PER_SOURCE, MAX_AUTHENTICATED,
                                                   MAX_AUTHENTICATED, HANDSHAKE_DEADLINE)
        HTTPServer.__init__(self, (address, port), AgentHandler)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self.serving = True
        HTTPServer.serve_forever(self, poll_interval)

    def process_request(self, request, client_address) -> None:
        # Admission before any byte is read: a refused connection costs no thread.
        ticket = self.limiter.admit(client_address[0], request)
        if ticket is None:
            socketserver.TCPServer.shutdown_request(self, request)
            return
        threading.Thread(target=self._serve_one, args=(request, client_address, ticket), daemon=True).start()

    def _serve_one(self, request, client_address, ticket: connlimit.Ticket) -> None:
        try:
            self._handshake_and_handle(request, client_address, ticket)
        except Exception:  # pylint: disable=broad-except
            self.handle_error(request, client_address)
        finally:
            self.limiter.release(ticket)
            socketserver.TCPServer.shutdown_request(self, request)

    def _handshake_and_handle(self, request, client_address, ticket: connlimit.Ticket) -> None:
        # The TLS handshake runs here, in the request's own thread: a slow or silent client
        # cannot hold up the accept loop, and the limiter's deadline covers it.
        request.settimeout(HANDSHAKE_DEADLINE)
        try:
            tls = self.context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
        except (ssl.SSLError, OSError) as exc:
            log("TLS refused for %s: %s" % (client_address[0], exc))
            return
        try:
            self.limiter.rebind(ticket, tls)
            try:
                tls.do_handshake()
            except (ssl.SSLError, OSError, ValueError) as exc:
                log("TLS refused for %s: %s" % (client_address[0], ticket.closed_by_limit or exc))
                return
            if not self.limiter.authenticated(ticket):
                log("refused %s: more than %d authenticated connections" % (client_address[0], MAX_AUTHENTICATED))
                return
            tls.settimeout(IDLE_TIMEOUT)
            AgentHandler(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def server_close(self) -> None:
        self.limiter.stop()
        HTTPServer.server_close(self)

    def handle_error(self, request, client_address) -> None:
        log("request from %s failed: %s" % (client_address[0], traceback.format_exc(limit=3)))


def make_server(agent: "Agent", context: ssl.SSLContext, address: str, port: int) -> AgentHTTPServer:
    return AgentHTTPServer(agent, context, address, port)
