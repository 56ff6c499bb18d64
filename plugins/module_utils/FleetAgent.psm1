# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The Windows node agent: the PowerShell twin of plugins/module_utils/agent.py, speaking the
# protocol of docs/agent.md (mutual TLS, bearer token, /v1/status, lease, cancel, inventory,
# plan, jobs, component upload (push), fetch (pull), shutdown). Used by plugins/module_utils/fleet_agent.ps1 (the agent
# process) and plugins/modules/agent.ps1 (the module that starts and removes it).
#
# Choices (docs/agent.md, "Windows"):
# * TLS: a TcpListener per address and an SslStream that requires a client certificate, checked
#   in RemoteCertificateValidationCallback against the run's CA pinned by its SHA-256
#   fingerprint. HttpListener (http.sys) cannot require a client certificate per listener on
#   every Windows version and would need a certificate binding (netsh http add sslcert) that
#   outlives a killed agent.
# * One thread: PowerShell script blocks cannot run on .NET worker threads without a runspace,
#   so the agent is a loop that accepts one request at a time, polls the running installer
#   (a separate process), the lease and the control folder. A request is answered and the
#   connection closed (Connection: close). A pull download (POST /v1/fetch) serves the other
#   requests, the job and the lease between its chunks (Invoke-FleetAgentTick), so a long
#   download does not starve the controller's lease renewals.
# * Pull delivery: HttpWebRequest (no proxy, no redirects, Range resume); with run_ca the
#   server's certificate must chain to the run's CA given in ca_cert (pinned fingerprint),
#   checked in the request's own ServerCertificateValidationCallback; without it, the system
#   store decides (the callback is not set at all).
# * Plan and detection: FleetInventory.psm1 (the PowerShell twin of plan.py and detect.py),
#   staged beside this file and imported by fleet_agent.ps1.
# * Lock: the named mutex Global\fleet-firmware-agent (released by Windows when the process
#   dies, like flock), the holder's tag/pid/since in %ProgramData%\fleet-firmware\agent.json.
# * Dead-man switch beyond the lease: the firewall lease task of FleetFirewall.psm1 and a sweep
#   task of the agent's own, re-armed by the live agent, that removes the rules, the staging
#   folder and the tasks when the agent has died without cleaning up.
#
# The tests parse this file with a PowerShell grammar and check its tables and the text it
# builds against the Python side; it has not run on a real Windows host in the project's tests.

Set-StrictMode -Version 2.0

$FleetAgentMarker = 'fleet-firmware'
$FleetAgentTagPattern = '^[a-z0-9-]{1,32}$'
$FleetAgentShaPattern = '^[0-9a-f]{64}$'
$FleetAgentNodePattern = '^[A-Za-z0-9._:-]{1,128}$'
$FleetAgentFileNamePattern = '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$'
$FleetAgentDefaultPort = 62286
$FleetAgentDefaultLease = 300
$FleetAgentMaxLease = 604800
$FleetAgentMinLease = 5
$FleetAgentFirewallGrace = 15
$FleetAgentSweepGrace = 60
$FleetAgentMaxJsonBody = 8388608
$FleetAgentMaxHeader = 65536
$FleetAgentIoTimeoutMs = 10000
$FleetAgentMutexName = 'Global\fleet-firmware-agent'
$FleetAgentRequired = 'tag', 'token', 'ca_cert', 'ca_fingerprint', 'server_cert', 'controller', 'staging'
$FleetAgentStagedFiles = 'fleet_agent.ps1', 'FleetAgent.psm1', 'FleetFirewall.psm1', 'FleetInventory.psm1'
$FleetAgentConfigName = 'agent-config.json'
$FleetAgentReadyName = 'ready.json'
$FleetAgentLogName = 'agent.log'
$FleetAgentComponents = 'components'
$FleetAgentClientAuthOid = '1.3.6.1.5.5.7.3.2'
# SIDs, never names: names are localized (Administratoren, Administrateurs, ...).
$FleetAgentSystemSid = 'S-1-5-18'
$FleetAgentAdministratorsSid = 'S-1-5-32-544'
# HPE Smart Component return codes on Windows (kept equal to returncodes.SMART_COMPONENT_WINDOWS).
$FleetAgentSmartComponentCodes = @{ 0 = 'failed'; 1 = 'installed'; 2 = 'reboot_required'; 3 = 'not_needed' }
$FleetAgentMsiCodes = @{ 0 = 'installed'; 1641 = 'reboot_required'; 3010 = 'reboot_required' }
$FleetAgentZeroCodes = @{ 0 = 'installed' }
$FleetAgentWindowsKinds = 'script', 'smart_component', 'msi', 'exe'
# Pull delivery (agent.py FETCH_ATTEMPTS, FETCH_TIMEOUT): attempts per component, seconds a silent connection may stall.
$FleetAgentFetchAttempts = 8
$FleetAgentFetchTimeout = 15
$FleetAgentFetchChunk = 1048576
# The run CA for the download callback, set before each pull: a callback runs after the function that made it has
# returned, so it reads this module variable rather than that function's locals.
$FleetAgentDownloadCa = $null
$FleetAgentOnFailedDependency = 'omit_component', 'omit_host', 'force'
# Plan policy (plan.py DEFAULT_POLICY, ONLY) and detection timeout (detect.py DEFAULT_TIMEOUT).
$FleetAgentPolicyOnly = 'all', 'firmware', 'software'
$FleetAgentDetectTimeout = 30
$FleetAgentSuccess = 'installed', 'reboot_required', 'not_needed'
$FleetAgentHttpReasons = @{
    200 = 'OK'; 201 = 'Created'; 202 = 'Accepted'; 400 = 'Bad Request'; 401 = 'Unauthorized'; 404 = 'Not Found'
    405 = 'Method Not Allowed'; 409 = 'Conflict'; 411 = 'Length Required'; 413 = 'Payload Too Large'; 500 = 'Internal Server Error'
    503 = 'Service Unavailable'; 504 = 'Gateway Timeout'; 507 = 'Insufficient Storage'
}

# --------------------------------------------------------------------------------------------
# Names and paths
# --------------------------------------------------------------------------------------------

Function Test-FleetAgentTag {
    param([Parameter(Mandatory = $true)][AllowEmptyString()][string]$Tag)
    if ($Tag -cnotmatch $FleetAgentTagPattern -or $Tag.EndsWith("`n")) {
        throw "tag '$Tag' is invalid: 1 to 32 characters of a-z, 0-9 and '-'"
    }
    return $Tag
}

Function Get-FleetAgentStagingPath {
    <# %SystemRoot%\Temp\fleet-firmware-<tag>: ADMIN$\Temp\fleet-firmware-<tag> seen from the node. #>
    param([Parameter(Mandatory = $true)][string]$Tag, [string]$SystemRoot = $env:SystemRoot)
    return Join-Path -Path $SystemRoot -ChildPath ('Temp\{0}-{1}' -f $FleetAgentMarker, $Tag)
}

Function Get-FleetAgentControlPath {
    <# %ProgramData%\fleet-firmware: the holder file and the module's requests to the agent. #>
    param([string]$ProgramData = $env:ProgramData)
    return Join-Path -Path $ProgramData -ChildPath $FleetAgentMarker
}

Function Get-FleetAgentTaskName {
    param([Parameter(Mandatory = $true)][string]$Tag, [ValidateSet('agent', 'sweep')][string]$Kind = 'agent')
    return '{0}-{1}-{2}' -f $FleetAgentMarker, $Tag, $Kind
}

Function Format-FleetAgentTime {
    param([Parameter(Mandatory = $true)][datetime]$Time)
    return $Time.ToUniversalTime().ToString('yyyy-MM-ddTHH:mm:ssZ', [System.Globalization.CultureInfo]::InvariantCulture)
}

Function Test-FleetAgentTrustedOwner {
    <# Whether a folder or file owned by $Sid may be ours: only SYSTEM and BUILTIN\Administrators. #>
    param([Parameter(Mandatory = $true)][string]$Sid)
    return ($Sid -eq $FleetAgentSystemSid) -or ($Sid -eq $FleetAgentAdministratorsSid)
}

Function New-FleetAgentFolderSecurity {
    <# Owner Administrators; SYSTEM and Administrators full control; protected (nothing inherited from the parent). #>
    $acl = New-Object -TypeName System.Security.AccessControl.DirectorySecurity
    $acl.SetAccessRuleProtection($true, $false)
    foreach ($sid in @($FleetAgentSystemSid, $FleetAgentAdministratorsSid)) {
        $who = New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList $sid
        $rule = New-Object -TypeName System.Security.AccessControl.FileSystemAccessRule -ArgumentList $who, 'FullControl', 'ContainerInherit,ObjectInherit', 'None', 'Allow'
        $acl.AddAccessRule($rule)
    }
    $acl.SetOwner((New-Object -TypeName System.Security.Principal.SecurityIdentifier -ArgumentList $FleetAgentAdministratorsSid))
    return $acl
}

Function Assert-FleetAgentOurs {
    <#
    Throws unless the existing $Path may be ours: not a reparse point (a junction or symbolic link
    a local user planted), owned by SYSTEM or Administrators. What is refused is left as it is.
    Not run here (no PowerShell): tests/unit/plugins/modules/test_agent_ps1.py parses it; the same
    rule over admin$ is tested against Samba (tests/integration/test_smb_stage_acl.py).
    #>
    param([Parameter(Mandatory = $true)][string]$Path)
    $item = Get-Item -LiteralPath $Path -Force
    if (($item.Attributes -band [System.IO.FileAttributes]::ReparsePoint) -ne 0) {
        throw ('{0} already exists and is a reparse point (a junction or link): refused, left as it is' -f $Path)
    }
    $owner = $item.GetAccessControl('Owner').GetOwner([System.Security.Principal.SecurityIdentifier]).Value
    if (-not (Test-FleetAgentTrustedOwner -Sid $owner)) {
        throw ('{0} already exists and is owned by {1}, not by BUILTIN\Administrators or SYSTEM: refused, left as it is ' -f $Path, $owner) +
            '(a local user may have made it to take over the run; an administrator should look at it and remove it)'
    }
    return $item
}

