# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plan: the action per component for every policy, with real version files read by detect."""
from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.fleet.firmware.plugins.module_utils import plan


def component(tmp_path: Path, installed, available="2.0", **extra):
    path = tmp_path / "version"
    if installed is not None:
        path.write_text(installed + "\n")
    return dict({"name": "c", "kind": "firmware", "os": "linux", "version": available,
                 "detect": {"method": "file", "path": str(path)}}, **extra)


@pytest.mark.parametrize("installed, policy, action, text", [
    (None, {}, "install", "not installed"),
    ("1.0", {}, "upgrade", "older than 2.0"),
    ("2.0", {}, "skip", "already current"),
    ("2.0", {"rewrite": True}, "rewrite", "rewrite"),
    ("2.0", {"force": True}, "rewrite", "force"),
    ("3.0", {}, "skip", "allow_downgrade"),
    ("3.0", {"allow_downgrade": True}, "downgrade", "newer than 2.0"),
    ("3.0", {"force": True}, "downgrade", "force"),
    ("2.0rc1", {}, "skip", "cannot be compared"),
    ("2.0rc1", {"force": True}, "install", "force: versions cannot be compared"),
])
def test_policy(tmp_path, installed, policy, action, text):
    [entry] = plan.plan([component(tmp_path, installed)], policy)
    assert entry["action"] == action and text in entry["reason"]
    assert entry["installed"] == installed and entry["available"] == "2.0"


def test_detection_error_is_skip_unless_forced(tmp_path):
    broken = component(tmp_path, None, detect={"method": "command", "command": ["sh", "-c", "exit 4"]})
    [entry] = plan.plan([broken])
    assert entry["action"] == "skip" and "cannot tell the installed version" in entry["reason"] and entry["comparison"] == "unknown"
    [entry] = plan.plan([broken], {"force": True})
    assert entry["action"] == "install"


def test_selection(tmp_path):
    windows = component(tmp_path, "1.0", os="windows", name="w")
    software = component(tmp_path, "1.0", kind="driver", name="d")
    firmware = component(tmp_path, "1.0", name="f")
    entries = plan.plan([windows, software, firmware], {"only": "firmware"})
    assert [(e["name"], e["action"]) for e in entries] == [("w", "skip"), ("d", "skip"), ("f", "upgrade")]
    assert "for windows nodes" in entries[0]["reason"] and entries[0]["detection"] is None
    entries = plan.plan([software, firmware], {"only": "software"})
    assert [e["action"] for e in entries] == ["upgrade", "skip"]
    entries = plan.plan([software, firmware], {"components": ["f"]})
    assert [e["action"] for e in entries] == ["skip", "upgrade"]
    with pytest.raises(ValueError):
        plan.plan([firmware], {"only": "bios"})


def test_applies_to_reads_dmi(tmp_path):
    dmi = tmp_path / "dmi"
    dmi.mkdir()
    (dmi / "product_name").write_text("ProLiant DL380 Gen10\n")
    fits = component(tmp_path, "1.0", applies_to={"product_name": "DL380 Gen1[01]"})
    other = component(tmp_path, "1.0", applies_to={"product_name": ["ProLiant DL360 Gen10"]}, name="o")
    unreadable = component(tmp_path, "1.0", applies_to={"sys_vendor": "HPE"}, name="u")
    entries = plan.plan([fits, other, unreadable], dmi_root=str(dmi))
    assert [e["action"] for e in entries] == ["upgrade", "skip", "skip"]
    assert "not one of" in entries[1]["reason"] and "cannot read DMI sys_vendor" in entries[2]["reason"]


def test_package_versions_use_the_package_scheme(tmp_path):
    tool = component(tmp_path, None, version="1:0.1", detect={"method": "command", "command": ["echo", "2.0"]})
    entry = plan.plan([tool])[0]  # auto scheme: "1:0.1" (a Debian epoch) is not a version
    assert entry["action"] == "skip" and "cannot be compared" in entry["reason"]
    entry = plan.decide({"name": "p", "version": "1:0.1"}, {"state": "present", "version": "2.0", "scheme": "dpkg"}, plan.normalise_policy({}))
    assert entry["action"] == "upgrade" and entry["comparison"] == "older"


def test_summary():
    counts, needed = plan.summary([{"action": "skip"}, {"action": "upgrade"}])
    assert counts["skip"] == 1 and counts["upgrade"] == 1 and needed
    assert plan.summary([{"action": "skip"}])[1] is False


def test_not_deployable_says_why_a_component_can_never_go_to_this_node(tmp_path):
    dmi = tmp_path / "dmi"
    dmi.mkdir()
    (dmi / "bios_version").write_text("U30\n")
    base = component(tmp_path, "1.0")
    components = [
        dict(base, name="fwpkg", deployable=False, not_deployable="only a BMC can flash it (in-band deployment impossible)"),
        dict(base, name="old", superseded_by="new"),
        dict(base, name="new"),
        dict(base, name="win", os="windows"),
        dict(base, name="u32", applies_to={"bios_version": "^(U32)"}),
        dict(base, name="software", kind="software"),
    ]
    entries = {e["name"]: e for e in plan.plan(components, {"only": "firmware"}, dmi_root=str(dmi))}
    assert entries["fwpkg"]["not_deployable"] == "not deployable: only a BMC can flash it (in-band deployment impossible)"
    assert entries["old"]["not_deployable"].startswith("superseded by new (name old in the policy's components")
    assert entries["win"]["not_deployable"] == "for windows nodes, this node runs linux"
    assert entries["u32"]["not_deployable"].startswith("does not apply to this node: DMI bios_version is 'U30'")
    for name in ("fwpkg", "old", "win", "u32"):
        assert entries[name]["action"] == "skip" and entries[name]["reason"] == entries[name]["not_deployable"]
    # Deployable here: the policy's choice (only firmware) and an upgrade carry no not_deployable.
    assert entries["software"]["action"] == "skip" and entries["software"]["not_deployable"] is None
    assert entries["new"]["action"] == "upgrade" and entries["new"]["not_deployable"] is None
