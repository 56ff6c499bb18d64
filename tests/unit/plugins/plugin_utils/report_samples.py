# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A run folder as the deploy action and the engine write it (ledger lines with chosen times),
for the report tests; and the deploy results that go with it."""
from __future__ import annotations

import json
from pathlib import Path

T0 = 1_780_000_000.0
TAG = "rep-unit"
# A hostile name and message: markup, quotes, a URL, a control character.
EVIL = "<script>alert('x')</script> & \"q\" https://evil.example/x\x01"


def write_ledger(run_dir: Path, node: str, lines: list[tuple]) -> None:
    """lines: (seconds after T0, source, fields)."""
    folder = run_dir / "ledger"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{node}.jsonl", "a", encoding="utf-8") as out:
        for seq, (offset, source, fields) in enumerate(lines, start=1):
            record = {"ts": T0 + offset, "seq": seq, "node": node, "source": source}
            record.update(fields)
            out.write(json.dumps(record, sort_keys=True) + "\n")


def setup_stages(start: float) -> list[tuple]:
    return [(start + i * 0.5, "deploy", {"stage": s}) for i, s in enumerate(("preflight", "staged", "started", "firewall_open"))] + [
        (start + 1.0, "engine", {"event": "session_opened"}),
        (start + 2.0, "deploy", {"stage": "inventoried"}), (start + 2.5, "deploy", {"stage": "planned"})]


def make_run(root: Path) -> Path:
    """lin01: fw-a installed after a reboot, sw-b installed; lin02: bad failed (rc 3), needs-bad skipped
    by dependency, free installed; v6n01: cancelled mid-run; w01: killed before its cleanup."""
    run_dir = root / TAG
    write_ledger(run_dir, "lin01", setup_stages(0) + [
        (3.0, "deploy", {"stage": "downloading", "component": "fw-a"}),
        (3.2, "node", {"stage": "downloading", "component": "fw-a", "progress": 50}),
        (3.4, "deploy", {"stage": "verified", "component": "fw-a"}),
        (4.0, "deploy", {"stage": "installing", "component": "fw-a"}),
        (6.0, "deploy", {"stage": "installed", "component": "fw-a", "rc": 0, "message": "reboot_required"}),
        (6.1, "deploy", {"stage": "installing", "component": "sw-b"}),
        (7.1, "deploy", {"stage": "installed", "component": "sw-b", "rc": 0}),
        (8.0, "deploy", {"stage": "rebooting"}), (12.0, "deploy", {"stage": "activated"}),
        (13.0, "deploy", {"stage": "cleaned"})])
    write_ledger(run_dir, "lin02", setup_stages(0.2) + [
        (4.0, "deploy", {"stage": "installing", "component": "bad"}),
        (5.0, "deploy", {"stage": "failed", "component": "bad", "rc": 3, "message": "exit code 3 (failed)"}),
        (5.1, "deploy", {"stage": "skipped", "component": "needs-bad", "message": "omit_component: bad failed"}),
        (5.2, "deploy", {"stage": "installing", "component": "free"}),
        (5.5, "deploy", {"stage": "installed", "component": "free", "rc": 0}),
        (6.0, "deploy", {"stage": "cleaned"})])
    write_ledger(run_dir, "v6n01", setup_stages(0.4) + [
        (4.0, "deploy", {"stage": "installing", "component": "fw-a"}),
        (5.0, "deploy", {"stage": "installed", "component": "fw-a", "rc": 0}),
        (5.1, "deploy", {"stage": "skipped", "component": "sw-b", "message": "cancelled"}),
        (5.2, "deploy", {"stage": "cancelled"}), (5.9, "deploy", {"stage": "cleaned"})])
    write_ledger(run_dir, "w01", setup_stages(0.6) + [
        (4.0, "deploy", {"stage": "downloading", "component": "fw-a"})])
    return run_dir


def results_for(run_dir: Path) -> dict[str, dict]:
    """Deploy results of lin01 and lin02 (as the action returns them), and an unreachable host."""
    def row(name, before, after, action, status, rc, message, duration):
        return {"name": name, "before": before, "after": after, "action": action, "status": status, "rc": rc,
                "message": message, "duration_s": duration}
    common = {"run_tag": TAG, "delivery": "pull", "transfer": "ssh", "cleanup": ["agent pid 1"]}
    return {
        "lin01": dict(common, changed=True, ledger=str(run_dir / "ledger" / "lin01.jsonl"), reboot_required=False, rebooted=True,
                      components=[row("fw-a", "1.0", "2.0", "upgrade", "installed", 0, "installed", 2.0),
                                  row("sw-b", None, "1.5", "install", "installed", 0, "installed", 1.0)]),
        "lin02": dict(common, failed=True, msg="component(s) failed on lin02: bad", ledger=str(run_dir / "ledger" / "lin02.jsonl"),
                      reboot_required=False, rebooted=False,
                      components=[row("bad", "0.9", "0.9", "upgrade", "failed", 3, EVIL, 1.0),
                                  row("needs-bad", None, None, "install", "skipped", None, "omit_component: bad failed", None),
                                  row("free", None, "1.0", "install", "installed", 0, "installed", 0.3)]),
        "gone": {"unreachable": True, "msg": "Failed to connect to the host via ssh"},
    }
