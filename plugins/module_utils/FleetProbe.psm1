# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The PowerShell twin of plugins/module_utils/probe.py for Windows nodes: the same input rules,
# the same states and the same result shape. Every probe of one call runs at once (.NET tasks).
# Windows itself cannot run in the collection's test lab: this file is checked by sanity only.

$script:NetbiosNamePort = 137

Function ConvertTo-FleetPortLabel {
    <#
    .SYNOPSIS
    A port spec (22, "22", "22/tcp", "137/udp") -> "port/proto"; throws ArgumentException naming the bad value.
    #>
    param([Parameter(Mandatory = $true)][AllowNull()][Object]$Spec)
    if ($Spec -is [bool] -or $null -eq $Spec) {
        throw [System.ArgumentException]"bad port '$Spec': a port is a number from 1 to 65535, optionally with /tcp or /udp"
    }
    $text = "$Spec".Trim()
    if ($text -notmatch '^(\d{1,5})(?:/([A-Za-z0-9]+))?$') {
        throw [System.ArgumentException]"bad port '$Spec': write it as PORT or PORT/PROTO, for example 22 or 137/udp"
    }
    $port = [int]$Matches[1]
    $proto = if ($Matches[2]) { $Matches[2].ToLowerInvariant() } else { "tcp" }
    if ($proto -notin @("tcp", "udp")) {
        throw [System.ArgumentException]"bad port '$Spec': protocol '$($Matches[2])' is not supported, use tcp or udp"
    }
    if ($port -lt 1 -or $port -gt 65535) {
        throw [System.ArgumentException]"bad port '$Spec': $port is out of range, a port is a number from 1 to 65535"
    }
    return "$port/$proto"
}

Function Resolve-FleetHost {
    <#
    .SYNOPSIS
    A host term -> its addresses in resolver order, filtered by family; throws ArgumentException naming the term.
    #>
    param([Parameter(Mandatory = $true)][String]$Term, [String]$Family = "auto")
    $hostName = $Term.Trim()
    if ($hostName.StartsWith("[") -and $hostName.EndsWith("]")) {
        $hostName = $hostName.Substring(1, $hostName.Length - 2)
    }
    $hostName = $hostName.Replace("%25", "%")
    $literal = $null
    if ([System.Net.IPAddress]::TryParse($hostName, [ref]$literal)) {
        $addresses = @($literal)
    }
    elseif ($hostName.Contains(":") -or $hostName -notmatch '^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$') {
        throw [System.ArgumentException]"bad host '$Term': not a valid host name or address (a host term takes no port)"
    }
    else {
        try {
            $addresses = @([System.Net.Dns]::GetHostAddresses($hostName))
        }
        catch {
            throw [System.ArgumentException]"cannot resolve host '$Term': $($_.Exception.Message)"
        }
    }
    $wanted = switch ($Family) {
        "ipv4" { @([System.Net.Sockets.AddressFamily]::InterNetwork) }
        "ipv6" { @([System.Net.Sockets.AddressFamily]::InterNetworkV6) }
        default { @([System.Net.Sockets.AddressFamily]::InterNetwork, [System.Net.Sockets.AddressFamily]::InterNetworkV6) }
    }
    $kept = @($addresses | Where-Object { $_.AddressFamily -in $wanted })
    if ($kept.Count -eq 0) {
        throw [System.ArgumentException]"host '$Term' has no $Family address"
    }
    return , $kept
}

Function Get-FleetNetbiosRequest {
    <#
    .SYNOPSIS
    A NetBIOS node-status (NBSTAT) query for the wildcard name, as in probe.py.
    #>
    param([int]$TransactionId)
    $bytes = New-Object System.Collections.Generic.List[byte]
    $bytes.AddRange([byte[]]@(($TransactionId -shr 8) -band 0xFF, $TransactionId -band 0xFF, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x20))
    $name = [byte[]](@(0x2A) + @(0) * 15)
    foreach ($b in $name) {
        $bytes.Add([byte](0x41 + ($b -shr 4)))
        $bytes.Add([byte](0x41 + ($b -band 0x0F)))
    }
    $bytes.AddRange([byte[]]@(0, 0, 0x21, 0, 1))
    return , $bytes.ToArray()
}

Function New-FleetProbeResult {
    param([System.Net.IPAddress]$Address, [String]$State, $LatencyMs, [String]$ErrorText)
    $result = [Ordered]@{
        address = $Address.ToString()
        family = if ($Address.AddressFamily -eq [System.Net.Sockets.AddressFamily]::InterNetworkV6) { "ipv6" } else { "ipv4" }
        state = $State
        latency_ms = $LatencyMs
    }
    if ($ErrorText) { $result.error = $ErrorText }
    return $result
}

Function Start-FleetProbe {
    <#
    .SYNOPSIS
    Start one probe and return its handle (client, task, start time); nothing waits here.
    #>
    param([System.Net.IPAddress]$Address, [int]$Port, [String]$Proto)
    $probe = @{ Address = $Address; Port = $Port; Proto = $Proto; Watch = [System.Diagnostics.Stopwatch]::StartNew(); TxId = 0 }
    try {
        if ($Proto -eq "tcp") {
            $probe.Client = New-Object System.Net.Sockets.TcpClient($Address.AddressFamily)
            $probe.Task = $probe.Client.ConnectAsync($Address, $Port)
        }
        else {
            $probe.Client = New-Object System.Net.Sockets.UdpClient($Address.AddressFamily)
            $probe.Client.Connect($Address, $Port)
            $payload = [byte[]]@()
            if ($Port -eq $script:NetbiosNamePort) {
                $probe.TxId = Get-Random -Minimum 1 -Maximum 65535
                $payload = Get-FleetNetbiosRequest -TransactionId $probe.TxId
            }
            [void]$probe.Client.Send($payload, $payload.Length)
            $probe.Task = $probe.Client.ReceiveAsync()
        }
    }
    catch {
        $probe.StartError = $_.Exception.Message
    }
    return $probe
}

