# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every benchmark (benchmarks/bench_*.py and benchmarks/fleet.py, found by name, so a new one is
covered at once) runs in its quick mode, so that a benchmark that no longer works fails make test.

Each runs from a copy of this checkout placed under /root, a folder the lab's nodes privatize (as
they do /tmp and /home): a benchmark whose clients inside a node read a file from the checkout
breaks here, as it would for a user whose clone lives in a home folder. Each gets a lab instance of
its own (FLEET_LAB_ID from $FLEET_BENCH_LAB_BASE, default 40, one per benchmark), which it takes up
and down itself.

Asserted (benchmarks/README.md): the benchmark exits 0 and its ``--json`` file's ``measurements`` are
all finite numbers > 0. Never a speed. A missing tool makes the benchmark exit non-zero: a failure.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import benchlib  # noqa: E402  pylint: disable=wrong-import-position

pytestmark = pytest.mark.lab
BENCHMARKS = sorted(p.name for p in (REPO / "benchmarks").glob("bench_*.py")) + ["fleet.py"]
LAB_BASE = int(os.environ.get("FLEET_BENCH_LAB_BASE", "40"))
# A guard against a hung benchmark, not a timed assertion: the budget of a quick mode is a minute.
HANG_GUARD_S = 600
PRIVATE_PARENT = Path("/root")


@pytest.fixture(scope="module")
def private_clone(lab_session):  # pylint: disable=unused-argument  # its teardown checks the host network
    """The files git knows (tracked, and untracked but not ignored: the working copy, as `make collection`
    copies it for sanity) under /root, with the collection link `make collection` makes. The venv is
    this checkout's (sys.executable): building one per run would take minutes."""
    clone = Path(tempfile.mkdtemp(prefix="fleet-bench-smoke-", dir=PRIVATE_PARENT))
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout
    subprocess.run(["tar", "--null", "--ignore-failed-read", "-T", "-", "-cf", str(clone / ".files.tar")], cwd=REPO,
                   input=files, capture_output=True, check=True)
    subprocess.run(["tar", "-xf", ".files.tar"], cwd=clone, check=True)
    (clone / ".files.tar").unlink()
    link = clone / "build" / "collections" / "ansible_collections" / "fleet" / "firmware"
    link.parent.mkdir(parents=True)
    link.symlink_to(clone)
    yield clone
    shutil.rmtree(clone, ignore_errors=True)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_quick_mode_measures(private_clone, name, tmp_path):
    lab_id = LAB_BASE + BENCHMARKS.index(name)
    out = tmp_path / "results.json"
    env = dict(os.environ, FLEET_LAB_ID=str(lab_id), PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}:/usr/sbin:/sbin")
    env.pop("FLEET_LAB_HOME", None)
    started = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, f"benchmarks/{name}", "--quick", "--json", str(out)], cwd=private_clone, env=env,
                              capture_output=True, text=True, timeout=HANG_GUARD_S, check=False)
    finally:
        # Whatever happened, this benchmark's lab goes (it takes it down itself; this is the safety net).
        subprocess.run([sys.executable, "tests/lab/fleetlab.py", "down"], cwd=private_clone, env=env, capture_output=True, check=False)
    elapsed = time.monotonic() - started
    print(f"{name}: quick mode took {elapsed:.0f} s (FLEET_LAB_ID={lab_id}, from {private_clone})")
    tail = (proc.stdout[-3000:] + "\n--- stderr ---\n" + proc.stderr[-3000:])
    assert "unrecognized arguments" not in proc.stderr, (
        f"{name} does not take --quick and --json, which every benchmark must (benchmarks/README.md):\n{tail}")
    assert proc.returncode == 0, f"{name} --quick failed (rc={proc.returncode}):\n{tail}"
    assert out.exists(), f"{name} --quick wrote no --json file:\n{tail}"
    measurements = json.loads(out.read_text()).get("measurements")
    problems = benchlib.bad_measurements(measurements)
    assert not problems, f"{name} --quick: {problems}\n{tail}"
