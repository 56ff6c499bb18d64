# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""fleet.firmware.repository for real, through `ansible localhost` (the module runs on the
controller): build a manifest from a folder, fill in the stubs, refresh after a file changes,
check mode and diff, and validation failures that name the component and the field."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import yaml

from conftest import ansible_bin, ansible_env
from deploy_helpers import lab_trust

MODULE = "fleet.firmware.repository"


def repository(args: dict, *extra: str) -> tuple[str, dict]:
    """(status, result) of the module on localhost; ``trust`` is the lab's anchors unless ``args`` says."""
    args = {"trust": lab_trust(), **args}
    argv = [ansible_bin("ansible"), "localhost", "-m", MODULE, "-a", json.dumps(args), *extra]
    proc = subprocess.run(argv, capture_output=True, text=True, env=ansible_env(), timeout=120, check=False)
    marker = proc.stdout.find("localhost | ")
    assert marker >= 0, proc.stdout + proc.stderr
    head, _sep, payload = proc.stdout[marker + len("localhost | "):].partition(" => ")
    return head.split()[0].rstrip("!"), json.loads(payload[:payload.rindex("}") + 1])


def folder(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    (repo / "bios").mkdir(parents=True)
    (repo / "bios/U30_2.92.scexe").write_bytes(b"#!/bin/sh\nexit 1\n")
    (repo / "agent_1.2-1.deb").write_bytes(b"!<arch>\n")
    (repo / "README.md").write_text("how to use this repository\n")
    return repo


def fill_in(repo: Path) -> None:
    data = yaml.safe_load((repo / "manifest.yml").read_text())
    by_name = {c["name"]: c for c in data["components"]}
    by_name["U30_2.92"].update(version="U30 v2.92 (11/03/2023)", kind="firmware", requires=["agent_1.2-1"],
                               detect={"method": "dmi", "format": "{bios_version} v{bios_release} ({bios_date})"})
    by_name["agent_1.2-1"].update(version="1.2-1", kind="software", detect={"method": "package", "name": "agent", "manager": "dpkg"})
    (repo / "manifest.yml").write_text(yaml.safe_dump(data, sort_keys=False))


def test_build_fill_in_refresh(tmp_path):
    repo = folder(tmp_path)
    status, result = repository({"path": str(repo)})
    # A first build makes stubs and fails until a person fills in what only a person knows. A
    # manifest that fails validation is never written: the stubs come back in `proposed`.
    assert status == "FAILED" and result["changed"] is False and not (repo / "manifest.yml").exists()
    assert {(p["component"], p["field"]) for p in result["problems"]} == {
        ("U30_2.92", "version"), ("U30_2.92", "detect"), ("agent_1.2-1", "version"), ("agent_1.2-1", "detect"), ("agent_1.2-1", "kind")}
    assert "component 'U30_2.92', field version: required" in result["msg"] and "nothing written" in result["msg"]
    (repo / "manifest.yml").write_text(result["proposed"])
    written = yaml.safe_load((repo / "manifest.yml").read_text())
    stub = {c["name"]: c for c in written["components"]}["U30_2.92"]
    assert (stub["install"], stub["os"], stub["kind"]) == ("smart_component", "linux", "firmware")
    assert stub["sha256"] == hashlib.sha256(b"#!/bin/sh\nexit 1\n").hexdigest() and stub["size"] == 17

    fill_in(repo)
    status, result = repository({"path": str(repo)})
    assert status == "CHANGED" and result["problems"] == [], (status, result.get("changes"))  # the first run after the fill-in rewrites the manifest
    assert [c["name"] for c in result["components"]] == ["agent_1.2-1", "U30_2.92"]  # dependency order
    assert result["components"][1]["path"] == str(repo / "bios/U30_2.92.scexe")
    # Nothing changed since: the module is idempotent.
    status, result = repository({"path": str(repo)})
    assert status == "SUCCESS" and result["changed"] is False and result["changes"] == []

    # A new build of the BIOS file: check mode shows the refresh, writes nothing.
    (repo / "bios/U30_2.92.scexe").write_bytes(b"#!/bin/sh\nexit 0\n")
    before = (repo / "manifest.yml").read_bytes()
    status, result = repository({"path": str(repo)}, "--check", "--diff")
    assert status == "CHANGED" and (repo / "manifest.yml").read_bytes() == before
    assert any(c.startswith("updated U30_2.92: sha256") for c in result["changes"])
    status, result = repository({"path": str(repo)})
    assert status == "CHANGED"
    after = yaml.safe_load((repo / "manifest.yml").read_text())
    bios = {c["name"]: c for c in after["components"]}["U30_2.92"]
    assert bios["sha256"] == hashlib.sha256(b"#!/bin/sh\nexit 0\n").hexdigest()
    assert bios["version"] == "U30 v2.92 (11/03/2023)" and bios["requires"] == ["agent_1.2-1"]  # hand-written fields kept


def test_validation_failures_name_component_and_field(tmp_path):
    repo = folder(tmp_path)
    (repo / "manifest.yml").write_text(repository({"path": str(repo)})[1]["proposed"])
    fill_in(repo)
    assert repository({"path": str(repo)})[0] == "CHANGED"
    manifest_before = (repo / "manifest.yml").read_bytes()

    # A bit flipped in a component file: validated refuses it, and writes nothing.
    (repo / "agent_1.2-1.deb").write_bytes(b"!<arcH>\n")
    status, result = repository({"path": str(repo), "state": "validated"})
    assert status == "FAILED" and result["components"] == []
    assert [(p["component"], p["field"]) for p in result["problems"]] == [("agent_1.2-1", "sha256")]
    assert "hash mismatch" in result["msg"] and (repo / "manifest.yml").read_bytes() == manifest_before

    # A cycle, a file escaping the folder through a link, an unknown key.
    os.symlink("/etc/hostname", repo / "escape.bin")
    data = yaml.safe_load(manifest_before)
    data["components"][0]["requires"] = ["U30_2.92"]
    data["components"][1]["file"] = "escape.bin"
    data["components"][1]["colour"] = "blue"
    (repo / "manifest.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    status, result = repository({"path": str(repo), "state": "validated", "fail_on_problems": False})
    assert status == "SUCCESS"
    found = {(p["component"], p["field"]): p["message"] for p in result["problems"]}
    assert "escapes the repository folder" in found[("U30_2.92", "file")]
    assert found[("U30_2.92", "colour")].startswith("unknown key")
    assert any(field == "requires" and "dependency cycle" in message for (_c, field), message in found.items())


def test_manifest_name_cannot_escape_the_folder(tmp_path):
    repo = folder(tmp_path)
    status, result = repository({"path": str(repo), "manifest": "../elsewhere.yml"})
    assert status == "FAILED" and "escapes the repository folder" in result["msg"]
    assert not (tmp_path / "elsewhere.yml").exists()
