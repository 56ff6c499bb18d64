# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""detect: every method against real files, real programs (dpkg-query on this machine) and, for
fwupd, a stand-in fwupdmgr on PATH printing the JSON shape fwupd prints."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ansible_collections.fleet.firmware.plugins.module_utils import detect


def script(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_command_with_regex(tmp_path):
    tool = script(tmp_path, "tool", "echo 'Tool Firmware Version: 2.10a (build 7)'\n")
    result = detect.detect({"method": "command", "command": [str(tool), "--version"], "regex": r"Version: (\S+)"})
    assert result == {"state": "present", "version": "2.10a", "scheme": "auto", "method": "command", "reason": "", "source": "the output of a command"}


def test_command_named_group_and_no_regex(tmp_path):
    tool = script(tmp_path, "tool", "echo\necho ' 1.2.3 '\necho 'rev=7'\n")
    assert detect.detect({"method": "command", "command": [str(tool)]})["version"] == "1.2.3"
    spec = {"method": "command", "command": [str(tool)], "regex": r"(?P<prefix>rev)=(?P<version>\d+)"}
    assert detect.detect(spec)["version"] == "7"


def test_command_missing_program_is_absent_failure_is_error(tmp_path):
    result = detect.detect({"method": "command", "command": [str(tmp_path / "nope")]})
    assert result["state"] == "absent" and "not installed" in result["reason"]
    failing = script(tmp_path, "failing", "echo broken >&2\nexit 3\n")
    result = detect.detect({"method": "command", "command": [str(failing)]})
    assert result["state"] == "error" and "returned 3" in result["reason"] and "broken" in result["reason"]
    result = detect.detect({"method": "command", "command": [str(failing)], "absent_rc": [3]})
    assert result["state"] == "absent"


def test_command_output_that_does_not_match_is_an_error(tmp_path):
    tool = script(tmp_path, "tool", "echo hello\n")
    result = detect.detect({"method": "command", "command": [str(tool)], "regex": r"v(\d+)"})
    assert result["state"] == "error" and "does not match" in result["reason"]


def test_command_timeout_is_an_error(tmp_path):
    tool = script(tmp_path, "slow", "sleep 30\n")
    result = detect.detect({"method": "command", "command": [str(tool)], "timeout": 0.5})
    assert result["state"] == "error" and "no answer" in result["reason"]


def test_command_is_never_a_shell(tmp_path):
    marker = tmp_path / "marker"
    result = detect.detect({"method": "command", "command": ["echo", f"1.0; touch {marker}"], "regex": r"^(\S+);"})
    assert result["version"] == "1.0" and not marker.exists()


def test_file(tmp_path):
    path = tmp_path / "version"
    path.write_text("\nfirmware=4.5.6\nbuild=1\n")
    assert detect.detect({"method": "file", "path": str(path), "regex": r"^firmware=(.+)$"})["version"] == "4.5.6"
    assert detect.detect({"method": "file", "path": str(path)})["version"] == "firmware=4.5.6"
    result = detect.detect({"method": "file", "path": str(tmp_path / "missing")})
    assert result["state"] == "absent"
    result = detect.detect({"method": "file", "path": str(tmp_path)})
    assert result["state"] == "error"


@pytest.mark.skipif(not shutil.which("dpkg-query"), reason="no dpkg on this machine")
def test_package_dpkg_against_the_real_database():
    expected = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "dpkg"], capture_output=True, text=True, check=True).stdout
    result = detect.detect({"method": "package", "name": "dpkg"})
    assert result == {"state": "present", "version": expected, "scheme": "dpkg", "method": "package", "reason": "", "source": "the dpkg database"}
    result = detect.detect({"method": "package", "name": "fleet-firmware-no-such-package", "manager": "dpkg"})
    assert result["state"] == "absent"


def test_package_rpm_missing_tool_is_an_error():
    if shutil.which("rpm"):
        pytest.skip("rpm is installed here")
    result = detect.detect({"method": "package", "name": "x", "manager": "rpm"})
    assert result["state"] == "error" and "rpm" in result["reason"]


def test_dmi_field_and_hpe_format(tmp_path):
    (tmp_path / "bios_version").write_text("U30\n")
    (tmp_path / "bios_release").write_text("2.90\n")
    (tmp_path / "bios_date").write_text("07/20/2023\n")
    spec = {"method": "dmi", "format": "{bios_version} v{bios_release} ({bios_date})"}
    assert detect._detect_dmi(spec, str(tmp_path))["version"] == "U30 v2.90 (07/20/2023)"
    assert detect._detect_dmi({"method": "dmi", "field": "bios_release"}, str(tmp_path))["version"] == "2.90"
    result = detect._detect_dmi({"method": "dmi", "field": "product_serial"}, str(tmp_path))
    assert result["state"] == "error" and "product_serial" in result["reason"]


def test_dmi_on_this_machine_reads_or_says_why():
    result = detect.detect({"method": "dmi", "field": "bios_vendor"})
    path = Path(detect.DMI_ROOT) / "bios_vendor"
    if path.exists():  # this machine decides which, and then the outcome is exact
        assert (result["state"], result["version"]) == ("present", path.read_text().strip())
    else:
        assert result["state"] == "error"
        assert result["reason"] == f"cannot read DMI bios_vendor ({path}): No such file or directory"


FWUPD_JSON = {"Devices": [
    {"Name": "System Firmware", "DeviceId": "a45df35ac0e948ee180fe216a5f703f32dda163f", "Guid": ["230c8b18-8d9b-53ec-838b-6cfc0383493a"],
     "Version": "0.1.25"},
    {"Name": "UEFI dbx", "DeviceId": "362301da643102b9f38477387e2193e57abaa590", "Version": "371"},
]}


