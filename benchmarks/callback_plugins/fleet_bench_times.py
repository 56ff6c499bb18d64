# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a benchmarked playbook's time goes: seconds from each task's start to the start of the
next one (with the linear strategy every host finishes a task before the next task starts).

Enabled by benchmarks/fleet.py only (ANSIBLE_CALLBACK_PLUGINS and ANSIBLE_CALLBACKS_ENABLED),
which reads the JSON file named by FLEET_BENCH_TIMES at the end of the run.
"""
from __future__ import annotations

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: fleet_bench_times
type: aggregate
short_description: seconds per task, for benchmarks/fleet.py
description: Writes the seconds of every task (start to the next task's start) to the file named by FLEET_BENCH_TIMES.
requirements: [enabled by benchmarks/fleet.py]
"""


class CallbackModule(CallbackBase):
    """Task name -> seconds, summed over plays and waves."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "fleet_bench_times"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.current: tuple[str, float] | None = None
        self.seconds: dict[str, float] = {}

    def _next(self, name: str | None) -> None:
        now = time.monotonic()
        if self.current is not None:
            label, started = self.current
            self.seconds[label] = self.seconds.get(label, 0.0) + now - started
        self.current = (name, now) if name is not None else None

    def v2_playbook_on_task_start(self, task, is_conditional) -> None:
        self._next(task.get_name())

    def v2_playbook_on_play_start(self, play) -> None:
        self._next(None)

    def v2_playbook_on_stats(self, stats) -> None:
        self._next(None)
        path = os.environ.get("FLEET_BENCH_TIMES")
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(self.seconds, handle)
