# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""manifest: every validation failure names the component and the field; cycles; paths that
escape the folder; refresh keeps hand-written fields; dependency order."""
from __future__ import annotations

import copy
import hashlib
import os
from pathlib import Path

import pytest

from ansible_collections.fleet.firmware.plugins.module_utils import manifest


def good_repo(root: Path) -> dict:
    files = {"bios/U30_2.92.scexe": b"#!/bin/sh\nexit 0\n", "tool.deb": b"deb", "nic.cab": b"cab"}
    for name, body in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(body)
    (root / "bios/U30_2.92.scexe.sig").write_bytes(b"sig")

    def meta(name):
        body = files[name]
        return {"file": name, "sha256": hashlib.sha256(body).hexdigest(), "size": len(body)}

    return {"format": 1, "components": [
        dict(name="bios", version="U30 v2.92 (11/03/2023)", kind="firmware", os="linux", **meta("bios/U30_2.92.scexe"),
             signature="bios/U30_2.92.scexe.sig", applies_to={"product_name": "ProLiant DL380 Gen10"},
             detect={"method": "dmi", "format": "{bios_version} v{bios_release} ({bios_date})"}, install="smart_component",
             timeout=900, reboot="if_rc", requires=["tool"]),
        dict(name="tool", version="1.2-1", kind="software", os="linux", **meta("tool.deb"),
             detect={"method": "package", "name": "tool", "manager": "dpkg"}, install="deb"),
        dict(name="nic", version="0.1.25", kind="firmware", os="linux", **meta("nic.cab"),
             detect={"method": "fwupd", "device": "NIC"}, install="fwupd", requires=["bios", "tool"]),
    ]}


def test_a_good_manifest_has_no_problems(tmp_path):
    assert manifest.validate(good_repo(tmp_path), str(tmp_path)) == []


def broken(change):
    def apply(data, root):
        change(data["components"], root)
        return data
    return apply


CASES = [
    ("unknown key", broken(lambda c, r: c[0].update(colour="red")), "bios", "colour", "unknown key"),
    ("missing version", broken(lambda c, r: c[1].pop("version")), "tool", "version", "required"),
    ("missing detect", broken(lambda c, r: c[1].pop("detect")), "tool", "detect", "required"),
    ("missing file", broken(lambda c, r: (r / "tool.deb").unlink()), "tool", "file", "does not exist"),
    ("hash mismatch", broken(lambda c, r: (r / "tool.deb").write_bytes(b"dex")), "tool", "sha256", "hash mismatch"),
    ("size mismatch", broken(lambda c, r: c[2].update(size=99)), "nic", "size", "99 in the manifest, 3 on disk"),
    ("bad sha", broken(lambda c, r: c[2].update(sha256="XYZ")), "nic", "sha256", "64 lower-case"),
    ("bad kind", broken(lambda c, r: c[0].update(kind="bios")), "bios", "kind", "not one of"),
    ("cmd.exe metacharacter", broken(lambda c, r: c[0].update(file="setup.cmd", install="script", args=["/s", "x & y"])),
     "bios", "args", "args[1] 'x & y' has '&', which cmd.exe interprets"),
    ("bad os", broken(lambda c, r: c[0].update(os="aix")), "bios", "os", "not one of"),
    ("msi on linux", broken(lambda c, r: c[1].update(install="msi")), "tool", "install", "does not exist on linux"),
    ("bad install", broken(lambda c, r: c[1].update(install="pip")), "tool", "install", "not one of"),
    ("bad reboot", broken(lambda c, r: c[0].update(reboot="maybe")), "bios", "reboot", "not one of"),
    ("args as string", broken(lambda c, r: c[1].update(args="--force; rm -rf /")), "tool", "args", "list of strings"),
    ("bad timeout", broken(lambda c, r: c[1].update(timeout=-1)), "tool", "timeout", "above 0"),
    ("bad returncodes", broken(lambda c, r: c[1].update(returncodes={"0": "great"})), "tool", "returncodes", "not one of"),
    ("unknown requires", broken(lambda c, r: c[1].update(requires=["ghost"])), "tool", "requires", "'ghost' is not a component"),
    ("self requires", broken(lambda c, r: c[1].update(requires=["tool"])), "tool", "requires", "requires itself"),
    ("duplicate", broken(lambda c, r: c[2].update(name="tool")), "tool", "name", "second component"),
    ("bad name", broken(lambda c, r: c[2].update(name="a b")), "#3", "name", "letters, digits"),
    ("incomparable version", broken(lambda c, r: c[2].update(version="latest and greatest")), "nic", "version", "cannot be compared"),
    ("bad dpkg version", broken(lambda c, r: c[1].update(version="-x")), "tool", "version", "cannot be compared"),
    ("detect method", broken(lambda c, r: c[1].update(detect={"method": "magic"})), "tool", "detect.method", "not one of"),
    ("detect key", broken(lambda c, r: c[1].update(detect={"method": "package", "name": "x", "regex": "y"})), "tool", "detect.regex",
     "unknown key"),
    ("registry on linux", broken(lambda c, r: c[1].update(detect={"method": "registry", "key": "K", "value": "V"})), "tool",
     "detect.method", "only on Windows"),
    ("applies_to", broken(lambda c, r: c[0].update(applies_to={"Product Name": "x"})), "bios", "applies_to.Product Name", "DMI field"),
    ("escape ..", broken(lambda c, r: c[1].update(file="../tool.deb")), "tool", "file", "escapes the repository folder"),
    ("escape absolute", broken(lambda c, r: c[1].update(file="/etc/passwd")), "tool", "file", "absolute"),
    ("escape windows drive", broken(lambda c, r: c[1].update(file="C:\\x.exe")), "tool", "file", "absolute"),
    ("escape backslash", broken(lambda c, r: c[1].update(file="sub\\..\\..\\x")), "tool", "file", "escapes"),
    ("escape link", broken(lambda c, r: (os.symlink("/etc", r / "etc"), c[1].update(file="etc/hostname"))), "tool", "file", "a link to"),
    ("signature escape", broken(lambda c, r: c[0].update(signature="../x.sig")), "bios", "signature", "escapes"),
    ("signature missing", broken(lambda c, r: (r / "bios/U30_2.92.scexe.sig").unlink()), "bios", "signature", "does not exist"),
]


@pytest.mark.parametrize("label, change, component, field, text", CASES, ids=[c[0] for c in CASES])
def test_each_problem_names_component_and_field(tmp_path, label, change, component, field, text):
    data = change(good_repo(tmp_path), tmp_path)
    problems = manifest.validate(data, str(tmp_path))
    assert any(p.component == component and p.field == field and text in p.message for p in problems), problems
    assert f"component {component!r}, field {field}" in "; ".join(manifest.format_problem(p) for p in problems)


def test_top_level_problems(tmp_path):
    data = good_repo(tmp_path)
    data["colour"] = 1
    data["format"] = 3
    fields = {(p.component, p.field) for p in manifest.validate(data, str(tmp_path))}
    assert {("", "colour"), ("", "format")} <= fields
    assert manifest.validate({"components": "x"}, str(tmp_path)) == [manifest.Problem("", "components", "must be a list of components")]
    assert manifest.validate(["x"], str(tmp_path))[0].field == "components"


def test_cycles_are_reported_once_with_their_path(tmp_path):
    data = good_repo(tmp_path)
    data["components"][1]["requires"] = ["nic"]  # nic -> bios -> tool -> nic, nic -> tool -> nic
    problems = [p for p in manifest.validate(data, str(tmp_path)) if "cycle" in p.message]
    assert problems and all(p.field == "requires" for p in problems)
    messages = [p.message for p in problems]
    assert "dependency cycle: bios -> tool -> nic -> bios" in messages
    assert "dependency cycle: tool -> nic -> tool" in messages
    assert manifest.find_cycles([{"name": "a", "requires": ["b"]}, {"name": "b", "requires": ["c"]}, {"name": "c"}]) == []


def test_every_problem_is_found_not_only_the_first(tmp_path):
    data = good_repo(tmp_path)
    data["components"][0]["kind"] = "bios"
    data["components"][2]["install"] = "pip"
    assert {p.component for p in manifest.validate(data, str(tmp_path))} == {"bios", "nic"}


def test_hash_check_can_be_skipped(tmp_path):
    data = good_repo(tmp_path)
    (tmp_path / "tool.deb").write_bytes(b"dex")
    assert manifest.validate(data, str(tmp_path), verify=False) == []


def test_dependency_order_keeps_manifest_order_otherwise():
    components = [{"name": "c", "requires": ["b"]}, {"name": "a"}, {"name": "b", "requires": ["a"]}, {"name": "d"}]
    assert [c["name"] for c in manifest.dependency_order(components)] == ["a", "b", "c", "d"]


def test_load_components(tmp_path):
    data = good_repo(tmp_path)
    (tmp_path / "manifest.yml").write_text(manifest.dump(data))
    loaded = manifest.load_components(str(tmp_path))
    assert [c["name"] for c in loaded] == ["tool", "bios", "nic"]
    assert loaded[0]["path"] == str(tmp_path / "tool.deb") and loaded[0]["reboot"] == "if_rc" and loaded[0]["requires"] == []
    (tmp_path / "tool.deb").write_bytes(b"dex")
    with pytest.raises(manifest.ManifestError) as caught:
        manifest.load_components(str(tmp_path / "manifest.yml"))
    assert "component 'tool', field sha256: hash mismatch" in str(caught.value)


def test_bad_yaml_is_a_manifest_error(tmp_path):
    (tmp_path / "manifest.yml").write_text("components: [\n")
    with pytest.raises(manifest.ManifestError, match="not valid YAML"):
        manifest.load_components(str(tmp_path))


def test_refresh_keeps_hand_written_fields_and_adds_stubs(tmp_path):
    data = good_repo(tmp_path)
    before = copy.deepcopy(data)
    (tmp_path / "tool.deb").write_bytes(b"new tool")
    (tmp_path / "cp045678.exe").write_bytes(b"MZ")
    (tmp_path / "setup.exe").write_bytes(b"MZ")
    (tmp_path / "README.md").write_text("not a component")
    (tmp_path / ".hidden").write_text("no")
    os.symlink("/etc/hostname", tmp_path / "outside")
    refreshed, changes = manifest.refresh(str(tmp_path), data)
    tool = refreshed["components"][1]
    assert tool["sha256"] == hashlib.sha256(b"new tool").hexdigest() and tool["size"] == 8
    assert {k: v for k, v in tool.items() if k not in ("sha256", "size")} == {k: v for k, v in before["components"][1].items() if k not in ("sha256", "size")}
    assert refreshed["components"][0] == before["components"][0]
    stubs = {c["name"]: c for c in refreshed["components"][3:]}
    assert set(stubs) == {"cp045678", "setup"}
    assert (stubs["cp045678"]["install"], stubs["cp045678"]["os"]) == ("smart_component", "windows")
    assert (stubs["setup"]["install"], stubs["setup"]["version"]) == ("exe", None)
    assert any(c.startswith("updated tool: sha256") for c in changes)
    assert any(c.startswith("added cp045678") for c in changes)
    # The stubs still need a person: validation says what is missing.
    problems = manifest.validate(refreshed, str(tmp_path))
    assert {(p.component, p.field) for p in problems} >= {("setup", "version"), ("setup", "detect"), ("setup", "kind")}


def test_refresh_is_stable_and_dump_round_trips(tmp_path):
    data = good_repo(tmp_path)
    first = manifest.refresh(str(tmp_path), data)[0]
    second, changes = manifest.refresh(str(tmp_path), manifest.parse_text(manifest.dump(first)))
    assert changes == [] and manifest.dump(first) == manifest.dump(second)


def test_refresh_removes_missing_only_when_asked(tmp_path):
    data = good_repo(tmp_path)
    (tmp_path / "nic.cab").unlink()
    kept = manifest.refresh(str(tmp_path), copy.deepcopy(data))[0]
    assert [c["name"] for c in kept["components"]] == ["bios", "tool", "nic"]
    dropped, changes = manifest.refresh(str(tmp_path), copy.deepcopy(data), remove_missing=True)
    assert [c["name"] for c in dropped["components"]] == ["bios", "tool"] and changes == ["removed nic: nic.cab is gone"]


def test_stub_names_do_not_collide(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a/tool.deb").write_bytes(b"1")
    (tmp_path / "tool.deb").write_bytes(b"2")
    refreshed = manifest.refresh(str(tmp_path), {})[0]
    assert sorted(c["name"] for c in refreshed["components"]) == ["tool", "tool-2"]


def test_the_documented_example_is_a_valid_manifest(tmp_path):
    """docs/repository.md's full example passes validation (files stand in; sizes and hashes are made up)."""
    text = (Path(__file__).resolve().parents[4] / "docs/repository.md").read_text()
    example = manifest.parse_text(text.split("```yaml\n", 1)[1].split("```", 1)[0])
    for component in example["components"]:
        for field in ("file", "signature"):
            if field in component:
                (tmp_path / component[field]).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / component[field]).write_bytes(b"x")
    problems = [p for p in manifest.validate(example, str(tmp_path), verify=False) if p.field != "size"]
    assert problems == []
    assert [c["name"] for c in manifest.dependency_order(example["components"])][:2] == ["ilo5", "bios-u30"]
