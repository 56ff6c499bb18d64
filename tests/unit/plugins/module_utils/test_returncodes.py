# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""returncodes: the default tables per install kind and OS (HP SUM's documented codes), a
component's own map with exact errors, unknown codes, and the reboot policy."""
from __future__ import annotations

import pytest

from ansible_collections.fleet.firmware.plugins.module_utils import returncodes as rcs

LINUX_SC = {0: "installed", 1: "reboot_required", 2: "not_needed", 3: "failed", 4: "failed", 5: "failed", 6: "failed", 7: "failed"}
WINDOWS_SC = {0: "failed", 1: "installed", 2: "reboot_required", 3: "not_needed"}


def statuses(table) -> dict:
    return {code: status for code, (status, _message) in table.items()}


@pytest.mark.parametrize("kind, os_name, expected", [
    ("smart_component", "linux", LINUX_SC),
    ("smart_component", "windows", WINDOWS_SC),
    ("msi", "windows", {0: "installed", 1641: "reboot_required", 3010: "reboot_required"}),
    ("exe", "windows", {0: "installed", 1641: "reboot_required", 3010: "reboot_required"}),
    ("fwupd", "linux", {0: "installed", 2: "not_needed"}),
    ("rpm", "linux", {0: "installed"}), ("deb", "linux", {0: "installed"}), ("script", "windows", {0: "installed"}),
])
def test_the_default_table_of_each_kind_and_os(kind, os_name, expected):
    assert statuses(rcs.default_table(kind, os_name)) == expected


def test_the_messages_say_what_a_code_means():
    linux = rcs.default_table("smart_component", "linux")
    assert rcs.interpret(1, linux) == ("reboot_required", "installed, a reboot is required to activate it")
    assert rcs.interpret(6, linux) == ("failed", "multi-target: a dependency is not met")
    assert rcs.interpret(1641, rcs.WINDOWS_INSTALLER) == ("reboot_required", "installed, the installer started a reboot")
    assert rcs.interpret(2, rcs.FWUPD) == ("not_needed", "not needed: fwupd had nothing to do")


@pytest.mark.parametrize("rc", [8, -1, 255, 3011])
def test_an_unknown_code_is_a_failure_naming_it(rc):
    assert rcs.interpret(rc, rcs.default_table("smart_component", "linux") if rc != 3011 else rcs.WINDOWS_INSTALLER) == (
        "failed", "return code %d is not a success code of this installer" % rc)


def test_a_components_own_map_replaces_the_table():
    table = rcs.parse_table({0: "installed", "10": "reboot_required", " 3 ": "not_needed", "-2": "failed"})
    assert table == {
        0: ("installed", "installed (component's own return code map)"),
        10: ("reboot_required", "reboot required (component's own return code map)"),
        3: ("not_needed", "not needed (component's own return code map)"),
        -2: ("failed", "failed (component's own return code map)"),
    }
    assert rcs.parse_table({}) == {}


@pytest.mark.parametrize("mapping, message", [
    ([0, 1], "returncodes must be a mapping of return code to status, not list"),
    ("0: installed", "returncodes must be a mapping of return code to status, not str"),
    ({"ten": "installed"}, "returncodes key 'ten' is not an integer return code"),
    ({None: "installed"}, "returncodes key None is not an integer return code"),
    ({True: "installed"}, "returncodes key True is not an integer return code"),
    ({"010": "installed"}, "returncodes key '010' is not an integer return code"),
    ({"1.0": "installed"}, "returncodes key '1.0' is not an integer return code"),
    ({0: "ok"}, "returncodes 0: status 'ok' is not one of installed, reboot_required, not_needed, failed"),
    ({0: "timeout"}, "returncodes 0: status 'timeout' is not one of installed, reboot_required, not_needed, failed"),
])
def test_a_bad_map_is_refused_naming_the_entry(mapping, message):
    with pytest.raises(ValueError) as error:
        rcs.parse_table(mapping)
    assert str(error.value) == message


@pytest.mark.parametrize("status, reboot, expected", [
    ("installed", None, "installed"), ("reboot_required", None, "reboot_required"),
    ("installed", "if_rc", "installed"), ("reboot_required", "if_rc", "reboot_required"),
    ("installed", "required", "reboot_required"), ("reboot_required", "required", "reboot_required"),
    ("installed", "none", "installed"), ("reboot_required", "none", "installed"),
    ("not_needed", "required", "not_needed"), ("failed", "required", "failed"), ("timeout", "none", "timeout"),
])
def test_the_reboot_policy_over_the_status(status, reboot, expected):
    assert rcs.apply_reboot_policy(status, reboot) == expected


def test_the_status_sets():
    assert rcs.RC_STATUSES == ("installed", "reboot_required", "not_needed", "failed")
    assert rcs.STATUSES == rcs.RC_STATUSES + ("timeout",)
    assert rcs.SUCCESS_STATUSES == ("installed", "reboot_required", "not_needed")
