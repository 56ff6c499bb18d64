# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""versions: one table of (a, b, expected order) for every form, and the unknowns with their reason."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from ansible_collections.fleet.firmware.plugins.module_utils import versions

ORDERED = [
    # dotted numbers
    ("1.2.3", "1.2.4", -1), ("1.10", "1.9", 1), ("2.10", "2.10.0", 0), ("1.0", "1", 0), ("4.1-2", "4.1-10", -1),
    ("1_2", "1.2", 0), ("010", "10", 0), ("3.0.0.1", "3.0", 1),
    # one trailing letter
    ("2.10a", "2.10", 1), ("2.10a", "2.10b", -1), ("2.10b", "2.11", -1), ("2.10A", "2.10a", 0), ("1.2a.3", "1.2a.4", -1),
    # dates (SPP)
    ("2024.04.00.00", "2023.09.0", 1), ("2024.04.00.00", "2024.04.00.01", -1), ("2024.04", "2024.04.00.00", 0),
    # vendor forms
    ("U30 v2.90 (07/20/2023)", "U30 v2.92 (11/03/2023)", -1), ("U30 v2.90 (07/20/2023)", "U30 v2.90 (07/20/2023)", 0),
    ("U30 v2.90 (07/20/2023)", "2.90", 0), ("u30  V2.92", "U30 v2.90", 1), ("iLO 5 v2.78", "iLO 5 v2.81", -1),
    ("U30 v2.90 (2023-07-20)", "U30 v2.90 (07/20/2023)", 0), ("v1.4", "1.3", 1),
    # hexadecimal
    ("2.10a", "2.10.0", 1), ("1.2a.3", "1.2b.1", -1),
    ("0x2006e05", "0x2006d05", 1), ("0x0A", "0xa", 0),
    # equal words
    ("1.0.beta", "1.0.beta", 0), ("1.0rc1", "1.0rc1", 0),
]


@pytest.mark.parametrize("a, b, order", ORDERED, ids=[f"{case[0]} vs {case[1]}" for case in ORDERED])
def test_order(a, b, order):
    assert versions.compare(a, b) == (order, "")
    # And the other way round.
    assert versions.compare(b, a).order == -order


UNKNOWN = [
    ("2024.04.00.00", "2.10", "date version"),
    ("U30 v2.90 (07/20/2023)", "U32 v2.90 (07/20/2023)", "different families"),
    ("U30 v2.90 (07/20/2023)", "U30 v2.90 (08/01/2023)", "same version but different dates"),
    ("U30 v2.92 (01/01/2020)", "U30 v2.90 (07/20/2023)", "date order disagree"),
    ("1.0rc1", "1.0", "no defined order"),
    ("1.0rc1", "1.0rc2", "no defined order"),
    ("1.0.beta", "1.0.1", "no defined order"),
    ("2.10a", "2.10.1", "letter against more numbers"),
    ("2.10a.0", "2.10.0.3", "letter against more numbers"),
    ("0x10", "16", "hex version"),
    ("", "1.0", "empty"),
    (None, "1.0", "no version"),
    ("N/A", "1.0", "no version"),
    ("not installed", "1.0", "no version"),
    ("1.0 build 7", "1.0", "which part"),
    ("1.0+git", "1.0", "neither a number"),
    ("U30 v2.90 (13/45/2023)", "U30 v2.90", "not a date"),
    ("(07/20/2023)", "1.0", "no version"),
]


@pytest.mark.parametrize("a, b, why", UNKNOWN, ids=[f"{case[0]} vs {case[1]}" for case in UNKNOWN])
def test_unknown_is_explicit_with_a_reason(a, b, why):
    result = versions.compare(a, b)
    assert result.order is None
    assert result.reason
    if why:
        assert why in result.reason
    assert versions.compare(b, a).order is None


def test_2_10a_against_2_10_1_is_unknown_not_a_guess():
    # A letter and a number in the same position: rpm would say the number wins, others differ.
    assert "no defined order" in versions.compare("2.10a", "2.10.1").reason


