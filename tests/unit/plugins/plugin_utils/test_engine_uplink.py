# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Pull mode's controller half (issue 15 item 3): the engine's uplink, the ledger's one sequence
per node, the lazy cryptography import."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from ansible_collections.fleet.firmware.plugins.plugin_utils import ledger
from ansible_collections.fleet.firmware.plugins.plugin_utils.engine import Engine
from ansible_collections.fleet.firmware.plugins.plugin_utils.engine.settings import EngineError


@pytest.fixture
def engine(tmp_path):
    """An engine that is not serving: its uplink and control halves called directly."""
    made = Engine(str(tmp_path / "run"))
    os.makedirs(made.run_dir, mode=0o700)
    made.ledger = ledger.LedgerWriter(made.run_dir)
    return made


def test_two_writers_of_one_node_share_one_sequence(tmp_path):
    # The engine and a worker whose engine is gone (it writes its last lines itself).
    first, second = ledger.LedgerWriter(str(tmp_path)), ledger.LedgerWriter(str(tmp_path))
    for index in range(6):
        (first if index % 2 else second).append("n1", {"stage": "staged"}, source="deploy")
    first.append("n2", {"stage": "staged"})
    events = ledger.read_since(str(tmp_path), "n1", 0)[0]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e["seq"] for e in ledger.read_since(str(tmp_path), "n2", 0)[0]] == [1]


def test_concurrent_writers_never_repeat_a_seq(tmp_path):
    writers = [ledger.LedgerWriter(str(tmp_path)) for _unused in range(4)]
    threads = [threading.Thread(target=lambda w=w: [w.append("n1", {"stage": "installing"}) for _unused in range(50)]) for w in writers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(e["seq"] for e in ledger.read_since(str(tmp_path), "n1", 0)[0]) == list(range(1, 201))


def test_uplink_writes_component_stages_once_and_answers_the_orders(engine):
    engine._jobs["n1"] = {"components": [{"name": "a", "sha256": "0" * 64}]}
    events = [{"seq": 1, "state": "started"}, {"seq": 2, "state": "downloading", "component": "a"},
              {"seq": 3, "state": "downloaded", "component": "a"},
              {"seq": 4, "state": "installed", "component": "a", "rc": 0, "reason": "installed"}]
    answer = engine.uplink("n1", {"events": events, "status": {"job": "done"}, "has_job": False})
    assert answer["ack"] == 4 and answer["job"]["components"][0]["name"] == "a"
    assert answer["cancel"] is None and answer["lease"] is None
    # Sent again (an answer lost on the way): nothing written twice; the job is not sent again.
    again = engine.uplink("n1", {"events": events, "has_job": True})
    assert "job" not in again
    written = ledger.read_since(engine.run_dir, "n1", 0)[0]
    assert [(e["stage"], e["source"]) for e in written] == [("downloading", "agent"), ("verified", "agent"), ("installed", "agent")]
    assert written[-1]["rc"] == 0 and written[-1]["message"] == "installed"
    engine.node_order("n1", cancel="cancelled by the controller", lease=60)
    orders = engine.uplink("n1", {"events": [], "has_job": True})
    assert orders["cancel"] == "cancelled by the controller" and 50 < orders["lease"] <= 60


def test_node_wait_returns_the_news_and_times_out_without(engine):
    assert engine.node_wait("n1", 0, timeout=0)["version"] == 0
    engine.uplink("n1", {"events": [], "status": {"job": "running"}, "has_job": True})
    news = engine.node_wait("n1", 0, timeout=5)
    assert news["version"] == 1 and news["status"] == {"job": "running"} and news["final"] is False and news["silent"] >= 0
    engine.uplink("n1", {"events": [], "final": True, "has_job": True})
    assert engine.node_wait("n1", 1, timeout=5)["final"] is True


def test_record_validates_and_continues_the_nodes_sequence(engine):
    engine.uplink("n1", {"events": [{"seq": 1, "state": "installing", "component": "a"}], "has_job": True})
    assert engine.record("n1", {"stage": "cleaned"}) == 2
    with pytest.raises(ledger.EventError, match="stage"):
        engine.record("n1", {"stage": "flying"})
    with pytest.raises(EngineError, match="source"):
        engine.record("n1", {"stage": "cleaned"}, source="node")


def test_a_bad_uplink_is_refused(engine):
    with pytest.raises(ValueError, match="uplink"):
        engine.uplink("n1", {"events": "not a list"})


def test_importing_tls_does_not_import_cryptography():
    code = ("import sys; from ansible_collections.fleet.firmware.plugins.plugin_utils import tls, agent_client; "
            "assert 'cryptography' not in sys.modules, 'imported at once'; tls.require_cryptography(); "
            "assert 'cryptography' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
