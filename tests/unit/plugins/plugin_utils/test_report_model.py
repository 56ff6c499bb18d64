# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet report: the model from a ledger (and deploy results), report.json against its
schema, report.xml as JUnit, report.html escaped and without any URL."""
from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import jsonschema
import pytest
from report_samples import EVIL, T0, TAG, make_run, results_for

from ansible_collections.fleet.firmware.plugins.plugin_utils import report


def statuses(model: dict) -> dict[str, dict[str, str]]:
    return {n["node"]: {c["name"]: c["status"] for c in n["components"]} for n in model["nodes"]}


def node(model: dict, name: str) -> dict:
    return next(n for n in model["nodes"] if n["node"] == name)


# -- the model


def test_from_the_ledger_alone_every_node_component_and_stage(tmp_path):
    model = report.build_model(str(make_run(tmp_path)))
    assert [n["node"] for n in model["nodes"]] == ["lin01", "lin02", "v6n01", "w01"]
    assert statuses(model) == {
        "lin01": {"fw-a": "installed", "sw-b": "installed"},
        "lin02": {"bad": "failed", "needs-bad": "skipped", "free": "installed"},
        "v6n01": {"fw-a": "installed", "sw-b": "cancelled"},  # a skip that is no dependency skip was a cancel
        "w01": {"fw-a": "not_attempted"},
    }
    assert {n["node"]: n["status"] for n in model["nodes"]} == {"lin01": "ok", "lin02": "failed", "v6n01": "cancelled", "w01": "incomplete"}
    bad = node(model, "lin02")["components"][0]
    assert (bad["rc"], bad["message"], bad["duration_s"], bad["before"]) == (3, "exit code 3 (failed)", 1.0, None)
    assert node(model, "lin01")["rebooted"] is True and node(model, "lin02")["rebooted"] is False
    assert model["components"] == ["fw-a", "sw-b", "bad", "needs-bad", "free"]
    assert model["run_tag"] == TAG and model["start"] == T0 and model["duration_s"] == 13.0


def test_stages_are_segments_in_time_order_each_lasting_until_the_next(tmp_path):
    lin01 = node(report.build_model(str(make_run(tmp_path))), "lin01")
    names = [(s["stage"], s["component"]) for s in lin01["stages"]]
    assert names[:6] == [("preflight", None), ("staged", None), ("started", None), ("firewall_open", None), ("inventoried", None), ("planned", None)]
    # the node's own progress line for the same stage and component is part of one segment
    assert names.count(("downloading", "fw-a")) == 1
    assert names[-3:] == [("rebooting", None), ("activated", None), ("cleaned", None)]
    for before, after in zip(lin01["stages"], lin01["stages"][1:]):
        assert before["duration_s"] >= 0
        if (before["stage"], before["component"]) == ("installed", "sw-b"):
            # the last component's outcome is an instant: the wrap-up after it is a gap, not an install
            assert before["end"] == before["start"] < after["start"]
        else:
            assert before["end"] == after["start"]
    installing = next(s for s in lin01["stages"] if s["stage"] == "installing" and s["component"] == "fw-a")
    assert installing["duration_s"] == pytest.approx(2.0) and installing["phase"] == "install"
    assert lin01["stages"][-1]["duration_s"] == 0  # cleaned is the last instant
    assert lin01["engine_events"] == [{"ts": T0 + 1.0, "event": "session_opened"}]


def test_results_give_versions_reboot_and_the_task_outcome(tmp_path):
    run_dir = make_run(tmp_path)
    model = report.build_model(str(run_dir), results_for(run_dir))
    lin01 = node(model, "lin01")
    assert [(c["name"], c["before"], c["after"], c["source"]) for c in lin01["components"]] == [
        ("fw-a", "1.0", "2.0", "result"), ("sw-b", None, "1.5", "result")]
    assert lin01["task_status"] == "changed" and lin01["rebooted"] is True and lin01["delivery"] == "pull"
    assert node(model, "lin02")["task_status"] == "failed" and node(model, "lin02")["msg"].startswith("component(s) failed")
    gone = node(model, "gone")
    assert gone["status"] == "unreachable" and gone["components"] == [] and gone["stages"] == []
    # nodes with a ledger but no result are still there, from the ledger
    assert node(model, "v6n01")["components"][0]["source"] == "ledger"
    summary = model["summary"]
    assert summary["nodes"] == 5 and summary["nodes_by_status"] == {"ok": 1, "failed": 1, "cancelled": 1, "unreachable": 1, "incomplete": 1, "skipped": 0}
    assert summary["components_by_status"] == {"installed": 4, "failed": 1, "skipped": 1, "not_attempted": 1, "cancelled": 1,
                                               "not_activated": 0, "unverified": 0}
    assert summary["rebooted"] == 1


def test_a_result_is_matched_to_its_ledger_file_by_path_not_host_name(tmp_path):
    run_dir = make_run(tmp_path)
    result = dict(results_for(run_dir)["lin01"])
    model = report.build_model(str(run_dir), {"lin01 alias": result})
    assert [n["node"] for n in model["nodes"]] == ["lin01", "lin02", "v6n01", "w01"]
    assert node(model, "lin01")["host"] == "lin01 alias"


def test_an_empty_or_missing_run_folder_is_an_empty_report(tmp_path):
    model = report.build_model(str(tmp_path / "nothing"))
    assert model["nodes"] == [] and model["summary"]["nodes"] == 0 and model["duration_s"] is None
    jsonschema.validate(model, report.SCHEMA)
    assert "<svg" in report.to_html(model)
    ET.fromstring(report.to_junit(model))


def test_a_torn_last_line_and_garbage_lines_are_skipped(tmp_path):
    run_dir = make_run(tmp_path)
    with open(run_dir / "ledger" / "lin02.jsonl", "a", encoding="utf-8") as out:
        out.write('{"no": "ts"}\n[1, 2]\n{"ts": 1780000099, "stage": "clea')
    model = report.build_model(str(run_dir))
    assert node(model, "lin02")["last_stage"] == "cleaned"


# -- report.json


def test_report_json_validates_against_the_shipped_schema(tmp_path):
    run_dir = make_run(tmp_path)
    jsonschema.Draft202012Validator.check_schema(report.SCHEMA)
    for model in (report.build_model(str(run_dir)), report.build_model(str(run_dir), results_for(run_dir))):
        jsonschema.validate(json.loads(report.to_json(model)), report.SCHEMA, cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize("breakage", [
    lambda m: m["nodes"][0]["components"][0].update(status="exploded"),
    lambda m: m["nodes"][0].pop("stages"),
    lambda m: m["summary"].update(nodes=-1),
    lambda m: m.update(extra=1),
])
def test_the_schema_refuses_a_broken_report(tmp_path, breakage):
    model = json.loads(report.to_json(report.build_model(str(make_run(tmp_path)))))
    breakage(model)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(model, report.SCHEMA, cls=jsonschema.Draft202012Validator)


# -- report.xml (JUnit)


def test_junit_a_suite_per_node_a_case_per_component_failures_and_skips(tmp_path):
    run_dir = make_run(tmp_path)
    root = ET.fromstring(report.to_junit(report.build_model(str(run_dir), results_for(run_dir))).encode("utf-8"))
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert sorted(suites) == ["gone", "lin01", "lin02", "v6n01", "w01"]
    lin02 = {c.get("name"): c for c in suites["lin02"].findall("testcase")}
    assert sorted(lin02) == ["bad", "free", "needs-bad"]  # a component failure explains the node: no session case
    assert lin02["bad"].find("failure") is not None and lin02["needs-bad"].find("skipped") is not None
    assert lin02["free"].find("failure") is None and lin02["free"].find("skipped") is None
    assert "\x01" not in lin02["bad"].find("failure").get("message") and "<script>" in lin02["bad"].find("failure").get("message")
    assert float(lin02["bad"].get("time")) == 1.0 and lin02["bad"].get("classname") == f"fleet.firmware.{TAG}.lin02"
    # a node that failed without a failed component shows a failing (or erroring) session case
    assert suites["gone"].find("testcase[@name='session']/error") is not None
    assert suites["v6n01"].find("testcase[@name='session']/failure") is not None
    assert suites["w01"].find("testcase[@name='fw-a']/skipped") is not None
    assert suites["w01"].find("testcase[@name='session']/failure") is not None  # killed before its cleanup
    for suite in suites.values():
        cases = suite.findall("testcase")
        assert int(suite.get("tests")) == len(cases)
        assert int(suite.get("failures")) == len(suite.findall("testcase/failure"))
        assert int(suite.get("errors")) == len(suite.findall("testcase/error"))
        assert int(suite.get("skipped")) == len(suite.findall("testcase/skipped"))
    assert int(root.get("tests")) == sum(int(s.get("tests")) for s in suites.values()) == 11
    assert int(root.get("failures")) == 3 and int(root.get("errors")) == 1


# -- report.html


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_html_is_self_contained_and_escapes_every_value(tmp_path):
    run_dir = make_run(tmp_path)
    results = results_for(run_dir)
    results["lin02"]["components"][1]["name"] = EVIL  # a hostile component name too
    page = report.to_html(report.build_model(str(run_dir), results))
    assert "<script" not in page and "http://" not in page and "https://" not in page
    parsed = _Collector()
    parsed.feed(page)
    tags = [tag for tag, _attrs in parsed.tags]
    assert "script" not in tags and "link" not in tags and "img" not in tags and "iframe" not in tags
    assert not any(k in ("src", "href") for _tag, attrs in parsed.tags for k in attrs)
    # the hostile text is shown as text (decoded), URL included
    assert any("<script>alert('x')</script>" in chunk and "https://evil.example" in chunk for chunk in parsed.text)
    assert ("table", {"id": "matrix"}) in parsed.tags and any(t == "svg" and a.get("id") == "timeline" for t, a in parsed.tags)
    cells = [a for t, a in parsed.tags if t == "td" and "data-status" in a]
    assert sorted(a["data-status"] for a in cells if a["data-status"]) == sorted(
        ["installed"] * 4 + ["failed", "skipped", "not_attempted", "cancelled"])
    bars = [a["data-node"] for t, a in parsed.tags if t == "g" and a.get("class") == "bar"]
    assert bars == ["lin01", "lin02", "v6n01", "w01"]  # the unreachable host has no ledger: no bar
    assert sum(1 for t, a in parsed.tags if t == "rect" and a.get("data-stage")) > 20


# -- files


def test_write_reports_writes_the_chosen_formats_atomically(tmp_path):
    model = report.build_model(str(make_run(tmp_path)))
    written = report.write_reports(model, str(tmp_path / "out"), ["xml", "json"])
    assert sorted(written) == ["json", "xml"] and sorted(os.listdir(tmp_path / "out")) == ["report.json", "report.xml"]
    assert json.loads((tmp_path / "out" / "report.json").read_text())["run_tag"] == TAG
    with pytest.raises(report.ReportError, match="pdf"):
        report.write_reports(model, str(tmp_path / "out"), ["pdf"])


def test_signature_warnings_are_in_every_format_of_the_report(tmp_path):
    """signatures=warn/off print a warning in every run: the deploy result's signature_warnings reach
    the node's model (valid against the schema) and its row of the HTML report, escaped."""
    run_dir = make_run(tmp_path)
    results = results_for(run_dir)
    results["lin01"]["signature_warnings"] = ["signatures=off: component and manifest signatures are NOT checked", f"fw: {EVIL}"]
    model = report.build_model(str(run_dir), results)
    assert node(model, "lin01")["warnings"][0].startswith("signatures=off") and node(model, "lin02")["warnings"] == []
    jsonschema.validate(json.loads(report.to_json(model)), report.SCHEMA)
    page = report.to_html(model)
    assert "warning: signatures=off: component and manifest signatures are NOT checked" in page
    assert EVIL not in page


