# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The two leases' logic against an injected clock: the firewall's watchdog
(module_utils/firewall/lease.py) and the agent's own lease (module_utils/agent.py).

The modules read time through their ``time`` module; the tests put a fake clock in its place
(sleeping moves the clock, nothing waits), so that "closes once the lease has run out, not
before, and a renewal moves that" is checked to the poll step, with no real lease and no race.
The real processes, with real leases, run in tests/integration (test_agent.py, test_firewall.py).
"""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from ansible_collections.fleet.firmware.plugins.module_utils import agent as agent_utils
from ansible_collections.fleet.firmware.plugins.module_utils.agent import core as agent_core
from ansible_collections.fleet.firmware.plugins.module_utils.firewall import api, lease, state


class FakeClock:
    """A stand-in for the ``time`` module: ``time()`` reads ``now``; ``sleep`` moves it on and
    runs the hooks due by then (a renewal arriving "during" the sleep)."""

    def __init__(self, now: float = 1_000_000.0):
        self.now = now
        self.reads = 0
        self.sleeps: list[float] = []
        self.hooks: list[tuple[float, object]] = []

    def time(self) -> float:
        self.reads += 1
        assert self.reads < 100_000, "the loop reads the clock without ever sleeping"
        return self.now

    monotonic = time

    def sleep(self, seconds: float) -> None:
        assert len(self.sleeps) < 10_000, "the loop never ended"
        self.sleeps.append(seconds)
        self.now += seconds
        due = [hook for at, hook in self.hooks if at <= self.now]
        self.hooks = [(at, hook) for at, hook in self.hooks if at > self.now]
        for hook in due:
            hook()

    def at(self, when: float, hook) -> None:
        self.hooks.append((when, hook))

    def __getattr__(self, name):
        return getattr(time, name)


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(lease, "time", fake)
    monkeypatch.setattr(agent_core, "time", fake)  # the agent's lease lives in its core room
    return fake


# ---------------------------------------------------------------- the firewall's watchdog


@pytest.fixture
def watchdog(tmp_path, monkeypatch, clock):
    """The watchdog's loop in this process: a private state folder, a recording backend; the
    process-wide settings watchdog_main makes (umask, SIGHUP) are put back afterwards."""
    monkeypatch.setenv("FLEET_FIREWALL_STATE_DIR", str(tmp_path / "run" / "firewall"))
    closed: list[tuple[str, float]] = []
    failures = {"left": 0}

    class Backend:
        def close(self, tag):
            if failures["left"]:
                failures["left"] -= 1
                raise OSError("nft: resource busy")
            closed.append((tag, clock.now))

    monkeypatch.setattr(api, "make_backend", lambda name, options=None: Backend())
    umask, hup = os.umask(0o022), signal.getsignal(signal.SIGHUP)
    os.umask(umask)
    yield {"closed": closed, "failures": failures}
    os.umask(umask)
    signal.signal(signal.SIGHUP, hup)


def lease_for(tag: str, expires: float, token: str = "tok") -> dict:
    data = {"tag": tag, "backend": "nftables", "options": {}, "expires": expires, "token": token, "lib": "", "pid": 0}
    state.write("lease-" + tag, data)
    return data


def test_the_watchdog_closes_once_the_lease_ran_out_and_not_before(watchdog, clock):
    expires = clock.now + 30
    lease_for("run-a", expires)
    lease.watchdog_main(state.state_dir(), "run-a", "tok")
    [(tag, at)] = watchdog["closed"]
    assert tag == "run-a" and expires <= at <= expires + lease.POLL
    assert max(clock.sleeps) <= lease.POLL  # it looks at the file at least every POLL seconds
    assert state.read("lease-run-a") is None


def test_a_renewal_moves_the_close_to_the_new_end(watchdog, clock):
    start = clock.now
    data = lease_for("run-b", start + 30)
    clock.at(start + 20, lambda: state.write("lease-run-b", dict(data, expires=start + 90)))
    lease.watchdog_main(state.state_dir(), "run-b", "tok")
    [(_tag, at)] = watchdog["closed"]
    assert start + 90 <= at <= start + 90 + lease.POLL


@pytest.mark.parametrize("change", ["closed normally", "replaced by a newer watchdog"])
def test_a_watchdog_whose_lease_is_gone_or_not_its_own_closes_nothing(watchdog, clock, change):
    start = clock.now
    data = lease_for("run-c", start + 30)
    if change == "closed normally":
        clock.at(start + 10, lambda: state.remove("lease-run-c"))
    else:
        clock.at(start + 10, lambda: state.write("lease-run-c", dict(data, token="newer")))
    lease.watchdog_main(state.state_dir(), "run-c", "tok")
    assert watchdog["closed"] == [] and clock.now < start + 30


def test_a_failing_close_is_retried_with_a_growing_pause_until_it_works(watchdog, clock):
    expires = clock.now + 5
    lease_for("run-d", expires)
    watchdog["failures"]["left"] = 3
    lease.watchdog_main(state.state_dir(), "run-d", "tok")
    assert [s for s in clock.sleeps if s > lease.POLL] == [2.0, 4.0, 8.0]
    [(_tag, at)] = watchdog["closed"]
    assert at >= expires + 14


def test_start_renews_a_live_watchdog_without_a_new_one(watchdog, clock, monkeypatch):
    del watchdog
    started = []
    monkeypatch.setattr(lease.subprocess, "Popen", lambda *a, **k: started.append(a) or type("P", (), {"pid": 4242})())
    monkeypatch.setattr(lease, "install_lib", lambda: "/nonexistent/lib")
    first = lease.start("run-e", "nftables", {"x": 1}, 30)
    assert first == clock.now + 30 and len(started) == 1 and state.read("lease-run-e")["pid"] == 4242
    monkeypatch.setattr(lease, "_alive", lambda data: True)
    clock.now += 10
    again = lease.start("run-e", "nftables", {"x": 1}, 60)
    assert again == clock.now + 60 and lease.expires("run-e") == again and len(started) == 1
    # Other options (another backend) are another opening: a new watchdog.
    lease.start("run-e", "iptables", {"x": 1}, 60)
    assert len(started) == 2


# ---------------------------------------------------------------- the agent's own lease


class SteppingEvent(threading.Event):
    """The agent's ``stopping`` event: a timed wait moves the fake clock instead of waiting."""

    def __init__(self, clock: FakeClock):
        super().__init__()
        self.clock = clock

    def wait(self, timeout=None):
        if not self.is_set() and timeout is not None:
            self.clock.sleep(timeout)
        return self.is_set()


