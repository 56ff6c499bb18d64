# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""teardown.staging_in_use: what tells a cleanup that a staging folder is a newer start's, not a
leftover (a resume of the tag while the orphaned worker of a killed run cleans up)."""
from __future__ import annotations

import subprocess
import sys

from ansible_collections.fleet.firmware.plugins.module_utils.agent import teardown


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_leftover_folder_is_not_in_use(tmp_path):
    (tmp_path / "agent.pyz").write_bytes(b"left by a killed agent")
    (tmp_path / f".agent-{dead_pid()}.pyz").write_bytes(b"left by a killed launcher")
    (tmp_path / ".agent-notapid.pyz").write_bytes(b"")
    assert teardown.staging_in_use(str(tmp_path)) is None


def test_a_live_launchers_file_marks_the_folder(tmp_path):
    launcher = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / f".agent-{launcher.pid}.pyz").write_bytes(b"")
        reason = teardown.staging_in_use(str(tmp_path))
        assert reason == f"the launcher pid {launcher.pid} is starting an agent in {tmp_path}"
    finally:
        launcher.kill()
        launcher.wait()
    assert teardown.staging_in_use(str(tmp_path)) is None


def test_a_process_working_in_the_folder_marks_it_by_inode_not_by_name(tmp_path):
    folder = tmp_path / "staging"
    folder.mkdir()
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=folder)
    try:
        assert teardown.staging_in_use(str(folder)) == f"process {worker.pid} works in {folder}"
        # Another folder of the same name (as in another mount namespace) is not that one.
        folder.rename(tmp_path / "moved")
        folder.mkdir()
        assert teardown.staging_in_use(str(folder)) is None
    finally:
        worker.kill()
        worker.wait()


def test_a_missing_folder_is_not_in_use(tmp_path):
    assert teardown.staging_in_use(str(tmp_path / "absent")) is None
