# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""versions at its edges: the cases behind the mutants that survived test_versions.py
(make mutation): boundaries of dates and calendar versions, RPM's caret and release."""
from __future__ import annotations

import pytest

from ansible_collections.fleet.firmware.plugins.module_utils import versions


def test_the_last_day_of_a_month_is_a_date():
    assert versions.parse("U30 v2.90 (12/31/2023)").date == (2023, 12, 31)
    assert versions.parse("U30 v2.90 (2023-01-01)").date == (2023, 1, 1)
    assert "is not a date" in versions.check("U30 v2.90 (12/32/2023)")


@pytest.mark.parametrize("text, scheme", [
    ("2024", "dotted"),  # one number: no month after the year, not a calendar version
    ("1989.01", "dotted"), ("1990.01", "date"), ("2199.12.00", "date"), ("2200.01", "dotted"), ("2024.13", "dotted"),
    ("2024.00.01", "date"), ("2024.12", "date"),  # month 00 (SPP numbering) and 12 are in
])
def test_which_versions_are_calendar_versions(text, scheme):
    assert versions.parse(text).scheme == scheme


def test_two_words_without_a_number_after_the_family_are_not_a_version():
    assert versions.check("U30 beta") == "cannot tell which part of 'U30 beta' is the version (write it as FAMILY vX.Y (MM/DD/YYYY))"


@pytest.mark.parametrize("a, b, order", [
    ("1.0^git1", "1.0", 1), ("1.0", "1.0^git1", -1), ("1.0^git1", "1.0.1", -1),  # caret: after the release, before the next
    ("1.0^2", "1.0^1", 1), ("1.0^1", "1.0^2", -1),
    ("9-2", "9-1", 1), ("9-1", "9-2", -1),  # same version: the release decides
])
def test_rpm_caret_and_release(a, b, order):
    assert versions.compare(a, b, "rpm")[0] == order


def test_a_month_past_twelve_is_not_a_date_even_with_a_good_day():
    assert "is not a date" in versions.check("U30 v2.90 (13/01/2023)")


def test_a_family_then_a_plain_number():
    parsed = versions.parse("BIOS 2.90")
    assert (parsed.family, parsed.key) == ("bios", ((2, ""), (90, "")))
    # A first word that starts with a digit is no family: which part is the version is unclear.
    assert versions.check("1A 2.90") == "cannot tell which part of '1A 2.90' is the version (write it as FAMILY vX.Y (MM/DD/YYYY))"


@pytest.mark.parametrize("a, b, order", [
    ("1.0.1", "1.0^git1", 1),  # a caret version is older than the next release, from either side
    ("1.0~rc2", "1.0~rc1", 1), ("1.0~rc1", "1.0~rc2", -1), ("1.0~rc1", "1.0", -1),  # tilde: before the release
])
def test_rpm_tilde_and_caret_from_both_sides(a, b, order):
    assert versions.compare(a, b, "rpm")[0] == order


def test_dpkg_a_missing_number_counts_as_zero():
    assert versions.compare("1.0a", "1.0a0", "dpkg")[0] == 0
    assert versions.compare("1.0a0", "1.0a", "dpkg")[0] == 0