Function Set-FleetAgentFolderAcl {
    <#
    The staging or control folder made ours, or refused (docs/agent.md, the ACL model). A missing
    folder is created with the descriptor at once ([System.IO.Directory]::CreateDirectory with a
    DirectorySecurity: no moment with the parent's inherited ACL); then, and for a folder that
    already existed, Assert-FleetAgentOurs: a reparse point or a folder owned by anyone but SYSTEM
    or Administrators (one a local user made first, also between the test and the create) is
    refused; one of ours gets its descriptor set again (repaired). Runs on every start.
    #>
    param([Parameter(Mandatory = $true)][string]$Path)
    $security = New-FleetAgentFolderSecurity
    if (-not (Test-Path -LiteralPath $Path)) { [void][System.IO.Directory]::CreateDirectory($Path, $security) }
    $item = Assert-FleetAgentOurs -Path $Path
    if (-not $item.PSIsContainer) { throw ('{0} already exists and is not a folder: refused, left as it is' -f $Path) }
    Set-Acl -LiteralPath $Path -AclObject $security
}

Function Remove-FleetAgentTree {
    <#
    Removes $Path and everything in it without following a reparse point: a junction or symbolic
    link is removed as a link ([System.IO.Directory]::Delete($link, $false) removes a junction, not
    its target), never descended. Remove-Item -Recurse of Windows PowerShell 5.1 descends into
    junctions: a junction planted in the folder would have the cleanup delete elsewhere as SYSTEM.
    Not run here (no PowerShell): parse-tested only.
    #>
    param([Parameter(Mandatory = $true)][string]$Path)
    $item = Get-Item -LiteralPath $Path -Force -ErrorAction SilentlyContinue
    if ($null -eq $item) { return }
    $link = ($item.Attributes -band [System.IO.FileAttributes]::ReparsePoint) -ne 0
    if ($item.PSIsContainer -and -not $link) {
        foreach ($child in @(Get-ChildItem -LiteralPath $item.FullName -Force)) { Remove-FleetAgentTree -Path $child.FullName }
    }
    if ($item.PSIsContainer) { [System.IO.Directory]::Delete($item.FullName, $false) }
    else {
        $item.Attributes = [System.IO.FileAttributes]::Normal
        [System.IO.File]::Delete($item.FullName)
    }
}

Function Get-FleetAgentCommandText {
    <#
    What a powershell.exe command line runs: the script of -EncodedCommand decoded (the agent task
    passes its script so, with the expected SHA-256 of every staged file in it), else the line.
    #>
    param([AllowNull()][string]$CommandLine)
    if ($null -eq $CommandLine) { return '' }
    $match = [regex]::Match($CommandLine, '-EncodedCommand\s+([A-Za-z0-9+/=]+)')
    if (-not $match.Success) { return $CommandLine }
    try { return [System.Text.Encoding]::Unicode.GetString([Convert]::FromBase64String($match.Groups[1].Value)) }
    catch { return $CommandLine }
}

# --------------------------------------------------------------------------------------------
# The configuration document
# --------------------------------------------------------------------------------------------

Function ConvertTo-FleetAgentHashtable {
    <# ConvertFrom-Json gives PSCustomObjects on PowerShell 5.1 (no -AsHashtable): make hashtables. #>
    param([AllowNull()][object]$InputObject)
    if ($null -eq $InputObject) { return $null }
    if ($InputObject -is [System.Management.Automation.PSCustomObject]) {
        $table = @{}
        foreach ($property in $InputObject.PSObject.Properties) { $table[$property.Name] = ConvertTo-FleetAgentHashtable -InputObject $property.Value }
        return $table
    }
    if ($InputObject -is [System.Collections.IDictionary]) {
        $table = @{}
        foreach ($key in $InputObject.Keys) { $table[[string]$key] = ConvertTo-FleetAgentHashtable -InputObject $InputObject[$key] }
        return $table
    }
    if ($InputObject -is [System.Collections.IEnumerable] -and $InputObject -isnot [string]) {
        return , @($InputObject | ForEach-Object { ConvertTo-FleetAgentHashtable -InputObject $_ })
    }
    return $InputObject
}

Function Get-FleetAgentPemCertificate {
    <# The first certificate of a PEM text, as X509Certificate2. #>
    param([Parameter(Mandatory = $true)][string]$Pem)
    $m = [regex]::Match($Pem, '-----BEGIN CERTIFICATE-----(?<body>[A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----')
    if (-not $m.Success) { throw 'not a PEM certificate' }
    $der = [Convert]::FromBase64String(($m.Groups['body'].Value -replace '\s', ''))
    return New-Object -TypeName System.Security.Cryptography.X509Certificates.X509Certificate2 -ArgumentList (, $der)
}

Function Get-FleetAgentFingerprint {
    <# SHA-256 of a certificate's DER, lower-case hex without separators (as tls.fingerprint). #>
    param([Parameter(Mandatory = $true)][byte[]]$Der)
    $sha = [System.Security.Cryptography.SHA256]::Create()
    try { $hash = $sha.ComputeHash($Der) } finally { $sha.Dispose() }
    return (($hash | ForEach-Object { $_.ToString('x2') }) -join '')
}

Function Test-FleetAgentAddress {
    param([Parameter(Mandatory = $true)][string]$Value, [Parameter(Mandatory = $true)][string]$Name)
    $text = $Value.Trim().Trim('[', ']')
    $address = $null
    if (-not [System.Net.IPAddress]::TryParse($text, [ref]$address)) { throw "$Name address '$Value' is not an IP address" }
    return $address.ToString()
}

Function ConvertTo-FleetAgentInt {
    param([AllowNull()][object]$Value, [int]$Low, [int]$High, [string]$Name)
    $number = 0
    if ($Value -is [bool] -or -not [int]::TryParse("$Value", [ref]$number)) { throw "$Name '$Value' is not a number" }
    if ($number -lt $Low -or $number -gt $High) { throw "$Name '$Value' is out of range ($Low-$High)" }
    return $number
}

Function Test-FleetAgentConfig {
    <# The configuration document (docs/agent.md) checked, with defaults filled in; throws naming the bad value. #>
    param([Parameter(Mandatory = $true)][hashtable]$Raw)
    $missing = @($FleetAgentRequired | Where-Object { -not $Raw.ContainsKey($_) -or -not $Raw[$_] })
    if (-not $Raw.ContainsKey('server_pfx') -and -not $Raw.ContainsKey('server_key')) { $missing += 'server_key' }
    if ($missing.Count -gt 0) { throw ('the configuration lacks {0}' -f ($missing -join ', ')) }
    $config = @{} + $Raw
    $config.tag = Test-FleetAgentTag -Tag ([string]$Raw.tag)
    if (-not $config.ContainsKey('node_id') -or -not $config.node_id) { $config.node_id = [System.Net.Dns]::GetHostName() }
    if (-not $config.ContainsKey('run_id') -or -not $config.run_id) { $config.run_id = $config.tag }
    if ([string]$config.node_id -cnotmatch $FleetAgentNodePattern) { throw "node_id '$($config.node_id)' is invalid" }
    $port = $FleetAgentDefaultPort
    if ($Raw.ContainsKey('port')) { $port = $Raw.port }
    $config.port = ConvertTo-FleetAgentInt -Value $port -Low 1 -High 65535 -Name 'port'
    $lease = $FleetAgentDefaultLease
    if ($Raw.ContainsKey('lease')) { $lease = $Raw.lease }
    $config.lease = ConvertTo-FleetAgentInt -Value $lease -Low $FleetAgentMinLease -High $FleetAgentMaxLease -Name 'lease'
    $config.controller = @(@($Raw.controller) | ForEach-Object { Test-FleetAgentAddress -Value $_ -Name 'controller' })
    $bind = @()
    if ($Raw.ContainsKey('bind') -and $Raw.bind) { $bind = @($Raw.bind) }
    $config.bind = @($bind | ForEach-Object { Test-FleetAgentAddress -Value $_ -Name 'bind' })
    $firewall = @{ open = $true; backend = 'auto' }
    if ($Raw.ContainsKey('firewall') -and $Raw.firewall -is [hashtable]) {
        if ($Raw.firewall.ContainsKey('open')) { $firewall.open = [bool]$Raw.firewall.open }
        if ($Raw.firewall.ContainsKey('backend')) { $firewall.backend = [string]$Raw.firewall.backend }
    }
    if ($firewall.backend -notin @('auto', 'windows')) { throw "firewall backend '$($firewall.backend)' is a Linux firewall: on Windows use auto or windows" }
    $config.firewall = $firewall
    $staging = ([string]$Raw.staging).TrimEnd('\')
    if (-not [System.IO.Path]::IsPathRooted($staging) -or $staging -match '(^|\\)\.\.?(\\|$)' -or
        (Split-Path -Path $staging -Leaf) -cne ('{0}-{1}' -f $FleetAgentMarker, $config.tag)) {
        throw "staging folder '$($Raw.staging)' is invalid: an absolute path ending in $FleetAgentMarker-$($config.tag)"
    }
    $config.staging = $staging
    $ca = Get-FleetAgentPemCertificate -Pem ([string]$Raw.ca_cert)
    $pinned = ([string]$Raw.ca_fingerprint).ToLowerInvariant().Replace(':', '')
    if ((Get-FleetAgentFingerprint -Der $ca.RawData) -ne $pinned) {
        throw "the CA certificate does not match the pinned fingerprint $($Raw.ca_fingerprint)"
    }
    $config.ca_fingerprint = $pinned
    return $config
}

Function Read-FleetAgentConfigFile {
    <# Reads the configuration file the module wrote, and deletes it at once (it holds the secrets). #>
    param([Parameter(Mandatory = $true)][string]$Path)
    try {
        $text = [System.IO.File]::ReadAllText($Path, [System.Text.Encoding]::UTF8)
    }
    finally {
        Remove-Item -LiteralPath $Path -Force -ErrorAction SilentlyContinue
    }
    return ConvertTo-FleetAgentHashtable -InputObject (ConvertFrom-Json -InputObject $text)
}

# --------------------------------------------------------------------------------------------
# Node lock
# --------------------------------------------------------------------------------------------

Function Get-FleetAgentHolder {
    param([string]$ControlPath = (Get-FleetAgentControlPath))
    $file = Join-Path -Path $ControlPath -ChildPath 'agent.json'
    if (-not (Test-Path -LiteralPath $file)) { return $null }
    try { return ConvertTo-FleetAgentHashtable -InputObject (ConvertFrom-Json -InputObject ([System.IO.File]::ReadAllText($file))) }
    catch { return $null }
}

Function Set-FleetAgentHolder {
    param([Parameter(Mandatory = $true)][hashtable]$Holder, [string]$ControlPath = (Get-FleetAgentControlPath))
    # On every write: %ProgramData%\fleet-firmware is repaired when ours, refused when a user made it.
    Set-FleetAgentFolderAcl -Path $ControlPath
    $file = Join-Path -Path $ControlPath -ChildPath 'agent.json'
    $temp = "$file.tmp"
    [System.IO.File]::WriteAllText($temp, (ConvertTo-Json -InputObject $Holder -Compress -Depth 5))
    Move-Item -LiteralPath $temp -Destination $file -Force
}

Function Test-FleetAgentProcess {
    <# Whether pid is alive and is an agent of this tag (its command line names fleet_agent.ps1 and the tag's folder). #>
    param([Parameter(Mandatory = $true)][int]$ProcessId, [Parameter(Mandatory = $true)][string]$Tag)
    $process = Get-CimInstance -ClassName Win32_Process -Filter "ProcessId = $ProcessId" -ErrorAction SilentlyContinue
    if ($null -eq $process -or $null -eq $process.CommandLine) { return $false }
    $text = Get-FleetAgentCommandText -CommandLine $process.CommandLine
    return ($text -like '*fleet_agent.ps1*') -and ($text -like "*$FleetAgentMarker-$Tag*")
}

Function Enter-FleetAgentLock {
    <# Takes the node's mutex or throws naming the run that holds it. Windows releases it if we die. #>
    param([Parameter(Mandatory = $true)][string]$Tag)
    $mutex = New-Object -TypeName System.Threading.Mutex -ArgumentList $false, $FleetAgentMutexName
    $owned = $false
    try { $owned = $mutex.WaitOne(0) }
    catch [System.Threading.AbandonedMutexException] { $owned = $true }  # the last holder died: ours now
    if (-not $owned) {
        $mutex.Dispose()
        $other = Get-FleetAgentHolder
        if ($null -eq $other) { $other = @{ tag = '?'; pid = '?'; since = '?' } }
        throw ("node is held by run '{0}' (agent pid {1} since {2}): stop that run first, or wait for its lease to run out" -f $other.tag, $other.pid, $other.since)
    }
    return $mutex
}

Function Exit-FleetAgentLock {
    param([Parameter(Mandatory = $true)][System.Threading.Mutex]$Mutex, [Parameter(Mandatory = $true)][string]$Tag)
    $holder = Get-FleetAgentHolder
    if ($null -ne $holder -and $holder.tag -eq $Tag) {
        Remove-Item -LiteralPath (Join-Path -Path (Get-FleetAgentControlPath) -ChildPath 'agent.json') -Force -ErrorAction SilentlyContinue
    }
    try { $Mutex.ReleaseMutex() } catch { Write-Verbose -Message 'mutex already released' }
    $Mutex.Dispose()
}

# --------------------------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------------------------

Function Get-FleetAgentServerCertificate {
    <#
    The agent's certificate with its private key. server_pfx (PKCS#12, base64, made on the
    controller by agent_windows.windows_secrets) works on every .NET; the PEM pair needs .NET 5+
    (PowerShell 7). Schannel wants a key it can reach: imported into the machine store for the
    agent's life (no PersistKeySet: it is deleted with the object).
    #>
    param([Parameter(Mandatory = $true)][hashtable]$Config)
    $flags = [System.Security.Cryptography.X509Certificates.X509KeyStorageFlags]::MachineKeySet
    if ($Config.ContainsKey('server_pfx') -and $Config.server_pfx) {
        $bytes = [Convert]::FromBase64String([string]$Config.server_pfx)
        return New-Object -TypeName System.Security.Cryptography.X509Certificates.X509Certificate2 -ArgumentList $bytes, ([string]$Config.server_pfx_password), $flags
    }
    $type = [System.Security.Cryptography.X509Certificates.X509Certificate2]
    if ($null -eq $type.GetMethod('CreateFromPem', [type[]]@([string], [string]))) {
        throw 'the agent certificate came as PEM, which this .NET cannot import: the controller must send server_pfx (agent_windows.windows_secrets)'
    }
    $pem = $type::CreateFromPem([string]$Config.server_cert, [string]$Config.server_key)
    $password = [guid]::NewGuid().ToString()
    $pfx = $pem.Export([System.Security.Cryptography.X509Certificates.X509ContentType]::Pkcs12, $password)
    return New-Object -TypeName System.Security.Cryptography.X509Certificates.X509Certificate2 -ArgumentList $pfx, $password, $flags
}

Function Test-FleetAgentClientCertificate {
    <#
    The client certificate must chain to the run's CA, pinned by the SHA-256 of its DER (the
    Windows root store plays no part), be in its validity period and be meant for client auth.
    Returns $null when accepted, else the reason.
    #>
    param(
        [AllowNull()][System.Security.Cryptography.X509Certificates.X509Certificate]$Certificate,
        [Parameter(Mandatory = $true)][System.Security.Cryptography.X509Certificates.X509Certificate2]$CaCertificate,
        [Parameter(Mandatory = $true)][string]$Fingerprint
    )
    if ($null -eq $Certificate) { return 'no client certificate' }
    $leaf = New-Object -TypeName System.Security.Cryptography.X509Certificates.X509Certificate2 -ArgumentList $Certificate
    $chain = New-Object -TypeName System.Security.Cryptography.X509Certificates.X509Chain
    try {
        $chain.ChainPolicy.RevocationMode = [System.Security.Cryptography.X509Certificates.X509RevocationMode]::NoCheck
        $chain.ChainPolicy.VerificationFlags = [System.Security.Cryptography.X509Certificates.X509VerificationFlags]::AllowUnknownCertificateAuthority
        [void]$chain.ChainPolicy.ExtraStore.Add($CaCertificate)
        [void]$chain.Build($leaf)
        $bad = @($chain.ChainStatus | Where-Object { $_.Status -ne [System.Security.Cryptography.X509Certificates.X509ChainStatusFlags]::UntrustedRoot })
        if ($bad.Count -gt 0) { return ('client certificate refused: {0}' -f (($bad | ForEach-Object { $_.Status }) -join ', ')) }
        $elements = @($chain.ChainElements | ForEach-Object { $_.Certificate })
        if ($elements.Count -lt 2) { return 'client certificate refused: it is not issued by the run CA' }
        $root = $elements[$elements.Count - 1]
        if ((Get-FleetAgentFingerprint -Der $root.RawData) -ne $Fingerprint) { return 'client certificate refused: not issued by the pinned run CA' }
        $usage = @($leaf.Extensions | Where-Object { $_ -is [System.Security.Cryptography.X509Certificates.X509EnhancedKeyUsageExtension] })
        if ($usage.Count -gt 0 -and -not (@($usage[0].EnhancedKeyUsages | ForEach-Object { $_.Value }) -contains $FleetAgentClientAuthOid)) {
            return 'client certificate refused: not meant for client authentication'
        }
        return $null
    }
    finally {
        $chain.Dispose()
    }
}

