# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Tagged Windows Firewall openings with a lease: the PowerShell twin of
# plugins/module_utils/firewall (Python). Used by the firewall.ps1 module and the node agent.
# Every rule is named fleet-firmware-<tag>-<port>-<proto>[-<n>] and sits in the group
# fleet-firmware-<tag>: closing removes that group's rules and nothing else. The lease is a
# scheduled task fleet-firmware-<tag>-lease that removes the group when it fires.
# The tests parse this file with a PowerShell grammar and check the tables below against the
# Python backends; it has not run on a real Windows host in the project's test suite.

Set-StrictMode -Version 2.0

# Kept equal to the Python side (tests/unit/plugins/modules/test_firewall_ps1.py checks it).
$FleetMarker = 'fleet-firmware'
$FleetTagPattern = '^[a-z0-9-]{1,32}$'
$FleetPortPattern = '^(?<first>\d{1,5})(?:-(?<last>\d{1,5}))?(?:/(?<proto>[A-Za-z0-9]+))?$'
$FleetRuleNameFormat = '{0}-{1}-{2}-{3}'
$FleetProtocolMap = @{ tcp = 'TCP'; udp = 'UDP' }
$FleetDirectionMap = @{ in = 'Inbound'; out = 'Outbound' }
$FleetDescriptionFormat = 'fleet.firmware run {0}: {1} {2} {3} from {4} (closed by the run or its lease)'

Function Test-FleetTag {
    <# Returns the tag, or throws naming the bad value. '*' only when -AllowSweep. #>
    param([Parameter(Mandatory = $true)][AllowEmptyString()][string]$Tag, [switch]$AllowSweep)
    if ($AllowSweep -and $Tag -eq '*') { return $Tag }
    # .NET's $ also matches before a final newline: refuse that explicitly (a tag ends up in names).
    if ($Tag -cnotmatch $FleetTagPattern -or $Tag.EndsWith("`n")) {
        throw "tag '$Tag' is invalid: it must be 1 to 32 characters of a-z, 0-9 and '-'"
    }
    return $Tag
}

Function ConvertTo-FleetPort {
    <# '62286', '62286/tcp', '1000-2000/udp' -> @{ Proto; First; Last; Text } #>
    param([Parameter(Mandatory = $true)][string]$Value)
    $text = $Value.Trim()
    $m = [regex]::Match($text, $FleetPortPattern)
    if (-not $m.Success) {
        throw "port '$Value' is invalid: use PORT, PORT/PROTO or FROM-TO/PROTO, e.g. 62286/tcp or 1000-2000/udp"
    }
    $proto = 'tcp'
    if ($m.Groups['proto'].Success) { $proto = $m.Groups['proto'].Value.ToLowerInvariant() }
    if (-not $FleetProtocolMap.ContainsKey($proto)) {
        throw "protocol '$proto' of port '$text' is not supported: use one of tcp, udp"
    }
    $first = [int]$m.Groups['first'].Value
    $last = $first
    if ($m.Groups['last'].Success) { $last = [int]$m.Groups['last'].Value }
    foreach ($n in @($first, $last)) {
        if ($n -lt 1 -or $n -gt 65535) { throw "port '$n' is out of range: port numbers go from 1 to 65535 (in '$text')" }
    }
    if ($last -lt $first) { throw "port range '$text' is reversed: the first port must not be above the last" }
    $portText = "$first"
    if ($last -ne $first) { $portText = "$first-$last" }
    return @{ Proto = $proto; First = $first; Last = $last; Text = $portText }
}

Function Test-FleetSource {
    <# An IPv4/IPv6 address or CIDR; throws naming the bad value. #>
    param([Parameter(Mandatory = $true)][string]$Value)
    $parts = $Value.Trim().Split('/')
    $address = $null
    if ($parts.Count -gt 2 -or -not [System.Net.IPAddress]::TryParse($parts[0], [ref]$address)) {
        throw "source '$Value' is not an IP address or CIDR"
    }
    if ($parts.Count -eq 2) {
        $max = 32
        if ($address.AddressFamily -eq [System.Net.Sockets.AddressFamily]::InterNetworkV6) { $max = 128 }
        $bits = 0
        if (-not [int]::TryParse($parts[1], [ref]$bits) -or $bits -lt 0 -or $bits -gt $max) {
            throw "source '$Value' has an invalid prefix length (0 to $max)"
        }
    }
    return $Value.Trim()
}

