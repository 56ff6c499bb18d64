# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""manifest: a chain of ``requires`` far deeper than Python's recursion limit (issue 9, the huge
manifest fault) is ordered and checked for cycles without a RecursionError."""
from __future__ import annotations

import sys

from ansible_collections.fleet.firmware.plugins.module_utils import manifest

DEPTH = 5 * sys.getrecursionlimit()


def chain(depth: int, closed: bool = False) -> list[dict]:
    """c0 requires c1 requires c2 ... (dependents first, the worst order for a recursive walk)."""
    components = [{"name": f"c{i}", "requires": [f"c{i + 1}"]} for i in range(depth - 1)]
    components.append({"name": f"c{depth - 1}", "requires": ["c0"] if closed else []})
    return components


def test_a_deep_chain_is_ordered_dependencies_first():
    ordered = [c["name"] for c in manifest.dependency_order(chain(DEPTH))]
    assert ordered == [f"c{i}" for i in reversed(range(DEPTH))]


def test_a_deep_chain_has_no_cycle():
    assert manifest.find_cycles(chain(DEPTH)) == []


def test_a_deep_cycle_is_found_and_named_once():
    cycles = manifest.find_cycles(chain(DEPTH, closed=True))
    assert len(cycles) == 1
    assert cycles[0][0] == cycles[0][-1] == "c0" and len(cycles[0]) == DEPTH + 1


def test_ordering_a_cycle_names_it():
    try:
        manifest.dependency_order([{"name": "a", "requires": ["b"]}, {"name": "b", "requires": ["c"]}, {"name": "c", "requires": ["a"]}])
    except manifest.ManifestError as exc:
        assert "dependency cycle: a -> b -> c -> a" in str(exc)
    else:
        raise AssertionError("a cycle was ordered")