Function Get-FleetAgentSslProtocol {
    <# TLS 1.2, and 1.3 where this .NET knows it. #>
    $protocols = [System.Security.Authentication.SslProtocols]::Tls12
    if ([enum]::GetNames([System.Security.Authentication.SslProtocols]) -contains 'Tls13') {
        $protocols = $protocols -bor [System.Security.Authentication.SslProtocols]'Tls13'
    }
    return $protocols
}

Function Get-FleetAgentFacingAddress {
    <# The node's own address on the route to each controller address (a UDP connect sends nothing). #>
    param([Parameter(Mandatory = $true)][string[]]$Controller)
    $found = New-Object -TypeName System.Collections.Generic.List[string]
    foreach ($address in $Controller) {
        $ip = [System.Net.IPAddress]::Parse($address)
        $probe = New-Object -TypeName System.Net.Sockets.Socket -ArgumentList $ip.AddressFamily, ([System.Net.Sockets.SocketType]::Dgram), ([System.Net.Sockets.ProtocolType]::Udp)
        try {
            $probe.Connect($ip, 9)
            $local = $probe.LocalEndPoint.Address.ToString()
        }
        catch {
            throw "no route from this node to the controller address ${address}: $($_.Exception.Message)"
        }
        finally {
            $probe.Dispose()
        }
        $local = $local -replace '%\d+$', ''
        if (-not $found.Contains($local)) { $found.Add($local) }
    }
    return , $found.ToArray()
}

Function New-FleetAgentListener {
    <# One TcpListener per address; a port in use is named with the address. #>
    param([Parameter(Mandatory = $true)][string[]]$Address, [Parameter(Mandatory = $true)][int]$Port)
    $listeners = New-Object -TypeName System.Collections.Generic.List[System.Net.Sockets.TcpListener]
    try {
        foreach ($text in $Address) {
            $listener = New-Object -TypeName System.Net.Sockets.TcpListener -ArgumentList ([System.Net.IPAddress]::Parse($text)), $Port
            # No other process may bind the same port on this address behind our back.
            $listener.ExclusiveAddressUse = $true
            try { $listener.Start() }
            catch [System.Net.Sockets.SocketException] {
                if ($_.Exception.SocketErrorCode -eq [System.Net.Sockets.SocketError]::AddressAlreadyInUse) {
                    throw "port $Port is already in use on ${text}: another program listens there (choose another agent_port)"
                }
                throw "cannot listen on [${text}]:${Port}: $($_.Exception.Message)"
            }
            $listeners.Add($listener)
        }
    }
    catch {
        foreach ($started in $listeners) { $started.Stop() }
        throw
    }
    return , $listeners.ToArray()
}

# --------------------------------------------------------------------------------------------
# HTTP over the TLS stream (one request per connection)
# --------------------------------------------------------------------------------------------

Function Read-FleetAgentRequest {
    <# Request line and headers (up to 64 KiB); the body stays in the stream. #>
    param([Parameter(Mandatory = $true)][System.IO.Stream]$Stream)
    $buffer = New-Object -TypeName System.IO.MemoryStream
    $last = 0
    while ($true) {
        $byte = $Stream.ReadByte()
        if ($byte -lt 0) { throw 'the client closed the connection' }
        $buffer.WriteByte([byte]$byte)
        # The last four bytes read, as one Int32 (the shift drops the oldest byte).
        $last = ($last -shl 8) -bor $byte
        if ($last -eq 0x0D0A0D0A) { break }
        if ($buffer.Length -gt $FleetAgentMaxHeader) { throw 'request header too large' }
    }
    $text = [System.Text.Encoding]::ASCII.GetString($buffer.ToArray())
    $lines = $text -split "`r`n"
    $first = $lines[0] -split ' '
    if ($first.Count -ne 3) { throw "bad request line '$($lines[0])'" }
    $headers = @{}
    foreach ($line in $lines[1..($lines.Count - 1)]) {
        $at = $line.IndexOf(':')
        if ($at -gt 0) { $headers[$line.Substring(0, $at).Trim().ToLowerInvariant()] = $line.Substring($at + 1).Trim() }
    }
    return @{ Method = $first[0]; Path = ($first[1] -split '\?')[0]; Headers = $headers }
}

Function Write-FleetAgentResponse {
    param([Parameter(Mandatory = $true)][System.IO.Stream]$Stream, [Parameter(Mandatory = $true)][int]$Status, [Parameter(Mandatory = $true)][object]$Body)
    $json = (ConvertTo-Json -InputObject $Body -Depth 8 -Compress) + "`n"
    $data = [System.Text.Encoding]::UTF8.GetBytes($json)
    $reason = $FleetAgentHttpReasons[$Status]
    $head = "HTTP/1.1 $Status $reason`r`nServer: fleet-firmware-agent/1`r`nContent-Type: application/json`r`nContent-Length: $($data.Length)`r`nConnection: close`r`n`r`n"
    $headBytes = [System.Text.Encoding]::ASCII.GetBytes($head)
    $Stream.Write($headBytes, 0, $headBytes.Length)
    $Stream.Write($data, 0, $data.Length)
    $Stream.Flush()
}

Function Get-FleetAgentContentLength {
    <# Content-Length as a number; $null when missing or not a number (411). #>
    param([Parameter(Mandatory = $true)][hashtable]$Request)
    $text = $Request.Headers['content-length']
    $length = [long]0
    if ($null -eq $text -or -not [long]::TryParse($text, [ref]$length) -or $length -lt 0) { return $null }
    return $length
}

Function Read-FleetAgentBytes {
    param([Parameter(Mandatory = $true)][System.IO.Stream]$Stream, [Parameter(Mandatory = $true)][long]$Length)
    $data = New-Object -TypeName byte[] -ArgumentList $Length
    $offset = 0
    while ($offset -lt $Length) {
        $read = $Stream.Read($data, $offset, $Length - $offset)
        if ($read -le 0) { throw "the body ended after $offset of $Length bytes" }
        $offset += $read
    }
    return , $data
}

Function Skip-FleetAgentBytes {
    <# Reads and drops $Length bytes of a body, 64 KiB at a time (a body refused for its size is not kept). #>
    param([Parameter(Mandatory = $true)][System.IO.Stream]$Stream, [Parameter(Mandatory = $true)][long]$Length)
    $buffer = New-Object -TypeName byte[] -ArgumentList 65536
    $left = $Length
    while ($left -gt 0) {
        $read = $Stream.Read($buffer, 0, [int][math]::Min($left, $buffer.Length))
        if ($read -le 0) { return }
        $left -= $read
    }
}

Function Test-FleetAgentToken {
    <# Constant-time comparison of the Authorization header with 'Bearer <token>'. #>
    param([AllowNull()][string]$Given, [Parameter(Mandatory = $true)][string]$Token)
    $a = [System.Text.Encoding]::UTF8.GetBytes([string]$Given)
    $b = [System.Text.Encoding]::UTF8.GetBytes('Bearer ' + $Token)
    $diff = $a.Length -bxor $b.Length
    for ($i = 0; $i -lt $b.Length; $i++) {
        $x = 0
        if ($i -lt $a.Length) { $x = $a[$i] }
        $diff = $diff -bor ($x -bxor $b[$i])
    }
    return $diff -eq 0
}

# --------------------------------------------------------------------------------------------
# Agent state, lease and job
# --------------------------------------------------------------------------------------------

Function New-FleetAgentState {
    param([Parameter(Mandatory = $true)][hashtable]$Config)
    return @{
        Config = $Config; Tag = $Config.tag; Staging = $Config.staging; State = 'starting'
        LeaseExpires = [datetime]::UtcNow.AddSeconds($Config.lease); Cancelled = $false; CancelReason = ''
        Current = $null; Job = $null; Index = 0; JobEnded = $false; Process = $null; Events = New-Object -TypeName System.Collections.ArrayList
        EventsTotal = 0
        Addresses = @(); Listeners = @(); Stopping = $false; FirewallOpened = $false; Mutex = $null
        Certificate = $null; CaCertificate = $null; SweepArmed = [datetime]::MinValue; Since = [datetime]::UtcNow
        OnFailedDependency = 'omit_component'; Broken = New-Object -TypeName System.Collections.Generic.List[string]
        Transfers = @{}; Fetching = $false
    }
}

Function Write-FleetAgentLog {
    param([Parameter(Mandatory = $true)][hashtable]$Agent, [Parameter(Mandatory = $true)][string]$Message)
    $file = Join-Path -Path $Agent.Staging -ChildPath $FleetAgentLogName
    try { [System.IO.File]::AppendAllText($file, ('{0} {1}{2}' -f (Format-FleetAgentTime -Time ([datetime]::UtcNow)), $Message, "`r`n")) }
    catch { Write-Verbose -Message 'log not writable' }
}

Function Add-FleetAgentEvent {
    param([Parameter(Mandatory = $true)][hashtable]$Agent, [Parameter(Mandatory = $true)][string]$State, [hashtable]$Fields = @{}, [switch]$KeepState)
    # KeepState: an event that does not move the agent (a cancel request), as the Python agent.
    if (-not $KeepState) { $Agent.State = $State }
    $entry = @{} + $Fields
    $entry.state = $State
    $entry.time = Format-FleetAgentTime -Time ([datetime]::UtcNow)
    # seq numbers the events, as the Python agent: a reader of the window tells what is new.
    $Agent.EventsTotal += 1
    $entry.seq = $Agent.EventsTotal
    [void]$Agent.Events.Add($entry)
    while ($Agent.Events.Count -gt 200) { $Agent.Events.RemoveAt(0) }
    Write-FleetAgentLog -Agent $Agent -Message ('event ' + (ConvertTo-Json -InputObject $entry -Compress))
}

Function Get-FleetAgentPublicComponent {
    param([AllowNull()][object[]]$Components)
    $keep = 'name', 'version', 'sha256', 'status', 'result', 'rc', 'duration', 'output', 'reason'
    return , @($Components | Where-Object { $null -ne $_ } | ForEach-Object {
            $component = $_
            $public = @{}
            foreach ($key in $keep) { if ($component.ContainsKey($key)) { $public[$key] = $component[$key] } }
            $public
        })
}

Function Get-FleetAgentJobState {
    <# $null (no job yet), running, done, or cancelled (the job ended early). #>
    param([Parameter(Mandatory = $true)][hashtable]$Agent)
    if ($null -eq $Agent.Job) { return $null }
    $components = @($Agent.Job)
    if ($null -ne $Agent.Process -or $Agent.Index -lt $components.Count) { return 'running' }
    if (@($components | Where-Object { $_.status -eq 'skipped' }).Count -gt 0) { return 'cancelled' }
    return 'done'
}

