# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The report model's small parts case by case (test_report_model.py drives them through whole
runs): a node's status, the task's status, the summary, the typed fields, the formats."""
from __future__ import annotations

import json

import pytest

from ansible_collections.fleet.firmware.plugins.plugin_utils import report


@pytest.mark.parametrize("result, status", [
    (None, None), ({}, None), ({"unreachable": True, "failed": True}, "unreachable"), ({"failed": True, "changed": True}, "failed"),
    ({"changed": True}, "changed"), ({"changed": False}, "ok"), ({"msg": "x"}, "ok"),
])
def test_the_task_status(result, status):
    assert report._task_status(result) == status  # pylint: disable=protected-access


def node(task_status, *component_statuses):
    return {"task_status": task_status, "components": [{"status": s} for s in component_statuses]}


@pytest.mark.parametrize("task_status, components, stages, status", [
    ("unreachable", ("cancelled",), ("cancelled",), "unreachable"),  # unreachable first
    ("ok", ("installed", "cancelled"), ("cleaned",), "cancelled"),
    ("ok", ("installed",), ("cancelled", "cleaned"), "cancelled"),  # cancelled before failed
    ("failed", ("installed",), ("cleaned",), "failed"),
    ("ok", ("failed",), ("cleaned",), "failed"),
    ("ok", ("installed",), ("failed", "cleaned"), "failed"),
    (None, ("installed",), ("installing",), "incomplete"),  # no result, never cleaned: running or killed
    (None, ("installed",), ("installing", "cleaned"), "ok"),
    ("changed", ("installed", "skipped"), (), "ok"),
])
def test_the_node_status(task_status, components, stages, status):
    events = [{"stage": s} for s in stages]
    assert report._node_status(node(task_status, *components), events) == status  # pylint: disable=protected-access


def test_the_summary_counts_nodes_components_and_reboots():
    nodes = [
        dict(node("ok", "installed", "skipped"), status="ok", rebooted=True, reboot_required=False),
        dict(node("failed", "failed"), status="failed", rebooted=False, reboot_required=True),
        dict(node("ok"), status="ok", rebooted=None, reboot_required=True),
    ]
    summary = report._summary(nodes)  # pylint: disable=protected-access
    assert summary["nodes"] == 3 and summary["components"] == 3
    assert summary["nodes_by_status"] == dict({s: 0 for s in report.NODE_STATUSES}, ok=2, failed=1)
    assert summary["components_by_status"] == dict({s: 0 for s in report.COMPONENT_STATUSES}, installed=1, skipped=1, failed=1)
    assert (summary["rebooted"], summary["reboot_required"]) == (1, 2)


def test_component_names_in_first_seen_order_once_each():
    nodes = [{"components": [{"name": "b"}, {"name": "a"}]}, {"components": [{"name": "c"}, {"name": "b"}]}]
    assert report._component_names(nodes) == ["b", "a", "c"]  # pylint: disable=protected-access


@pytest.mark.parametrize("value, text, integer, number, boolean", [
    (None, None, None, None, None),
    (3, "3", 3, 3.0, None),
    (2.5, "2.5", None, 2.5, None),
    (True, "True", None, None, True),
    (False, "False", None, None, False),
    ("7", "7", None, None, None),
])
def test_typed_fields_take_only_their_type(value, text, integer, number, boolean):
    # pylint: disable=protected-access
    assert (report._text(value), report._int(value), report._number(value), report._bool(value)) == (text, integer, number, boolean)
    assert isinstance(report._number(value), float) == (number is not None)  # pylint: disable=protected-access


def test_formats_are_normalised_deduplicated_and_checked():
    assert report.check_formats([" JSON", "html", "json", "", "xml"]) == ["json", "html", "xml"]
    assert report.check_formats([]) == []
    with pytest.raises(report.ReportError) as error:
        report.check_formats(["json", "pdf", "csv"])
    assert str(error.value) == "unknown report format(s) csv, pdf; known: %s" % ", ".join(report.FORMATS)


def write_ledger(run_dir, node_id, events):
    folder = run_dir / "ledger"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{node_id}.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))


def test_durations_ledger_paths_and_the_order_of_events(tmp_path):
    run = tmp_path / "run-x"
    write_ledger(run, "n1", [{"ts": 1000.0, "seq": 1, "stage": "staged"}, {"ts": 1001.000004, "seq": 2, "stage": "started"},
                             {"ts": 1002.5, "seq": 3, "stage": "cleaned"}])
    # Same time stamp: an event without seq (0) comes before one with seq 1, whatever the file's order.
    write_ledger(run, "n2", [{"ts": 1001.0, "seq": 1, "stage": "started"}, {"ts": 1001.0, "stage": "staged"},
                             {"ts": 1004.1234, "seq": 2, "stage": "cleaned"}])
    results = {"h3": {"ledger": "/elsewhere/h3.jsonl", "changed": False}}
    model = report.build_model(str(run), results)
    by_node = {n["node"]: n for n in model["nodes"]}
    assert sorted(by_node) == ["h3", "n1", "n2"]
    assert by_node["n1"]["duration_s"] == 2.5 and by_node["n2"]["duration_s"] == 3.123
    assert model["duration_s"] == 4.123 and (model["start"], model["end"]) == (1000.0, 1004.1234)
    assert by_node["n1"]["stages"][0]["duration_s"] == 1.000004
    assert [s["stage"] for s in by_node["n2"]["stages"]] == ["staged", "started", "cleaned"]
    assert by_node["n1"]["ledger"] == str(run / "ledger" / "n1.jsonl")
    assert by_node["h3"]["ledger"] == "/elsewhere/h3.jsonl" and by_node["h3"]["duration_s"] is None  # no events here


def test_segments_and_components_from_the_ledger_alone(tmp_path):
    run = tmp_path / "run-y"
    write_ledger(run, "n1", [
        {"ts": 1000.0, "seq": 1, "stage": "staged"},
        {"ts": 1002.0000004, "seq": 2, "stage": "planned", "message": "2 to install"},  # 7th decimal: rounded away
        {"ts": 1003.0, "seq": 3, "stage": "installing", "component": "fw"},
        {"ts": 1004.0, "seq": 4, "stage": "installing", "component": "fw", "rc": True, "message": "half way"},
        {"ts": 1005.5, "seq": 5, "stage": "installing", "component": "fw", "message": "still"},  # the start stays 1003
        {"ts": 1007.25, "seq": 6, "stage": "failed", "component": "fw", "rc": 3, "message": "exit code 3"},
        {"ts": 1008.0, "seq": 7, "stage": "cleaned"},
    ])
    results = {"n1": {"ledger": str(run / "ledger" / "n1.jsonl"), "run_tag": "from-result", "failed": True}}
    model = report.build_model(str(run), results, run_tag="given")
    assert model["run_tag"] == "given"  # the caller's tag first
    stages = model["nodes"][0]["stages"]
    assert [(s["stage"], s["component"], s["message"], s["rc"], s["duration_s"]) for s in stages] == [
        ("staged", None, None, None, 2.0),
        ("planned", None, "2 to install", None, 1.0),
        ("installing", "fw", "still", None, 4.25),  # rc True is no return code
        ("failed", "fw", "exit code 3", 3, 0.0),  # the last component's outcome is an instant
        ("cleaned", None, None, None, 0.0),
    ]
    model = report.build_model(str(run))  # no result: the components come from the ledger
    [component] = model["nodes"][0]["components"]
    assert (component["status"], component["rc"], component["message"], component["duration_s"]) == ("failed", 3, "exit code 3", 4.25)
    assert model["run_tag"] == "run-y"  # no tag given nor in a result: the run folder's name


def test_a_long_host_name_becomes_a_node_id_of_128_characters():
    assert report._node_of("h" * 200, {}) == "h" * 128  # pylint: disable=protected-access
    assert report._node_of("..a b", {}) == "a_b" and report._node_of("...", {}) == "node"  # pylint: disable=protected-access


def test_a_bad_component_entry_of_a_result_is_skipped_not_the_rest():
    result = {"components": [{"name": ""}, "junk", {"name": "fw", "status": "installed", "rc": 0}, {"name": "nic", "status": "odd"}]}
    model = report.build_model(None, {"h1": result})
    assert [(c["name"], c["status"], c["rc"]) for c in model["nodes"][0]["components"]] == [("fw", "installed", 0), ("nic", "not_attempted", None)]