@pytest.mark.parametrize("text, reason", [("1.2.3", None), ("U30 v2.90 (07/20/2023)", None), ("", "empty"), ("v", "number"), ("beta", "number")])
def test_check(text, reason):
    result = versions.check(text)
    assert result is None if reason is None else reason in result


def test_parse_gives_the_scheme_and_family():
    parsed = versions.parse("U30 v2.90 (07/20/2023)")
    assert (parsed.scheme, parsed.family, parsed.date) == ("dotted", "u30", (2023, 7, 20))
    assert versions.parse("2024.04.00.00").scheme == "date"
    with pytest.raises(versions.UnknownVersion):
        versions.parse("1.0", scheme="semver")


DPKG_PAIRS = [
    ("1.0", "1.0-1"), ("1.0~rc1", "1.0"), ("1:0.9", "2.0"), ("2.34-0ubuntu3.2", "2.34-0ubuntu3.10"),
    ("1.2.3", "1.2.3"), ("1.0a", "1.0+b1"), ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12"), ("1.0-1", "1.0-1~bpo1"),
    ("0.0~git20200101", "0.0"), ("3.0.2", "3.0.10"), ("1.2+dfsg-1", "1.2-1"),
]


def dpkg_says(a: str, b: str) -> int:
    for op, order in (("lt", -1), ("eq", 0), ("gt", 1)):
        if subprocess.run(["dpkg", "--compare-versions", a, op, b], check=False).returncode == 0:
            return order
    raise AssertionError("dpkg has no order for %s %s" % (a, b))


@pytest.mark.skipif(not shutil.which("dpkg"), reason="dpkg is not installed")
@pytest.mark.parametrize("a, b", DPKG_PAIRS)
def test_dpkg_scheme_agrees_with_dpkg(a, b):
    assert versions.compare(a, b, "dpkg").order == dpkg_says(a, b)
    first, second = b, a
    assert versions.compare(first, second, "dpkg").order == dpkg_says(first, second)


@pytest.mark.parametrize("a, b, order", [
    ("1.0", "1.0", 0), ("1.0", "1.1", -1), ("1.0a", "1.0", 1), ("1.0~rc1", "1.0", -1), ("1.0^git1", "1.0", 1),
    ("2:1.0", "1:9.9", 1), ("1.0-1.el9", "1.0-2.el9", -1), ("1.0-1", "1.0", 0), ("1.010", "1.9", 1), ("1.0a", "1.0.1", -1),
    ("fc4", "fc.4", 0), ("5.5p1", "5.5p10", -1),
])
def test_rpm_scheme(a, b, order):
    # Expectations from rpm's own rpmvercmp test suite (rpmio/rpmvercmp.at).
    assert versions.compare(a, b, "rpm").order == order
    assert versions.compare(b, a, "rpm").order == -order


def test_bad_package_versions_are_unknown():
    assert versions.compare("", "1.0", "dpkg").order is None
    assert versions.compare("a b", "1.0", "rpm").order is None
    assert "Debian" in versions.compare("-1", "1.0", "dpkg").reason


@pytest.mark.parametrize("installed, available, order", [
    ("U30 v2.90 (07/20/2023)", "2.90_07-20-2023", 0),  # the SPP's form of the same ROM: never "older"
    ("U30 v2.90 (07/20/2023)", "2.92_11-03-2023", -1),
    ("U30 v2.92 (11/03/2023)", "2.90_07-20-2023", 1),
    ("U30 v2.90 (07/20/2023)", "v2.90 (07/20/2023)", 0),  # what the importer writes for a multi-family ROM
])
def test_system_rom_from_dmi_against_spp_rom_versions(installed, available, order):
    assert versions.compare(installed, available).order == order


def test_spp_rom_form_with_a_date_that_disagrees_is_unknown():
    result = versions.compare("U30 v2.90 (07/20/2023)", "2.90_11-03-2023")
    assert result.order is None and "different dates" in result.reason