Function Get-FleetAgentStatus {
    param([Parameter(Mandatory = $true)][hashtable]$Agent)
    $remaining = [math]::Max(0.0, [math]::Round(($Agent.LeaseExpires - [datetime]::UtcNow).TotalSeconds, 1))
    $events = @($Agent.Events)
    if ($events.Count -gt 50) { $events = $events[($events.Count - 50)..($events.Count - 1)] }
    $components = @()
    if ($null -ne $Agent.Job) { $components = Get-FleetAgentPublicComponent -Components $Agent.Job }
    return @{
        tag = $Agent.Tag; run_id = $Agent.Config.run_id; node_id = $Agent.Config.node_id; pid = $PID; state = $Agent.State
        cancelled = $Agent.Cancelled; cancel_reason = $Agent.CancelReason; lease_expires = Format-FleetAgentTime -Time $Agent.LeaseExpires
        lease_remaining = $remaining; addresses = @($Agent.Addresses); port = $Agent.Config.port; current = $Agent.Current
        job = Get-FleetAgentJobState -Agent $Agent; components = @($components); events = @($events)
        downloads = @{} + $Agent.Transfers
    }
}

Function Update-FleetAgentLease {
    <# Renews the lease (and the firewall's own lease with it); refused once the agent is stopping. #>
    param([Parameter(Mandatory = $true)][hashtable]$Agent, [AllowNull()][object]$Seconds)
    if ($null -eq $Seconds) { $Seconds = $Agent.Config.lease }
    $Seconds = ConvertTo-FleetAgentInt -Value $Seconds -Low $FleetAgentMinLease -High $FleetAgentMaxLease -Name 'seconds'
    if ($Agent.Stopping) { throw "the agent is stopping ($($Agent.CancelReason)): the lease cannot be renewed" }
    $Agent.LeaseExpires = [datetime]::UtcNow.AddSeconds($Seconds)
    if ($Agent.FirewallOpened) { Set-FleetLease -Tag $Agent.Tag -Expires $Agent.LeaseExpires.AddSeconds($FleetAgentFirewallGrace) }
    Save-FleetAgentHolder -Agent $Agent
    return @{ lease_expires = Format-FleetAgentTime -Time $Agent.LeaseExpires; lease_remaining = [double]$Seconds }
}

Function Request-FleetAgentCancel {
    param([Parameter(Mandatory = $true)][hashtable]$Agent, [Parameter(Mandatory = $true)][string]$Reason)
    if (-not $Agent.Cancelled) {
        $Agent.Cancelled = $true
        $Agent.CancelReason = $Reason
        Add-FleetAgentEvent -Agent $Agent -State 'cancelled' -Fields @{ reason = $Reason } -KeepState
    }
    return @{ cancelled = $true; current = $Agent.Current }
}

Function Request-FleetAgentStop {
    <# Lease out, shutdown or absent: finish the in-flight component, skip the rest, then clean up. #>
    param([Parameter(Mandatory = $true)][hashtable]$Agent, [Parameter(Mandatory = $true)][string]$Reason)
    if ($Agent.Stopping) { return }
    [void](Request-FleetAgentCancel -Agent $Agent -Reason $Reason)
    $Agent.Stopping = $true
}

Function Test-FleetAgentJob {
    <# The body of POST /v1/jobs: {"components": [{name, sha256, ...}, ...]}; throws naming the bad entry. #>
    param([AllowNull()][object]$Body)
    if ($Body -isnot [hashtable] -or -not $Body.ContainsKey('components') -or $Body.components -isnot [array]) { throw 'a job is {"components": [...]}' }
    $onFailed = Get-FleetAgentOnFailedDependency -Body $Body
    if ($FleetAgentOnFailedDependency -cnotcontains $onFailed) {
        throw ("on_failed_dependency '{0}' is not one of {1}" -f $onFailed, ($FleetAgentOnFailedDependency -join ', '))
    }
    $index = 0
    foreach ($component in @($Body.components)) {
        if ($component -isnot [hashtable]) { throw "component #$index is not an object" }
        if ([string]$component['sha256'] -cnotmatch $FleetAgentShaPattern) {
            throw "component #$index ($($component['name'])): sha256 '$($component['sha256'])' is not 64 lower-case hex digits"
        }
        if (-not $component['name']) { throw "component #${index}: name is missing" }
        $index++
    }
    return , @($Body.components)
}

Function Get-FleetAgentOnFailedDependency {
    <# on_failed_dependency of a job body; omit_component when not given (as agent.py). #>
    param([Parameter(Mandatory = $true)][hashtable]$Body)
    if ($Body.ContainsKey('on_failed_dependency') -and $null -ne $Body.on_failed_dependency) { return [string]$Body.on_failed_dependency }
    return 'omit_component'
}

Function Add-FleetAgentJob {
    param([Parameter(Mandatory = $true)][hashtable]$Agent, [Parameter(Mandatory = $true)][AllowEmptyCollection()][object[]]$Components,
        [ValidateSet('omit_component', 'omit_host', 'force')][string]$OnFailedDependency = 'omit_component')
    if ($Agent.Stopping) { throw 'the agent is stopping: no new job' }
    if ($null -ne $Agent.Process) { throw 'a job is already running' }
    if ($null -ne $Agent.Job -and $Agent.Index -lt @($Agent.Job).Count) { throw 'a job is already running' }
    $Agent.Job = @($Components | ForEach-Object { $entry = @{} + $_; if (-not $entry.ContainsKey('status')) { $entry.status = 'pending' }; $entry })
    $Agent.Index = 0
    $Agent.JobEnded = $false
    $Agent.OnFailedDependency = $OnFailedDependency
    $Agent.Broken = New-Object -TypeName System.Collections.Generic.List[string]
    return @($Agent.Job).Count
}

Function Get-FleetAgentComponentPath {
    param([Parameter(Mandatory = $true)][hashtable]$Agent, [Parameter(Mandatory = $true)][string]$Hash)
    return Join-Path -Path (Join-Path -Path $Agent.Staging -ChildPath $FleetAgentComponents) -ChildPath $Hash
}

Function Get-FleetAgentReturnCodeTable {
    <# The component's own returncodes map, else its kind's default (as installers.returncode_table on windows). #>
    param([Parameter(Mandatory = $true)][hashtable]$Component)
    if ($Component.ContainsKey('returncodes') -and $Component.returncodes -is [hashtable]) {
        $own = @{}
        foreach ($key in $Component.returncodes.Keys) { $own[[int]$key] = [string]$Component.returncodes[$key] }
        return $own
    }
    switch ([string]$Component['install']) {
        'smart_component' { return $FleetAgentSmartComponentCodes }
        'msi' { return $FleetAgentMsiCodes }
        default { return $FleetAgentZeroCodes }
    }
}

Function ConvertTo-FleetAgentArgument {
    <# One argv element quoted for a Windows command line (the rules of CommandLineToArgvW). #>
    param([Parameter(Mandatory = $true)][AllowEmptyString()][string]$Value)
    if ($Value -ne '' -and $Value -notmatch '[\s"]') { return $Value }
    $quoted = [regex]::Replace($Value, '(\\*)"', { param($m) $m.Groups[1].Value + $m.Groups[1].Value + '\"' })
    $quoted = [regex]::Replace($quoted, '(\\+)$', { param($m) $m.Groups[1].Value + $m.Groups[1].Value })
    return '"' + $quoted + '"'
}

Function Get-FleetAgentInstallCommand {
    <# The argv of an install (installers.build_command, os windows): file first, then arguments. #>
    param([Parameter(Mandatory = $true)][hashtable]$Component, [Parameter(Mandatory = $true)][string]$Path)
    $kind = [string]$Component['install']
    if ($FleetAgentWindowsKinds -notcontains $kind) {
        throw ("component '{0}': install kind '{1}' does not exist on windows (there: {2})" -f $Component.name, $kind, ($FleetAgentWindowsKinds -join ', '))
    }
    $wants = { param($what) if ($what -eq 'force') { [bool]$Component['force'] } else { $Component['action'] -eq $what } }
    switch ($kind) {
        'script' {
            if ($Path -like '*.ps1') { $argv = @('powershell.exe', '-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-File', $Path) }
            elseif ($Path -like '*.cmd' -or $Path -like '*.bat') { $argv = @('cmd.exe', '/d', '/c', $Path) }
            else { $argv = @($Path) }
        }
        'smart_component' {
            $argv = @($Path, '/s')
            if ((& $wants 'downgrade') -or (& $wants 'rewrite') -or (& $wants 'force')) { $argv += '/f' }
        }
        'msi' {
            $argv = @('msiexec.exe', '/i', $Path, '/qn', '/norestart', '/l*v', "$Path.log")
            if ((& $wants 'rewrite') -or (& $wants 'force')) { $argv += @('REINSTALL=ALL', 'REINSTALLMODE=vomus') }
        }
        default { $argv = @($Path) }
    }
    if ($Component.ContainsKey('args') -and $null -ne $Component.args) { $argv += @($Component.args | ForEach-Object { [string]$_ }) }
    return , $argv
}

Function Get-FleetAgentFileHash {
    param([Parameter(Mandatory = $true)][string]$Path)
    $sha = [System.Security.Cryptography.SHA256]::Create()
    $stream = [System.IO.File]::OpenRead($Path)
    try { $hash = $sha.ComputeHash($stream) } finally { $stream.Dispose(); $sha.Dispose() }
    return (($hash | ForEach-Object { $_.ToString('x2') }) -join '')
}

Function Start-FleetAgentInstall {
    <# Verifies the staged file's SHA-256 and starts its installer as a separate process. #>
    param([Parameter(Mandatory = $true)][hashtable]$Agent, [Parameter(Mandatory = $true)][hashtable]$Component)
    $path = Get-FleetAgentComponentPath -Agent $Agent -Hash $Component.sha256
    if (-not (Test-Path -LiteralPath $path)) { throw "component $($Component.name) ($($Component.sha256)) was not delivered to the node" }
    if ((Get-FleetAgentFileHash -Path $path) -ne $Component.sha256) {
        throw "component $($Component.name): the staged file's SHA-256 does not match the manifest"
    }
    Add-FleetAgentEvent -Agent $Agent -State 'verified' -Fields @{ component = $Component.name }
    # The installer wants its own name (cp123456.exe, setup.msi) and extension.
    $named = $path
    if ($Component.ContainsKey('file') -and [string]$Component.file -match $FleetAgentFileNamePattern) {
        $named = Join-Path -Path (Split-Path -Path $path -Parent) -ChildPath ('{0}-{1}' -f $Component.sha256.Substring(0, 12), $Component.file)
        Copy-Item -LiteralPath $path -Destination $named -Force
    }
    $argv = Get-FleetAgentInstallCommand -Component $Component -Path $named
    $info = New-Object -TypeName System.Diagnostics.ProcessStartInfo
    $info.FileName = $argv[0]
    $info.Arguments = (@($argv | Select-Object -Skip 1 | ForEach-Object { ConvertTo-FleetAgentArgument -Value $_ }) -join ' ')
    $info.UseShellExecute = $false
    $info.CreateNoWindow = $true
    $info.WorkingDirectory = $Agent.Staging
    Add-FleetAgentEvent -Agent $Agent -State 'installing' -Fields @{ component = $Component.name }
    return [System.Diagnostics.Process]::Start($info)
}

Function Complete-FleetAgentInstall {
    <# Records what a finished installer's return code means. #>
    param([Parameter(Mandatory = $true)][hashtable]$Agent, [Parameter(Mandatory = $true)][hashtable]$Component, [Parameter(Mandatory = $true)][int]$ExitCode)
    $table = Get-FleetAgentReturnCodeTable -Component $Component
    $status = 'failed'
    if ($table.ContainsKey($ExitCode)) { $status = $table[$ExitCode] }
    $Component.rc = $ExitCode
    $Component.result = $status
    $Component.reason = $status
    if (-not $table.ContainsKey($ExitCode)) { $Component.reason = "unknown return code $ExitCode" }
    $Component.status = 'failed'
    if ($FleetAgentSuccess -contains $status) { $Component.status = 'installed' }
    if ($Component.ContainsKey('since')) { $Component.duration = [math]::Round(([datetime]::UtcNow - $Component.since).TotalSeconds, 1); $Component.Remove('since') }
}

