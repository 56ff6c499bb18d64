# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""benchmarks/benchlib.py: the tool check every benchmark makes first, and the check of the
measurements the smoke test (tests/integration/test_bench_smoke.py) applies."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import benchlib  # noqa: E402  pylint: disable=wrong-import-position


def test_finite_positive_numbers_pass():
    assert not benchlib.bad_measurements({"engine HTTP MiB/s": 812.5, "requests": 3})


@pytest.mark.parametrize("value, problem", [
    (0, "0 is not a finite number > 0"), (-1.5, "-1.5 is not a finite number > 0"), (float("nan"), "nan is not a finite number > 0"),
    (float("inf"), "inf is not a finite number > 0"), (None, "not a number (None)"), ("12", "not a number ('12')"),
    (True, "not a number (True)")])
def test_each_bad_measurement_is_named(value, problem):
    assert benchlib.bad_measurements({"good": 1.0, "wall_s": value}) == [f"wall_s: {problem}"]


@pytest.mark.parametrize("measurements", [None, {}, [], [1.0]])
def test_no_measurements_is_a_failure(measurements):
    assert benchlib.bad_measurements(measurements)[0].startswith("no measurements")


def test_missing_tool_named_with_its_package_and_make_target(tmp_path):
    (tmp_path / "present").write_text("#!/bin/sh\n")
    (tmp_path / "present").chmod(0o755)
    assert benchlib.missing_tools(["present", "fleet-no-such-tool"], path=str(tmp_path)) == ["fleet-no-such-tool"]
    message = benchlib.missing_tools_message("bench_engine", ["nginx"])
    assert message == ("bench_engine: missing tool: nginx (Debian package nginx; `make bench-deps` (bindep.txt, profile bench; "
                       "`make test` and `make bench` install it too) installs it)")
    assert "iperf3 (Debian package iperf3" in benchlib.missing_tools_message("fleet", ["iperf3", "nft"])
    assert "nft (Debian package nftables; `make deps`" in benchlib.missing_tools_message("fleet", ["iperf3", "nft"])


def test_require_tools_stops_before_anything_starts(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(benchlib, "missing_tools", lambda tools: [t for t in tools if t == "nginx"])
    with pytest.raises(SystemExit, match="missing tool: nginx"):
        benchlib.require_tools("bench_engine", ["nginx", "curl"])
    benchlib.require_tools("bench_engine", ["curl"])


def test_missing_python_package_stops_with_the_make_target():
    with pytest.raises(SystemExit, match=r"fleet: --plot needs the Python package fleet_no_such_module \(requirements-bench.txt\): `make bench-deps`"):
        benchlib.require_python("fleet", "fleet_no_such_module", "--plot")
    benchlib.require_python("fleet", "json", "--plot")
