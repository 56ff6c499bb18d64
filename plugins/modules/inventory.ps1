#!powershell
# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -PowerShell ..module_utils.FleetInventory

# The Windows twin of inventory.py (documentation lives there): registry, file, command and dmi
# detection, the same version rules and the same plan. Side-effect free. Windows itself cannot
# run in the collection's test lab: this module is checked by parsing and unit tests only.

$spec = @{
    options = @{
        baseline = @{ type = "list"; elements = "dict"; required = $true }
        allow_downgrade = @{ type = "bool"; default = $false }
        rewrite = @{ type = "bool"; default = $false }
        force = @{ type = "bool"; default = $false }
        only = @{ type = "str"; choices = "all", "firmware", "software"; default = "all" }
        components = @{ type = "list"; elements = "str"; default = @() }
        timeout = @{ type = "float"; default = 30.0 }
        # Accepted like inventory.py's, unused here: redfish detection is not supported on Windows
        # nodes yet (FleetInventory.psm1 reports it as an error, never as absent).
        redfish_address = @{ type = "str" }
        redfish_username = @{ type = "str" }
        redfish_password = @{ type = "str"; no_log = $true }
        redfish_validate_certs = @{ type = "bool"; default = $true }
        redfish_ca_path = @{ type = "path" }
        redfish_timeout = @{ type = "float"; default = 30.0 }
        redfish_from = @{ type = "str"; choices = "node", "controller"; default = "node" }
        redfish_inventory = @{ type = "list"; elements = "dict" }
        redfish_inventory_error = @{ type = "str" }
    }
    supports_check_mode = $true
}
$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)

$index = 0
foreach ($component in $module.Params.baseline) {
    $index++
    $missing = @("name", "version", "os", "detect" | Where-Object { -not $component[$_] })
    if ($missing.Count -gt 0) {
        $label = if ($component.name) { $component.name } else { "no name" }
        $module.FailJson("baseline entry $index ($label): missing $($missing -join ', ')")
    }
}

$policy = @{
    allow_downgrade = $module.Params.allow_downgrade
    rewrite = $module.Params.rewrite
    force = $module.Params.force
    only = $module.Params.only
    components = @($module.Params.components)
}
$result = Invoke-FleetInventory -Baseline @($module.Params.baseline) -Policy $policy -Timeout $module.Params.timeout

$module.Result.changed = $false
$module.Result.inventory = $result.Inventory
$module.Result.summary = $result.Summary
$module.Result.update_needed = $result.UpdateNeeded
$module.ExitJson()
