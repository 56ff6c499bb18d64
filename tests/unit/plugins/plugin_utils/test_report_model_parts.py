# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The report model's small parts case by case (test_report_model.py drives them through whole
runs): a node's status, the task's status, the summary, the typed fields, the formats."""
from __future__ import annotations

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
    assert type(report._number(value)) is (float if number is not None else type(None))


def test_formats_are_normalised_deduplicated_and_checked():
    assert report.check_formats([" JSON", "html", "json", "", "xml"]) == ["json", "html", "xml"]
    assert report.check_formats([]) == []
    with pytest.raises(report.ReportError) as error:
        report.check_formats(["json", "pdf", "csv"])
    assert str(error.value) == "unknown report format(s) csv, pdf; known: %s" % ", ".join(report.FORMATS)
