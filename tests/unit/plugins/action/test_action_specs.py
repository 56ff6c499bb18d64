# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every action plugin's argument spec against its module twin's DOCUMENTATION.

An action that validates its own arguments (deploy, preflight, the reports) has a module file
that only carries the documentation, which ``ansible-test sanity`` (validate-modules) cannot
check against the spec the action really uses. This test does, for every action with a module
twin: the option names, and per option type, elements, choices, default, required and aliases.
A difference fails the test with the list of every difference, not just the first.
"""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[4]
PLUGINS = "ansible_collections.fleet.firmware.plugins"


def _agent_spec() -> dict:
    return importlib.import_module(f"{PLUGINS}.modules.agent").argument_spec()


def _action_spec(name: str) -> dict:
    return importlib.import_module(f"{PLUGINS}.action.{name}").ARGUMENT_SPEC


# The actions that validate arguments themselves, and where their spec lives. The twin actions
# (firewall, reach, inventory) only pick the .py module, which validates its own arguments.
ACTIONS = {
    "agent": _agent_spec,
    "deploy": lambda: _action_spec("deploy"),
    "preflight": lambda: _action_spec("preflight"),
    "preflight_report": lambda: _action_spec("preflight_report"),
    "render_report": lambda: _action_spec("render_report"),
    "compliance_report": lambda: _action_spec("compliance_report"),
    "sweep": lambda: _action_spec("sweep"),
}
FIELDS = ("type", "elements", "choices", "default", "required", "aliases")


def documented_options(name: str) -> dict:
    text = (REPO / "plugins" / "modules" / f"{name}.py").read_text()
    return yaml.safe_load(re.search(r'DOCUMENTATION = r"""(.*?)"""', text, re.S).group(1)).get("options") or {}


def normalized(entry: dict) -> dict:
    """The fields that must agree, with Ansible's defaults filled in (type str, required false)."""
    out = {
        "type": entry.get("type", "str"),
        "elements": entry.get("elements"),
        "choices": list(entry["choices"]) if entry.get("choices") is not None else None,
        "default": entry.get("default"),
        "required": bool(entry.get("required", False)),
        "aliases": sorted(entry.get("aliases") or []),
    }
    return out


def differences(spec: dict, docs: dict, prefix: str = "") -> list[str]:
    found = []
    for option in sorted(set(spec) - set(docs)):
        found.append(f"{prefix}{option}: in the argument spec, not documented")
    for option in sorted(set(docs) - set(spec)):
        found.append(f"{prefix}{option}: documented, not in the argument spec")
    for option in sorted(set(spec) & set(docs)):
        real, told = normalized(spec[option]), normalized(docs[option])
        for field in FIELDS:
            if real[field] != told[field]:
                found.append(f"{prefix}{option}: {field} is {real[field]!r} in the spec, {told[field]!r} in the documentation")
        if spec[option].get("options") or docs[option].get("suboptions"):
            found += differences(spec[option].get("options") or {}, docs[option].get("suboptions") or {}, f"{prefix}{option}.")
    return found


@pytest.mark.parametrize("name", sorted(ACTIONS))
def test_the_actions_argument_spec_is_its_modules_documentation(name):
    found = differences(ACTIONS[name](), documented_options(name))
    assert not found, f"{name}: the argument spec and plugins/modules/{name}.py's DOCUMENTATION differ:\n  " + "\n  ".join(found)


def test_a_difference_is_found_and_named():
    spec = {"a": {"type": "int", "default": 1}, "b": {"type": "str"}, "c": {"type": "dict", "options": {"x": {"type": "bool"}}}}
    docs = {"a": {"type": "int", "default": 2}, "d": {"type": "str"}, "c": {"type": "dict", "suboptions": {"x": {"type": "str"}}}}
    assert differences(spec, docs) == [
        "b: in the argument spec, not documented",
        "d: documented, not in the argument spec",
        "a: default is 1 in the spec, 2 in the documentation",
        "c.x: type is 'bool' in the spec, 'str' in the documentation",
    ]


def test_every_action_with_a_module_twin_that_validates_is_checked():
    """A new action with its own spec and a module twin must be added to ACTIONS."""
    own_spec = {path.stem for path in (REPO / "plugins" / "action").glob("*.py")
                if re.search(r"validate_argument_spec\(", path.read_text())}
    twins = {path.stem for path in (REPO / "plugins" / "modules").glob("*.py")}
    assert own_spec & twins == set(ACTIONS)
