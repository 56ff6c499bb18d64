# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every PowerShell file of the collection parses without errors with a real PowerShell grammar.

PowerShell cannot run here, so this is the check that a .ps1/.psm1 is at least well-formed:
tree-sitter-powershell (PyPI) parses each file and every ERROR or MISSING node fails the test,
with its line. The file list is found at collection time, so files added later are covered too.
"""
from __future__ import annotations

from pathlib import Path

import pytest

tree_sitter = pytest.importorskip("tree_sitter")
tree_sitter_powershell = pytest.importorskip("tree_sitter_powershell")

REPO = Path(__file__).resolve().parents[2]
SKIP_DIRS = {".git", "build", "tests/output"}


def powershell_files() -> list[Path]:
    found = []
    for path in sorted(REPO.rglob("*")):
        rel = path.relative_to(REPO).as_posix()
        if path.suffix.lower() in (".ps1", ".psm1") and path.is_file() and not any(rel == d or rel.startswith(d + "/") for d in SKIP_DIRS):
            found.append(path)
    return found


def parse_errors(source: bytes) -> list[str]:
    """'line:col ERROR|MISSING <text>' for every node the grammar could not place."""
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
    tree = parser.parse(source)
    errors = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            kind = "MISSING " + node.type if node.is_missing else "ERROR"
            text = source[node.start_byte:node.end_byte][:60].decode("utf-8", "replace")
            errors.append(f"{node.start_point[0] + 1}:{node.start_point[1] + 1} {kind} {text!r}")
        stack.extend(node.children)
    return sorted(errors)


def test_the_collection_has_powershell_files_to_check():
    names = {p.name for p in powershell_files()}
    assert {"firewall.ps1", "FleetFirewall.psm1"} <= names


@pytest.mark.parametrize("path", powershell_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_powershell_file_parses_without_errors(path):
    errors = parse_errors(path.read_bytes())
    assert not errors, f"{path.relative_to(REPO)}: " + "; ".join(errors)


@pytest.mark.parametrize("broken", [
    "Function Get-X {\n    param([string]$a\n    return $a\n}\n",  # unclosed param(
    "$h = @{ a = 1; b = 2\n",  # unclosed hashtable
    "if ($x) { Write-Output 1 } else {\n",  # unclosed block
    "$a = 'unterminated\n",
])
def test_the_parser_check_catches_broken_powershell(broken):
    """The check above can fail: these snippets are refused."""
    assert parse_errors(broken.encode())