Function Get-FleetAgentBlockedBy {
    <# Why a failure earlier in the job leaves this component out ('' when it does not): agent.py _blocked_by. #>
    param([Parameter(Mandatory = $true)][hashtable]$Agent, [Parameter(Mandatory = $true)][hashtable]$Component)
    if ($Agent.Broken.Count -eq 0 -or $Agent.OnFailedDependency -eq 'force') { return '' }
    # sorted(set(...)) of Python: unique (case-sensitive) and in ordinal order.
    [string[]]$broken = @($Agent.Broken | Select-Object -Unique)
    [System.Array]::Sort($broken, [System.StringComparer]::Ordinal)
    if ($Agent.OnFailedDependency -eq 'omit_host') { return 'omit_host: {0} failed earlier on this node' -f ($broken -join ', ') }
    $requires = @()
    if ($Component.ContainsKey('requires') -and $null -ne $Component.requires) { $requires = @($Component.requires | ForEach-Object { [string]$_ }) }
    $failed = @($broken | Where-Object { $requires -ccontains $_ })
    if ($failed.Count -eq 0) { return '' }
    return 'omit_component: its dependency {0} failed' -f ($failed -join ', ')
}

Function Step-FleetAgentJob {
    <# Moves the job on: collects a finished installer, then starts the next component or skips it when cancelled. #>
    param([Parameter(Mandatory = $true)][hashtable]$Agent)
    if ($null -eq $Agent.Job) { return }
    $components = @($Agent.Job)
    if ($null -ne $Agent.Process) {
        if (-not $Agent.Process.HasExited) { return }
        $component = $components[$Agent.Index]
        Complete-FleetAgentInstall -Agent $Agent -Component $component -ExitCode $Agent.Process.ExitCode
        $Agent.Process.Dispose()
        $Agent.Process = $null
        $Agent.Current = $null
        if ($component.status -eq 'failed') { $Agent.Broken.Add([string]$component.name) }
        Add-FleetAgentEvent -Agent $Agent -State $component.status -Fields @{ component = $component.name; rc = $component.rc; reason = $component.reason }
        $Agent.Index++
    }
    while ($Agent.Index -lt $components.Count -and $null -eq $Agent.Process) {
        $component = $components[$Agent.Index]
        $blocked = Get-FleetAgentBlockedBy -Agent $Agent -Component $component
        if ($Agent.Cancelled -or $blocked) {
            $component.status = 'skipped'
            $component.reason = $Agent.CancelReason
            if ($blocked) {
                $component.reason = $blocked
                $Agent.Broken.Add([string]$component.name)  # what depends on it is left out too
            }
            elseif (-not $component.reason) { $component.reason = 'cancelled' }
            Add-FleetAgentEvent -Agent $Agent -State 'skipped' -Fields @{ component = $component.name; reason = $component.reason }
            $Agent.Index++
            continue
        }
        try {
            $Agent.Current = @{ name = $component.name; sha256 = $component.sha256; since = Format-FleetAgentTime -Time ([datetime]::UtcNow) }
            $component.since = [datetime]::UtcNow
            $Agent.Process = Start-FleetAgentInstall -Agent $Agent -Component $component
        }
        catch {
            $component.status = 'failed'
            $component.reason = $_.Exception.Message
            $Agent.Current = $null
            $Agent.Broken.Add([string]$component.name)
            Add-FleetAgentEvent -Agent $Agent -State 'failed' -Fields @{ component = $component.name; reason = $component.reason }
            $Agent.Index++
        }
    }
    if ($Agent.Index -ge $components.Count -and $null -eq $Agent.Process -and -not $Agent.JobEnded) {
        $Agent.JobEnded = $true
        $end = 'done'
        if ($Agent.Cancelled) { $end = 'cancelled' }
        Add-FleetAgentEvent -Agent $Agent -State $end -Fields @{ components = $components.Count }
    }
}

Function Save-FleetAgentComponent {
    <# PUT /v1/components/<sha256>: streamed to <sha>.part, hash checked, renamed; nothing kept on mismatch. #>
    param([Parameter(Mandatory = $true)][hashtable]$Agent, [Parameter(Mandatory = $true)][string]$Hash,
        [Parameter(Mandatory = $true)][System.IO.Stream]$Stream, [Parameter(Mandatory = $true)][long]$Length)
    $final = Get-FleetAgentComponentPath -Agent $Agent -Hash $Hash
    $partial = "$final.part"
    $sha = [System.Security.Cryptography.SHA256]::Create()
    $buffer = New-Object -TypeName byte[] -ArgumentList 1048576
    $ok = $false
    try {
        $file = [System.IO.File]::Open($partial, [System.IO.FileMode]::Create, [System.IO.FileAccess]::Write, [System.IO.FileShare]::None)
        try {
            $remaining = $Length
            while ($remaining -gt 0) {
                $read = $Stream.Read($buffer, 0, [int][math]::Min($buffer.Length, $remaining))
                if ($read -le 0) { throw ('the upload ended after {0} of {1} bytes' -f ($Length - $remaining), $Length) }
                [void]$sha.TransformBlock($buffer, 0, $read, $null, 0)
                $file.Write($buffer, 0, $read)
                $remaining -= $read
            }
            $file.Flush($true)
        }
        finally { $file.Dispose() }
        [void]$sha.TransformFinalBlock($buffer, 0, 0)
        $digest = (($sha.Hash | ForEach-Object { $_.ToString('x2') }) -join '')
        if ($digest -ne $Hash) { throw [System.IO.InvalidDataException]"the uploaded bytes hash to $digest, not ${Hash}: nothing kept" }
        Move-Item -LiteralPath $partial -Destination $final -Force
        $ok = $true
    }
    finally {
        $sha.Dispose()
        if (-not $ok) { Remove-Item -LiteralPath $partial -Force -ErrorAction SilentlyContinue }
    }
    Add-FleetAgentEvent -Agent $Agent -State 'downloaded' -Fields @{ sha256 = $Hash; size = $Length; delivery = 'push' }
    return @{ sha256 = $Hash; size = $Length }
}

Function Get-FleetAgentInventory {
    <# What the node is (side-effect free) and what it has of the job's components (FleetInventory.psm1 detection). #>
    param([Parameter(Mandatory = $true)][hashtable]$Agent)
    $os = Get-CimInstance -ClassName Win32_OperatingSystem -ErrorAction SilentlyContinue
    $facts = @{ hostname = [System.Net.Dns]::GetHostName(); system = 'Windows'; powershell = $PSVersionTable.PSVersion.ToString() }
    if ($null -ne $os) {
        $facts.version = $os.Version
        $facts.caption = $os.Caption
        $facts.boot_time = Format-FleetAgentTime -Time $os.LastBootUpTime
    }
    $components = @()
    if ($null -ne $Agent.Job) {
        $components = @(@($Agent.Job) | ForEach-Object {
                $entry = @{ name = $_.name; available = $_['version'] }
                if ($_['detect'] -is [hashtable]) {
                    $found = Get-FleetDetection -Spec $_['detect'] -Timeout $FleetAgentDetectTimeout
                    $entry.installed = $found['version']
                    $entry.detect = $found
                }
                $entry
            })
    }
    return @{ facts = $facts; components = @($components) }
}

# --------------------------------------------------------------------------------------------
# Plan on the node (agent.py Agent.plan; plan.py through its twin FleetInventory.psm1)
# --------------------------------------------------------------------------------------------

Function ConvertTo-FleetAgentPolicy {
    <# plan.py normalise_policy: defaults for what is missing or null; only must be all, firmware or software. #>
    param([AllowNull()][object]$Policy)
    $merged = @{ allow_downgrade = $false; rewrite = $false; force = $false; only = 'all'; components = @() }
    if ($Policy -is [hashtable]) {
        foreach ($key in $Policy.Keys) { if ($null -ne $Policy[$key]) { $merged[$key] = $Policy[$key] } }
    }
    if ($FleetAgentPolicyOnly -cnotcontains [string]$merged.only) {
        throw ("policy only='{0}' is not one of {1}" -f $merged.only, ($FleetAgentPolicyOnly -join ', '))
    }
    $merged.components = @($merged.components | Where-Object { $null -ne $_ })
    return $merged
}

Function Invoke-FleetAgentPlan {
    <# POST /v1/plan: {"components": [...], "policy": {...}} -> {"plan": [...]}, side-effect free (Invoke-FleetInventory). #>
    param([Parameter(Mandatory = $true)][hashtable]$Agent, [Parameter(Mandatory = $true)][AllowNull()][object]$Body)
    if ($Body -isnot [hashtable] -or -not $Body.ContainsKey('components') -or $Body.components -isnot [array]) {
        throw 'a plan request is {"components": [...], "policy": {...}}'
    }
    $policy = $null
    if ($Body.ContainsKey('policy')) { $policy = $Body.policy }
    $settled = ConvertTo-FleetAgentPolicy -Policy $policy
    $result = Invoke-FleetInventory -Baseline @($Body.components) -Policy $settled -Timeout $FleetAgentDetectTimeout
    $entries = @($result.Inventory)
    Add-FleetAgentEvent -Agent $Agent -State 'planned' -Fields @{ components = $entries.Count }
    return @{ plan = $entries }
}

# --------------------------------------------------------------------------------------------
# Pull delivery (agent.py Agent.fetch, _download, _stream, _finish_fetch)
# --------------------------------------------------------------------------------------------

Function Get-FleetAgentFileSize {
    param([Parameter(Mandatory = $true)][string]$Path)
    if (-not (Test-Path -LiteralPath $Path)) { return [long]0 }
    return [long](New-Object -TypeName System.IO.FileInfo -ArgumentList $Path).Length
}

Function Test-FleetAgentServerCertificate {
    <#
    run_ca: the download server's certificate must name the host we asked for and chain to the
    run's CA, pinned by the SHA-256 of its DER (the Windows root store plays no part), as
    ssl.create_default_context(cadata=ca_cert) on Linux. Returns $null when accepted, else the reason.
    #>
    param(
        [AllowNull()][System.Security.Cryptography.X509Certificates.X509Certificate]$Certificate,
        [Parameter(Mandatory = $true)][System.Net.Security.SslPolicyErrors]$Errors,
        [Parameter(Mandatory = $true)][System.Security.Cryptography.X509Certificates.X509Certificate2]$CaCertificate,
        [Parameter(Mandatory = $true)][string]$Fingerprint
    )
    if ($null -eq $Certificate) { return 'the server sent no certificate' }
    if (($Errors -band [System.Net.Security.SslPolicyErrors]::RemoteCertificateNameMismatch) -ne 0) {
        return 'server certificate refused: it does not name the host of the URL'
    }
    $leaf = New-Object -TypeName System.Security.Cryptography.X509Certificates.X509Certificate2 -ArgumentList $Certificate
    $chain = New-Object -TypeName System.Security.Cryptography.X509Certificates.X509Chain
    try {
        $chain.ChainPolicy.RevocationMode = [System.Security.Cryptography.X509Certificates.X509RevocationMode]::NoCheck
        $chain.ChainPolicy.VerificationFlags = [System.Security.Cryptography.X509Certificates.X509VerificationFlags]::AllowUnknownCertificateAuthority
        [void]$chain.ChainPolicy.ExtraStore.Add($CaCertificate)
        [void]$chain.Build($leaf)
        $bad = @($chain.ChainStatus | Where-Object { $_.Status -ne [System.Security.Cryptography.X509Certificates.X509ChainStatusFlags]::UntrustedRoot })
        if ($bad.Count -gt 0) { return ('server certificate refused: {0}' -f (($bad | ForEach-Object { $_.Status }) -join ', ')) }
        $elements = @($chain.ChainElements | ForEach-Object { $_.Certificate })
        $root = $elements[$elements.Count - 1]
        if ((Get-FleetAgentFingerprint -Der $root.RawData) -ne $Fingerprint) { return 'server certificate refused: not issued by the run CA' }
        return $null
    }
    finally {
        $chain.Dispose()
    }
}

Function New-FleetAgentDownloadRequest {
    <#
    The GET of one download: direct (no proxy, as http.client), no redirects, 15 s timeouts, Range
    from the bytes already on disk, the bearer token when given; with run_ca the run CA check.
    The callback runs on the agent's own thread: GetResponse is synchronous (Windows PowerShell 5.1).
    #>
    param([Parameter(Mandatory = $true)][hashtable]$Agent, [Parameter(Mandatory = $true)][string]$Url, [AllowNull()][object]$Token,
        [Parameter(Mandatory = $true)][long]$Have, [Parameter(Mandatory = $true)][bool]$RunCa)
    $uri = $null
    if (-not [System.Uri]::TryCreate($Url, [System.UriKind]::Absolute, [ref]$uri) -or @('http', 'https') -notcontains $uri.Scheme -or -not $uri.Host) {
        throw "URL '$Url' is not http(s)"
    }
    $request = [System.Net.HttpWebRequest][System.Net.WebRequest]::Create($uri)
    $request.Method = 'GET'
    $request.Proxy = $null
    $request.AllowAutoRedirect = $false
    $request.KeepAlive = $false
    $request.Timeout = $FleetAgentFetchTimeout * 1000
    $request.ReadWriteTimeout = $FleetAgentFetchTimeout * 1000
    if ($Have -gt 0) { $request.AddRange($Have) }
    if ($Token) { $request.Headers['Authorization'] = 'Bearer ' + [string]$Token }
    if ($uri.Scheme -eq 'https') {
        # .NET Framework before 4.7 offers only SSL 3 and TLS 1.0 unless told: add TLS 1.2. SystemDefault (0) lets Windows choose.
        $offered = [System.Net.ServicePointManager]::SecurityProtocol
        if ([int]$offered -ne 0) { [System.Net.ServicePointManager]::SecurityProtocol = $offered -bor [System.Net.SecurityProtocolType]::Tls12 }
        if ($RunCa) {
            $script:FleetAgentDownloadCa = @{ Certificate = $Agent.CaCertificate; Fingerprint = $Agent.Config.ca_fingerprint }
            $request.ServerCertificateValidationCallback = [System.Net.Security.RemoteCertificateValidationCallback] {
                param($sender, $certificate, $chain, $errors)
                $pin = $script:FleetAgentDownloadCa
                $refusal = Test-FleetAgentServerCertificate -Certificate $certificate -Errors $errors -CaCertificate $pin.Certificate -Fingerprint $pin.Fingerprint
                return $null -eq $refusal
            }
        }
    }
    return $request
}

