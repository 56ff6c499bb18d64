# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The compliance report across runs (issue 19 item 4): snapshots in a history folder, drift,
when a version last changed (snapshots and ledgers), the fleet's share at the baseline, the
retention rule, and the JSON, CSV and HTML files. Times come from an injected clock."""
from __future__ import annotations

import csv
import datetime
import io
import json
import os
from pathlib import Path

import pytest

from ansible_collections.fleet.firmware.plugins.plugin_utils import compliance, ledger

T0 = datetime.datetime(2026, 12, 1, 8, 0, tzinfo=datetime.timezone.utc)


def at(hours: float) -> datetime.datetime:
    return T0 + datetime.timedelta(hours=hours)


def rows(versions: dict[str, dict[str, str | None]], baseline: dict[str, str]) -> list[dict]:
    out = []
    for node, installed in versions.items():
        for component, version in installed.items():
            action = "skip" if version == baseline[component] else ("install" if version is None else "upgrade")
            out.append({"node": node, "component": component, "installed": version, "baseline": baseline[component], "action": action})
    # A component for another OS: not a compliance question.
    out.append({"node": "lin01", "component": "win-only", "installed": None, "baseline": "1.0", "action": "skip",
                "reason": "for windows nodes, this node runs linux"})
    return out


BASE = {"bmc": "2.31", "nic": "14.2.0"}


def three_runs(history, runs_dir=None):
    compliance.record(history, rows({"lin01": {"bmc": None, "nic": None}, "lin02": {"bmc": None, "nic": None}}, BASE), now=at(0))
    compliance.record(history, rows({"lin01": {"bmc": "2.31", "nic": "14.2.0"}, "lin02": {"bmc": "2.31", "nic": "14.2.0"}}, BASE), now=at(1))
    # lin02's BMC went back to 2.30 outside any run: drift.
    compliance.record(history, rows({"lin01": {"bmc": "2.31", "nic": "14.2.0"}, "lin02": {"bmc": "2.30", "nic": "14.2.0"}}, BASE), now=at(2))
    return compliance.build(str(history), runs_dir=runs_dir, now=at(3))


def entry(model, node, component):
    return next(e for e in model["entries"] if e["node"] == node and e["component"] == component)


def test_three_runs_with_a_drifted_node(tmp_path):
    model = three_runs(tmp_path / "history")
    assert model["snapshots"] == [at(h).isoformat(timespec="seconds") for h in (0, 1, 2)]
    assert sorted((e["node"], e["component"]) for e in model["entries"]) == [("lin01", "bmc"), ("lin01", "nic"), ("lin02", "bmc"), ("lin02", "nic")]
    lin01 = entry(model, "lin01", "bmc")
    assert lin01["at_baseline"] and lin01["last_changed"] == at(1).isoformat(timespec="seconds") and lin01["drift"] is None
    drifted = entry(model, "lin02", "bmc")
    assert not drifted["at_baseline"] and drifted["installed"] == "2.30" and drifted["baseline"] == "2.31"
    assert drifted["drift"] == {"from": "2.31", "to": "2.30", "by_run": None}
    assert drifted["last_changed"] == at(2).isoformat(timespec="seconds")
    assert model["summary"] == {"nodes": 2, "nodes_at_baseline": 1, "nodes_at_baseline_pct": 50.0, "components": 4,
                                "components_at_baseline": 3, "components_at_baseline_pct": 75.0, "drifted": 1, "drifted_outside_runs": 1}


def test_a_ledger_says_which_run_changed_it(tmp_path):
    runs = tmp_path / "runs"
    writer = ledger.LedgerWriter(str(runs / "run-a"))
    writer.append("lin02", {"stage": "installed", "component": "bmc", "ts": at(1.5).timestamp()}, source="deploy")
    model = three_runs(tmp_path / "history", runs_dir=str(runs))
    drifted = entry(model, "lin02", "bmc")
    assert drifted["drift"]["by_run"] == "run-a" and drifted["changed_by_run"] == "run-a"
    assert model["summary"]["drifted_outside_runs"] == 0


def test_a_node_left_out_of_the_last_run_keeps_its_last_snapshot(tmp_path):
    history = tmp_path / "history"
    compliance.record(history, rows({"lin01": {"bmc": "2.31"}, "lin02": {"bmc": "2.30"}}, BASE), now=at(0))
    compliance.record(history, [{"node": "lin01", "component": "bmc", "installed": "2.31", "baseline": "2.31", "action": "skip"}], now=at(1))
    model = compliance.build(str(history), now=at(2))
    assert entry(model, "lin02", "bmc")["seen"] == at(0).isoformat(timespec="seconds")
    assert entry(model, "lin01", "bmc")["last_changed"] is None  # the same since the first snapshot


def test_retention_keeps_the_newest_and_removes_nothing_else(tmp_path):
    history = tmp_path / "history"
    history.mkdir()
    (history / "notes.txt").write_text("mine")
    for hour in range(5):
        _path, removed = compliance.record(history, rows({"lin01": {"bmc": "2.31", "nic": "14.2.0"}}, BASE), now=at(hour), keep=3)
    assert len(removed) == 1
    names = sorted(os.listdir(history))
    assert len([n for n in names if n.startswith("inventory-")]) == 3 and "notes.txt" in names
    assert compliance.build(str(history), now=at(9))["snapshots"][0] == at(2).isoformat(timespec="seconds")
    # By age: older than a day goes, the newest always stays.
    compliance.record(history, rows({"lin01": {"bmc": "2.31", "nic": "14.2.0"}}, BASE), now=at(50), keep_days=1)
    assert compliance.build(str(history), now=at(51))["snapshots"] == [at(50).isoformat(timespec="seconds")]
    assert (history / "notes.txt").read_text() == "mine"
    assert oct((history / os.listdir(history)[0]).stat().st_mode & 0o777) in ("0o600", "0o644")


@pytest.mark.parametrize("kwargs, text", [({"keep": 0}, "keep=0 must be 1 or more"), ({"keep_days": -1}, "keep_days=-1 must be more than 0")])
def test_bad_retention_is_refused(tmp_path, kwargs, text):
    with pytest.raises(compliance.ComplianceError, match=text):
        compliance.record(tmp_path / "h", [], now=T0, **kwargs)


def test_no_history_is_a_clear_error(tmp_path):
    with pytest.raises(compliance.ComplianceError, match="no history folder"):
        compliance.build(str(tmp_path / "none"))


def test_the_three_files(tmp_path):
    model = three_runs(tmp_path / "history")
    paths = compliance.write(model, str(tmp_path / "out"))
    assert json.loads(open(paths["json"], encoding="utf-8").read())["summary"]["components_at_baseline_pct"] == 75.0
    table = list(csv.DictReader(io.StringIO(open(paths["csv"], encoding="utf-8").read())))
    assert [r["node"] for r in table] == ["lin01", "lin01", "lin02", "lin02"]
    row = next(r for r in table if r["node"] == "lin02" and r["component"] == "bmc")
    assert (row["at_baseline"], row["drift_from"], row["drift_to"], row["drift_by_run"]) == ("no", "2.31", "2.30", "")
    page = open(paths["html"], encoding="utf-8").read()
    assert "default-src 'none'" in page and "<script" not in page and 'data-drift="yes"' in page
    with pytest.raises(compliance.ComplianceError, match="unknown compliance format"):
        compliance.write(model, str(tmp_path / "out"), ["pdf"])


def test_hostile_values_are_escaped_and_not_formulas(tmp_path):
    history = tmp_path / "history"
    hostile = '<script>alert(1)</script>'
    compliance.record(history, [{"node": hostile, "component": "=HYPERLINK(\"http://x\")", "installed": "1", "baseline": "2", "action": "upgrade"}],
                      now=T0)
    model = compliance.build(str(history), now=T0)
    page = compliance.to_html(model)
    assert "<script>" not in page and "&lt;script&gt;" in page and "http://" not in page
    assert "'=HYPERLINK" in compliance.to_csv(model)


def test_the_compliance_page_in_chromium(tmp_path):
    import report_browser  # pylint: disable=import-outside-toplevel
    if report_browser.missing():
        pytest.skip(report_browser.missing())
    model = three_runs(tmp_path / "history")
    paths = compliance.write(model, str(tmp_path / "out"), ["html"])
    seen = report_browser.inspect_compliance(Path(paths["html"]), "compliance-unit.png")
    assert seen["console"] == [] and seen["scripts"] == 0
    assert seen["rows"] == [("lin01", "bmc"), ("lin01", "nic"), ("lin02", "bmc"), ("lin02", "nic")]
    assert seen["at"][("lin02", "bmc")][0] == "no" and seen["at"][("lin01", "bmc")][0] == "yes"
    assert seen["at"][("lin02", "bmc")][1] != seen["at"][("lin01", "bmc")][1]  # a colour each
    assert seen["drift"][("lin02", "bmc")] == "2.31 → 2.30 (outside any run)"
    assert "1/2 (50.0 %)" in seen["summary"] and "3/4 (75.0 %)" in seen["summary"]
