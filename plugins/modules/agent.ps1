#!powershell
# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

#AnsibleRequires -CSharpUtil Ansible.Basic
#AnsibleRequires -PowerShell ansible_collections.fleet.firmware.plugins.module_utils.FleetFirewall
#AnsibleRequires -PowerShell ansible_collections.fleet.firmware.plugins.module_utils.FleetAgent

# The Windows twin of agent.py (which holds the documentation). The action stages fleet_agent.ps1,
# FleetAgent.psm1 and FleetFirewall.psm1 into the staging folder (admin$ or WinRM); this module
# starts them as the scheduled task fleet-firmware-<tag>-agent running as SYSTEM, or stops and
# removes everything of the tag. Why a scheduled task: a process started from a WinRM shell lives
# in that shell's job object and dies with it; a task runs as SYSTEM outside any logon session,
# needs no credentials on the node and can be stopped by name. Why a configuration file instead
# of stdin: a scheduled task has no standard input to write to; the file is made in the staging
# folder, whose ACL admits SYSTEM and Administrators only, and the agent deletes it after reading.
# Windows itself cannot run in the collection's test lab: the unit tests check what this builds.

$spec = @{
    options = @{
        state = @{ type = 'str'; choices = 'started', 'absent'; default = 'started' }
        tag = @{ type = 'str'; required = $true }
        agent_port = @{ type = 'int'; default = 62286 }
        lease = @{ type = 'int'; default = 300 }
        open_firewall = @{ type = 'bool'; default = $true }
        firewall_backend = @{ type = 'str'; choices = 'auto', 'iptables', 'nftables', 'firewalld', 'ufw', 'windows'; default = 'auto' }
        controller = @{ type = 'list'; elements = 'str' }
        bind = @{ type = 'list'; elements = 'str'; default = @() }
        staging_dir = @{ type = 'path' }
        run_dir = @{ type = 'path' }
        start_timeout = @{ type = 'int'; default = 30 }
        stop_timeout = @{ type = 'int'; default = 120 }
        agent_pid = @{ type = 'int' }
        verify = @{ type = 'bool'; default = $true }
        transfer = @{ type = 'str'; choices = 'auto', 'connection', 'smb', 'winrm'; default = 'auto' }
        smb_user = @{ type = 'str' }
        smb_password = @{ type = 'str'; no_log = $true }
        node_id = @{ type = 'str' }
        run_id = @{ type = 'str' }
        agent_src = @{ type = 'path' }
        agent_sha256 = @{ type = 'dict' }
        secrets = @{ type = 'dict'; no_log = $true }
    }
    supports_check_mode = $true
}
$module = [Ansible.Basic.AnsibleModule]::Create($args, $spec)
$p = $module.Params

$SecretKeys = 'token', 'ca_cert', 'ca_fingerprint', 'server_cert'