Function Get-FleetAgentHttpResponse {
    <# GetResponse, with an HTTP error status returned as a response (it throws for 4xx/5xx) and other failures thrown. #>
    param([Parameter(Mandatory = $true)][System.Net.HttpWebRequest]$Request)
    try { return $Request.GetResponse() }
    catch {
        $web = $_.Exception
        while ($null -ne $web -and $web -isnot [System.Net.WebException]) { $web = $web.InnerException }
        if ($null -ne $web -and $null -ne $web.Response) { return $web.Response }
        throw
    }
}

Function Get-FleetAgentDownloadTotal {
    <# The full size the server announces: the part after '/' of Content-Range (206), else Content-Length; $null when unknown. #>
    param([AllowNull()][string]$ContentRange, [AllowNull()][string]$ContentLength, [Parameter(Mandatory = $true)][bool]$Append)
    $text = $ContentLength
    if ($Append) { $text = ([string]$ContentRange).Substring(([string]$ContentRange).LastIndexOf('/') + 1) }
    $total = [long]0
    if ($text -match '^\d+$' -and [long]::TryParse($text, [ref]$total)) { return $total }
    return $null
}

Function Save-FleetAgentDownload {
    <# One attempt at one URL: resume with Range, append on 206, start again on 200, 416 drops the partial file. #>
    param([Parameter(Mandatory = $true)][hashtable]$Agent, [Parameter(Mandatory = $true)][string]$Url, [AllowNull()][object]$Token,
        [Parameter(Mandatory = $true)][string]$Partial, [Parameter(Mandatory = $true)][string]$Hash, [Parameter(Mandatory = $true)][bool]$RunCa)
    $have = Get-FleetAgentFileSize -Path $Partial
    $request = New-FleetAgentDownloadRequest -Agent $Agent -Url $Url -Token $Token -Have $have -RunCa $RunCa
    $response = Get-FleetAgentHttpResponse -Request $request
    try {
        $status = [int]$response.StatusCode
        if ($status -eq 416) {
            Remove-Item -LiteralPath $Partial -Force -ErrorAction SilentlyContinue  # more than the file: start again
            throw 'the server refused the resume point (416)'
        }
        if ($status -ne 200 -and $status -ne 206) { throw ('HTTP {0} {1}' -f $status, $response.StatusDescription) }
        $append = $status -eq 206
        $total = Get-FleetAgentDownloadTotal -ContentRange $response.Headers['Content-Range'] -ContentLength $response.Headers['Content-Length'] -Append $append
        $mode = [System.IO.FileMode]::Create
        if ($append) { $mode = [System.IO.FileMode]::Append }
        $done = Copy-FleetAgentDownloadStream -Agent $Agent -Source $response.GetResponseStream() -Partial $Partial -Mode $mode -Hash $Hash -Total $total
    }
    finally {
        $response.Close()
    }
    if ($null -ne $total -and $done -lt $total) { throw "the download stopped after $done of $total bytes" }
}

Function Copy-FleetAgentDownloadStream {
    <# Streams the body to the partial file; status shows the progress (downloads); the loop keeps serving between chunks. #>
    param([Parameter(Mandatory = $true)][hashtable]$Agent, [Parameter(Mandatory = $true)][System.IO.Stream]$Source,
        [Parameter(Mandatory = $true)][string]$Partial, [Parameter(Mandatory = $true)][System.IO.FileMode]$Mode,
        [Parameter(Mandatory = $true)][string]$Hash, [AllowNull()][object]$Total)
    $buffer = New-Object -TypeName byte[] -ArgumentList $FleetAgentFetchChunk
    $file = [System.IO.File]::Open($Partial, $Mode, [System.IO.FileAccess]::Write, [System.IO.FileShare]::None)
    $served = [datetime]::UtcNow
    try {
        $done = $file.Position
        while ($true) {
            $read = $Source.Read($buffer, 0, $buffer.Length)
            if ($read -le 0) { break }
            $file.Write($buffer, 0, $read)
            $done += $read
            $Agent.Transfers[$Hash] = @{ bytes = $done; size = $Total }
            if (([datetime]::UtcNow - $served).TotalMilliseconds -ge 500) {
                [void](Invoke-FleetAgentTick -Agent $Agent)
                if ($Agent.Stopping) { throw "the agent is stopping ($($Agent.CancelReason))" }
                $served = [datetime]::UtcNow
            }
        }
        $file.Flush($true)
    }
    finally {
        $file.Dispose()
        $Source.Dispose()
    }
    return $done
}

Function Complete-FleetAgentFetch {
    <# _finish_fetch: hash check (409 and nothing kept on mismatch), rename into components\<sha256>. #>
    param([Parameter(Mandatory = $true)][hashtable]$Agent, [Parameter(Mandatory = $true)][string]$Partial,
        [Parameter(Mandatory = $true)][string]$Final, [Parameter(Mandatory = $true)][string]$Hash)
    if ((Get-FleetAgentFileHash -Path $Partial) -ne $Hash) {
        Remove-Item -LiteralPath $Partial -Force -ErrorAction SilentlyContinue
        throw [System.IO.InvalidDataException]"the downloaded bytes of $($Hash.Substring(0, 12)) do not match the manifest's SHA-256: nothing kept"
    }
    Move-Item -LiteralPath $Partial -Destination $Final -Force
    $Agent.Transfers.Remove($Hash)
    $size = Get-FleetAgentFileSize -Path $Final
    Add-FleetAgentEvent -Agent $Agent -State 'downloaded' -Fields @{ sha256 = $Hash; size = $size; delivery = 'pull' }
    return @{ sha256 = $Hash; size = $size; cached = $false }
}

Function Wait-FleetAgentBackoff {
    <# Sleeps between two rounds of a download while still serving requests, the job and the lease. #>
    param([Parameter(Mandatory = $true)][hashtable]$Agent, [Parameter(Mandatory = $true)][double]$Seconds)
    $until = [datetime]::UtcNow.AddSeconds($Seconds)
    while ([datetime]::UtcNow -lt $until -and -not $Agent.Stopping) {
        if (-not (Invoke-FleetAgentTick -Agent $Agent)) { Start-Sleep -Milliseconds 100 }
    }
}

Function Invoke-FleetAgentFetch {
    <#
    POST /v1/fetch: download one component into components\<sha256>, resuming with Range, hash
    checked. Retries with back-off while bytes keep coming (a link down for a few seconds); gives
    up at once when no URL can be reached at all: [System.TimeoutException] (504, the controller
    then pushes instead). A hash mismatch is [System.IO.InvalidDataException] (409).
    #>
    param([Parameter(Mandatory = $true)][hashtable]$Agent, [Parameter(Mandatory = $true)][AllowNull()][object]$Body)
    $hash = ''
    $urls = $null
    if ($Body -is [hashtable]) {
        if ($Body.ContainsKey('sha256')) { $hash = [string]$Body.sha256 }
        if ($Body.ContainsKey('urls')) { $urls = $Body.urls }
    }
    if ($hash -cnotmatch $FleetAgentShaPattern -or $urls -isnot [array] -or @($urls).Count -eq 0) {
        throw 'a fetch is {"sha256": <64 hex>, "urls": [...], "token": ..., "size": ...}'
    }
    $token = $null
    if ($Body.ContainsKey('token')) { $token = $Body.token }
    $runCa = $true
    if ($Body.ContainsKey('run_ca') -and $null -ne $Body.run_ca) { $runCa = [bool]$Body.run_ca }
    $final = Get-FleetAgentComponentPath -Agent $Agent -Hash $hash
    if ((Test-Path -LiteralPath $final) -and (Get-FleetAgentFileHash -Path $final) -eq $hash) {
        return @{ sha256 = $hash; size = Get-FleetAgentFileSize -Path $final; cached = $true }
    }
    # The loop serves other requests between the chunks of a download: one download at a time.
    if ($Agent.Fetching) { throw 'a download is already in progress on this node' }
    $partial = "$final.part"
    $errors = New-Object -TypeName System.Collections.Generic.List[string]
    Add-FleetAgentEvent -Agent $Agent -State 'downloading' -Fields @{ sha256 = $hash; delivery = 'pull' }
    $Agent.Fetching = $true
    try {
        for ($attempt = 0; $attempt -lt $FleetAgentFetchAttempts; $attempt++) {
            if ($Agent.Stopping) { throw "the agent is stopping ($($Agent.CancelReason)): the download of $($hash.Substring(0, 12)) is abandoned" }
            $before = Get-FleetAgentFileSize -Path $partial
            foreach ($url in @($urls)) {
                try { Save-FleetAgentDownload -Agent $Agent -Url ([string]$url) -Token $token -Partial $partial -Hash $hash -RunCa $runCa }
                catch {
                    $errors.Add(('{0}: {1}' -f $url, $_.Exception.Message))
                    if ($Agent.Stopping) { throw "the agent is stopping ($($Agent.CancelReason)): the download of $($hash.Substring(0, 12)) is abandoned" }
                    continue
                }
                return Complete-FleetAgentFetch -Agent $Agent -Partial $partial -Final $final -Hash $hash
            }
            $after = Get-FleetAgentFileSize -Path $partial
            if ($after -eq $before -and ($attempt -ge 2 -or ($before -eq 0 -and $attempt -ge 1))) { break }
            Wait-FleetAgentBackoff -Agent $Agent -Seconds ([math]::Min([math]::Pow(2, $attempt), 5.0))
        }
    }
    finally {
        $Agent.Fetching = $false
    }
    $last = @($errors | Select-Object -Last @($urls).Count)
    throw [System.TimeoutException]("the node cannot download {0}: {1}" -f $hash.Substring(0, 12), ($last -join '; '))
}

# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------

Function Read-FleetAgentJsonBody {
    param([Parameter(Mandatory = $true)][hashtable]$Request, [Parameter(Mandatory = $true)][System.IO.Stream]$Stream)
    $length = Get-FleetAgentContentLength -Request $Request
    if ($null -eq $length) { return @{ Status = 411; Error = 'Content-Length is required' } }
    if ($length -gt $FleetAgentMaxJsonBody) {
        # Read the body first (the controller is authenticated): answering while it still sends
        # makes its TLS end with an EOF instead of this answer.
        Skip-FleetAgentBytes -Stream $Stream -Length $length
        $limit = "the agent's limit of $FleetAgentMaxJsonBody bytes (a plan or job of more than about 25,000 components)"
        return @{ Status = 413; Error = "a request body of $length bytes is larger than ${limit}: split the repository" }
    }
    if ($length -eq 0) { return @{ Body = @{} } }
    $text = [System.Text.Encoding]::UTF8.GetString((Read-FleetAgentBytes -Stream $Stream -Length $length))
    try { return @{ Body = ConvertTo-FleetAgentHashtable -InputObject (ConvertFrom-Json -InputObject $text) } }
    catch { return @{ Status = 400; Error = 'the body is not JSON' } }
}

