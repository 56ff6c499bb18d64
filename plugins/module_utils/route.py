# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one route-source function: this host's own address on the route to another address.

Runs on nodes and on the controller: Python 3.6+, standard library only. The agent binds the
addresses that face its controllers; the preflight checks the return path from the address
the controller would use; the deploy tells the agent which controller addresses to accept.
"""
import socket


def route_source(address, with_scope=False):
    # type: (str, bool) -> str
    """The kernel's choice of source address for packets to ``address`` (a numeric address).

    A connected UDP socket sends nothing: connect() only picks the route and the source.
    ``with_scope`` appends an IPv6 link-local source's interface (``fe80::1%eth0``).
    Raises OSError (with the kernel's reason) when there is no route or ``address`` is no IP address.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    target = socket.getaddrinfo(address, 9, family, socket.SOCK_DGRAM, 0, socket.AI_NUMERICHOST)[0][4]
    probe = socket.socket(family, socket.SOCK_DGRAM)
    try:
        probe.connect(target)
        source = probe.getsockname()
    finally:
        probe.close()
    text = source[0]
    if with_scope and family == socket.AF_INET6 and len(source) > 3 and source[3] and "%" not in text:
        text = "%s%%%s" % (text, socket.if_indextoname(source[3]))
    return text
