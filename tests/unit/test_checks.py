# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The test helpers of tests/integration/checks.py: the recap parser and wait_for."""
from __future__ import annotations

import itertools

import pytest

from checks import recap, wait_for

OUTPUT = """
PLAY [first] *******************************************************************
TASK [x] ***********************************************************************
ok: [lin01]

PLAY RECAP *********************************************************************
lin01                      : ok=1    changed=0    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0

PLAY [second] ******************************************************************

PLAY RECAP *********************************************************************
lin01                      : ok=3    changed=1    unreachable=0    failed=12   skipped=0    rescued=0    ignored=0
v6n01                      : ok=2    changed=0    unreachable=1    failed=0    skipped=4    rescued=1    ignored=2

report: /tmp/report.html
"""


def test_the_last_recap_is_parsed_into_exact_numbers():
    assert recap(OUTPUT) == {
        "lin01": {"ok": 3, "changed": 1, "unreachable": 0, "failed": 12, "skipped": 0, "rescued": 0, "ignored": 0},
        "v6n01": {"ok": 2, "changed": 0, "unreachable": 1, "failed": 0, "skipped": 4, "rescued": 1, "ignored": 2},
    }


@pytest.mark.parametrize("output", ["PLAY [x] ***\nok: [lin01]\n", "PLAY RECAP ***\n\nsomething else\n"])
def test_no_recap_or_an_empty_one_is_an_error_not_an_empty_result(output):
    with pytest.raises(AssertionError, match="RECAP"):
        recap(output)


def test_wait_for_returns_the_first_true_value():
    values = iter([0, None, "", "there"])
    assert wait_for(lambda: next(values), 30, "a value", step=0) == "there"


def test_wait_for_fails_naming_what_it_waited_for():
    calls = itertools.count()
    with pytest.raises(AssertionError, match="the moon"):
        wait_for(lambda: next(calls) < 0, 0, "the moon", step=0)
