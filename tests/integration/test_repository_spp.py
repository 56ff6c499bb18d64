# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""fleet.firmware.repository imports an SPP for real, through ansible-playbook on localhost (the
module runs on the controller; no lab namespaces needed): a generated SPP signed by the lab CA
(tests/lab/spp_gen.py, tests/lab/spp_pki.py) on a read-only bind mount, plus a hotfix folder;
the manifest written elsewhere; idempotence; check mode; overrides; and failed imports and failed
validations that leave the previous manifest byte for byte."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import spp_gen
import spp_pki
from conftest import ansible_bin, ansible_env


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("spp-import")
    sign = spp_gen.signer(spp_pki.shared_lab_pki().signer)
    base = spp_gen.write_spp(root / "spp", sign=sign)
    hotfix = spp_gen.write_hotfix(root / "hotfix", base, sign=sign)
    return root, base, hotfix


def playbook(tmp_path: Path, args: dict, *extra: str, read_only: Path | None = None) -> dict:
    """The module's result (registered, written as JSON by the play), with ``rc`` and the play's output.

    ``read_only``: the folder is bind-mounted read-only over itself in a private mount namespace
    for this run (a mounted ISO), so any write the import tried would fail."""
    result_file = tmp_path / "result.json"
    result_file.unlink(missing_ok=True)
    play = [{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "import", "fleet.firmware.repository": dict({"trust": str(spp_pki.shared_lab_pki().anchors)}, **args),
         "register": "repo", "ignore_errors": True},
        {"name": "keep the result", "ansible.builtin.copy": {"content": "{{ repo | to_json }}", "dest": str(result_file)},
         "check_mode": False},
    ]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    argv = [ansible_bin("ansible-playbook"), str(tmp_path / "play.yml"), *extra]  # the implicit localhost: the controller's Python
    if read_only is not None:
        script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && shift && exec "$@"'
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", str(read_only), *argv]
    proc = subprocess.run(argv, capture_output=True, text=True, env=ansible_env(), timeout=300, check=False)
    assert result_file.exists(), proc.stdout + proc.stderr
    result = json.loads(result_file.read_text())
    result["output"] = proc.stdout
    return result


def test_import_signed_spp_from_a_read_only_folder_then_idempotent(folders, tmp_path):
    root, base, hotfix = folders
    repo = tmp_path / "repo"
    repo.mkdir()
    args = {"path": str(repo), "spp": str(root / "spp"), "additional": [str(root / "hotfix")]}
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is needed for the read-only bind mount")
    result = playbook(tmp_path, args, read_only=root / "spp")
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True and result["problems"] == []
    components = {c["name"]: c for c in result["components"]}
    # 45 generated, 3 skipped (two VMware, one FreeBSD), 3 more from the hotfix (two newer versions, one new).
    assert len(components) == len(base.specs) - 3 + 3
    assert sorted(s["reason"].split(" (")[0] for s in result["not_imported"]) == [
        "for VMware ESXi only", "for VMware ESXi only", "operating system(s) not recognised: 'FreeBSD 14'"]
    not_deployable = {name: c["not_deployable"] for name, c in components.items() if not c["deployable"]}
    # Only the three .fwpkg: every other component carries a valid lab-CA signature.
    assert sorted(not_deployable.values()) == ["only a BMC can flash it (in-band deployment impossible)"] * 3
    assert all(c["signature_verdict"]["ok"] for c in components.values() if c["deployable"])
    assert {c["source"] for c in components.values()} == {str(root / "spp"), str(root / "hotfix")}
    assert all(Path(c["path"]).is_file() and Path(c["path"]).is_relative_to(c["source"]) for c in components.values())
    for spec in hotfix.specs[:2]:
        assert components[spec.identity]["source"] == str(root / "hotfix")
        assert any(c.get("superseded_by") == spec.identity for c in components.values())
    written = yaml.safe_load((repo / "manifest.yml").read_text())
    assert written["format"] == 2 and len(written["components"]) == len(components)
    assert not any("path" in c or "signature_verdict" in c for c in written["components"])

    # A second import of the unchanged folders changes nothing, and leaves the file alone.
    before = (repo / "manifest.yml").read_bytes()
    mtime = (repo / "manifest.yml").stat().st_mtime_ns
    result = playbook(tmp_path, args)
    assert result["changed"] is False and result["changes"] == []
    assert (repo / "manifest.yml").read_bytes() == before and (repo / "manifest.yml").stat().st_mtime_ns == mtime