Function Get-FleetGroupName {
    param([Parameter(Mandatory = $true)][string]$Tag)
    return '{0}-{1}' -f $FleetMarker, $Tag
}

Function Get-FleetRuleName {
    param([Parameter(Mandatory = $true)][string]$Tag, [Parameter(Mandatory = $true)][hashtable]$Port)
    return $FleetRuleNameFormat -f $FleetMarker, $Tag, $Port.Text, $Port.Proto
}

Function Get-FleetLeaseTaskName {
    param([Parameter(Mandatory = $true)][string]$Tag)
    return '{0}-{1}-lease' -f $FleetMarker, $Tag
}

Function New-FleetRuleParameter {
    <# The splat for New-NetFirewallRule of one port: named and grouped by the tag. #>
    param(
        [Parameter(Mandatory = $true)][string]$Tag,
        [Parameter(Mandatory = $true)][hashtable]$Port,
        [Parameter(Mandatory = $true)][string]$Direction,
        [string[]]$Source = @()
    )
    $name = Get-FleetRuleName -Tag $Tag -Port $Port
    $rule = @{
        Name = $name
        DisplayName = $name
        Group = Get-FleetGroupName -Tag $Tag
        Description = ''
        Direction = $FleetDirectionMap[$Direction]
        Protocol = $FleetProtocolMap[$Port.Proto]
        Action = 'Allow'
        Profile = 'Any'
        Enabled = 'True'
        RemoteAddress = 'Any'
    }
    if ($Source.Count -gt 0) { $rule.RemoteAddress = $Source }
    if ($Direction -eq 'in') { $rule.LocalPort = $Port.Text } else { $rule.RemotePort = $Port.Text }
    # The description carries what the rule does, so a second open can tell "same" from "changed".
    $rule.Description = $FleetDescriptionFormat -f $Tag, $Direction, $Port.Proto, $Port.Text, ($rule.RemoteAddress -join ',')
    return $rule
}

Function Get-FleetRule {
    <# Our rules of a tag ('*': every fleet-firmware group) as 'name: direction proto port remote'. #>
    param([Parameter(Mandatory = $true)][string]$Tag)
    $group = Get-FleetGroupName -Tag $Tag
    $rules = @(Get-NetFirewallRule -ErrorAction SilentlyContinue | Where-Object {
            ($Tag -eq '*' -and $_.Group -like "$FleetMarker-*") -or $_.Group -eq $group
        })
    return $rules
}

Function Format-FleetRule {
    param([Parameter(Mandatory = $true)][hashtable]$Rule)
    $port = $Rule['LocalPort']
    if (-not $port) { $port = $Rule['RemotePort'] }
    return '{0}: {1} {2} {3} from {4}' -f $Rule.Name, $Rule.Direction, $Rule.Protocol, $port, ($Rule.RemoteAddress -join ',')
}

Function Open-FleetFirewall {
    <# Creates the missing rules of the tag; all or nothing (rules made here are removed on error). #>
    param(
        [Parameter(Mandatory = $true)][string]$Tag,
        [Parameter(Mandatory = $true)][hashtable[]]$Rules,
        [switch]$CheckMode
    )
    $existing = @{}
    foreach ($r in @(Get-FleetRule -Tag $Tag)) { $existing[$r.Name] = $r.Description }
    $wanted = @($Rules | ForEach-Object { $_.Name })
    # New names, and rules whose description (what they do) changed: those are made again.
    $toAdd = @($Rules | Where-Object { -not $existing.ContainsKey($_.Name) -or $existing[$_.Name] -ne $_.Description })
    $toReplace = @($toAdd | Where-Object { $existing.ContainsKey($_.Name) } | ForEach-Object { $_.Name })
    $toRemove = @($existing.Keys | Where-Object { $wanted -notcontains $_ })
    $result = @{ changed = ($toAdd.Count + $toRemove.Count) -gt 0; added = @(); removed = @($toRemove) }
    foreach ($rule in $toAdd) { $result.added += Format-FleetRule -Rule $rule }
    if ($CheckMode -or -not $result.changed) { return $result }
    $made = [System.Collections.Generic.List[string]]@()
    try {
        foreach ($name in $toReplace) { Remove-NetFirewallRule -Name $name -ErrorAction Stop }
        foreach ($rule in $toAdd) {
            New-NetFirewallRule @rule -ErrorAction Stop | Out-Null
            $made.Add($rule.Name)
        }
    }
    catch {
        foreach ($name in $made) { Remove-NetFirewallRule -Name $name -ErrorAction SilentlyContinue }
        throw "opening the firewall for tag '$Tag' failed, the rules made were removed again: $($_.Exception.Message)"
    }
    foreach ($name in $toRemove) { Remove-NetFirewallRule -Name $name -ErrorAction Stop }
    return $result
}

