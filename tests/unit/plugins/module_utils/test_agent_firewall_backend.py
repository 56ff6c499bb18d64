# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The agent resolves firewall_backend=auto once: its lease renewals use the backend the rules
went into (detecting again per renewal costs firewall-cmd/ufw runs and could pick another
backend half-way); the close keeps "auto", which sweeps every backend and iptables variant.
The firewall calls are recorded, not made: the real firewall half is exercised in the lab
(tests/integration/test_agent.py)."""
from __future__ import annotations

import pytest

from ansible_collections.fleet.firmware.plugins.module_utils import agent as agent_utils
from ansible_collections.fleet.firmware.plugins.module_utils.firewall import api


@pytest.fixture
def calls(monkeypatch):
    recorded: list[tuple[str, str]] = []

    def open_ports(spec, backend="auto", check_mode=False):
        del spec, check_mode
        recorded.append(("open", backend))
        return {"backend": "nftables" if backend == "auto" else backend, "rules": []}

    def close_tag(tag, backend="auto", check_mode=False):
        del tag, check_mode
        recorded.append(("close", backend))
        return {"changed": True}

    monkeypatch.setattr(api, "open_ports", open_ports)
    monkeypatch.setattr(api, "close_tag", close_tag)
    return recorded


def agent(tmp_path, backend: str) -> agent_utils.Agent:
    config = {"tag": "fw-once", "run_id": "fw-once", "node_id": "n1", "staging": str(tmp_path / "s"), "lease": 60, "port": 62286,
              "controller": ["198.18.0.1"], "firewall": {"open": True, "backend": backend}}
    return agent_utils.Agent(config)


def test_auto_is_detected_once_then_renewals_use_that_backend_and_the_close_sweeps(tmp_path, calls):
    node_agent = agent(tmp_path, "auto")
    node_agent._open_firewall()  # pylint: disable=protected-access
    node_agent.renew(30)
    node_agent.renew(30)
    node_agent._close_firewall()  # pylint: disable=protected-access
    assert calls == [("open", "auto"), ("open", "nftables"), ("open", "nftables"), ("close", "auto")]


def test_a_named_backend_is_kept(tmp_path, calls):
    node_agent = agent(tmp_path, "iptables")
    node_agent._open_firewall()  # pylint: disable=protected-access
    node_agent.renew(30)
    node_agent._close_firewall()  # pylint: disable=protected-access
    assert calls == [("open", "iptables"), ("open", "iptables"), ("close", "iptables")]