Function Invoke-FleetAgentRequest {
    <# Routes one authenticated request; returns @{ Status; Body }. #>
    param([Parameter(Mandatory = $true)][hashtable]$Agent, [Parameter(Mandatory = $true)][hashtable]$Request, [Parameter(Mandatory = $true)][System.IO.Stream]$Stream)
    if (-not (Test-FleetAgentToken -Given $Request.Headers['authorization'] -Token $Agent.Config.token)) {
        return @{ Status = 401; Body = @{ error = 'missing or wrong bearer token' } }
    }
    $route = '{0} {1}' -f $Request.Method, $Request.Path
    $known = '/v1/status', '/v1/lease', '/v1/cancel', '/v1/inventory', '/v1/jobs', '/v1/shutdown', '/v1/fetch', '/v1/plan'
    try {
        if ($route -eq 'GET /v1/status') { return @{ Status = 200; Body = Get-FleetAgentStatus -Agent $Agent } }
        if ($route -eq 'GET /v1/inventory') { return @{ Status = 200; Body = Get-FleetAgentInventory -Agent $Agent } }
        if ($Request.Path.StartsWith('/v1/components/')) {
            $sha = $Request.Path.Substring('/v1/components/'.Length)
            if ($Request.Method -ne 'PUT') { return @{ Status = 405; Body = @{ error = 'components are uploaded with PUT' } } }
            if ($sha -cnotmatch $FleetAgentShaPattern) { return @{ Status = 400; Body = @{ error = "'$sha' is not a SHA-256 (64 lower-case hex digits)" } } }
            $length = Get-FleetAgentContentLength -Request $Request
            if ($null -eq $length) { return @{ Status = 411; Body = @{ error = 'Content-Length is required' } } }
            return @{ Status = 201; Body = Save-FleetAgentComponent -Agent $Agent -Hash $sha -Stream $Stream -Length $length }
        }
        if ($Request.Method -eq 'POST' -and $known -contains $Request.Path -and $Request.Path -ne '/v1/status' -and $Request.Path -ne '/v1/inventory') {
            $read = Read-FleetAgentJsonBody -Request $Request -Stream $Stream
            if ($read.ContainsKey('Status')) { return @{ Status = $read.Status; Body = @{ error = $read.Error } } }
            $body = $read.Body
            switch ($Request.Path) {
                '/v1/lease' {
                    $seconds = $null
                    if ($body -is [hashtable] -and $body.ContainsKey('seconds')) { $seconds = $body.seconds }
                    return @{ Status = 200; Body = Update-FleetAgentLease -Agent $Agent -Seconds $seconds }
                }
                '/v1/cancel' { return @{ Status = 200; Body = Request-FleetAgentCancel -Agent $Agent -Reason 'cancelled by the controller' } }
                '/v1/jobs' {
                    try { $components = Test-FleetAgentJob -Body $body }
                    catch { return @{ Status = 400; Body = @{ error = $_.Exception.Message } } }
                    $onFailed = Get-FleetAgentOnFailedDependency -Body $body
                    return @{ Status = 202; Body = @{ accepted = Add-FleetAgentJob -Agent $Agent -Components $components -OnFailedDependency $onFailed } }
                }
                '/v1/fetch' { return @{ Status = 200; Body = Invoke-FleetAgentFetch -Agent $Agent -Body $body } }
                '/v1/plan' { return @{ Status = 200; Body = Invoke-FleetAgentPlan -Agent $Agent -Body $body } }
                '/v1/shutdown' {
                    Request-FleetAgentStop -Agent $Agent -Reason 'shutdown requested by the controller'
                    return @{ Status = 202; Body = @{ stopping = $true; pid = $PID } }
                }
            }
        }
        if ($known -contains $Request.Path) { return @{ Status = 405; Body = @{ error = "$($Request.Method) is not allowed on $($Request.Path)" } } }
        return @{ Status = 404; Body = @{ error = "no such resource: $($Request.Path)" } }
    }
    catch [System.IO.InvalidDataException] {
        # HashMismatch of agent.py: the bytes do not hash to the manifest's SHA-256.
        return @{ Status = 409; Body = @{ error = $_.Exception.Message } }
    }
    catch [System.TimeoutException] {
        # FetchFailed of agent.py: no URL could be reached; the controller may push instead.
        return @{ Status = 504; Body = @{ error = $_.Exception.Message } }
    }
    catch [System.IO.IOException] {
        # 0x70 ERROR_DISK_FULL, 0x27 ERROR_HANDLE_DISK_FULL
        $code = $_.Exception.HResult -band 0xFFFF
        if ($code -eq 0x70 -or $code -eq 0x27) { return @{ Status = 507; Body = @{ error = "on the node: $($_.Exception.Message)" } } }
        return @{ Status = 500; Body = @{ error = "on the node: $($_.Exception.Message)" } }
    }
    catch {
        return @{ Status = 409; Body = @{ error = $_.Exception.Message } }
    }
}

Function Invoke-FleetAgentConnection {
    <# TLS handshake (client certificate required and checked), one request, one answer, close. #>
    param([Parameter(Mandatory = $true)][hashtable]$Agent, [Parameter(Mandatory = $true)][System.Net.Sockets.TcpClient]$Client)
    $peer = $Client.Client.RemoteEndPoint.ToString()
    $refusal = @{ Reason = $null }
    $ca = $Agent.CaCertificate
    $fingerprint = $Agent.Config.ca_fingerprint
    # Called by AuthenticateAsServer on this same thread, so the script block sees this scope.
    $callback = [System.Net.Security.RemoteCertificateValidationCallback] {
        param($sender, $certificate, $chain, $errors)
        $refusal.Reason = Test-FleetAgentClientCertificate -Certificate $certificate -CaCertificate $ca -Fingerprint $fingerprint
        return $null -eq $refusal.Reason
    }
    $Client.ReceiveTimeout = $FleetAgentIoTimeoutMs
    $Client.SendTimeout = $FleetAgentIoTimeoutMs
    $network = $Client.GetStream()
    $ssl = New-Object -TypeName System.Net.Security.SslStream -ArgumentList $network, $false, $callback
    try {
        try {
            $ssl.AuthenticateAsServer($Agent.Certificate, $true, (Get-FleetAgentSslProtocol), $false)
        }
        catch {
            $why = $refusal.Reason
            if ($null -eq $why) { $why = $_.Exception.Message }
            Write-FleetAgentLog -Agent $Agent -Message ('{0} TLS refused: {1}' -f $peer, $why)
            return
        }
        $request = Read-FleetAgentRequest -Stream $ssl
        $answer = Invoke-FleetAgentRequest -Agent $Agent -Request $request -Stream $ssl
        Write-FleetAgentResponse -Stream $ssl -Status $answer.Status -Body $answer.Body
        Write-FleetAgentLog -Agent $Agent -Message ('{0} "{1} {2}" {3}' -f $peer, $request.Method, $request.Path, $answer.Status)
    }
    catch {
        Write-FleetAgentLog -Agent $Agent -Message ('{0} request failed: {1}' -f $peer, $_.Exception.Message)
    }
    finally {
        $ssl.Dispose()
        $Client.Dispose()
    }
}

# --------------------------------------------------------------------------------------------
# Firewall, sweep, control requests
# --------------------------------------------------------------------------------------------

Function Open-FleetAgentFirewall {
    <# agent_port/tcp for the controller addresses only, grouped by the tag (FleetFirewall.psm1), with its own lease. #>
    param([Parameter(Mandatory = $true)][hashtable]$Agent)
    if (-not $Agent.Config.firewall.open) { return }
    $port = ConvertTo-FleetPort -Value ('{0}/tcp' -f $Agent.Config.port)
    $rule = New-FleetRuleParameter -Tag $Agent.Tag -Port $port -Direction 'in' -Source $Agent.Config.controller
    try { [void](Open-FleetFirewall -Tag $Agent.Tag -Rules @($rule)) }
    catch { throw "cannot open port $($Agent.Config.port)/tcp in the node's firewall: $($_.Exception.Message)" }
    $Agent.FirewallOpened = $true
    Set-FleetLease -Tag $Agent.Tag -Expires $Agent.LeaseExpires.AddSeconds($FleetAgentFirewallGrace)
}

Function Close-FleetAgentFirewall {
    param([Parameter(Mandatory = $true)][hashtable]$Agent)
    for ($attempt = 1; $attempt -le 5 -and $Agent.FirewallOpened; $attempt++) {
        try {
            [void](Close-FleetFirewall -Tag $Agent.Tag)
            $Agent.FirewallOpened = $false
        }
        catch {
            # Retry: a port must not stay open. The firewall lease task closes it anyway.
            Write-FleetAgentLog -Agent $Agent -Message "closing the firewall failed (attempt $attempt): $($_.Exception.Message)"
            Start-Sleep -Seconds $attempt
        }
    }
}

Function Get-FleetAgentSweepScript {
    <#
    What the sweep task runs when the agent did not re-arm it (the agent died without cleaning
    up): stop a hung agent of this tag (its task's command line is -EncodedCommand: decoded
    first), remove the tag's rules, its staging folder (never following a junction or link, as
    Remove-FleetAgentTree), its tasks.
    #>
    param([Parameter(Mandatory = $true)][string]$Tag, [Parameter(Mandatory = $true)][string]$Staging)
    $group = '{0}-{1}' -f $FleetAgentMarker, $Tag
    return (("Function Get-Text(`$l) {{ `$m = [regex]::Match([string]`$l, '-EncodedCommand\s+([A-Za-z0-9+/=]+)'); " +
            "if (`$m.Success) {{ [System.Text.Encoding]::Unicode.GetString([Convert]::FromBase64String(`$m.Groups[1].Value)) }} else {{ [string]`$l }} }}; " +
            "Function Remove-Tree(`$p) {{ `$i = Get-Item -LiteralPath `$p -Force -ErrorAction SilentlyContinue; if (`$null -eq `$i) {{ return }}; " +
            "`$link = (`$i.Attributes -band [System.IO.FileAttributes]::ReparsePoint) -ne 0; " +
            "if (`$i.PSIsContainer -and -not `$link) {{ Get-ChildItem -LiteralPath `$i.FullName -Force | ForEach-Object {{ Remove-Tree `$_.FullName }} }}; " +
            "if (`$i.PSIsContainer) {{ [System.IO.Directory]::Delete(`$i.FullName, `$false) }} else {{ `$i.Attributes = 'Normal'; [System.IO.File]::Delete(`$i.FullName) }} }}; " +
            "Get-CimInstance Win32_Process | Where-Object {{ (Get-Text `$_.CommandLine) -like '*fleet_agent.ps1*{0}*' }} | " +
            "ForEach-Object {{ Stop-Process -Id `$_.ProcessId -Force -ErrorAction SilentlyContinue }}; " +
            "Remove-NetFirewallRule -Group '{0}' -ErrorAction SilentlyContinue; " +
            "try {{ Remove-Tree '{1}' }} catch {{ `$null = `$_ }}; " +
            "Unregister-ScheduledTask -TaskName '{0}-lease' -Confirm:`$false -ErrorAction SilentlyContinue; " +
            "Unregister-ScheduledTask -TaskName '{0}-agent' -Confirm:`$false -ErrorAction SilentlyContinue; " +
            "Unregister-ScheduledTask -TaskName '{0}-sweep' -Confirm:`$false -ErrorAction SilentlyContinue") -f $group, $Staging)
}

Function Get-FleetAgentEncodedArgument {
    <# powershell.exe arguments with -EncodedCommand: no quoting of the script in a task's command line. #>
    param([Parameter(Mandatory = $true)][string]$Script)
    $bytes = [System.Text.Encoding]::Unicode.GetBytes($Script)
    return '-NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand {0}' -f [Convert]::ToBase64String($bytes)
}