def test_why_not_deployable_is_in_every_format_of_the_report(tmp_path):
    run_dir = make_run(tmp_path)
    results = results_for(run_dir)
    why = "only a BMC can flash it (in-band deployment impossible)"
    for host in ("lin01", "lin02"):
        results[host]["components"].append({"name": "bmc-only", "before": None, "after": None, "action": "skip", "status": "skipped",
                                            "rc": None, "message": f"not deployable: {why}", "duration_s": None, "not_deployable": why})
    model = report.build_model(str(run_dir), results)
    jsonschema.validate(json.loads(report.to_json(model)), report.SCHEMA)
    assert node(model, "lin01")["components"][-1]["not_deployable"] == why
    assert "not_deployable" not in node(model, "lin01")["components"][0]  # only where the plan said so
    assert report.not_deployable(model) == [{"component": "bmc-only", "why": why, "nodes": ["lin01", "lin02"]}]
    page = report.to_html(model)
    assert '<table id="not-deployable">' in page and f'<td class="not_deployable">{why}</td><td>lin01, lin02</td>' in page
    suites = {s.get("name"): s for s in ET.fromstring(report.to_junit(model).encode("utf-8")).findall("testsuite")}
    assert suites["lin02"].find("testcase[@name='bmc-only']/skipped").get("message") == f"skipped: not deployable: {why}"


def test_a_report_without_undeployable_components_has_no_such_table(tmp_path):
    run_dir = make_run(tmp_path)
    assert 'id="not-deployable"' not in report.to_html(report.build_model(str(run_dir), results_for(run_dir)))
