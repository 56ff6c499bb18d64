# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The deploy's argument spec is declared once (plugin_utils/deploy/spec.py): the module's
documentation must say the same options, types, defaults, choices and elements."""
from __future__ import annotations

import yaml

from ansible_collections.fleet.firmware.plugins.modules import deploy as module_doc
from ansible_collections.fleet.firmware.plugins.plugin_utils.deploy.spec import ARGUMENT_SPEC
from ansible_collections.fleet.firmware.plugins.action import deploy as action_mod


def documented() -> dict:
    return yaml.safe_load(module_doc.DOCUMENTATION)["options"]


def test_the_action_validates_with_the_one_spec():
    assert action_mod.ARGUMENT_SPEC is ARGUMENT_SPEC


def test_every_option_is_documented_as_the_spec_declares_it():
    docs = documented()
    assert sorted(docs) == sorted(ARGUMENT_SPEC)
    for name, spec in ARGUMENT_SPEC.items():
        doc = docs[name]
        for key in ("type", "default", "choices", "elements", "required"):
            expected = spec.get(key, False if key == "required" else None)
            got = doc.get(key, False if key == "required" else None)
            assert got == expected, f"{name}.{key}: documented {got!r}, declared {expected!r}"
