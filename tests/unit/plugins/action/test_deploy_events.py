# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The deploy action copies the agent's component events into the ledger once each, by seq,
also when the agent's status window (its latest events) has slid past what was read before."""
from __future__ import annotations

from ansible_collections.fleet.firmware.plugins.action import deploy as deploy_mod


class Recorder:
    def __init__(self) -> None:
        self.stages: list[tuple[str, str]] = []

    def stage(self, stage, component=None, **fields) -> None:
        self.stages.append((stage, component))


def window(first: int, last: int) -> dict:
    """A status whose events are seq first..last, one component per pair (installing, installed)."""
    events = []
    for seq in range(first, last + 1):
        number = (seq + 1) // 2
        events.append({"seq": seq, "state": "installing" if seq % 2 else "installed", "component": f"c{number}"})
    return {"events": events}


def test_every_event_reaches_the_ledger_once_when_the_window_slides():
    action = object.__new__(deploy_mod.ActionModule)
    session = Recorder()
    seen = action._record(session, window(1, 50), 0)
    seen = action._record(session, window(1, 50), seen)  # the same window again: nothing new
    seen = action._record(session, window(31, 80), seen)  # slid by 30: only 51..80 are new
    assert seen == 80
    assert [stage for stage, _component in session.stages] == ["installing", "installed"] * 40
    assert session.stages[-1] == ("installed", "c40")
