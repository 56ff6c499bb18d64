# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""deploy role=...: the roles' variables, defaults and checks inside the one deploy task."""
from __future__ import annotations

import pytest

from ansible_collections.fleet.firmware.plugins.plugin_utils import role_variables as rv


def update(variables: dict, role: str = "fleet_update", connection: str = "ssh"):
    def lookup(name):
        return variables[name]
    return rv.node_update(role, "lin01", connection, lookup, "/home/op")


def test_the_defaults_come_from_the_roles_and_the_path_from_the_connection():
    linux = update({"fleet_repository": "/srv/fw", "fleet_run_tag": "run-1"})
    assert linux.path == "linux" and linux.deploy["lease"] == 120 and linux.deploy["delivery"] == "auto"
    assert linux.deploy["repository"] == "/srv/fw" and linux.deploy["tag"] == "run-1" and linux.staging_min_free_mb == 64
    assert linux.preflight["engine_run_dir"] == "/home/op/.ansible/fleet-firmware/runs/run-1" and linux.preflight["timeout"] == 2.0
    windows = update({"fleet_repository": "/srv/fw"}, connection="ansible.builtin.psrp")
    assert windows.path == "windows" and windows.staging_min_free_mb == 0 and windows.deploy["tag"] is None
    assert update({"fleet_repository": "/srv/fw", "fleet_preflight": False}).preflight is None


@pytest.mark.parametrize("variables, expected", [
    ({}, "missing required arguments: fleet_repository"),
    ({"fleet_delivery": "bogus"}, "value of fleet_delivery must be one of: auto, pull, push, url, got: bogus"),
    ({"fleet_lease": -1}, "fleet_lease=-1 must be 5 to 604800 seconds"),
    ({"fleet_agent_port": 70000}, "fleet_agent_port=70000 must be 1 to 65535"),
    ({"fleet_delivery": "url"}, "fleet_delivery=url needs fleet_repository_url"),
    ({"fleet_become_method": "doas"}, "value of fleet_become_method must be one of"),
    ({"fleet_run_tag": "Bad_Tag"}, "fleet_run_tag=Bad_Tag must be 1 to 32 characters"),
    ({"fleet_path": "beos"}, "value of fleet_path must be one of"),
    ({"fleet_path": "windows", "fleet_winrm_scheme": "http", "fleet_winrm_transport": "basic"},
     "refused WinRM settings for lin01: fleet_winrm_transport=basic over fleet_winrm_scheme=http"),
])
def test_bad_variables_are_refused_with_the_roles_message(variables, expected):
    base = {} if not variables else {"fleet_repository": "/srv/fw"}
    with pytest.raises(rv.RoleVariablesError) as caught:
        update({**base, **variables})
    assert expected in str(caught.value)


def test_an_empty_value_is_no_value_as_the_roles_default_omit_said():
    got = update({"fleet_repository": "/srv/fw", "fleet_run_dir": "", "fleet_engine_address": [], "fleet_staging_dir": ""})
    assert got.deploy["run_dir"] is None and got.deploy["engine_address"] is None and got.deploy["staging_dir"] is None


def test_the_free_space_check_reads_df_as_the_role_did():
    df = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/x 1000000 900000 30720 97% /var/tmp\n"
    assert rv.free_space_problem(df, "lin01", 64) == "/var/tmp on lin01 has 30 MiB free, fleet_staging_min_free_mb asks for 64 MiB"
    assert rv.free_space_problem(df, "lin01", 30) is None


def test_every_deploy_option_is_reachable_from_the_roles():
    """Issue 20 item 2: every option of the deploy action a user may need has a role variable
    (``fleet_<option>``) in both path roles, and the one deploy task per host passes it on."""
    from ansible_collections.fleet.firmware.plugins.plugin_utils.deploy.spec import ARGUMENT_SPEC
    not_variables = {"role", "tag"}  # role: the task itself; tag: fleet_run_tag
    assert set(ARGUMENT_SPEC) - not_variables - set(rv.DEPLOY_OPTIONS) == set()
    for role in ("linux_node", "windows_node"):
        options, defaults = rv.role_files(role)
        missing = sorted(o for o in rv.DEPLOY_OPTIONS if f"fleet_{o}" not in options)
        if role == "windows_node":  # the agent starts one way on Windows (admin$ + WinRM)
            missing = [o for o in missing if o != "agent_start"]
        assert missing == [], (role, missing)
        assert set(defaults) <= set(options), (role, sorted(set(defaults) - set(options)))


def test_the_roles_redfish_variables_are_the_inventory_options():
    """One declaration of the BMC's options (detect.REDFISH_OPTIONS): the roles' variables agree."""
    from ansible_collections.fleet.firmware.plugins.module_utils.detect import REDFISH_OPTIONS
    for role in ("linux_node", "windows_node"):
        options, defaults = rv.role_files(role)
        for name, spec in REDFISH_OPTIONS.items():
            mine = options[f"fleet_{name}"]
            assert mine["type"] == spec["type"] and mine.get("default") == spec.get("default"), (role, name)
            assert bool(mine.get("no_log")) == bool(spec.get("no_log")), (role, name)
            assert defaults.get(f"fleet_{name}") == spec.get("default"), (role, name)


def test_nat_bmc_and_controller_firewall_variables_reach_the_deploy():
    got = update({"fleet_repository": "/srv/fw", "fleet_controller_address": ["198.18.35.250"], "fleet_open_controller_firewall": False,
                  "fleet_redfish_address": "198.19.35.10", "fleet_redfish_username": "bmc", "fleet_redfish_password": "s3cret",
                  "fleet_redfish_validate_certs": False, "fleet_redfish_timeout": 5})
    assert got.deploy["controller_address"] == ["198.18.35.250"] and got.deploy["open_controller_firewall"] is False
    assert got.preflight["controller_address"] == ["198.18.35.250"]
    assert (got.deploy["redfish_address"], got.deploy["redfish_username"], got.deploy["redfish_password"]) == ("198.19.35.10", "bmc", "s3cret")
    assert got.deploy["redfish_validate_certs"] is False and got.deploy["redfish_timeout"] == 5.0
    unset = update({"fleet_repository": "/srv/fw", "fleet_controller_address": [], "fleet_redfish_address": ""}, role="windows_node")
    assert unset.deploy["controller_address"] is None and unset.deploy["open_controller_firewall"] is None
    assert unset.deploy["redfish_address"] is None and unset.deploy["redfish_validate_certs"] is True
