# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 18 item 4: ``repository --diff`` (and ``proposed``) never show a component's
``environment`` values, which docs/repository.md calls secret; the names still show."""
from __future__ import annotations

import subprocess

import yaml
from conftest import ansible_bin, ansible_env
from deploy_helpers import lab_trust
from test_repository import fill_in, folder, repository

CANARY = "CANARY-env-7f3a9c"


def test_diff_and_results_mask_environment_values(tmp_path):
    repo = folder(tmp_path)
    (repo / "manifest.yml").write_text(repository({"path": str(repo)})[1]["proposed"])
    fill_in(repo)
    data = yaml.safe_load((repo / "manifest.yml").read_text())
    data["components"][0]["environment"] = {"BIOS_PASSWORD": CANARY}
    (repo / "manifest.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    (repo / "bios/U30_2.92.scexe").write_bytes(b"#!/bin/sh\nexit 0\n")  # something to diff
    status, result = repository({"path": str(repo)}, "--check", "--diff")
    assert status == "CHANGED" and CANARY not in repr(result)
    # What the operator's terminal shows with --diff (ansible-playbook renders the diff): the
    # environment's names, never its values; nor does the registered result hold them.
    playbook = tmp_path / "diff.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"fleet.firmware.repository": {"path": str(repo), "trust": lab_trust()}, "register": "built"},
        {"ansible.builtin.debug": {"var": "built"}}]}]))
    proc = subprocess.run([ansible_bin("ansible-playbook"), str(playbook), "--check", "--diff"],
                          capture_output=True, text=True, env=ansible_env(), timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "+++ after" in proc.stdout and "BIOS_PASSWORD" in proc.stdout, proc.stdout[-2000:]
    assert CANARY not in proc.stdout + proc.stderr
    assert CANARY in (repo / "manifest.yml").read_text()  # the file itself keeps the value