Function Complete-FleetProbe {
    <#
    .SYNOPSIS
    The state of a started probe once the shared wait is over; closes its client.
    #>
    param([Hashtable]$Probe, [double]$Timeout)
    $latency = [Math]::Round($Probe.Watch.Elapsed.TotalMilliseconds, 3)
    $silent = if ($Probe.Proto -eq "tcp") { "filtered" } else { "open|filtered" }
    try {
        if ($Probe.StartError) {
            return New-FleetProbeResult $Probe.Address "filtered" $latency $Probe.StartError
        }
        $task = $Probe.Task
        if (-not $task.IsCompleted) {
            return New-FleetProbeResult $Probe.Address $silent $null "no answer within $($Timeout)s"
        }
        if ($task.IsFaulted) {
            $inner = $task.Exception.InnerException
            # 10061 = refused (TCP RST); 10054 = reset, how Windows reports an ICMP port-unreachable on UDP.
            $code = if ($inner -is [System.Net.Sockets.SocketException]) { $inner.ErrorCode } else { 0 }
            $state = if ($code -eq 10061 -or $code -eq 10054) { "closed" } else { "filtered" }
            return New-FleetProbeResult $Probe.Address $state $latency $inner.Message
        }
        if ($Probe.Proto -eq "udp" -and $Probe.Port -eq $script:NetbiosNamePort) {
            $reply = $task.Result.Buffer
            if ($reply.Length -lt 57 -or ((([int]$reply[0]) -shl 8) + $reply[1]) -ne $Probe.TxId) {
                return New-FleetProbeResult $Probe.Address $silent $null "an answer that is not a NetBIOS node status"
            }
        }
        return New-FleetProbeResult $Probe.Address "open" $latency $null
    }
    finally {
        if ($Probe.Client) { $Probe.Client.Dispose() }
    }
}

Function Invoke-FleetReach {
    <#
    .SYNOPSIS
    Probe every port of every host at once. Returns @{ Reach; Warnings; AllOpen }.
    Bad input throws ArgumentException before anything is sent.
    #>
    param([String[]]$Hosts, [Object[]]$Ports, [double]$Timeout = 1.0, [String]$Family = "auto", [String]$Errors = "strict")
    if (-not $Hosts -or $Hosts.Count -eq 0) { throw [System.ArgumentException]"no hosts given: name at least one host to probe" }
    if (-not $Ports -or $Ports.Count -eq 0) { throw [System.ArgumentException]"no ports given: name at least one port, for example 22/tcp" }
    if ($Timeout -le 0 -or $Timeout -gt 3600) { throw [System.ArgumentException]"bad timeout '$Timeout': a number of seconds > 0 and <= 3600" }
    $labels = @($Ports | ForEach-Object { ConvertTo-FleetPortLabel -Spec $_ } | Select-Object -Unique)
    $resolved = @{}
    $failed = [Ordered]@{}
    foreach ($term in $Hosts) {
        try { $resolved[$term] = Resolve-FleetHost -Term $term -Family $Family }
        catch [System.ArgumentException] { $failed[$term] = $_.Exception.Message }
    }
    if ($failed.Count -gt 0 -and $Errors -eq "strict") {
        throw [System.ArgumentException](@($failed.Values) -join "; ")
    }
    $started = @{}
    foreach ($term in $resolved.Keys) {
        foreach ($label in $labels) {
            $port, $proto = $label.Split("/")
            $started["$term|$label"] = @($resolved[$term] | ForEach-Object { Start-FleetProbe -Address $_ -Port ([int]$port) -Proto $proto })
        }
    }
    $tasks = @($started.Values | ForEach-Object { $_ } | Where-Object { $_.Task } | ForEach-Object { $_.Task })
    if ($tasks.Count -gt 0) {
        # One shared wait: every probe had the same time to answer. A faulted task is an answer.
        try { [void][System.Threading.Tasks.Task]::WaitAll([System.Threading.Tasks.Task[]]$tasks, [int]($Timeout * 1000)) }
        catch [System.AggregateException] { $null = $_ }
    }
    $reach = [Ordered]@{}
    $allOpen = $true
    foreach ($term in $Hosts) {
        $ports = [Ordered]@{}
        foreach ($label in $labels) {
            if ($failed.Contains($term)) {
                $ports[$label] = [Ordered]@{ state = "unresolved"; address = $null; family = $null; latency_ms = $null; error = $failed[$term]; addresses = @() }
                $allOpen = $false
                continue
            }
            $each = @($started["$term|$label"] | ForEach-Object { Complete-FleetProbe -Probe $_ -Timeout $Timeout })
            $chosen = @($each | Where-Object { $_.state -eq "open" }) + $each | Select-Object -First 1
            $entry = [Ordered]@{}
            foreach ($key in $chosen.Keys) { $entry[$key] = $chosen[$key] }
            $entry.addresses = $each
            if ($entry.state -ne "open") { $allOpen = $false }
            $ports[$label] = $entry
        }
        $reach[$term] = $ports
    }
    $warnings = if ($Errors -eq "warn") { @($failed.Values) } else { @() }
    return @{ Reach = $reach; Warnings = $warnings; AllOpen = $allOpen }
}

$exportMembers = @{
    Function = "ConvertTo-FleetPortLabel", "Resolve-FleetHost", "Invoke-FleetReach"
}
Export-ModuleMember @exportMembers
