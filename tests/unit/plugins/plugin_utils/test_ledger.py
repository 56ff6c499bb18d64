# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The ledger: event validation, append-only JSON lines, reading since an offset."""
from __future__ import annotations

import json
import os
import stat

import pytest

from ansible_collections.fleet.firmware.plugins.plugin_utils import ledger


@pytest.mark.parametrize("event, field", [
    ({"stage": "flying"}, "stage"),
    ({}, "stage"),
    ({"stage": "installing", "progress": 101}, "progress"),
    ({"stage": "installing", "progress": float("nan")}, "progress"),
    ({"stage": "installing", "progress": True}, "progress"),
    ({"stage": "installed", "rc": "0"}, "rc"),
    ({"stage": "installed", "rc": 1.5}, "rc"),
    ({"stage": "failed", "message": "x" * 4097}, "message"),
    ({"stage": "downloading", "component": 7}, "component"),
    ({"stage": "downloading", "path": "/etc/shadow"}, "path"),
    (["stage"], "JSON object"),
])
def test_invalid_events_are_refused_naming_the_field(event, field):
    with pytest.raises(ledger.EventError, match=field):
        ledger.validate_event(event)


def test_a_valid_event_is_kept_as_sent():
    event = {"stage": "installing", "component": "a" * 64, "progress": 42.5, "rc": 0, "message": "ok"}
    assert ledger.validate_event(dict(event)) == event


@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe", b"[]", json.dumps([{"stage": "staged"}] * 101).encode(), b"null"])
def test_bodies_that_are_not_events_are_refused(body):
    with pytest.raises(ledger.EventError):
        ledger.parse_events(body)


def test_a_list_of_events_is_accepted():
    assert [e["stage"] for e in ledger.parse_events(b'[{"stage":"staged"},{"stage":"started"}]')] == ["staged", "started"]


@pytest.mark.parametrize("node_id", ["", "../x", "a/b", ".hidden", "x" * 129, None, "a\nb"])
def test_node_ids_that_could_escape_the_ledger_folder_are_refused(node_id):
    with pytest.raises(ledger.EventError):
        ledger.check_node_id(node_id)


def test_append_then_read_since_offset_returns_only_new_complete_lines(tmp_path):
    writer = ledger.LedgerWriter(str(tmp_path))
    writer.append("lin01", {"stage": "staged"})
    writer.append("lin01", {"stage": "downloading", "progress": 10})
    events, offset = ledger.read_since(str(tmp_path), "lin01", 0)
    assert [e["seq"] for e in events] == [1, 2] and all("ts" in e for e in events)
    writer.append("lin01", {"stage": "downloading", "progress": 90})
    path = tmp_path / "ledger" / "lin01.jsonl"
    with open(path, "ab") as handle:
        handle.write(b'{"partial":')  # a line being written right now
    new, offset2 = ledger.read_since(str(tmp_path), "lin01", offset)
    assert [e["progress"] for e in new] == [90]
    assert offset2 == os.path.getsize(path) - len(b'{"partial":')
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ledger.read_since(str(tmp_path), "lin02", 0) == ([], 0)


def test_node_state_and_a_restarted_writer_continues_the_sequence(tmp_path):
    ledger.LedgerWriter(str(tmp_path)).append("win01", {"stage": "installing"})
    writer = ledger.LedgerWriter(str(tmp_path))
    writer.append("win01", {"stage": "failed", "rc": 3})
    writer.append("win01", {"event": "component_refused", "component": "b" * 64}, source="engine")
    state = ledger.node_state(str(tmp_path), "win01")
    assert state["stage"] == "failed" and state["failed"] and state["events"] == 3
    assert state["last"]["seq"] == 3 and len(state["engine_errors"]) == 1
    assert ledger.nodes(str(tmp_path)) == ["win01"]


def test_stage_changes_are_fsynced_and_progress_lines_are_not(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(ledger.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    writer = ledger.LedgerWriter(str(tmp_path))
    writer.append("lin01", {"stage": "downloading", "progress": 1})
    writer.append("lin01", {"stage": "downloading", "progress": 2})
    writer.append("lin01", {"stage": "verified"})
    assert len(synced) == 2


def test_a_negative_offset_is_refused(tmp_path):
    with pytest.raises(ledger.LedgerError, match="-1"):
        ledger.read_since(str(tmp_path), "lin01", -1)
