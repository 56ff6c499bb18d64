# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The pre-authentication limiter (module_utils/connlimit.py) with an injected clock and real
socket pairs: the per-source and total caps, the /64 grouping, eviction of the busiest
source, the deadline, and an authenticated connection never evicted."""
from __future__ import annotations

import socket

import pytest

from ansible_collections.fleet.firmware.plugins.module_utils import connlimit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def pairs():
    made = []

    def make():
        a, b = socket.socketpair()
        made.append((a, b))
        return a, b
    yield make
    for a, b in made:
        a.close()
        b.close()


def closed(peer: socket.socket) -> bool:
    """The limiter shut the other end down: the peer reads EOF."""
    peer.settimeout(5)
    return peer.recv(1) == b""


def limiter(clock, total=4, per_source=2, auth=2, auth_per_source=2, deadline=10.0):
    lim = connlimit.ConnectionLimiter(total, per_source, auth, auth_per_source, deadline, clock=clock)
    lim._ensure_reaper = lambda: None  # the test reaps by hand, with its clock
    return lim


@pytest.mark.parametrize("address, key", [
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:bbbb::9%eth0", "2001:db8:1:2::/64"),
    ("::ffff:192.0.2.7", "192.0.2.7"),
    ("not-an-address", "not-an-address"),
])
def test_source_key_groups_an_ipv6_64(address, key):
    assert connlimit.source_key(address) == key


def test_per_source_cap_counts_a_64_once(pairs):
    lim = limiter(Clock())
    assert lim.admit("2001:db8::1", pairs()[0]) and lim.admit("2001:db8::2", pairs()[0])
    assert lim.admit("2001:db8::ffff:3", pairs()[0]) is None  # same /64, third
    assert lim.admit("2001:db8:0:1::1", pairs()[0]) is not None  # another /64
    assert lim.counts["refused_per_source"] == 1


def test_a_full_pool_evicts_the_busiest_sources_oldest_for_a_newcomer(pairs):
    lim = limiter(Clock(), total=4, per_source=4)
    held = [pairs() for _unused in range(4)]
    tickets = [lim.admit("198.51.100.1", a) for a, _b in held]
    assert all(tickets)
    newcomer = lim.admit("198.51.100.2", pairs()[0])
    assert newcomer is not None and tickets[0].closed_by_limit == "evicted"
    assert closed(held[0][1])
    # The pool is full again; a source holding as many as the busiest is refused, not evicting.
    assert lim.admit("198.51.100.1", pairs()[0]) is None
    assert lim.stats()["unauthenticated"] == 4


def test_the_deadline_closes_an_unauthenticated_connection_only(pairs):
    clock = Clock()
    lim = limiter(clock)
    slow_a, slow_b = pairs()
    good_a, good_b = pairs()
    slow = lim.admit("192.0.2.1", slow_a)
    good = lim.admit("192.0.2.2", good_a)
    assert lim.authenticated(good)
    clock.now += 9.9
    assert lim.reap() == 0
    clock.now += 0.2
    assert lim.reap() == 1
    assert slow.closed_by_limit == "deadline" and closed(slow_b)
    good_b.sendall(b"x")
    assert good_a.recv(1) == b"x"  # the authenticated one is untouched
    assert not lim.authenticated(slow)  # too late: closed


def test_the_authenticated_pool_has_its_own_cap_and_frees_on_release(pairs):
    lim = limiter(Clock(), auth=1)
    first = lim.admit("192.0.2.1", pairs()[0])
    second = lim.admit("192.0.2.2", pairs()[0])
    assert lim.authenticated(first) and not lim.authenticated(second)
    lim.release(first)
    lim.release(first)  # idempotent
    assert lim.authenticated(second)
    assert lim.stats() == dict(lim.counts, unauthenticated=0, authenticated=1)


def test_unauthenticated_flood_never_evicts_an_authenticated_connection(pairs):
    lim = limiter(Clock(), total=2, per_source=2)
    node_a, node_b = pairs()
    node = lim.admit("192.0.2.9", node_a)
    assert lim.authenticated(node)
    for _unused in range(20):
        lim.admit("203.0.113.1", pairs()[0])
    assert not node.closed_by_limit and lim.stats()["authenticated"] == 1
    node_b.sendall(b"y")
    assert node_a.recv(1) == b"y"


def test_a_released_ticket_is_never_shut_down(pairs):
    lim = limiter(Clock(), total=1, per_source=1)
    a, b = pairs()
    ticket = lim.admit("192.0.2.1", a)
    lim.release(ticket)
    assert ticket.sock is None
    lim._close(ticket, "deadline")  # nothing to shut down
    b.sendall(b"z")
    assert a.recv(1) == b"z"


@pytest.mark.parametrize("args, name", [((0, 1, 1, 1, 1.0), "max_unauthenticated"), ((1, 1, True, 1, 1.0), "max_authenticated"),
                                        ((1, 1, 1, 1, 0), "deadline")])
def test_bad_limits_are_named(args, name):
    with pytest.raises(ValueError, match=name):
        connlimit.ConnectionLimiter(*args)
