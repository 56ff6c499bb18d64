# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad deploy input is refused on the controller, naming the bad value, before any node is touched
(the lab tests cover a changed component file; these need no lab)."""
from __future__ import annotations

import hashlib

import pytest
import yaml

from ansible_collections.fleet.firmware.plugins.action import deploy as deploy_mod
from ansible_collections.fleet.firmware.plugins.module_utils.agent import AgentError, validate_tag
from ansible_collections.fleet.firmware.plugins.module_utils.manifest import ManifestError


def repository(folder, requires=()) -> str:
    script = folder / "fw.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    component = {"name": "fw", "version": "1.0", "kind": "firmware", "os": "linux", "file": "fw.sh",
                 "sha256": hashlib.sha256(script.read_bytes()).hexdigest(), "size": script.stat().st_size,
                 "detect": {"method": "file", "path": "/nonexistent/fw.version"}, "install": "script", "requires": list(requires)}
    (folder / "manifest.yml").write_text(yaml.safe_dump({"format": 1, "components": [component]}))
    return str(folder)


def components_of(tmp_path, **changes):
    args = {"delivery": "auto", "repository_url": None, "components": [], "repository": repository(tmp_path)}
    args.update(changes)
    return object.__new__(deploy_mod.ActionModule)._components(args)


def test_a_good_repository_loads(tmp_path):
    assert [c["name"] for c in components_of(tmp_path)] == ["fw"]


def test_url_delivery_without_a_url_is_refused(tmp_path):
    with pytest.raises(deploy_mod.DeployError, match="delivery=url needs repository_url"):
        components_of(tmp_path, delivery="url")


def test_an_unknown_component_name_is_named(tmp_path):
    with pytest.raises(deploy_mod.DeployError, match="components nic-fw are not in the manifest"):
        components_of(tmp_path, components=["fw", "nic-fw"])


def test_a_missing_dependency_is_named(tmp_path):
    with pytest.raises(ManifestError, match="component 'fw', field requires: 'bios' is not a component"):
        object.__new__(deploy_mod.ActionModule)._components(
            {"delivery": "auto", "repository_url": None, "components": [], "repository": repository(tmp_path, requires=["bios"])})


@pytest.mark.parametrize("tag", ["Run_1", "x" * 33, ""])
def test_a_bad_run_tag_is_named(tag):
    with pytest.raises(AgentError, match="tag %r is invalid" % (tag,)):
        validate_tag(tag)
