# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The BMC's settings as role variables (issue 20 item 2): update_fleet with fleet_redfish_*
plans a component detected by Redfish target id with the node's own BMC (sushy-static over
HTTPS on the node's host interface, lab CA) and installs it; without them the BMC cannot be asked
and the component is skipped, saying so. The password is never in the output."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import checks
from deploy_helpers import lab_trust
from test_detect_lab import make_redfish_repo

pytestmark = pytest.mark.lab

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "update_fleet.yml"
NODE = "lin01"
BMC_VARIABLES = {"fleet_redfish_address": "{{ fleet_lab_bmc_address }}", "fleet_redfish_username": "{{ fleet_lab_bmc_user }}",
                 "fleet_redfish_password": "{{ fleet_lab_bmc_password }}", "fleet_redfish_ca_path": "{{ fleet_lab_bmc_ca }}",
                 "fleet_redfish_validate_certs": True, "fleet_redfish_timeout": 10}


@pytest.fixture
def bmc(lab):
    lab.lab.set_firmware(lab.node(NODE))  # the profile's versions: the Smart Array at 6.22
    yield lab.lab.home / "nodes" / NODE / "redfish" / "UpdateService"
    lab.lab.set_firmware(lab.node(NODE))


def run(lab, tmp_path, tag: str, extra: dict):
    repo = make_redfish_repo(lab, tmp_path / "repo", NODE)
    variables = {"fleet_repository": str(repo), "fleet_hosts": NODE, "fleet_waves": ["100%"], "fleet_run_tag": tag,
                 "fleet_run_dir": str(lab.lab.home / "runs" / tag), "fleet_lease": 30, "fleet_trust": lab_trust(), **extra}
    proc = lab.playbook(PLAYBOOK, "-v", "-e", json.dumps(variables), timeout=600)
    return proc.stdout + proc.stderr, checks.recap(proc.stdout)


def smart_array_version(mockup: Path) -> set[str]:
    found = set()
    for path in mockup.rglob("*.json"):
        data = json.loads(path.read_text())
        for item in data.get("Members", [data]):
            if isinstance(item, dict) and "Smart Array" in str(item.get("Name", "")):
                found.add(item.get("Version"))
    return found


def test_update_fleet_asks_the_bmc_with_the_role_variables(lab, bmc, tmp_path):
    output, recap = run(lab, tmp_path, "bmc-vars", BMC_VARIABLES)
    assert recap[NODE]["failed"] == 0 and recap[NODE]["changed"] == 1, output[-4000:]
    assert smart_array_version(bmc) == {"7.00"}, output[-4000:]
    assert '"before": "6.22"' in output and '"after": "7.00"' in output, output[-4000:]
    assert lab.lab.passwords["bmc_password"] not in output


def test_without_the_bmc_variables_the_component_is_not_installed(lab, bmc, tmp_path):
    output, recap = run(lab, tmp_path, "bmc-none", {})
    # Not installed, and the plan says why (skipped: the installed version cannot be told).
    assert recap[NODE]["changed"] == 0 and recap[NODE]["failed"] == 0, output[-4000:]
    assert smart_array_version(bmc) == {"6.22"}, output[-4000:]
    assert "cannot read the BMC's firmware inventory: no BMC settings: give redfish_address" in output, output[-4000:]
