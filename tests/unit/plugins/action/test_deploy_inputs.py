# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad deploy input is refused on the controller, naming the bad value, before any node is touched
(the lab tests cover a changed component file; these need no lab)."""
from __future__ import annotations

import hashlib

import pytest
import spp_pki
import yaml

from ansible_collections.fleet.firmware.plugins.action import deploy as deploy_mod
from ansible_collections.fleet.firmware.plugins.module_utils.agent import AgentError, validate_tag
from ansible_collections.fleet.firmware.plugins.module_utils.baseline.trust import TrustError
from ansible_collections.fleet.firmware.plugins.module_utils.manifest import ManifestError


def repository(folder, requires=(), signer="signer") -> str:
    """A one-component repository whose fw.sh is signed (fw.compsig) by the lab PKI's ``signer`` (None: unsigned)."""
    script = folder / "fw.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    component = {"name": "fw", "version": "1.0", "kind": "firmware", "os": "linux", "file": "fw.sh",
                 "sha256": hashlib.sha256(script.read_bytes()).hexdigest(), "size": script.stat().st_size,
                 "detect": {"method": "file", "path": "/nonexistent/fw.version"}, "install": "script", "requires": list(requires)}
    if signer:
        component["signature"] = spp_pki.sign_file(script, getattr(spp_pki.shared_lab_pki(), signer)).name
    (folder / "manifest.yml").write_text(yaml.safe_dump({"format": 1, "components": [component]}))
    return str(folder)


def components_of(tmp_path, signer="signer", **changes):
    args = {"delivery": "auto", "repository_url": None, "components": [], "repository": repository(tmp_path, signer=signer),
            "trust": str(spp_pki.shared_lab_pki().anchors), "signatures": "required"}
    args.update(changes)
    action = object.__new__(deploy_mod.ActionModule)
    components = action._components(args)
    result = {}
    action._warn_signatures(result)
    return components if not result else (components, result)


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
            {"delivery": "auto", "repository_url": None, "components": [], "repository": repository(tmp_path, requires=["bios"]),
             "trust": str(spp_pki.shared_lab_pki().anchors), "signatures": "required"})


@pytest.mark.parametrize("tag", ["Run_1", "x" * 33, ""])
def test_a_bad_run_tag_is_named(tag):
    with pytest.raises(AgentError, match="tag %r is invalid" % (tag,)):
        validate_tag(tag)


# -- signatures: refused on the controller before any node is touched


@pytest.mark.parametrize("signer, reason", [(None, "not signed"), ("untrusted_signer", "signer not trusted"),
                                            ("expired_signer", "signer expired")])
def test_an_unverified_component_is_refused_with_its_reason(tmp_path, signer, reason):
    with pytest.raises(TrustError, match="not deployable .*fw: %s" % reason):
        components_of(tmp_path, signer=signer)


def test_required_without_trust_names_trust(tmp_path):
    with pytest.raises(TrustError, match="^trust: "):
        components_of(tmp_path, trust=None)


@pytest.mark.parametrize("policy", ["warn", "off"])
def test_warn_and_off_load_but_warn(tmp_path, policy):
    components, result = components_of(tmp_path, signer="untrusted_signer", signatures=policy)
    assert [c["name"] for c in components] == ["fw"]
    assert any("signatures=%s" % policy in w for w in result["warnings"])
    assert any("fw: signer not trusted" in w for w in result["warnings"]) == (policy == "warn")


def test_a_component_outside_the_selection_does_not_block_the_run(tmp_path):
    repository(tmp_path, signer="untrusted_signer")
    other = tmp_path / "tool.sh"
    other.write_text("#!/bin/sh\n")
    data = yaml.safe_load((tmp_path / "manifest.yml").read_text())
    data["components"].append(dict(data["components"][0], name="tool", file="tool.sh", sha256=hashlib.sha256(other.read_bytes()).hexdigest(),
                                   size=other.stat().st_size, signature=spp_pki.sign_file(other, spp_pki.shared_lab_pki().signer).name))
    (tmp_path / "manifest.yml").write_text(yaml.safe_dump(data))
    args = {"delivery": "auto", "repository_url": None, "repository": str(tmp_path), "trust": str(spp_pki.shared_lab_pki().anchors),
            "signatures": "required"}
    action = object.__new__(deploy_mod.ActionModule)
    assert {c["name"] for c in action._components(dict(args, components=["tool"]))} == {"fw", "tool"}
    with pytest.raises(TrustError, match="fw: signer not trusted"):
        action._components(dict(args, components=[]))
    data["components"][1]["requires"] = ["fw"]  # selected, but needs the untrusted one: refused
    (tmp_path / "manifest.yml").write_text(yaml.safe_dump(data))
    with pytest.raises(TrustError, match="fw: signer not trusted"):
        action._components(dict(args, components=["tool"]))
