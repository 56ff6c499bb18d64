#!powershell
# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -PowerShell ..module_utils.FleetProbe

# The Windows twin of reach.py (documentation lives there). Windows itself cannot run in the
# collection's test lab: this module is checked by sanity only.

$spec = @{
    options = @{
        hosts = @{ type = "list"; elements = "str"; required = $true }
        ports = @{ type = "list"; elements = "raw"; default = @("63002/tcp") }
        timeout = @{ type = "float"; default = 1.0 }
        family = @{ type = "str"; choices = "auto", "ipv4", "ipv6"; default = "auto" }
        errors = @{ type = "str"; choices = "strict", "warn", "ignore"; default = "strict" }
    }
    supports_check_mode = $true
}
$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)

try {
    $check = Invoke-FleetReach -Hosts $module.Params.hosts -Ports $module.Params.ports -Timeout $module.Params.timeout `
        -Family $module.Params.family -Errors $module.Params.errors
}
catch [System.ArgumentException] {
    $module.FailJson($_.Exception.Message)
}
foreach ($warning in $check.Warnings) {
    $module.Warn($warning)
}
$module.Result.changed = $false
$module.Result.reach = $check.Reach
$module.Result.all_open = $check.AllOpen
$module.ExitJson()
