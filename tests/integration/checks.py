# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Checks shared by the test layers (on pytest's pythonpath, so unit, integration and fault
tests import it alike):

- ``wait_for``: wait for a condition. The deadline is generous and only keeps a broken run from
  hanging; it is never what a test asserts (no test measures speed).
- ``recap``: the PLAY RECAP of an ``ansible-playbook`` run as numbers per host, so that a test
  compares counts exactly (``failed=1`` as a substring also matches ``failed=12``).
"""
from __future__ import annotations

import re
import time
from typing import Callable, TypeVar

T = TypeVar("T")

RECAP_COUNTERS = ("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored")
_HOST_LINE = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$")


def wait_for(condition: Callable[[], T], deadline: float, what: str, step: float = 0.2) -> T:
    """Poll ``condition`` until it returns something true and return that. After ``deadline``
    seconds, fail naming ``what`` was awaited. Pick the deadline for a loaded 2-core machine."""
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= end:
            raise AssertionError(f"still waiting after {deadline} s: {what}")
        time.sleep(step)


def recap(output: str) -> dict[str, dict[str, int]]:
    """Parse the last ``PLAY RECAP`` of ``output``: {host: {ok, changed, unreachable, failed,
    skipped, rescued, ignored}}. No recap at all is an error, not an empty result."""
    if "PLAY RECAP" not in output:
        raise AssertionError(f"no PLAY RECAP in the output:\n{output[-3000:]}")
    hosts: dict[str, dict[str, int]] = {}
    for line in output.rsplit("PLAY RECAP", 1)[1].splitlines()[1:]:
        match = _HOST_LINE.match(line.strip())
        if not match:
            if hosts:
                break  # the recap ends at the first line that is not a host's
            continue
        counts = dict(pair.split("=") for pair in match["counts"].split())
        hosts[match["host"]] = {name: int(counts.get(name, 0)) for name in RECAP_COUNTERS}
    if not hosts:
        raise AssertionError(f"a PLAY RECAP without host lines:\n{output[-3000:]}")
    return hosts
