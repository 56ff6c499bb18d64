# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One bounded atheris run of a target, in a process of its own (libFuzzer ends the process it
runs in), from a scratch copy of the target's seeds; used by the smoke test (make test), by
``make fuzz`` and by the long runs in ``make test-faults``."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
TARGETS = ("range_header", "cp_xml", "manifest", "versions")


def fuzz(target: str, runs: int, scratch: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """Fuzz ``target`` for ``runs`` inputs; a finding is written to ``scratch`` as crash-<sha1>."""
    corpus = scratch / "corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    seeds = HERE / "corpus" / target
    if seeds.is_dir():
        shutil.copytree(seeds, corpus)
    else:
        corpus.mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(REPO / "build" / "collections")]))
    argv = [sys.executable, str(HERE / "run.py"), target, f"-atheris_runs={runs}", f"-artifact_prefix={scratch}/",
            "-max_len=8192", "-rss_limit_mb=2048", str(corpus)]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=scratch, timeout=timeout, check=False)


def findings(scratch: Path) -> list[Path]:
    return sorted(scratch.glob("crash-*")) + sorted(scratch.glob("timeout-*")) + sorted(scratch.glob("oom-*"))


def main(argv: list[str]) -> int:
    """``campaign.py RUNS [TARGET...]``: every target (or those named) for RUNS inputs each."""
    runs = int(argv[1]) if len(argv) > 1 else 100_000
    failed = 0
    for target in argv[2:] or TARGETS:
        scratch = REPO / "build" / "fuzz" / target
        scratch.mkdir(parents=True, exist_ok=True)
        for old in findings(scratch):
            old.unlink()
        proc = fuzz(target, runs, scratch, timeout=None)
        found = findings(scratch)
        status = "ok" if proc.returncode == 0 and not found else f"FINDING (rc {proc.returncode}): {[str(f) for f in found]}"
        print(f"{target}: {runs} runs, {status}")
        if status != "ok":
            print((proc.stdout + proc.stderr)[-4000:])
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