def test_check_mode_overrides_and_failures_leave_the_manifest(folders, tmp_path):
    root, base, _hotfix = folders
    repo = tmp_path / "repo"
    repo.mkdir()
    args = {"path": str(repo), "spp": str(root / "spp")}
    assert playbook(tmp_path, args)["changed"] is True
    before = (repo / "manifest.yml").read_bytes()

    # Check mode with the hotfix layered over: it says what would change and writes nothing.
    with_hotfix = dict(args, additional=[str(root / "hotfix")])
    result = playbook(tmp_path, with_hotfix, "--check", "--diff")
    assert result["changed"] is True and any(c.startswith("imported cp049999 1.0.1 from") for c in result["changes"])
    assert (repo / "manifest.yml").read_bytes() == before

    # An override: any field but the name, validated like the rest.
    nic = next(s.identity for s in base.specs if s.category == "nic_fw" and s.filename.endswith(".scexe"))
    result = playbook(tmp_path, dict(args, overrides={nic: {"timeout": 7200, "criticality": "critical"}}))
    assert result["changed"] is True and "updated %s: criticality, timeout" % nic in result["changes"]
    overridden = {c["name"]: c for c in yaml.safe_load((repo / "manifest.yml").read_text())["components"]}[nic]
    assert (overridden["timeout"], overridden["criticality"]) == (7200, "critical")
    before = (repo / "manifest.yml").read_bytes()

    # A failed validation (an override with a bad value) writes nothing: the previous manifest stays.
    result = playbook(tmp_path, dict(args, overrides={nic: {"timeout": -1}}))
    assert result["failed"] is True and "component %r, field timeout: must be a number of seconds above 0" % nic in result["msg"]
    assert "nothing written" in result["msg"] and "timeout: -1" in result["proposed"]
    assert (repo / "manifest.yml").read_bytes() == before

    # A failed import (malformed XML in an additional folder) names the file and element; nothing written.
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "cp000001.xml").write_text("<cpq_package><filename>cp000001.exe</filename>")
    result = playbook(tmp_path, dict(args, additional=[str(broken)]))
    assert result["failed"] is True and "%s, element line 1 column" % (broken / "cp000001.xml") in result["msg"]
    assert "not well-formed XML" in result["msg"] and (repo / "manifest.yml").read_bytes() == before

    # The same identity and version with other bytes in a second folder: both files named.
    clash = tmp_path / "clash"
    shutil.copytree(root / "spp/packages", clash, ignore=shutil.ignore_patterns("assets"))
    (clash / base.specs[0].filename).write_bytes(b"other bytes")
    result = playbook(tmp_path, dict(args, additional=[str(clash)]))
    assert result["failed"] is True and "different contents" in result["msg"]
    assert str(clash / base.specs[0].filename) in result["msg"] and str(root / "spp/packages" / base.specs[0].filename) in result["msg"]
    assert (repo / "manifest.yml").read_bytes() == before

    # An override naming no component is an error naming it.
    result = playbook(tmp_path, dict(args, overrides={"cp999999": {"timeout": 60}}))
    assert result["failed"] is True and "overrides: 'cp999999' names no imported component" in result["msg"]
    assert (repo / "manifest.yml").read_bytes() == before


def test_a_refresh_that_fails_validation_leaves_the_previous_manifest(tmp_path):
    """The old bug: state=present wrote manifest.yml even when validation then failed."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "tool.sh").write_bytes(b"#!/bin/sh\nexit 0\n")
    spp_pki.sign_file(repo / "tool.sh", spp_pki.shared_lab_pki().signer)
    result = playbook(tmp_path, {"path": str(repo)})
    (repo / "manifest.yml").write_text(result["proposed"].replace("version: null", "version: '1.0'").replace("kind: null", "kind: software")
                                       .replace("detect: null", "detect: {method: file, path: /opt/tool/VERSION}"))
    assert playbook(tmp_path, {"path": str(repo)})["problems"] == []
    before = (repo / "manifest.yml").read_bytes()
    (repo / "new-tool.sh").write_bytes(b"#!/bin/sh\n")  # a new file: its stub fails validation
    result = playbook(tmp_path, {"path": str(repo)})
    assert result["failed"] is True and "new-tool" in result["msg"] and "nothing written" in result["msg"]
    assert (repo / "manifest.yml").read_bytes() == before
