# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Limits before authentication, shared by the engine's and the Linux agent's HTTP servers.

A connection is *unauthenticated* from its accept until the server calls ``authenticated()``
(the engine: a valid bearer token; the agent: a TLS handshake with the run's client
certificate). Unauthenticated connections are capped per source (an IPv4 address, an IPv6
/64: one host rotating addresses in its own /64 counts once) and in total, and each has one
deadline for everything it does before authenticating (handshake, request line, headers):
a reaper thread shuts the socket down when it passes, so a client sending one byte every few
seconds is closed as surely as a silent one. Authenticated connections have their own cap
and are never evicted for unauthenticated ones: a flood of slow clients cannot starve a
transfer that already proved who it is. When the unauthenticated pool is full, a new
connection from a source holding fewer of them than the busiest source evicts that source's
oldest connection: a node opening its first connection gets in even while a few addresses
hold the whole pool. Threads are bounded: one per admitted connection, at most
``max_unauthenticated + max_authenticated``.

Node-side too (the Linux agent): Python 3.6+, standard library only.
"""
import ipaddress
import socket
import threading
import time
from typing import Dict, List, Optional


def source_key(address: str) -> str:
    """The unit a per-source cap counts: the IPv4 address, or the IPv6 /64 (IPv4-mapped IPv6
    counts as its IPv4 address; a scope id is dropped)."""
    text = str(address).split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return text
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    if ip.version == 6:
        return str(ipaddress.ip_network("%s/64" % ip, strict=False))
    return str(ip)


class Ticket(object):
    """One admitted connection: its source, the socket object that owns its descriptor, its state.

    The limiter shuts the connection down through that object, never by descriptor number: once
    the object is closed its descriptor reads as -1, so a number reused by a later accept is
    never touched."""

    __slots__ = ("key", "sock", "started", "deadline", "authenticated", "closed_by_limit", "released")

    def __init__(self, key: str, sock: socket.socket, started: float, deadline: float) -> None:
        self.key, self.sock, self.started, self.deadline = key, sock, started, deadline
        self.released = False
        self.authenticated = False
        self.closed_by_limit = ""  # why the limiter closed it: "deadline", "evicted"


class ConnectionLimiter(object):
    """Admission, promotion and the pre-authentication deadline of one server's connections."""

    def __init__(self, max_unauthenticated: int, max_unauthenticated_per_source: int, max_authenticated: int,
                 max_authenticated_per_source: int, deadline: float, clock=time.monotonic) -> None:
        for name, value in (("max_unauthenticated", max_unauthenticated), ("max_unauthenticated_per_source", max_unauthenticated_per_source),
                            ("max_authenticated", max_authenticated), ("max_authenticated_per_source", max_authenticated_per_source)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError("invalid %s %r: a whole number >= 1" % (name, value))
        if isinstance(deadline, bool) or not isinstance(deadline, (int, float)) or deadline <= 0:
            raise ValueError("invalid handshake deadline %r: seconds > 0" % (deadline,))
        self.max_unauthenticated = max_unauthenticated
        self.max_unauthenticated_per_source = max_unauthenticated_per_source
        self.max_authenticated = max_authenticated
        self.max_authenticated_per_source = max_authenticated_per_source
        self.deadline = float(deadline)
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._unauth = {}  # type: Dict[str, List[Ticket]]  # source -> oldest first
        self._unauth_total = 0
        self._auth = {}  # type: Dict[str, int]
        self._auth_total = 0
        self._reaper = None  # type: Optional[threading.Thread]
        self._stopping = False
        # Counters for stats and tests: how many connections each limit closed or refused.
        self.counts = {"refused_per_source": 0, "refused_total": 0, "evicted": 0, "deadline": 0, "refused_authenticated": 0}

    # -- admission ---------------------------------------------------------------------------

    def admit(self, address: str, sock: socket.socket) -> Optional[Ticket]:
        """A ticket for a new connection, or None: refused (close it at once, unread)."""
        key = source_key(address)
        with self._lock:
            mine = self._unauth.get(key, [])
            if len(mine) >= self.max_unauthenticated_per_source:
                self.counts["refused_per_source"] += 1
                return None
            if self._unauth_total >= self.max_unauthenticated and not self._evict_for(len(mine)):
                self.counts["refused_total"] += 1
                return None
            now = self._clock()
            ticket = Ticket(key, sock, now, now + self.deadline)
            self._unauth.setdefault(key, []).append(ticket)
            self._unauth_total += 1
            self._ensure_reaper()
            self._wake.notify()
            return ticket

    def _evict_for(self, holding: int) -> bool:
        """Make room by closing the oldest connection of the source holding the most, if it holds
        more than the newcomer's source (``holding``). Called with the lock held."""
        busiest = max(self._unauth.items(), key=lambda item: len(item[1]), default=None)
        if busiest is None or len(busiest[1]) <= holding:
            return False
        self._close(busiest[1][0], "evicted")
        return True

    def rebind(self, ticket: Ticket, sock: socket.socket) -> None:
        """The connection's socket is now ``sock`` (a TLS wrapper made with
        ``do_handshake_on_connect=False``, before its handshake: the deadline covers that too)."""
        with self._lock:
            if not ticket.released:
                ticket.sock = sock
            if ticket.closed_by_limit:
                self._shutdown(sock)

    def authenticated(self, ticket: Ticket) -> bool:
        """Move ``ticket`` to the authenticated pool; False when that pool (or its per-source
        share) is full: the caller answers 503 and closes."""
        with self._lock:
            if ticket.authenticated:
                return True
            if ticket.closed_by_limit:
                return False
            if self._auth_total >= self.max_authenticated or self._auth.get(ticket.key, 0) >= self.max_authenticated_per_source:
                self.counts["refused_authenticated"] += 1
                return False
            self._drop_unauth(ticket)
            ticket.authenticated = True
            self._auth[ticket.key] = self._auth.get(ticket.key, 0) + 1
            self._auth_total += 1
            return True

    def release(self, ticket: Ticket) -> None:
        """The connection ends (idempotent)."""
        with self._lock:
            if ticket.released:
                return
            ticket.released = True
            if ticket.authenticated:
                ticket.authenticated = False
                self._auth[ticket.key] -= 1
                if not self._auth[ticket.key]:
                    del self._auth[ticket.key]
                self._auth_total -= 1
            else:
                self._drop_unauth(ticket)
            ticket.sock = None

    def _drop_unauth(self, ticket: Ticket) -> None:
        mine = self._unauth.get(ticket.key)
        if mine and ticket in mine:
            mine.remove(ticket)
            self._unauth_total -= 1
            if not mine:
                del self._unauth[ticket.key]

    # -- the deadline ------------------------------------------------------------------------

    def _close(self, ticket: Ticket, why: str) -> None:
        """Shut the connection down (its thread then sees EOF or a reset and ends); lock held."""
        self._drop_unauth(ticket)
        ticket.closed_by_limit = why
        self.counts[why] += 1
        if ticket.sock is not None:
            self._shutdown(ticket.sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        # The plain socket's shutdown (not ssl.SSLSocket's, which also drops its TLS state under
        # the thread using it): the connection's own thread then reads EOF and ends; it closes.
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except (OSError, ValueError):
            pass

    def reap(self) -> int:
        """Close every unauthenticated connection past its deadline; how many (the reaper's body,
        also called by tests with an injected clock)."""
        with self._lock:
            return self._reap_locked()

    def _reap_locked(self) -> int:
        now = self._clock()
        late = [ticket for mine in self._unauth.values() for ticket in mine if ticket.deadline <= now]
        for ticket in late:
            self._close(ticket, "deadline")
        return len(late)

    def _ensure_reaper(self) -> None:
        if self._reaper is None or not self._reaper.is_alive():
            self._reaper = threading.Thread(target=self._reap_forever, name="pre-auth-reaper", daemon=True)
            self._reaper.start()

    def _reap_forever(self) -> None:
        with self._lock:
            while not self._stopping:
                self._reap_locked()
                soonest = min((mine[0].deadline for mine in self._unauth.values() if mine), default=None)
                wait = 1.0 if soonest is None else max(0.05, min(1.0, soonest - self._clock()))
                self._wake.wait(wait)

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._wake.notify_all()

    def stats(self) -> dict:
        with self._lock:
            return dict(self.counts, unauthenticated=self._unauth_total, authenticated=self._auth_total)
