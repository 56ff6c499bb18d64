#!powershell
# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -PowerShell ansible_collections.fleet.firmware.plugins.module_utils.FleetFirewall

# The Windows twin of firewall.py (which holds the documentation): the Windows Firewall.

$spec = @{
    options = @{
        state = @{ type = 'str'; default = 'open'; choices = 'open', 'closed' }
        ports = @{ type = 'list'; elements = 'str'; default = @() }
        direction = @{ type = 'str'; default = 'in'; choices = 'in', 'out' }
        source = @{ type = 'list'; elements = 'str'; default = @() }
        tag = @{ type = 'str'; required = $true }
        lease = @{ type = 'int'; default = 0 }
        backend = @{ type = 'str'; default = 'auto'; choices = 'auto', 'iptables', 'nftables', 'firewalld', 'ufw', 'windows' }
    }
    supports_check_mode = $true
}
$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)
$p = $module.Params

if ($p.backend -notin @('auto', 'windows')) {
    $module.FailJson("backend '$($p.backend)' is a Linux firewall: on Windows use auto or windows")
}

$module.Result.backend = 'windows'
$module.Result.rules = @()
$module.Result.removed = @()
$module.Result.lease_expires = $null

try {
    if ($p.state -eq 'closed') {
        $tag = Test-FleetTag -Tag $p.tag -AllowSweep
        $before = @(Get-FleetRule -Tag $tag | ForEach-Object { $_.Name })
        $done = Close-FleetFirewall -Tag $tag -CheckMode:$module.CheckMode
        $module.Result.rules = @($done.removed)
        $after = @()
    }
    else {
        $tag = Test-FleetTag -Tag $p.tag
        if ($p.ports.Count -eq 0) { $module.FailJson('ports is empty: state=open needs at least one port') }
        if ($p.lease -lt 0) { $module.FailJson("lease '$($p.lease)' is invalid: give whole seconds, 0 for no lease") }
        # Everything is validated before anything is touched.
        $seen = @{}
        $ports = @($p.ports | ForEach-Object { ConvertTo-FleetPort -Value $_ } | Where-Object {
                # The same port twice would be the same rule name twice.
                $key = '{0}/{1}' -f $_.Text, $_.Proto
                $new = -not $seen.ContainsKey($key)
                $seen[$key] = $true
                $new
            })
        $sources = @($p.source | ForEach-Object { Test-FleetSource -Value $_ })
        $rules = @($ports | ForEach-Object { New-FleetRuleParameter -Tag $tag -Port $_ -Direction $p.direction -Source $sources })
        $before = @(Get-FleetRule -Tag $tag | ForEach-Object { $_.Name })
        $done = Open-FleetFirewall -Tag $tag -Rules $rules -CheckMode:$module.CheckMode
        $module.Result.rules = @($done.added)
        $module.Result.removed = @($done.removed)
        $after = @($rules | ForEach-Object { $_.Name })
        if ($p.lease -gt 0) {
            $expires = [datetime]::UtcNow.AddSeconds($p.lease)
            if (-not $module.CheckMode) { Set-FleetLease -Tag $tag -Expires $expires }
            $module.Result.lease_expires = $expires.ToString('yyyy-MM-ddTHH:mm:ssZ')
        }
        elseif (-not $module.CheckMode) {
            Remove-FleetLease -Tag $tag
        }
    }
}
catch {
    $module.FailJson($_.Exception.Message, $_)
}

$module.Result.changed = $done.changed
if ($module.DiffMode) {
    $module.Diff.before = ($before | ForEach-Object { "$_`n" }) -join ''
    $module.Diff.after = ($after | ForEach-Object { "$_`n" }) -join ''
}
$module.ExitJson()