def test_fwupd_with_a_stand_in_fwupdmgr(tmp_path, monkeypatch):
    script(tmp_path, "fwupdmgr", "echo 'WARNING: stand-in'\ncat <<'EOF'\n" + json.dumps(FWUPD_JSON) + "\nEOF\n")
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    assert detect.detect({"method": "fwupd", "device": "UEFI dbx"})["version"] == "371"
    assert detect.detect({"method": "fwupd", "device": "230c8b18-8d9b-53ec-838b-6cfc0383493a"})["version"] == "0.1.25"
    assert detect.detect({"method": "fwupd", "device": "nothing"})["state"] == "absent"


def test_fwupd_missing_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    result = detect.detect({"method": "fwupd", "device": "x"})
    assert result["state"] == "error" and "fwupdmgr" in result["reason"]


def test_registry_only_on_windows():
    result = detect.detect({"method": "registry", "key": "HKLM:\\SOFTWARE\\X", "value": "Version"})
    assert result["state"] == "error" and "Windows" in result["reason"]
    assert detect.detect({"method": "package", "name": "x"}, os_name="windows")["state"] == "error"


@pytest.mark.parametrize("spec, field, text", [
    ("command", "detect", "mapping"),
    ({"method": "ssh"}, "detect.method", "not one of"),
    ({"method": "command"}, "detect.command", "required"),
    ({"method": "command", "command": "tool --version"}, "detect.command", "list of strings"),
    ({"method": "file", "path": "/x", "colour": 1}, "detect.colour", "unknown key"),
    ({"method": "file", "path": "/x", "regex": "("}, "detect.regex", "regular expression"),
    ({"method": "package", "name": "x", "manager": "apk"}, "detect.manager", "not one of"),
    ({"method": "dmi"}, "detect.field", "exactly one"),
    ({"method": "dmi", "field": "../../etc/shadow"}, "detect.field", "bad DMI field"),
    ({"method": "dmi", "format": "no fields"}, "detect.format", "names no field"),
    ({"method": "registry", "key": "HKLM:\\X"}, "detect.key", "key and value"),
    ({"method": "file", "path": "/x", "scheme": "semver"}, "detect.scheme", "not one of"),
])
def test_spec_problems_name_the_field(spec, field, text):
    problems = detect.spec_problems(spec)
    assert any(f == field and text in p for f, p in problems), problems
    assert detect.detect(spec)["state"] == "error"


def test_good_specs_have_no_problems():
    for spec in ({"method": "command", "command": ["x"], "regex": "(.*)", "absent_rc": [1]}, {"method": "file", "path": "/x"},
                 {"method": "package", "name": "x", "manager": "rpm"}, {"method": "dmi", "format": "{bios_version}"},
                 {"method": "fwupd", "device": "x"}, {"method": "registry", "display_name": "^Fleet"}):
        assert detect.spec_problems(spec) == []


@pytest.mark.skipif(not (shutil.which("rpm") and shutil.which("rpmbuild")), reason="needs rpm and rpmbuild (bindep.txt)")
def test_package_rpm_driver_against_a_real_rpm_database(tmp_path, monkeypatch):
    """A real RPM (built with rpmbuild, installed into a private database that ~/.rpmmacros names),
    as an SPP driver RPM is detected: present with version-release, absent when not installed."""
    top, db = tmp_path / "rpmbuild", tmp_path / "rpmdb"
    (top / "SPECS").mkdir(parents=True)
    (top / "SPECS" / "drv.spec").write_text(
        "Name: kmod-fleet-test-nic\nVersion: 1.2.3\nRelease: 4\nSummary: test driver\nLicense: GPL\nBuildArch: noarch\n"
        "%description\ntest\n%files\n")
    subprocess.run(["rpmbuild", "-bb", "--define", "_topdir %s" % top, str(top / "SPECS" / "drv.spec")], check=True, capture_output=True)
    built = next((top / "RPMS").rglob("*.rpm"))
    subprocess.run(["rpm", "--dbpath", str(db), "--initdb"], check=True, capture_output=True)
    subprocess.run(["rpm", "--dbpath", str(db), "-i", "--justdb", "--nodeps", "--nosignature", str(built)], check=True, capture_output=True)
    (tmp_path / ".rpmmacros").write_text("%%_dbpath %s\n" % db)
    monkeypatch.setenv("HOME", str(tmp_path))
    found = detect.detect({"method": "package", "name": "kmod-fleet-test-nic", "manager": "rpm"})
    assert found == {"state": "present", "version": "1.2.3-4", "scheme": "rpm", "method": "package", "reason": "",
                     "source": "the rpm database"}
    missing = detect.detect({"method": "package", "name": "kmod-fleet-other", "manager": "rpm"})
    assert missing["state"] == "absent" and missing["reason"] == "package kmod-fleet-other is not installed (rpm)"


def test_package_rpm_that_cannot_read_its_database_is_an_error_not_absent(tmp_path, monkeypatch):
    rpm = script(tmp_path, "rpm", "echo 'error: cannot open Packages database in /var/lib/rpm' >&2; exit 1\n")
    monkeypatch.setenv("PATH", "%s:%s" % (rpm.parent, os.environ["PATH"]))
    result = detect.detect({"method": "package", "name": "x", "manager": "rpm"})
    assert result["state"] == "error" and "cannot open Packages database" in result["reason"]
