# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lease watchdog runs from its own copy of the firewall package (Ansible deletes the module's
zip): that copy must import on its own, with everything the package imports from module_utils.
A watchdog that cannot import dies at once, and a leased opening then outlives a dead controller."""
from __future__ import annotations

import subprocess
import sys

from ansible_collections.fleet.firmware.plugins.module_utils.firewall import lease


def test_the_watchdogs_copy_of_the_package_imports_on_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv("FLEET_FIREWALL_STATE_DIR", str(tmp_path))
    root = lease.install_lib()
    # -I: no PYTHONPATH, no user site; only the copy can provide the collection's modules.
    code = "import sys; sys.path.insert(0, sys.argv[1]); from %s import api, lease; print(lease.__file__)" % lease.PACKAGE
    proc = subprocess.run([sys.executable, "-I", "-c", code, root], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(root)
