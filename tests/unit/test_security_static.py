# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Source guards of issue 18 item 3: no validation pattern anchored with ``$`` (which also
matches before a trailing newline: ``"lin01\\n"`` passed ``^[a-z0-9]+$``), and no shell
spliced with a variable in the collection's Python code."""
from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CALL = re.compile(r"\bre\.(compile|match|search|fullmatch)\(")
DOLLAR = re.compile(r"(?<!\\)\$(?=$|\||\))")


def _regex_literals(path: Path):
    src = path.read_text()
    lines = src.splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(src).readline):
        if tok.type != tokenize.STRING:
            continue
        line = lines[tok.start[0] - 1]
        call = CALL.search(line)
        if call and tok.start[1] >= call.end() and "re.M" not in line and "MULTILINE" not in line:
            yield tok.start[0], tok.string


# Patterns shared with PowerShell (the .psm1 files hold the same text; in .NET \\Z still allows a
# final newline): they keep "^...$" and every Python caller uses .fullmatch (checked below).
SHARED_WITH_POWERSHELL = {"plugins/module_utils/runtag.py", "plugins/module_utils/agent/config.py", "plugins/plugin_utils/smb_stage.py",
                          "plugins/module_utils/firewall/common.py", "plugins/module_utils/versions.py"}
SHARED_NAMES = "TAG_RE|SHA_RE|NODE_RE|FILE_NAME_RE|PORT_RE|_VERSION_TOKEN_RE|_SEGMENT_RE|_TRAILING_DATE_RE|_SPP_ROM_RE|_HEX_RE|_DPKG_RE|_RPM_RE"


def test_no_regex_in_the_collection_is_anchored_with_a_dollar():
    found = [f"{path.relative_to(ROOT)}:{line}: {text}" for path in sorted((ROOT / "plugins").rglob("*.py"))
             if str(path.relative_to(ROOT)) not in SHARED_WITH_POWERSHELL
             for line, text in _regex_literals(path) if DOLLAR.search(text.strip("rRbBuU")[1:-1])]
    assert not found, "use \\Z (or re.fullmatch): $ also matches before a trailing newline:\n" + "\n".join(found)


def test_the_shared_patterns_are_only_used_as_full_matches():
    used = re.compile(r"\b(%s)\.(match|search)\(" % SHARED_NAMES)
    found = [f"{path.relative_to(ROOT)}:{number}" for path in sorted((ROOT / "plugins").rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1) if used.search(line)]
    assert not found, found


@pytest.mark.parametrize("module, name, good", [
    ("plugins.plugin_utils.ledger", "NODE_ID_RE", "lin01"),
    ("plugins.module_utils.manifest", "SHA256_RE", "a" * 64),
    ("plugins.plugin_utils.engine.settings", "COMPONENT_PATH", "/v1/components/" + "a" * 64),
])
def test_a_trailing_newline_fails_validation(module, name, good):
    import importlib
    pattern = getattr(importlib.import_module("ansible_collections.fleet.firmware." + module), name)
    assert pattern.match(good)
    assert not pattern.match(good + "\n")


def test_a_tag_with_a_trailing_newline_is_refused():
    from ansible_collections.fleet.firmware.plugins.module_utils import agent
    with pytest.raises(agent.AgentError, match="is invalid"):
        agent.validate_tag("run-1\n")


SHELL_TRUE = re.compile(r"shell\s*=\s*True")
SH_C_FSTRING = re.compile(r"""["']sh["']\s*,\s*["']-c["']\s*,\s*f["']""")


def test_no_shell_true_and_no_f_string_handed_to_sh_c():
    found = []
    for path in sorted((ROOT / "plugins").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if SHELL_TRUE.search(line) or SH_C_FSTRING.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)