Function Close-FleetFirewall {
    param([Parameter(Mandatory = $true)][string]$Tag, [switch]$CheckMode)
    $rules = @(Get-FleetRule -Tag $Tag)
    $result = @{ changed = $rules.Count -gt 0; added = @(); removed = @($rules | ForEach-Object { $_.Name }) }
    if (-not $CheckMode) {
        foreach ($rule in $rules) { Remove-NetFirewallRule -Name $rule.Name -ErrorAction Stop }
        Remove-FleetLease -Tag $Tag
    }
    return $result
}

Function Get-FleetLeaseScript {
    <# What the lease task runs: remove the group's rules, then the task itself. #>
    param([Parameter(Mandatory = $true)][string]$Tag)
    $group = Get-FleetGroupName -Tag $Tag
    $task = Get-FleetLeaseTaskName -Tag $Tag
    return ("Remove-NetFirewallRule -Group '{0}' -ErrorAction SilentlyContinue; " +
        "Unregister-ScheduledTask -TaskName '{1}' -Confirm:`$false -ErrorAction SilentlyContinue") -f $group, $task
}

Function Get-FleetLeaseArgument {
    <# powershell.exe arguments: -EncodedCommand keeps quoting out of the task's command line. #>
    param([Parameter(Mandatory = $true)][string]$Tag)
    $bytes = [System.Text.Encoding]::Unicode.GetBytes((Get-FleetLeaseScript -Tag $Tag))
    return '-NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand {0}' -f [Convert]::ToBase64String($bytes)
}

Function Set-FleetLease {
    <# (Re)registers the lease task to fire at $Expires (UTC); renewing replaces the trigger. #>
    param([Parameter(Mandatory = $true)][string]$Tag, [Parameter(Mandatory = $true)][datetime]$Expires)
    $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument (Get-FleetLeaseArgument -Tag $Tag)
    $trigger = New-ScheduledTaskTrigger -Once -At $Expires.ToLocalTime()
    $principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
    $settings = New-ScheduledTaskSettingsSet -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -StartWhenAvailable
    Register-ScheduledTask -TaskName (Get-FleetLeaseTaskName -Tag $Tag) -Action $action -Trigger $trigger `
        -Principal $principal -Settings $settings -Force | Out-Null
}

Function Remove-FleetLease {
    param([Parameter(Mandatory = $true)][string]$Tag)
    $name = Get-FleetLeaseTaskName -Tag $Tag
    if ($Tag -eq '*') { $name = '{0}-*-lease' -f $FleetMarker }
    Get-ScheduledTask -TaskName $name -ErrorAction SilentlyContinue |
        Unregister-ScheduledTask -Confirm:$false -ErrorAction SilentlyContinue
}

$exportMembers = @{
    Function = 'Test-FleetTag', 'ConvertTo-FleetPort', 'Test-FleetSource', 'Get-FleetGroupName', 'Get-FleetRuleName',
    'Get-FleetLeaseTaskName', 'New-FleetRuleParameter', 'Get-FleetRule', 'Format-FleetRule', 'Open-FleetFirewall',
    'Close-FleetFirewall', 'Get-FleetLeaseScript', 'Get-FleetLeaseArgument', 'Set-FleetLease', 'Remove-FleetLease'
}
Export-ModuleMember @exportMembers