def agent(tmp_path, clock, lease_seconds: int = 60) -> agent_utils.Agent:
    config = {"tag": "lease-unit", "run_id": "lease-unit", "node_id": "n1", "staging": str(tmp_path / "s"), "lease": lease_seconds,
              "port": 62286, "controller": ["198.18.0.1"], "firewall": {"open": False, "backend": "auto"}}
    node_agent = agent_utils.Agent(config)
    node_agent.stopping = SteppingEvent(clock)
    return node_agent


def test_the_agents_lease_stops_it_when_it_runs_out_and_not_before(tmp_path, clock):
    start = clock.now
    node_agent = agent(tmp_path, clock, 60)
    assert node_agent.lease_expires == start + 60
    node_agent._watch_lease()  # pylint: disable=protected-access
    assert node_agent.stopping.is_set() and node_agent.cancel_reason == "lease expired"
    assert start + 60 <= clock.now <= start + 60 + 0.5


def test_a_renewal_of_the_agents_lease_moves_the_stop(tmp_path, clock):
    start = clock.now
    node_agent = agent(tmp_path, clock, 60)
    clock.at(start + 50, lambda: node_agent.renew(120))
    node_agent._watch_lease()  # pylint: disable=protected-access
    assert start + 170 <= clock.now <= start + 170 + 0.5
    assert node_agent.status()["lease_remaining"] == 0.0


def test_a_stopping_agent_refuses_a_renewal(tmp_path, clock):
    node_agent = agent(tmp_path, clock, 60)
    node_agent.request_stop("shutdown requested")
    with pytest.raises(agent_utils.AgentError, match="stopping .shutdown requested.: the lease cannot be renewed"):
        node_agent.renew(30)
