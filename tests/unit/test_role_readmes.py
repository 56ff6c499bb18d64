# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Each role's README.md lists exactly the variables of its meta/argument_specs.yml.

Galaxy (and galaxy-importer) needs a README per role; its variables table is generated from the
argument spec so that the two cannot drift apart. After changing a role's argument spec, run
``build/venv/bin/python tests/unit/test_role_readmes.py --write`` (only the part between the
markers is rewritten; the rest of the README is hand-written).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "meta" / "argument_specs.yml").is_file())
BEGIN = "<!-- variables: generated from meta/argument_specs.yml by tests/unit/test_role_readmes.py --write -->"
END = "<!-- end of variables -->"

# Ansible's documentation markup, as plain Markdown (O(fqcn#module:opt) names the option only).
MARKUP = [
    (re.compile(r"[OV]\((?:[^)#]+#[a-z]+:)?([^)]+)\)"), r"`\1`"),
    (re.compile(r"C\(([^)]+)\)"), r"`\1`"),
    (re.compile(r"M\(([^)]+)\)"), r"`\1`"),
]


def plain(text: str) -> str:
    for pattern, replacement in MARKUP:
        text = pattern.sub(replacement, text)
    return text.replace("|", "\\|")


def default_text(spec: dict) -> str:
    if "default" not in spec or spec["default"] is None:
        return "(required)" if spec.get("required") else ""
    value = spec["default"]
    if isinstance(value, bool):
        value = str(value).lower()
    return f"`{value}`"


def variables_table(role: str) -> str:
    spec = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    rows = ["| variable | type | default | choices | description |", "|---|---|---|---|---|"]
    for name, option in spec["argument_specs"]["main"]["options"].items():
        kind = option.get("type", "str")
        if kind == "list":
            kind = f"list of {option.get('elements', 'str')}"
        choices = ", ".join(f"`{c}`" for c in option.get("choices", []))
        description = " ".join(plain(line) for line in option.get("description", []))
        rows.append(f"| `{name}` | {kind} | {default_text(option)} | {choices} | {description} |")
    return "\n".join([BEGIN, "", *rows, "", END])


def rendered(role: str) -> tuple[str, str]:
    readme = (ROOT / "roles" / role / "README.md").read_text()
    start, end = readme.index(BEGIN), readme.index(END) + len(END)
    return readme, readme[:start] + variables_table(role) + readme[end:]


@pytest.mark.parametrize("role", ROLES)
def test_the_readme_lists_every_variable_of_the_argument_spec(role):
    current, expected = rendered(role)
    assert current == expected, f"roles/{role}/README.md is out of date: run python tests/unit/test_role_readmes.py --write"


@pytest.mark.parametrize("role", ROLES)
def test_the_readme_has_an_example_with_fully_qualified_names(role):
    readme = (ROOT / "roles" / role / "README.md").read_text()
    assert f"fleet.firmware.{role}" in readme.split("## Example", 1)[1]


def test_the_markup_becomes_markdown():
    assert plain("O(fleet_delivery=url), V(auto) | C(x) M(fleet.firmware.deploy) O(fleet.firmware.deploy#module:staging_dir)") == \
        "`fleet_delivery=url`, `auto` \\| `x` `fleet.firmware.deploy` `staging_dir`"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: test_role_readmes.py --write")
    for name in ROLES:
        text = rendered(name)[1]
        (ROOT / "roles" / name / "README.md").write_text(text)
        print(f"roles/{name}/README.md")
