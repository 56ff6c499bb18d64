# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading the collection's PowerShell as text, for the unit tests of the Windows twins.

PowerShell cannot run here: the tests compare what the .ps1/.psm1 files say (constants, tables,
argument specs, commands) with the Python side. These are the readers they share.
"""
from __future__ import annotations

import re
import typing as t
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[4]


def read(relative: str) -> str:
    return (REPO / relative).read_text()


def module_docs(name: str) -> dict:
    """The DOCUMENTATION of plugins/modules/<name>.py, parsed."""
    text = read(f"plugins/modules/{name}.py")
    return yaml.safe_load(re.search(r'DOCUMENTATION = r"""(.*?)"""', text, re.S).group(1))


def ps_value(text: str, name: str) -> str:
    """What is assigned to ``$name`` at the start of a line."""
    match = re.search(r"^\$%s = (.*)$" % re.escape(name), text, re.M)
    assert match, f"${name} not found"
    return match.group(1).strip()


def ps_string(text: str, name: str) -> str:
    """The single-quoted string assigned to ``$name``."""
    value = ps_value(text, name)
    assert value.startswith("'") and value.endswith("'"), value
    return value[1:-1].replace("''", "'")


def ps_table(text: str, name: str, key: t.Callable[[str], t.Any] = str) -> dict:
    """The one-line hashtable ``$name = @{k = 'v'; ...}``, keys converted by ``key``."""
    body = re.match(r"@\{(.*)\}$", ps_value(text, name)).group(1)
    return {key(k.strip()): v.strip().strip("'") for k, v in (pair.split("=", 1) for pair in body.split(";"))}


def ps1_options(ps1: str) -> dict[str, dict[str, str]]:
    """A module's Ansible.Basic argument spec: option -> its keys as PowerShell text."""
    block = re.search(r"options = @\{(.*?)\n    \}", ps1, re.S).group(1)
    options = {}
    for name, body in re.findall(r"^\s+(\w+) = @\{ (.*) \}$", block, re.M):
        options[name] = dict(part.split(" = ", 1) for part in body.split("; "))
    return options


def syntax_tree(text: str):
    """The tree-sitter-powershell parse of ``text`` (the test is skipped without the grammar)."""
    ts = pytest.importorskip("tree_sitter")
    tsp = pytest.importorskip("tree_sitter_powershell")
    return ts.Parser(ts.Language(tsp.language())).parse(text.encode()).root_node


def walk(node) -> t.Iterator:
    yield node
    for child in node.children:
        yield from walk(child)