Function Get-AgentStaging {
    param([System.Collections.IDictionary]$Params)
    if ($Params.staging_dir) { return $Params.staging_dir.TrimEnd('\') }
    return Get-FleetAgentStagingPath -Tag $Params.tag
}

Function New-AgentConfigDocument {
    <# The configuration document of docs/agent.md, from the module's parameters. #>
    param([System.Collections.IDictionary]$Params, [string]$Staging, [string]$NodeName)
    $secrets = $Params.secrets
    if ($null -eq $secrets) { $secrets = @{} }
    $missing = @($SecretKeys | Where-Object { -not $secrets.ContainsKey($_) -or -not $secrets[$_] })
    if (-not $secrets.ContainsKey('server_pfx') -and -not $secrets.ContainsKey('server_key')) { $missing += 'server_key' }
    if ($missing.Count -gt 0) { throw ('secrets lacks {0} (the fleet.firmware.agent action provides them)' -f ($missing -join ', ')) }
    if ($null -eq $Params.controller -or @($Params.controller).Count -eq 0) { throw 'controller is required: the addresses the agent accepts' }
    $config = @{}
    foreach ($key in @($SecretKeys + @('server_key', 'server_pfx', 'server_pfx_password'))) {
        if ($secrets.ContainsKey($key)) { $config[$key] = $secrets[$key] }
    }
    $config.tag = $Params.tag
    $config.run_id = $Params.tag
    if ($Params.run_id) { $config.run_id = $Params.run_id }
    $config.node_id = $NodeName
    if ($Params.node_id) { $config.node_id = $Params.node_id }
    $config.port = $Params.agent_port
    $config.bind = @($Params.bind)
    $config.controller = @($Params.controller)
    $config.lease = $Params.lease
    $config.staging = $Staging
    $config.firewall = @{ open = $Params.open_firewall; backend = $Params.firewall_backend }
    return $config
}

Function Test-AgentSha256 {
    <# agent_sha256 (file name -> SHA-256 the controller staged) for every staged file, each checked. #>
    param([System.Collections.IDictionary]$Digests)
    if ($null -eq $Digests) { throw 'agent_sha256 is required on Windows: the fleet.firmware.agent action gives the SHA-256 of every staged file' }
    $missing = @($FleetAgentStagedFiles | Where-Object { -not $Digests.Contains($_) })
    if ($missing.Count -gt 0) { throw ('agent_sha256 lacks {0}' -f ($missing -join ', ')) }
    $checked = [ordered]@{}
    foreach ($name in @($Digests.Keys | Sort-Object)) {
        if ([string]$name -cnotmatch $FleetAgentFileNamePattern) { throw "agent_sha256: file name '$name' is invalid" }
        $value = [string]$Digests[$name]
        if ($value -cnotmatch $FleetAgentShaPattern) { throw "agent_sha256: '$value' for $name is not a SHA-256 (64 lowercase hex digits)" }
        $checked[[string]$name] = $value
    }
    return $checked
}

Function Get-AgentTaskScript {
    <#
    What the SYSTEM task runs: first the SHA-256 of every staged file against the value the
    controller computed, which travels here, in the task's own command line (-EncodedCommand),
    never in a staged file a writer of the folder could change as well; on a mismatch it writes
    ready.json with the error and runs nothing. Then the agent. Names and hashes are checked
    patterns, the staging path is quoted for a single-quoted string. Not run here (no PowerShell):
    test_agent_ps1.py builds it from this format string and parses it.
    #>
    param([string]$Staging, [System.Collections.IDictionary]$Digests)
    $expected = @($Digests.Keys | ForEach-Object { "'{0}' = '{1}'" -f $_, $Digests[$_] }) -join '; '
    $quoted = $Staging.Replace("'", "''")
    return (("`$ErrorActionPreference = 'Stop'; `$staging = '{0}'; `$expected = [ordered]@{{ {1} }}; " +
            "foreach (`$name in `$expected.Keys) {{ " +
            "`$actual = (Get-FileHash -LiteralPath (Join-Path -Path `$staging -ChildPath `$name) -Algorithm SHA256).Hash.ToLowerInvariant(); " +
            "if (`$actual -ne `$expected[`$name]) {{ " +
            "`$answer = ConvertTo-Json -Compress -InputObject @{{ ready = `$false; error = ('{{0}} in the staging does not have the SHA-256 the controller staged: nothing was run' -f `$name) }}; " +
            "[System.IO.File]::WriteAllText((Join-Path -Path `$staging -ChildPath 'ready.json'), `$answer); exit 3 }} }}; " +
            "& (Join-Path -Path `$staging -ChildPath 'fleet_agent.ps1') -ConfigPath (Join-Path -Path `$staging -ChildPath 'agent-config.json'); " +
            "exit `$LASTEXITCODE") -f $quoted, $expected)
}

Function Get-AgentTaskArgument {
    <# powershell.exe arguments of the agent task: paths and hashes only, never a secret. #>
    param([string]$Staging, [System.Collections.IDictionary]$Digests)
    return Get-FleetAgentEncodedArgument -Script (Get-AgentTaskScript -Staging $Staging -Digests $Digests)
}

Function Register-AgentTask {
    param([string]$Tag, [string]$Staging, [System.Collections.IDictionary]$Digests)
    $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument (Get-AgentTaskArgument -Staging $Staging -Digests $Digests) -WorkingDirectory $Staging
    $principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
    # No time limit (the default of 72 h would stop a long run), one instance, no trigger: started on demand.
    $settings = New-ScheduledTaskSettingsSet -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -ExecutionTimeLimit ([TimeSpan]::Zero) `
        -MultipleInstances IgnoreNew
    Register-ScheduledTask -TaskName (Get-FleetAgentTaskName -Tag $Tag -Kind 'agent') -Action $action -Principal $principal `
        -Settings $settings -Force | Out-Null
}

Function Wait-AgentReady {
    <# The agent's answer in ready.json, or $null after the timeout. #>
    param([string]$Staging, [int]$Timeout)
    $file = Join-Path -Path $Staging -ChildPath 'ready.json'
    $deadline = [datetime]::UtcNow.AddSeconds($Timeout)
    while ([datetime]::UtcNow -lt $deadline) {
        if (Test-Path -LiteralPath $file) {
            $answer = ConvertTo-FleetAgentHashtable -InputObject (ConvertFrom-Json -InputObject ([System.IO.File]::ReadAllText($file)))
            Remove-Item -LiteralPath $file -Force -ErrorAction SilentlyContinue
            return $answer
        }
        Start-Sleep -Milliseconds 200
    }
    return $null
}

Function Get-AgentLogTail {
    param([string]$Staging)
    $file = Join-Path -Path $Staging -ChildPath 'agent.log'
    if (-not (Test-Path -LiteralPath $file)) { return '' }
    return ((Get-Content -LiteralPath $file -Tail 20) -join "`n")
}

Function Assert-AgentControlFolder {
    <#
    %ProgramData%\fleet-firmware, before anything is read from or written to it (the holder, the
    renew and shutdown requests): repaired when its owner is Administrators or SYSTEM, refused
    (the task fails, the folder is left as it is) otherwise or when it is a reparse point. In
    check mode only checked.
    #>
    param([switch]$CheckMode)
    $control = Get-FleetAgentControlPath
    if ($CheckMode) {
        if (Test-Path -LiteralPath $control) { [void](Assert-FleetAgentOurs -Path $control) }
        return
    }
    Set-FleetAgentFolderAcl -Path $control
}

Function Get-LiveHolder {
    <# The holder of the node lock, when its agent process is still alive. #>
    $holder = Get-FleetAgentHolder
    if ($null -eq $holder -or -not $holder.pid) { return $null }
    if (-not (Test-FleetAgentProcess -ProcessId ([int]$holder.pid) -Tag ([string]$holder.tag))) { return $null }
    return $holder
}

Function Send-AgentRequest {
    <# A request file for the running agent (renew or shutdown), in the control folder only SYSTEM and Administrators reach. #>
    param([string]$Tag, [string]$Kind, [hashtable]$Body = @{})
    $path = Get-FleetAgentRequestPath -Tag $Tag -Kind $Kind
    [System.IO.File]::WriteAllText("$path.tmp", (ConvertTo-Json -InputObject $Body -Compress))
    Move-Item -LiteralPath "$path.tmp" -Destination $path -Force
    return $path
}

Function Wait-AgentRenewed {
    <# The agent picked the renew request up (the file is gone); returns the holder with the new expiry. #>
    param([string]$Path, [int]$Timeout = 10)
    $deadline = [datetime]::UtcNow.AddSeconds($Timeout)
    while ((Test-Path -LiteralPath $Path) -and [datetime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
    return Get-FleetAgentHolder
}

Function Wait-AgentGone {
    param([int]$ProcessId, [int]$Timeout)
    $deadline = [datetime]::UtcNow.AddSeconds($Timeout)
    while ([datetime]::UtcNow -lt $deadline) {
        if ($null -eq (Get-Process -Id $ProcessId -ErrorAction SilentlyContinue)) { return $true }
        Start-Sleep -Milliseconds 250
    }
    return $null -eq (Get-Process -Id $ProcessId -ErrorAction SilentlyContinue)
}

Function Remove-AgentTask {
    <# Unregisters the tag's agent and sweep tasks; returns the names removed. #>
    param([string]$Tag, [switch]$CheckMode)
    $removed = @()
    foreach ($kind in @('agent', 'sweep')) {
        $name = Get-FleetAgentTaskName -Tag $Tag -Kind $kind
        $task = Get-ScheduledTask -TaskName $name -ErrorAction SilentlyContinue
        if ($null -ne $task) {
            if (-not $CheckMode) {
                Stop-ScheduledTask -TaskName $name -ErrorAction SilentlyContinue
                Unregister-ScheduledTask -TaskName $name -Confirm:$false
            }
            $removed += "scheduled task: $name"
        }
    }
    return , $removed
}

Function Invoke-AgentStart {
    param($Module, [System.Collections.IDictionary]$Params)
    $tag = Test-FleetAgentTag -Tag $Params.tag
    $staging = Get-AgentStaging -Params $Params
    Assert-AgentControlFolder -CheckMode:$Module.CheckMode
    $holder = Get-LiveHolder
    if ($null -ne $holder -and $holder.tag -ne $tag) {
        $Module.FailJson(("node is held by run '{0}' (agent pid {1} since {2}): stop that run first, or wait for its lease to run out" -f $holder.tag, $holder.pid, $holder.since))
    }
    if ($null -ne $holder) {
        if (-not $Module.CheckMode) {
            $request = Send-AgentRequest -Tag $tag -Kind 'renew' -Body @{ seconds = $Params.lease }
            $holder = Wait-AgentRenewed -Path $request
        }
        $Module.Result.changed = $false
        $Module.Result.agent_port = $holder.port
        $Module.Result.pid = $holder.pid
        $Module.Result.address = @($holder.addresses)
        $Module.Result.staged_path = $staging
        $Module.Result.lease_expires = $holder.lease_expires
        $Module.Result.msg = "the agent of run $tag is already running; lease renewed"
        $Module.ExitJson()
    }
    $Module.Result.staged_path = $staging
    if ($Module.CheckMode) {
        $Module.Result.changed = $true
        $Module.Result.msg = "would start the agent of run $tag"
        $Module.ExitJson()
    }
    $absent = @($FleetAgentStagedFiles | Where-Object { -not (Test-Path -LiteralPath (Join-Path -Path $staging -ChildPath $_)) })
    if ($absent.Count -gt 0) {
        $Module.FailJson(('the agent is not staged in {0} (missing: {1}): the fleet.firmware.agent action stages it over admin$ or WinRM' -f $staging, ($absent -join ', ')))
    }
    $sha256 = Test-AgentSha256 -Digests $Params.agent_sha256
    $config = New-AgentConfigDocument -Params $Params -Staging $staging -NodeName ([System.Net.Dns]::GetHostName())
    # The ACL first, so that the configuration file is born SYSTEM/Administrators-only (inherited).
    Set-FleetAgentFolderAcl -Path $staging
    $configFile = Join-Path -Path $staging -ChildPath 'agent-config.json'
    Remove-Item -LiteralPath (Join-Path -Path $staging -ChildPath 'ready.json') -Force -ErrorAction SilentlyContinue
    [System.IO.File]::WriteAllText($configFile, (ConvertTo-Json -InputObject $config -Compress -Depth 5))
    $answer = $null
    try {
        Register-AgentTask -Tag $tag -Staging $staging -Digests $sha256
        Start-ScheduledTask -TaskName (Get-FleetAgentTaskName -Tag $tag -Kind 'agent')
        $answer = Wait-AgentReady -Staging $staging -Timeout $Params.start_timeout
    }
    catch {
        $answer = @{ ready = $false; error = $_.Exception.Message }
    }
    finally {
        # Whatever happened, the secrets do not stay on disk.
        Remove-Item -LiteralPath $configFile -Force -ErrorAction SilentlyContinue
    }
    if ($null -eq $answer) { $answer = @{ ready = $false; error = "no answer within $($Params.start_timeout) s" } }
    if (-not $answer.ready) {
        $tail = Get-AgentLogTail -Staging $staging
        [void](Remove-AgentTask -Tag $tag)
        [void](Close-FleetFirewall -Tag $tag)
        try { Remove-FleetAgentTree -Path $staging } catch { $Module.Warn("the staging $staging was not removed: $($_.Exception.Message)") }
        $Module.Result.agent_log = $tail
        $Module.FailJson(("the agent of run {0} did not start: {1}" -f $tag, $answer.error))
    }
    $Module.Result.changed = $true
    $Module.Result.agent_port = $answer.port
    $Module.Result.pid = $answer.pid
    $Module.Result.address = @($answer.addresses)
    $Module.Result.lease_expires = $answer.lease_expires
    $Module.Result.firewall_opened = [bool]$answer.firewall
    $Module.ExitJson()
}

Function Invoke-AgentAbsent {
    param($Module, [System.Collections.IDictionary]$Params)
    $tag = Test-FleetAgentTag -Tag $Params.tag
    $staging = Get-AgentStaging -Params $Params
    $check = [bool]$Module.CheckMode
    Assert-AgentControlFolder -CheckMode:$check
    $removed = @()
    $holder = Get-LiveHolder
    if ($null -ne $holder -and $holder.tag -eq $tag -and $Params.agent_pid -and [int]$holder.pid -ne $Params.agent_pid) {
        # A newer start of the same run (a resume while the worker of a killed run cleans up) owns the node.
        $Module.Result.changed = $false
        $Module.Result.removed = @()
        $Module.Result.staged_path = $staging
        $Module.Result.left_alone = $true
        $Module.Result.msg = "the agent of run $tag is pid $($holder.pid) now, not the pid $($Params.agent_pid) this cleanup stopped: a newer start of the run (a resume?) owns the node, and its agent, rules and folder were left alone"
        $Module.ExitJson()
    }
    if ($null -ne $holder -and $holder.tag -eq $tag) {
        $removed += "agent pid $($holder.pid)"
        if (-not $check) {
            [void](Send-AgentRequest -Tag $tag -Kind 'shutdown')
            if (-not (Wait-AgentGone -ProcessId ([int]$holder.pid) -Timeout $Params.stop_timeout)) {
                Stop-Process -Id ([int]$holder.pid) -Force -ErrorAction SilentlyContinue
                $Module.Warn("the agent of run $tag did not stop within $($Params.stop_timeout) s and was killed; its leftovers were removed")
            }
        }
    }
    # The agent removes its own things on the way out; whatever is left (a killed agent) goes here.
    $rules = @(Get-FleetRule -Tag $tag | ForEach-Object { $_.Name })
    if ($rules.Count -gt 0 -and -not $check) { [void](Close-FleetFirewall -Tag $tag) }
    $removed += @($rules | ForEach-Object { "firewall rule: $_" })
    $removed += Remove-AgentTask -Tag $tag -CheckMode:$check
    if (Test-Path -LiteralPath $staging) {
        $removed += $staging
        if (-not $check) {
            try { Remove-FleetAgentTree -Path $staging } catch { $Module.Warn("removing $staging: $($_.Exception.Message)") }
            if (Test-Path -LiteralPath $staging) {
                $Module.Result.removed = $removed
                $Module.FailJson("cannot remove the staging folder $staging (a file in use?)")
            }
        }
    }
    if (-not $check) {
        foreach ($kind in @('renew', 'shutdown')) { Remove-Item -LiteralPath (Get-FleetAgentRequestPath -Tag $tag -Kind $kind) -Force -ErrorAction SilentlyContinue }
        $left = Get-FleetAgentHolder
        if ($null -ne $left -and $left.tag -eq $tag) {
            Remove-Item -LiteralPath (Join-Path -Path (Get-FleetAgentControlPath) -ChildPath 'agent.json') -Force -ErrorAction SilentlyContinue
        }
    }
    $Module.Result.changed = $removed.Count -gt 0
    $Module.Result.removed = $removed
    $Module.Result.staged_path = $staging
    $Module.ExitJson()
}

if ($p.firewall_backend -notin @('auto', 'windows')) {
    $module.FailJson("firewall_backend '$($p.firewall_backend)' is a Linux firewall: on Windows use auto or windows")
}
try {
    if ($p.state -eq 'absent') { Invoke-AgentAbsent -Module $module -Params $p }
    else { Invoke-AgentStart -Module $module -Params $p }
}
catch {
    $module.FailJson($_.Exception.Message, $_)
}
