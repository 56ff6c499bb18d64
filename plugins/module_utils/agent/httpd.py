# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The agent's HTTPS server: one per controller-facing address, TLS handshakes in the request's thread.

Node-side: Python 3.6+, standard library only. (Not named http.py: that would read like the
standard library's package.)
"""
import socket
import socketserver
import ssl
import traceback
from http.server import HTTPServer
from typing import TYPE_CHECKING

from ansible_collections.fleet.firmware.plugins.module_utils.agent.api import AgentHandler
from ansible_collections.fleet.firmware.plugins.module_utils.agent.logfile import log

if TYPE_CHECKING:  # pragma: no cover
    from ansible_collections.fleet.firmware.plugins.module_utils.agent.core import Agent  # noqa: F401  pylint: disable=unused-import

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
        HTTPServer.__init__(self, (address, port), AgentHandler)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self.serving = True
        HTTPServer.serve_forever(self, poll_interval)

    def finish_request(self, request, client_address) -> None:
        # The TLS handshake runs here, in the request's own thread: a slow or silent client
        # cannot hold up the accept loop.
        request.settimeout(30)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log("TLS refused for %s: %s" % (client_address[0], exc))
            return
        try:
            AgentHandler(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address) -> None:
        log("request from %s failed: %s" % (client_address[0], traceback.format_exc(limit=3)))


def make_server(agent: "Agent", context: ssl.SSLContext, address: str, port: int) -> AgentHTTPServer:
    return AgentHTTPServer(agent, context, address, port)
