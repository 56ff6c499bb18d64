# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The coverage-guided fuzz targets (tests/fuzz, atheris), briefly: each parser of untrusted
input keeps its contract for a few thousand generated inputs, and the harness does report a
finding (its self-test target). The long runs are ``make fuzz`` and ``make test-faults``."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fuzz"))
import campaign  # noqa: E402  # tests/fuzz is not a package: the targets import from there

SMOKE_RUNS = 3000


@pytest.mark.parametrize("target", campaign.TARGETS)
def test_each_parser_of_untrusted_input_keeps_its_contract(target, tmp_path):
    proc = campaign.fuzz(target, SMOKE_RUNS, tmp_path)
    assert proc.returncode == 0 and not campaign.findings(tmp_path), proc.stderr[-4000:]
    assert f"Done {SMOKE_RUNS} " in proc.stderr  # it ran, all of them


def test_the_harness_reports_a_finding_and_keeps_the_input(tmp_path):
    proc = campaign.fuzz("selftest_broken", 200_000, tmp_path)
    found = campaign.findings(tmp_path)
    assert proc.returncode != 0 and len(found) == 1, proc.stderr[-2000:]
    assert found[0].read_bytes().startswith(b"!") and "ContractBroken" in proc.stdout + proc.stderr


def test_a_manifest_with_a_list_for_a_name_or_a_number_for_requires_is_reported_not_crashed():
    """What the manifest target found first: find_cycles hashed a list name (TypeError)."""
    from ansible_collections.fleet.firmware.plugins.module_utils import manifest
    data = {"format": 1, "components": [{"name": ["fw-a"], "requires": ["x"]}, {"name": "b", "requires": 5}]}
    problems = manifest.validate(data, "/nonexistent", verify=False)
    assert any(p.field == "name" for p in problems) and any(p.component == "b" and p.field == "requires" for p in problems)
    assert manifest.find_cycles(data["components"]) == []
