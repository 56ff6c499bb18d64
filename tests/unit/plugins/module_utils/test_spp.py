# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""baseline.spp: an HPE SPP folder (both layouts) and hotfix folders become manifest components.

Against the real cp037722.xml (data/cp037722.xml, a verbatim copy of the sample in the
project's research notes, spp-samples/) and against folders written by tests/lab/spp_gen.py in
the same schema: every mapping rule, the skipped OSes, the naming rule for several versions, and
bad input, each asserting that the message names the file and the element.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

import spp_gen
from ansible_collections.fleet.firmware.plugins.module_utils import manifest, plan
from ansible_collections.fleet.firmware.plugins.module_utils.baseline import spp

SAMPLE = Path(__file__).parent / "data" / "cp037722.xml"


def sample_folder(root: Path, exe: bytes = b"MZ fake cp037722") -> Path:
    packages = root / "packages"
    packages.mkdir(parents=True)
    shutil.copy(SAMPLE, packages / "cp037722.xml")
    (packages / "cp037722.exe").write_bytes(exe)
    (packages / "cp037722.compsig").write_bytes(b"signature")
    (root / "manifest").mkdir()
    return root


def by_name(imported) -> dict:
    return {c["name"]: c for c in imported.components}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("spp")
    base = spp_gen.write_spp(root / "spp")
    hotfix = spp_gen.write_hotfix(root / "hotfix", base)
    return root, base, hotfix


# --------------------------------------------------------------------------------------------
# The real cp037722.xml
# --------------------------------------------------------------------------------------------


def test_real_sample_maps_field_by_field(tmp_path):
    folder = sample_folder(tmp_path / "spp")
    imported = spp.import_folders(str(folder))
    assert imported.skipped == []
    [component] = imported.components
    exe = folder / "packages/cp037722.exe"
    assert component == {
        "name": "cp037722", "identity": "cp037722",
        "description": "Online Flash Component for Windows x64 - Gen10 NVMe Backplane PIC Firmware: "
                       "This component updates the firmware on ProLiant Gen10 NVMe storage backplanes.",
        "version": "1.20", "revision": "D", "release_date": "2018-10-27", "criticality": "optional",
        # No category and no type id: the FirmwareImages payload makes it firmware; cp*.exe -> Windows.
        "kind": "firmware", "os": "windows", "source": str(folder), "file": "packages/cp037722.exe",
        "sha256": hashlib.sha256(exe.read_bytes()).hexdigest(), "size": exe.stat().st_size,
        "signature": "packages/cp037722.compsig",
        "applies_to": {"bios_version": "^(I41|U34|U30|U32)"},
        "devices": [{"name": "NVMe Backplane PIC", "targets": ["00000000-0000-0000-0000-000049535320"]}],
        "detect": {"method": "redfish", "targets": ["00000000-0000-0000-0000-000049535320"]},
        "install": "smart_component",
        # 4 x 120 s of InstallDurationSec is below the deploy's default of 3600 s: never shorter.
        "timeout": spp.MIN_TIMEOUT, "reboot": "if_rc",
    }
    assert manifest.validate({"format": 2, "components": imported.components}, str(tmp_path)) == []


def test_the_import_only_reads(tmp_path):
    folder = sample_folder(tmp_path / "spp")
    before = sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*"))
    spp.import_folders(str(folder))
    assert sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")) == before


# --------------------------------------------------------------------------------------------
# Generated folders: every mapping rule
# --------------------------------------------------------------------------------------------


def test_generated_spp_imports_and_validates(generated):
    root, base, _hotfix = generated
    imported = spp.import_folders(str(root / "spp"))
    assert len(base.specs) >= 40
    assert len(imported.components) + len(imported.skipped) == len(base.specs)
    assert manifest.validate({"format": 2, "components": imported.components}, str(root), known_hashes=imported.hashes) == []
    components = imported.components
    assert {c["os"] for c in components} == {"linux", "windows"}
    assert {c["kind"] for c in components} == {"firmware", "driver", "software"}
    assert {c["detect"]["method"] for c in components} == {"dmi", "redfish", "package", "component"}
    assert all(c["source"] == str(root / "spp") and c["file"].startswith("packages/") for c in components)


def test_skipped_vmware_and_unknown_os_with_reasons(generated):
    root, base, _hotfix = generated
    skipped = {s["identity"]: s for s in spp.import_folders(str(root / "spp")).skipped}
    vmware = [s for s in base.specs if s.filename.endswith(".zip")]
    assert len(vmware) == 2 and all(skipped[s.identity]["reason"].startswith("for VMware ESXi only (VMware ESXi 8.0)") for s in vmware)
    freebsd = next(s for s in base.specs if s.oses == (("", "FreeBSD 14"),))
    assert skipped[freebsd.identity]["reason"] == "operating system(s) not recognised: 'FreeBSD 14' (nodes run Linux or Windows)"
    assert skipped[freebsd.identity]["file"] == "packages/%s" % freebsd.filename


def test_system_rom_families_version_and_dmi(generated):
    root, base, _hotfix = generated
    components = by_name(spp.import_folders(str(root / "spp")))
    roms = [s for s in base.specs if s.category == "rom"]
    assert {s.roms[0] for s in roms} == {"U30", "U32", "A40", "U46", "U54"}
    for spec in roms:
        component = components[spec.identity]
        number, month, day, year = spp.ROM_VERSION_RE.match(spec.version).groups()
        assert component["version"] == "%s v%s (%s/%s/%s)" % (spec.roms[0], number, month, day, year)
        assert component["applies_to"] == {"bios_version": "^(%s)" % spec.roms[0]}
        assert component["detect"] == {"method": "dmi", "format": "{bios_version} v{bios_release} ({bios_date})"}
        assert component["reboot"] == "required" and component["criticality"] == "critical" or spec.filename.endswith(".exe")
        assert component["install"] == ("smart_component" if spec.filename.endswith(".exe") else "rpm")


def test_rpm_driver_detected_by_package_with_rpm_version(generated):
    root, base, _hotfix = generated
    spec = next(s for s in base.specs if s.filename.startswith("kmod-hpe-nic-ixgbe"))
    component = by_name(spp.import_folders(str(root / "spp")))[spec.identity]
    assert spec.filename == "kmod-hpe-nic-ixgbe-1.2.10-1.rhel8u8.x86_64.rpm"
    assert (component["kind"], component["os"], component["install"]) == ("driver", "linux", "rpm")
    assert component["detect"] == {"method": "package", "name": "kmod-hpe-nic-ixgbe", "manager": "rpm"}
    assert component["version"] == "1.2.10-1.rhel8u8" and "timeout" not in component and "reboot" not in component


def test_multi_device_firmware_keeps_every_target_and_sums_durations(generated):
    root, base, _hotfix = generated
    components = by_name(spp.import_folders(str(root / "spp")))
    spec = next(s for s in base.specs if s.filename.startswith("firmware-smartarray"))
    component = components[spec.identity]
    assert component["devices"] == [{"name": d.name, "targets": d.targets} for d in spec.devices] and len(spec.devices) == 2
    assert component["detect"] == {"method": "redfish", "targets": [t for d in spec.devices for t in d.targets]}
    # Two images of 900 s: 4 x 1800 s = 7200 s, above the floor; ResetRequired True -> required.
    assert component["timeout"] == 7200 and component["reboot"] == "required"
    nic = next(s for s in base.specs if s.category == "nic_fw" and s.filename.endswith(".exe"))
    assert len(components[nic.identity]["detect"]["targets"]) == 3


def test_fwpkg_is_listed_not_deployable(generated):
    root, base, _hotfix = generated
    components = by_name(spp.import_folders(str(root / "spp")))
    fwpkgs = [s for s in base.specs if s.filename.endswith(".fwpkg")]
    assert len(fwpkgs) == 3
    for spec in fwpkgs:
        component = components[spec.identity]
        assert component["deployable"] is False and "install" not in component
        assert component["not_deployable"] == "only a BMC can flash it (in-band deployment impossible)"
    entries = plan.plan([components[fwpkgs[0].identity]])
    assert entries[0]["action"] == "skip" and entries[0]["reason"] == "not deployable: only a BMC can flash it (in-band deployment impossible)"


def test_uncomparable_version_lets_the_component_decide(generated):
    root, base, _hotfix = generated
    spec = next(s for s in base.specs if s.version == "HPD4")
    component = by_name(spp.import_folders(str(root / "spp")))[spec.identity]
    assert component["detect"] == {"method": "component"} and component["version"] == "HPD4"


def test_old_hp_swpackages_layout(tmp_path):
    old = spp_gen.write_spp(tmp_path / "old", layout="hp")
    imported = spp.import_folders(str(tmp_path / "old"))
    assert len(imported.components) + len(imported.skipped) == len(old.specs)
    assert all(c["file"].startswith("hp/swpackages/") for c in imported.components)
    assert manifest.validate({"format": 2, "components": imported.components}, str(tmp_path)) == []


def test_packages_wins_over_a_legacy_hp_swpackages(tmp_path):
    sample_folder(tmp_path / "spp")
    (tmp_path / "spp/hp/swpackages").mkdir(parents=True)
    shutil.copy(SAMPLE, tmp_path / "spp/hp/swpackages/cp037722.xml")
    [component] = spp.import_folders(str(tmp_path / "spp")).components
    assert component["file"] == "packages/cp037722.exe"


def test_signature_parts_in_numeric_order(tmp_path):
    folder = sample_folder(tmp_path / "spp")
    os.unlink(folder / "packages/cp037722.compsig")
    for number in (10, 2, 1):
        (folder / ("packages/cp037722_part%d.compsig" % number)).write_bytes(b"part")
    [component] = spp.import_folders(str(folder)).components
    assert component["signature"] == ["packages/cp037722_part1.compsig", "packages/cp037722_part2.compsig",
                                      "packages/cp037722_part10.compsig"]
    assert manifest.validate({"format": 2, "components": [component]}, str(tmp_path)) == []


# --------------------------------------------------------------------------------------------
# Hotfix layering and the naming rule
# --------------------------------------------------------------------------------------------


def test_hotfix_supersedes_two_components_and_keeps_the_older_versions(generated):
    root, base, hotfix = generated
    imported = spp.import_folders(str(root / "spp"), [str(root / "hotfix")])
    components = by_name(imported)
    base_only = by_name(spp.import_folders(str(root / "spp")))
    assert len(imported.components) == len(base_only) + 3
    superseding = hotfix.specs[:2]
    for spec in superseding:
        old = base.spec(spec.identity)
        newest = components[spec.identity]
        assert newest["source"] == str(root / "hotfix") and newest["file"] == spec.filename and "superseded_by" not in newest
        older = [c for c in imported.components if c.get("superseded_by") == spec.identity]
        assert len(older) == 1 and older[0]["source"] == str(root / "spp")
        assert older[0]["name"] == "%s-%s" % (spec.identity, spp._safe(older[0]["version"]))
        assert older[0]["version"] == base_only[spec.identity]["version"] != newest["version"]
        assert old.identity == spec.identity
    new = components[hotfix.specs[2].identity]
    assert new["source"] == str(root / "hotfix") and "superseded_by" not in new
    assert manifest.validate({"format": 2, "components": imported.components}, str(root)) == []


def test_an_intermediate_version_installs_only_when_the_policy_names_it(generated, tmp_path):
    root, _base, hotfix = generated
    imported = spp.import_folders(str(root / "spp"), [str(root / "hotfix")])
    nic = hotfix.specs[0].identity
    older = next(c for c in imported.components if c.get("superseded_by") == nic)
    assert older["name"] == "%s-22.46.3048" % nic
    [entry] = plan.plan([older])
    assert entry["action"] == "skip" and entry["reason"].startswith("superseded by %s (name %s" % (nic, older["name"]))
    [entry] = plan.plan([older], {"components": [older["name"]]})
    assert not entry["reason"].startswith("superseded")


def test_same_version_identical_bytes_is_one_component_from_the_first_folder(tmp_path):
    sample_folder(tmp_path / "spp")
    sample_folder(tmp_path / "copy")
    imported = spp.import_folders(str(tmp_path / "spp"), [str(tmp_path / "copy")])
    assert [(c["name"], c["source"]) for c in imported.components] == [("cp037722", str(tmp_path / "spp"))]


def test_same_version_different_bytes_names_both_files(tmp_path):
    sample_folder(tmp_path / "spp")
    sample_folder(tmp_path / "hotfix", exe=b"MZ other bytes")
    with pytest.raises(spp.SppError) as caught:
        spp.import_folders(str(tmp_path / "spp"), [str(tmp_path / "hotfix")])
    [problem] = caught.value.problems
    assert problem.file == str(tmp_path / "hotfix/packages/cp037722.xml") and problem.element == "version"
    assert str(tmp_path / "spp/packages/cp037722.exe") in problem.message and str(tmp_path / "hotfix/packages/cp037722.exe") in problem.message
    assert "different contents" in str(caught.value)


def test_identity_on_two_oses_gets_the_os_in_its_name(tmp_path):
    sample_folder(tmp_path / "spp")
    linux = tmp_path / "linux"
    linux.mkdir()
    (linux / "cp037722.xml").write_text(SAMPLE.read_text().replace("cp037722.exe", "cp037722.scexe")
                                        .replace("Microsoft Windows Server 2019", "Red Hat Enterprise Linux 9 Server"))
    (linux / "cp037722.scexe").write_bytes(b"#!/bin/sh\n")
    names = sorted(c["name"] for c in spp.import_folders(str(tmp_path / "spp"), [str(linux)]).components)
    assert names == ["cp037722-linux", "cp037722-windows"]


# --------------------------------------------------------------------------------------------
# Bad input: the file and the element named
# --------------------------------------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<cpq_package version="2.0.1.0"><filename>cp037722.exe</filename><name><name_xlate lang="en">&lol2;</name_xlate></name>
<version value="1.20" revision="D" type_of_change="0"/></cpq_package>
"""
EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE cpq_package [<!ENTITY secret SYSTEM "file:///etc/hostname">]>
<cpq_package version="2.0.1.0"><filename>cp037722.exe</filename><name><name_xlate lang="en">&secret;</name_xlate></name>
<version value="1.20" revision="D" type_of_change="0"/></cpq_package>
"""


@pytest.mark.parametrize("text, element, words", [
    ("<cpq_package><filename>cp037722.exe</filename>", "line 1 column", "not well-formed XML"),
    (BILLION_LAUGHS, "<!ENTITY lol>", "entity expansion and external references are never followed"),
    (EXTERNAL, "<!ENTITY secret>", "entity expansion and external references are never followed"),
    (SAMPLE.read_text().replace("<filename>cp037722.exe</filename>", ""), "filename", "missing or empty"),
    (SAMPLE.read_text().replace('value="1.20" ', ""), "version@value", "missing or empty"),
    (SAMPLE.read_text().replace('day="27"', 'day="32"'), "release_date", "is not a date"),
    (SAMPLE.read_text().replace("cpq_package", "cpq_bundle"), "cpq_bundle", "the root element must be cpq_package"),
])
def test_bad_xml_names_the_file_and_the_element(tmp_path, text, element, words):
    folder = sample_folder(tmp_path / "spp")
    (folder / "packages/cp037722.xml").write_text(text)
    with pytest.raises(spp.SppError) as caught:
        spp.import_folders(str(folder))
    [problem] = caught.value.problems
    assert problem.file == str(folder / "packages/cp037722.xml")
    assert problem.element.startswith(element) and words in problem.message
    assert "lollol" not in str(caught.value) and open("/etc/hostname").read().strip() not in problem.message.replace("hostname", "")


def test_missing_component_file_names_the_xml_and_filename(tmp_path):
    folder = sample_folder(tmp_path / "spp")
    os.unlink(folder / "packages/cp037722.exe")
    with pytest.raises(spp.SppError) as caught:
        spp.import_folders(str(folder))
    assert str(caught.value) == "%s, element filename: names cp037722.exe, which is not in %s" % (
        folder / "packages/cp037722.xml", folder / "packages")


@pytest.mark.parametrize("filename, words", [("../outside.exe", "is a path: it must name a file beside the cp*.xml"),
                                             ("/etc/hostname", "is a path: it must name a file beside the cp*.xml"),
                                             ("link.exe", "escapes the folder (a link to")])
def test_a_filename_escaping_the_folder_is_refused(tmp_path, filename, words):
    folder = sample_folder(tmp_path / "spp")
    (tmp_path / "spp/outside.exe").write_bytes(b"x")
    os.symlink("/etc/hostname", folder / "packages/link.exe")
    xml = folder / "packages/cp037722.xml"
    xml.write_text(xml.read_text().replace("<filename>cp037722.exe</filename>", "<filename>%s</filename>" % filename))
    with pytest.raises(spp.SppError) as caught:
        spp.import_folders(str(folder))
    [problem] = caught.value.problems
    assert (problem.file, problem.element) == (str(xml), "filename") and words in problem.message


def test_every_bad_file_is_reported_at_once(tmp_path):
    folder = sample_folder(tmp_path / "spp")
    (folder / "packages/cp000001.xml").write_text("<cpq_package>")
    (folder / "packages/cp000002.xml").write_text(BILLION_LAUGHS)
    with pytest.raises(spp.SppError) as caught:
        spp.import_folders(str(folder))
    assert sorted(os.path.basename(p.file) for p in caught.value.problems) == ["cp000001.xml", "cp000002.xml"]


def test_not_an_spp_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(spp.SppError, match="not an SPP folder: it has neither packages/ nor hp/swpackages/"):
        spp.import_folders(str(tmp_path / "empty"))
    with pytest.raises(spp.SppError, match="is not a folder"):
        spp.import_folders(str(tmp_path / "nowhere"))


# --------------------------------------------------------------------------------------------
# Smaller mapping rules, on variants of the real sample
# --------------------------------------------------------------------------------------------


def variant(tmp_path: Path, replacements: dict, filename: str = "cp037722.exe", body: bytes = b"x") -> dict:
    text = SAMPLE.read_text()
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    packages = tmp_path / "spp/packages"
    packages.mkdir(parents=True)
    (packages / "cp037722.xml").write_text(text.replace("<filename>cp037722.exe</filename>", "<filename>%s</filename>" % filename))
    (packages / filename).write_bytes(body)
    imported = spp.import_folders(str(tmp_path / "spp"))
    return imported.components[0] if imported.components else imported.skipped[0]


PAYLOAD = SAMPLE.read_text()[SAMPLE.read_text().index("<payload>"):SAMPLE.read_text().index("</payload>") + len("</payload>")]


@pytest.mark.parametrize("replacements, filename, expected", [
    # No category, no payload: the type id decides the kind; then the name.
    ({PAYLOAD: '<type id="smartcomponent-windows-driver"/>'}, "cp037722.exe", {"kind": "driver", "detect": {"method": "component"}}),
    ({PAYLOAD: "", "PIC Firmware</name_xlate>": "PIC Utility</name_xlate>"}, "cp037722.exe", {"kind": "software"}),
    ({PAYLOAD: '<category key="11300095"><category_xlate lang="en">Driver - Network</category_xlate></category>'},
     "cp037722.exe", {"kind": "driver"}),
    # A Linux Smart Component of the same metadata: the file decides the OS; .deb -> deb.
    ({}, "cp037722.scexe", {"os": "linux", "install": "smart_component"}),
    ({"Microsoft Windows Server 2019": "Ubuntu 22.04"}, "hpe-tool_1.0_amd64.deb", {"os": "linux", "install": "deb"}),
    # ResetRequired True -> reboot required; no durations -> no timeout; no payload -> neither.
    ({"<ResetRequired>False": "<ResetRequired>True"}, "cp037722.exe", {"reboot": "required"}),
    ({PAYLOAD: ""}, "cp037722.exe", {"reboot": None, "timeout": None, "devices": None}),
    # A payload updatable only by the BMC is not deployable in-band, whatever the file.
    ({"</Devices>": "</Devices><UpdatableBy>Bmc</UpdatableBy>"}, "cp037722.exe",
     {"deployable": False, "not_deployable": spp.BMC_ONLY, "install": None}),
    ({}, "cp037722.bin", {"deployable": False, "not_deployable": spp.BMC_ONLY}),
    ({}, "cp037722.iso", {"deployable": False, "not_deployable": "no in-band installer for .iso"}),
    # A large duration: 4 x the sum, above the floor.
    ({"<InstallDurationSec>120": "<InstallDurationSec>1000"}, "cp037722.exe", {"timeout": 4000}),
    # No English translation: the first one; criticality 2 -> critical; an empty revision is left out.
    ({'<name_xlate lang="en">Online Flash Component for Windows x64 - Gen10 NVMe Backplane PIC Firmware</name_xlate>': "",
      'type_of_change="0"': 'type_of_change="2"', 'revision="D"': 'revision=""'}, "cp037722.exe",
     {"criticality": "critical", "revision": None}),
    # Prerequisite notes (English parts) are kept for a person.
    ({"<payload>": "<prerequisite_notes><prerequisite_notes_xlate lang=\"en\"><prerequisite_notes_xlate_part>Needs iLO 5 2.30"
                   "</prerequisite_notes_xlate_part><prerequisite_notes_xlate_part>or later.</prerequisite_notes_xlate_part>"
                   "</prerequisite_notes_xlate></prerequisite_notes><payload>"}, "cp037722.exe",
     {"prerequisites": "Needs iLO 5 2.30 or later."}),
])
def test_mapping_rules(tmp_path, replacements, filename, expected):
    component = variant(tmp_path, replacements, filename)
    for key, value in expected.items():
        assert component.get(key) == value, (key, component)
    assert manifest.validate({"format": 2, "components": [component]}, str(tmp_path)) == []


def test_the_first_translation_when_no_english(tmp_path):
    component = variant(tmp_path, {'<name_xlate lang="en">Online Flash Component for Windows x64 - Gen10 NVMe Backplane PIC Firmware</name_xlate>': ""})
    assert component["description"].startswith("オンラインフラッシュコンポーネント")


def test_an_empty_os_list_takes_the_file_and_an_fwpkg_linux(tmp_path):
    oses = SAMPLE.read_text()
    block = oses[oses.index("<operating_systems>"):oses.index("</operating_systems>") + len("</operating_systems>")]
    assert variant(tmp_path / "a", {block: "<operating_systems/>"})["os"] == "windows"
    fwpkg = variant(tmp_path / "b", {block: "<operating_systems/>"}, filename="U30_1.40.fwpkg")
    assert (fwpkg["os"], fwpkg["deployable"]) == ("linux", False)
