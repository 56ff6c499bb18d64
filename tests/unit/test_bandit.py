# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""bandit over plugins/ (issue 18, proofs): clean, or each remaining finding listed with its
reason in tests/security/bandit-accepted.yml. A new finding fails; so does a listed one that is
gone, so the list stays the truth."""
from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1].parent
BANDIT = os.path.join(os.path.dirname(sys.executable), "bandit")


def test_bandit_finds_nothing_that_is_not_explained():
    proc = subprocess.run([BANDIT, "-c", str(ROOT / "tests/security/bandit.yml"), "-r", "plugins", "-f", "json", "-q"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    report = json.loads(proc.stdout)
    assert not report["errors"], report["errors"]
    found = collections.Counter((r["filename"], r["test_id"]) for r in report["results"])
    accepted = yaml.safe_load((ROOT / "tests/security/bandit-accepted.yml").read_text())
    assert all(entry.get("reason") for entry in accepted), "every accepted finding needs its reason"
    expected = collections.Counter({(entry["file"], entry["test"]): entry["count"] for entry in accepted})
    new = {f"{path} {test}": (count, expected.get((path, test), 0)) for (path, test), count in found.items() if count > expected.get((path, test), 0)}
    details = [f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_text']}" for r in report["results"]
               if f"{r['filename']} {r['test_id']}" in new]
    assert not new, "new bandit findings (fix, or list with a reason in tests/security/bandit-accepted.yml):\n" + "\n".join(details)
    gone = {f"{path} {test}" for (path, test), count in expected.items() if found.get((path, test), 0) < count}
    assert not gone, f"listed in bandit-accepted.yml but no longer found (remove them): {sorted(gone)}"
