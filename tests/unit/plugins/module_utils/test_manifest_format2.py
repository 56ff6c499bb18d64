# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""manifest format 2: the fields of an imported component, their rules, files relative to
``source``, and format 1 manifests that keep loading."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import yaml

from ansible_collections.fleet.firmware.plugins.module_utils import manifest


def imported(folder: Path, **extra) -> dict:
    source = folder
    (source / "packages").mkdir(parents=True, exist_ok=True)
    body = b"MZ component"
    (source / "packages/cp045678.exe").write_bytes(body)
    (source / "packages/cp045678.compsig").write_bytes(b"sig")
    component = {"name": "cp045678", "identity": "cp045678", "version": "1.20", "revision": "D", "release_date": "2018-10-27",
                 "criticality": "optional", "kind": "firmware", "os": "windows", "source": str(source),
                 "file": "packages/cp045678.exe", "sha256": hashlib.sha256(body).hexdigest(), "size": len(body),
                 "signature": "packages/cp045678.compsig", "devices": [{"name": "NVMe Backplane PIC", "targets": ["0000-1"]}],
                 "detect": {"method": "redfish", "targets": ["0000-1"]}, "install": "smart_component"}
    component.update(extra)
    return component


def problems(components, root, fmt=2):
    return {(p.component, p.field): p.message for p in manifest.validate({"format": fmt, "components": components}, str(root))}


def test_an_imported_component_validates_with_files_relative_to_its_source(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    component = imported(tmp_path / "iso")
    assert problems([component], repo) == {}
    [loaded] = manifest.ordered_components(str(repo), {"format": 2, "components": [component]})
    assert loaded["path"] == str(tmp_path / "iso/packages/cp045678.exe")


def test_a_relative_source_is_relative_to_the_repository_folder(tmp_path):
    component = imported(tmp_path / "repo/spp", source="spp")
    assert problems([component], tmp_path / "repo") == {}


@pytest.mark.parametrize("change, field, words", [
    ({"deployable": False}, "not_deployable", "required when deployable is false"),
    ({"not_deployable": "why"}, "not_deployable", "only for a component with deployable: false"),
    ({"deployable": "no"}, "deployable", "must be true or false"),
    ({"release_date": "27.10.2018"}, "release_date", "is not a date written YYYY-MM-DD"),
    ({"release_date": "2018-02-30"}, "release_date", "is not a date"),
    ({"criticality": 2}, "criticality", "must be a non-empty string"),
    ({"identity": ""}, "identity", "must be a non-empty string"),
    ({"devices": {"name": "x"}}, "devices", "must be a list"),
    ({"devices": [{"name": "x", "targets": "0000-1"}]}, "devices[0].targets", "must be a list of target identifiers"),
    ({"devices": [{"targets": []}]}, "devices[0].name", "must be a non-empty string"),
    ({"devices": [{"name": "x", "colour": "blue"}]}, "devices[0].colour", "unknown key"),
    ({"superseded_by": "cp000001"}, "superseded_by", "is not a component of this manifest"),
    ({"superseded_by": "cp045678"}, "superseded_by", "names the component itself"),
    ({"source": "/nonexistent/spp"}, "source", "is not a folder"),
    ({"signature": ["packages/cp045678_part1.compsig"]}, "signature", "does not exist"),
    ({"signature": []}, "signature", "a list of signature parts must hold file names"),
    ({"signature": {"a": 1}}, "signature", "must be a file name or a list"),
    ({"file": "../repo/elsewhere.exe"}, "file", "escapes the repository folder (..)"),
])
def test_format2_field_rules(tmp_path, change, field, words):
    (tmp_path / "repo").mkdir()
    component = imported(tmp_path / "iso", **change)
    found = problems([component], tmp_path / "repo")
    assert words in found[("cp045678", field)], found


def test_a_link_out_of_the_source_is_refused(tmp_path):
    (tmp_path / "repo").mkdir()
    component = imported(tmp_path / "iso", file="packages/link.exe")
    os.symlink("/etc/hostname", tmp_path / "iso/packages/link.exe")
    assert "escapes the repository folder (a link to" in problems([component], tmp_path / "repo")[("cp045678", "file")]


def test_not_deployable_needs_no_installer_nor_detection_nor_comparable_version(tmp_path):
    component = imported(tmp_path / "iso", deployable=False, not_deployable="only a BMC can flash it", version="HPD4")
    del component["install"], component["detect"]
    assert problems([component], tmp_path) == {}
    component = imported(tmp_path / "iso", version="HPD4")
    del component["install"]
    assert set(problems([component], tmp_path)) == {("cp045678", "install"), ("cp045678", "version")}


def test_component_detection_needs_no_comparable_version(tmp_path):
    assert problems([imported(tmp_path / "iso", version="HPD4", detect={"method": "component"})], tmp_path) == {}


def test_format1_keeps_loading_but_refuses_format2_fields(tmp_path):
    (tmp_path / "tool.sh").write_bytes(b"#!/bin/sh\n")
    hand_written = {"name": "tool", "version": "1.0", "kind": "software", "os": "linux", "file": "tool.sh",
                    "sha256": hashlib.sha256(b"#!/bin/sh\n").hexdigest(), "size": 10,
                    "detect": {"method": "file", "path": "/opt/tool/VERSION"}, "install": "script"}
    assert problems([hand_written], tmp_path, fmt=1) == {}
    assert problems([hand_written], tmp_path, fmt=2) == {}
    found = problems([dict(hand_written, criticality="critical")], tmp_path, fmt=1)
    assert found == {("tool", "criticality"): "a format 2 field: set format: 2 at the top of the manifest"}
    assert ("tool", "colour") in problems([dict(hand_written, colour="blue")], tmp_path, fmt=2)


def test_known_hashes_spare_reading_the_file_again(tmp_path):
    component = imported(tmp_path / "iso")
    path = str(tmp_path / "iso/packages/cp045678.exe")
    data = {"format": 2, "components": [component]}
    # A wrong known hash is what validation compares with: it came from this run's own read.
    wrong = manifest.validate(data, str(tmp_path), known_hashes={path: "0" * 64})
    assert [(p.field, "hash mismatch" in p.message) for p in wrong] == [("sha256", True)]
    assert manifest.validate(data, str(tmp_path), known_hashes={path: component["sha256"]}) == []


def test_written_in_key_order(tmp_path):
    component = imported(tmp_path / "iso", deployable=False, not_deployable="why")
    text = manifest.dump({"format": 2, "components": [dict(reversed(list(component.items())))]})
    keys = list(yaml.safe_load(text)["components"][0])
    assert keys == [k for k in manifest.KEY_ORDER if k in component]
