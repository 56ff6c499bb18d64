# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers for the engine's integration tests: a stand-in ``ansible-playbook`` whose forked
"workers" start or attach to the run's engine, exactly as the deploy action will."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO / "build" / "collections"

# The stand-in parent is called ansible-playbook (so the engine finds it as the process to
# watch, as it finds the real one); it starts N workers at once and then just lives.
PLAYBOOK = r'''
import json, os, subprocess, sys, time
run_dir, settings, workers, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
procs = [subprocess.Popen([sys.executable, "-c", WORKER, run_dir, settings, f"{out}.{i}"]) for i in range(workers)]
for proc in procs:
    proc.wait()
open(out, "w").write("ready")
while True:
    time.sleep(60)
'''
WORKER = r'''
import dataclasses, json, sys
from ansible_collections.fleet.firmware.plugins.plugin_utils import engine
run_dir, settings, out = sys.argv[1:4]
try:
    handle = engine.attach_or_start(run_dir, engine.EngineSettings(**json.loads(settings)))
    result = dataclasses.asdict(handle)
except Exception as exc:
    result = {"error": str(exc)}
open(out, "w").write(json.dumps(result))
'''


class StandInPlaybook:
    """A running stand-in ``ansible-playbook`` and the engine handles its workers got."""

    def __init__(self, run_dir: Path, settings: dict, workers: int = 2) -> None:
        self.run_dir = run_dir
        self.folder = run_dir.parent / f"bin-{uuid.uuid4().hex[:6]}"
        self.folder.mkdir(parents=True)
        script = self.folder / "ansible-playbook"
        script.write_text(f"WORKER = {WORKER!r}\n{PLAYBOOK}")
        out = self.folder / "out"
        env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
        self.proc = subprocess.Popen([sys.executable, str(script), str(run_dir), json.dumps(settings), str(workers), str(out)], env=env)
        deadline = time.monotonic() + 60
        while not out.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"the stand-in playbook did not get its engine (rc={self.proc.poll()})")
            time.sleep(0.05)
        self.handles = [json.loads((self.folder / f"out.{i}").read_text()) for i in range(workers)]
        errors = [h["error"] for h in self.handles if "error" in h]
        if errors:
            self.kill()
            raise AssertionError(f"a worker failed to attach: {errors}; log: {self.log()}")

    def log(self) -> str:
        path = self.run_dir / "engine.log"
        return path.read_text() if path.exists() else ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def wait_gone(pid: int, limit: float) -> bool:
    """True if ``pid`` is gone within ``limit`` seconds (a requirement bound, not a speed test)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)
