# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The roles' argument specs and checks refuse bad variables, with a message naming them, before
anything reaches a node (the lab's hosts are the targets; nothing is staged)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab


def run_role(lab, tmp_path: Path, role: str, host: str, variables: dict) -> str:
    book = tmp_path / "role.yml"
    book.write_text(f"- hosts: {host}\n  gather_facts: false\n  roles:\n    - role: fleet.firmware.{role}\n")
    proc = lab.playbook(book, "-e", json.dumps(variables))
    assert proc.returncode != 0, proc.stdout
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("role, host, variables, expected", [
    ("linux_node", "lin01", {"fleet_delivery": "bogus"}, "value of fleet_delivery must be one of: auto, pull, push, url, got: bogus"),
    ("linux_node", "lin01", {"fleet_lease": -1}, "fleet_lease=-1 must be 5 to 604800 seconds"),
    ("linux_node", "lin01", {"fleet_agent_port": 70000}, "fleet_agent_port=70000 must be 1 to 65535"),
    ("linux_node", "lin01", {"fleet_delivery": "url"}, "fleet_delivery=url needs fleet_repository_url"),
    ("linux_node", "lin01", {"fleet_become_method": "doas"}, "value of fleet_become_method must be one of"),
    ("linux_node", "lin01", {"fleet_run_tag": "Bad_Tag"}, "fleet_run_tag=Bad_Tag must be 1 to 32 characters"),
    ("windows_node", "win01", {"fleet_winrm_scheme": "http", "fleet_winrm_transport": "basic"},
     "fleet_winrm_transport=basic over fleet_winrm_scheme=http would send the password in clear"),
    ("windows_node", "win01", {"fleet_winrm_scheme": "http", "fleet_winrm_message_encryption": "never"},
     "messages must be encrypted over HTTP"),
    ("windows_node", "win01", {"fleet_winrm_cert_validation": "maybe"}, "value of fleet_winrm_cert_validation must be one of"),
    ("fleet_update", "lin01", {"fleet_path": "beos"}, "value of fleet_path must be one of"),
])
def test_bad_variables_are_refused_with_their_name(lab, tmp_path, role, host, variables, expected):
    repo = tmp_path / "repo"
    repo.mkdir()
    output = run_role(lab, tmp_path, role, host, {"fleet_repository": str(repo), **variables})
    assert expected in output, output
    assert "Deploy the baseline" not in output.split("fatal:")[0]


def test_the_repository_is_required(lab, tmp_path):
    output = run_role(lab, tmp_path, "linux_node", "lin01", {})
    assert "missing required arguments: fleet_repository" in output, output


def test_the_smb_password_is_never_shown(lab, tmp_path):
    variables = {"fleet_repository": "/nonexistent", "fleet_smb_password": "S3cret-xyz", "fleet_winrm_scheme": "http", "fleet_winrm_transport": "basic"}
    output = run_role(lab, tmp_path, "windows_node", "win01", variables)
    assert "S3cret-xyz" not in output
