# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""report.html in a real headless browser (Debian chromium): it loads from a file without a
console message, shows the matrix coloured by status and the SVG timeline; screenshot kept in
build/test-artifacts/report-unit.png."""
from __future__ import annotations

import pytest
import report_browser
from report_samples import EVIL, make_run, results_for

from ansible_collections.fleet.firmware.plugins.plugin_utils import report

pytestmark = pytest.mark.skipif(report_browser.missing() is not None, reason=str(report_browser.missing()))


def test_the_page_in_chromium_matrix_timeline_no_console_errors(tmp_path):
    run_dir = make_run(tmp_path)
    results = results_for(run_dir)
    results["lin02"]["components"][1]["name"] = EVIL
    written = report.write_reports(report.build_model(str(run_dir), results), str(tmp_path / "out"), ["html"])
    seen = report_browser.inspect(tmp_path / "out" / "report.html", "report-unit.png")
    assert seen["console"] == []
    assert seen["scripts"] == 0  # the hostile component name was not turned into a script
    assert "<script>alert('x')</script>" in seen["body"]
    assert seen["matrix_rows"] == ["gone", "lin01", "lin02", "v6n01", "w01"]
    colours = {status: colour for _node, status, colour in seen["cells"] if status}
    assert len(set(colours.values())) == len(colours) == 5  # every status its own colour
    assert colours["installed"] != "rgba(0, 0, 0, 0)"
    assert seen["bars"] == ["lin01", "lin02", "v6n01", "w01"] and seen["rects"] > 20
    assert min(seen["rect_widths"]) >= 2.0 and seen["timeline_size"]["height"] > 100
    assert "nodes" in seen["summary"] and "installed" in seen["summary"]
    assert seen["screenshot"].stat().st_size > 10_000
    assert written["html"].endswith("report.html")