Function Set-FleetAgentSweep {
    <# (Re)arms the sweep task at $At (UTC); the live agent moves it forward every minute. #>
    param([Parameter(Mandatory = $true)][string]$Tag, [Parameter(Mandatory = $true)][string]$Staging, [Parameter(Mandatory = $true)][datetime]$At)
    $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument (Get-FleetAgentEncodedArgument -Script (Get-FleetAgentSweepScript -Tag $Tag -Staging $Staging))
    $trigger = New-ScheduledTaskTrigger -Once -At $At.ToLocalTime()
    $principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
    $settings = New-ScheduledTaskSettingsSet -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries -StartWhenAvailable
    Register-ScheduledTask -TaskName (Get-FleetAgentTaskName -Tag $Tag -Kind 'sweep') -Action $action -Trigger $trigger `
        -Principal $principal -Settings $settings -Force | Out-Null
}

Function Update-FleetAgentSweep {
    param([Parameter(Mandatory = $true)][hashtable]$Agent)
    $now = [datetime]::UtcNow
    if (($now - $Agent.SweepArmed).TotalSeconds -lt 60) { return }
    $base = $Agent.LeaseExpires
    if ($base -lt $now) { $base = $now }
    Set-FleetAgentSweep -Tag $Agent.Tag -Staging $Agent.Staging -At $base.AddSeconds($FleetAgentFirewallGrace + $FleetAgentSweepGrace)
    $Agent.SweepArmed = $now
}

Function Save-FleetAgentHolder {
    param([Parameter(Mandatory = $true)][hashtable]$Agent)
    Set-FleetAgentHolder -Holder @{
        tag = $Agent.Tag; pid = $PID; since = Format-FleetAgentTime -Time $Agent.Since; port = $Agent.Config.port
        staging = $Agent.Staging; addresses = @($Agent.Addresses); lease_expires = Format-FleetAgentTime -Time $Agent.LeaseExpires
        firewall = $Agent.FirewallOpened
    }
}

Function Get-FleetAgentRequestPath {
    <# The module's requests to a running agent: <control>\<tag>.renew (JSON {seconds}) and <tag>.shutdown. #>
    param([Parameter(Mandatory = $true)][string]$Tag, [Parameter(Mandatory = $true)][ValidateSet('renew', 'shutdown')][string]$Kind)
    return Join-Path -Path (Get-FleetAgentControlPath) -ChildPath ('{0}.{1}' -f $Tag, $Kind)
}

Function Read-FleetAgentControl {
    param([Parameter(Mandatory = $true)][hashtable]$Agent)
    $shutdown = Get-FleetAgentRequestPath -Tag $Agent.Tag -Kind 'shutdown'
    if (Test-Path -LiteralPath $shutdown) {
        Remove-Item -LiteralPath $shutdown -Force -ErrorAction SilentlyContinue
        Request-FleetAgentStop -Agent $Agent -Reason 'shutdown requested by the agent module'
    }
    $renew = Get-FleetAgentRequestPath -Tag $Agent.Tag -Kind 'renew'
    if (Test-Path -LiteralPath $renew) {
        $seconds = $null
        try { $seconds = (ConvertTo-FleetAgentHashtable -InputObject (ConvertFrom-Json -InputObject ([System.IO.File]::ReadAllText($renew)))).seconds }
        catch { Write-FleetAgentLog -Agent $Agent -Message 'unreadable renew request' }
        Remove-Item -LiteralPath $renew -Force -ErrorAction SilentlyContinue
        try { [void](Update-FleetAgentLease -Agent $Agent -Seconds $seconds) }
        catch { Write-FleetAgentLog -Agent $Agent -Message "renew refused: $($_.Exception.Message)" }
    }
}

# --------------------------------------------------------------------------------------------
# Life of the agent
# --------------------------------------------------------------------------------------------

Function Write-FleetAgentReady {
    <# The readiness line of docs/agent.md, as <staging>\ready.json (written whole, then renamed). #>
    param([Parameter(Mandatory = $true)][string]$Staging, [Parameter(Mandatory = $true)][hashtable]$Ready)
    $file = Join-Path -Path $Staging -ChildPath $FleetAgentReadyName
    [System.IO.File]::WriteAllText("$file.tmp", (ConvertTo-Json -InputObject $Ready -Compress -Depth 5))
    Move-Item -LiteralPath "$file.tmp" -Destination $file -Force
}

Function Start-FleetAgentListening {
    <# Lock, certificate, listeners, firewall: everything before "ready". Undone by Clear-FleetAgent on error. #>
    param([Parameter(Mandatory = $true)][hashtable]$Agent)
    $Agent.Mutex = Enter-FleetAgentLock -Tag $Agent.Tag
    Save-FleetAgentHolder -Agent $Agent
    Set-FleetAgentFolderAcl -Path $Agent.Staging
    $components = Join-Path -Path $Agent.Staging -ChildPath $FleetAgentComponents
    if (-not (Test-Path -LiteralPath $components)) { New-Item -ItemType Directory -Path $components | Out-Null }
    $Agent.CaCertificate = Get-FleetAgentPemCertificate -Pem $Agent.Config.ca_cert
    try { $Agent.Certificate = Get-FleetAgentServerCertificate -Config $Agent.Config }
    catch { throw "the agent's certificate or key is unusable: $($_.Exception.Message)" }
    $Agent.Addresses = @($Agent.Config.bind)
    if ($Agent.Addresses.Count -eq 0) { $Agent.Addresses = Get-FleetAgentFacingAddress -Controller $Agent.Config.controller }
    $Agent.Listeners = New-FleetAgentListener -Address $Agent.Addresses -Port $Agent.Config.port
    Open-FleetAgentFirewall -Agent $Agent
    Update-FleetAgentSweep -Agent $Agent
    Save-FleetAgentHolder -Agent $Agent
    $state = 'started'
    if ($Agent.FirewallOpened) { $state = 'firewall_open' }
    Add-FleetAgentEvent -Agent $Agent -State $state -Fields @{ addresses = @($Agent.Addresses); port = $Agent.Config.port }
    return @{
        ready = $true; pid = $PID; addresses = @($Agent.Addresses); port = $Agent.Config.port
        lease_expires = Format-FleetAgentTime -Time $Agent.LeaseExpires; staging = $Agent.Staging; firewall = $Agent.FirewallOpened
    }
}

Function Invoke-FleetAgentTick {
    <#
    One round of the loop: pending requests, the job, the lease, the module's requests, the sweep.
    Also called between the chunks of a pull download. Returns whether a request was served.
    #>
    param([Parameter(Mandatory = $true)][hashtable]$Agent)
    $busy = $false
    foreach ($listener in @($Agent.Listeners)) {
        if ($listener.Pending()) {
            $null = Invoke-FleetAgentConnection -Agent $Agent -Client $listener.AcceptTcpClient()
            $busy = $true
        }
    }
    # $null = : nothing but $busy may leave this function.
    $null = Step-FleetAgentJob -Agent $Agent
    if (-not $Agent.Stopping -and [datetime]::UtcNow -ge $Agent.LeaseExpires) { Request-FleetAgentStop -Agent $Agent -Reason 'lease expired' }
    $null = Read-FleetAgentControl -Agent $Agent
    try { $null = Update-FleetAgentSweep -Agent $Agent } catch { Write-FleetAgentLog -Agent $Agent -Message "sweep not re-armed: $($_.Exception.Message)" }
    return $busy
}

Function Invoke-FleetAgentLoop {
    <# Serves until stopped and the in-flight installer is done: requests, job, lease, control requests, sweep. #>
    param([Parameter(Mandatory = $true)][hashtable]$Agent)
    while (-not ($Agent.Stopping -and $null -eq $Agent.Process)) {
        if (-not (Invoke-FleetAgentTick -Agent $Agent)) { Start-Sleep -Milliseconds 100 }
    }
    # What was not started is skipped (the stop came between two components).
    Step-FleetAgentJob -Agent $Agent
}

Function Clear-FleetAgent {
    <# Listeners, firewall rules, sweep and agent tasks, staging folder (when asked), lock: in that order. #>
    param([Parameter(Mandatory = $true)][hashtable]$Agent, [switch]$RemoveStaging)
    foreach ($listener in @($Agent.Listeners)) { try { $listener.Stop() } catch { Write-Verbose -Message 'listener already stopped' } }
    $Agent.Listeners = @()
    Close-FleetAgentFirewall -Agent $Agent
    if ($null -ne $Agent.Certificate) { $Agent.Certificate.Dispose() }
    foreach ($kind in @('sweep', 'agent')) {
        Get-ScheduledTask -TaskName (Get-FleetAgentTaskName -Tag $Agent.Tag -Kind $kind) -ErrorAction SilentlyContinue |
            Unregister-ScheduledTask -Confirm:$false -ErrorAction SilentlyContinue
    }
    foreach ($kind in @('renew', 'shutdown')) { Remove-Item -LiteralPath (Get-FleetAgentRequestPath -Tag $Agent.Tag -Kind $kind) -Force -ErrorAction SilentlyContinue }
    if ($RemoveStaging) {
        try { Remove-FleetAgentTree -Path $Agent.Staging } catch { Write-Verbose -Message "staging not removed: $($_.Exception.Message)" }
    }
    if ($null -ne $Agent.Mutex) {
        Exit-FleetAgentLock -Mutex $Agent.Mutex -Tag $Agent.Tag
        $Agent.Mutex = $null
    }
}

Function Start-FleetAgent {
    <# The agent process: configuration file (read and deleted) -> ready.json -> serve -> clean up. Returns the exit code. #>
    param([Parameter(Mandatory = $true)][string]$ConfigPath)
    $staging = Split-Path -Path $ConfigPath -Parent
    try {
        $config = Test-FleetAgentConfig -Raw (Read-FleetAgentConfigFile -Path $ConfigPath)
    }
    catch {
        Write-FleetAgentReady -Staging $staging -Ready @{ ready = $false; error = "invalid configuration: $($_.Exception.Message)" }
        return 1
    }
    $agent = New-FleetAgentState -Config $config
    try {
        $ready = Start-FleetAgentListening -Agent $agent
    }
    catch {
        $message = $_.Exception.Message
        if ($null -ne $agent.Mutex) { Clear-FleetAgent -Agent $agent }
        else {
            # The lock belongs to another agent (maybe of this very tag): touch none of its things.
            foreach ($listener in @($agent.Listeners)) { $listener.Stop() }
        }
        Write-FleetAgentReady -Staging $staging -Ready @{ ready = $false; error = $message }
        return 1
    }
    Write-FleetAgentReady -Staging $staging -Ready $ready
    Write-FleetAgentLog -Agent $agent -Message ('ready: ' + (ConvertTo-Json -InputObject $ready -Compress))
    try {
        Invoke-FleetAgentLoop -Agent $agent
    }
    finally {
        Write-FleetAgentLog -Agent $agent -Message "stopping: $($agent.CancelReason)"
        Clear-FleetAgent -Agent $agent -RemoveStaging
    }
    return 0
}

$exportMembers = @{
    Function = 'Test-FleetAgentTag', 'Get-FleetAgentStagingPath', 'Get-FleetAgentControlPath', 'Get-FleetAgentTaskName',
    'Format-FleetAgentTime', 'Set-FleetAgentFolderAcl', 'Test-FleetAgentTrustedOwner', 'New-FleetAgentFolderSecurity',
    'Assert-FleetAgentOurs', 'Remove-FleetAgentTree', 'Get-FleetAgentCommandText', 'ConvertTo-FleetAgentHashtable', 'Get-FleetAgentPemCertificate',
    'Get-FleetAgentFingerprint', 'Test-FleetAgentAddress', 'ConvertTo-FleetAgentInt', 'Test-FleetAgentConfig',
    'Read-FleetAgentConfigFile', 'Get-FleetAgentHolder', 'Set-FleetAgentHolder', 'Test-FleetAgentProcess', 'Enter-FleetAgentLock',
    'Exit-FleetAgentLock', 'Get-FleetAgentServerCertificate', 'Test-FleetAgentClientCertificate', 'Get-FleetAgentSslProtocol',
    'Get-FleetAgentFacingAddress', 'New-FleetAgentListener', 'Read-FleetAgentRequest', 'Write-FleetAgentResponse',
    'Get-FleetAgentContentLength', 'Read-FleetAgentBytes', 'Test-FleetAgentToken', 'New-FleetAgentState', 'Write-FleetAgentLog',
    'Add-FleetAgentEvent', 'Get-FleetAgentPublicComponent', 'Get-FleetAgentJobState', 'Get-FleetAgentStatus', 'Update-FleetAgentLease',
    'Request-FleetAgentCancel', 'Request-FleetAgentStop', 'Test-FleetAgentJob', 'Add-FleetAgentJob', 'Get-FleetAgentComponentPath',
    'Get-FleetAgentReturnCodeTable', 'ConvertTo-FleetAgentArgument', 'Get-FleetAgentInstallCommand', 'Get-FleetAgentFileHash',
    'Start-FleetAgentInstall', 'Complete-FleetAgentInstall', 'Step-FleetAgentJob', 'Save-FleetAgentComponent',
    'Get-FleetAgentInventory', 'Skip-FleetAgentBytes', 'Read-FleetAgentJsonBody', 'Invoke-FleetAgentRequest', 'Invoke-FleetAgentConnection',
    'Open-FleetAgentFirewall', 'Close-FleetAgentFirewall', 'Get-FleetAgentSweepScript', 'Get-FleetAgentEncodedArgument',
    'Set-FleetAgentSweep', 'Update-FleetAgentSweep', 'Save-FleetAgentHolder', 'Get-FleetAgentRequestPath', 'Read-FleetAgentControl',
    'Write-FleetAgentReady', 'Start-FleetAgentListening', 'Invoke-FleetAgentLoop', 'Clear-FleetAgent', 'Start-FleetAgent',
    'Get-FleetAgentOnFailedDependency', 'Get-FleetAgentBlockedBy', 'ConvertTo-FleetAgentPolicy', 'Invoke-FleetAgentPlan',
    'Get-FleetAgentFileSize', 'Test-FleetAgentServerCertificate', 'New-FleetAgentDownloadRequest', 'Get-FleetAgentHttpResponse',
    'Get-FleetAgentDownloadTotal', 'Save-FleetAgentDownload', 'Copy-FleetAgentDownloadStream', 'Complete-FleetAgentFetch',
    'Wait-FleetAgentBackoff', 'Invoke-FleetAgentFetch', 'Invoke-FleetAgentTick'
}
Export-ModuleMember @exportMembers
