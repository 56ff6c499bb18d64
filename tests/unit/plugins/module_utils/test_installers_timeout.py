# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""installers: what the result of a timed-out installer says (issue 9, the hanging component
fault): stopped by SIGTERM (it could roll back) or killed by SIGKILL (may be half-installed)."""
from __future__ import annotations

from pathlib import Path

from ansible_collections.fleet.firmware.plugins.module_utils import installers


def script(folder: Path, body: str) -> str:
    path = folder / "hang.sh"
    path.write_text("#!/bin/sh\n" + body)
    return str(path)


def test_an_installer_rolling_back_on_sigterm_is_reported_stopped(tmp_path, monkeypatch):
    monkeypatch.setattr(installers, "KILL_GRACE", 5.0)
    marker = tmp_path / "partial"
    path = script(tmp_path, f"touch {marker}\ntrap 'rm -f {marker}; exit 143' TERM\nsleep 600\n")
    result = installers.install({"name": "hang", "install": "script", "timeout": 1}, path)
    assert result["status"] == "timeout" and result["rc"] is None
    assert result["message"].startswith("timed out after 1 s: ") and "stopped with SIGTERM" in result["message"]
    assert not marker.exists()


def test_a_child_ignoring_sigterm_makes_it_a_kill_even_when_the_leader_ended(tmp_path, monkeypatch):
    monkeypatch.setattr(installers, "KILL_GRACE", 1.0)
    path = script(tmp_path, "sh -c 'trap \"\" TERM; sleep 600' &\nwait\n")
    result = installers.install({"name": "hang", "install": "script", "timeout": 1}, path)
    assert "timed out after 1 s" in result["message"]
    assert "SIGKILL" in result["message"] and "may be half-installed" in result["message"]
