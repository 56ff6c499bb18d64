# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The PowerShell twin of plugins/module_utils/versions.py (auto scheme), detect.py (registry,
# file, command, dmi), plan.py and the Windows part of installers.py / returncodes.py, for
# Windows nodes: the same rules, the same result shapes. Windows itself cannot run in the
# collection's test lab: this file is checked by a PowerShell parser and by unit tests that
# compare its patterns, tables and command templates with the Python side.

# Patterns of versions.py (tests/unit/plugins/modules/test_inventory_ps1.py keeps them equal).
$FleetSegmentPattern = '^(\d+)([A-Za-z][A-Za-z0-9]*)?$|^([A-Za-z][A-Za-z0-9]*)$'
$FleetSplitPattern = '[._-]'
$FleetHexPattern = '^0[xX]([0-9A-Fa-f]+)$'
$FleetTrailingDatePattern = '^(.*?)\s*\(([^()]*)\)$'
$FleetVersionTokenPattern = '^[vV](\d.*)$'
$FleetNotAVersion = @('', 'n/a', 'na', 'none', 'unknown', 'not installed', '-', '?')

# Return codes (returncodes.py): code -> status.
$FleetSmartComponentWindowsCodes = @{ 0 = 'failed'; 1 = 'installed'; 2 = 'reboot_required'; 3 = 'not_needed' }
$FleetWindowsInstallerCodes = @{ 0 = 'installed'; 1641 = 'reboot_required'; 3010 = 'reboot_required' }
$FleetZeroIsSuccessCodes = @{ 0 = 'installed' }

# DMI field names (Linux /sys/class/dmi/id) -> CIM class and property on Windows.
$FleetDmiMap = @{
    bios_vendor = @('Win32_BIOS', 'Manufacturer')
    bios_version = @('Win32_BIOS', 'SMBIOSBIOSVersion')
    bios_date = @('Win32_BIOS', 'ReleaseDate')
    bios_release = @('Win32_BIOS', 'SystemBiosMajorVersion')
    product_serial = @('Win32_BIOS', 'SerialNumber')
    sys_vendor = @('Win32_ComputerSystem', 'Manufacturer')
    product_name = @('Win32_ComputerSystem', 'Model')
    board_vendor = @('Win32_BaseBoard', 'Manufacturer')
    board_name = @('Win32_BaseBoard', 'Product')
}

$FleetUninstallKeys = @(
    'HKLM:\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\*',
    'HKLM:\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall\*'
)

# ------------------------------------------------------------------------------------------
# Versions (versions.py, auto scheme)
# ------------------------------------------------------------------------------------------

Function ConvertFrom-FleetDate {
    <#
    .SYNOPSIS
    'MM/DD/YYYY' or 'YYYY-MM-DD' -> YYYYMMDD as an integer; throws ArgumentException.
    #>
    param([Parameter(Mandatory = $true)][AllowEmptyString()][String]$Text)
    $t = $Text.Trim()
    $m = [regex]::Match($t, '^(\d{1,2})/(\d{1,2})/(\d{4})$')
    $parts = $null
    if ($m.Success) {
        $parts = @([int]$m.Groups[3].Value, [int]$m.Groups[1].Value, [int]$m.Groups[2].Value)
    }
    else {
        $m = [regex]::Match($t, '^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})$')
        if ($m.Success) {
            $parts = @([int]$m.Groups[1].Value, [int]$m.Groups[2].Value, [int]$m.Groups[3].Value)
        }
    }
    if ($null -eq $parts -or $parts[1] -lt 1 -or $parts[1] -gt 12 -or $parts[2] -lt 1 -or $parts[2] -gt 31) {
        throw [System.ArgumentException]"'$Text' is not a date (MM/DD/YYYY or YYYY-MM-DD)"
    }
    return $parts[0] * 10000 + $parts[1] * 100 + $parts[2]
}

Function Split-FleetFamily {
    <#
    .SYNOPSIS
    'U30 v2.90' -> @('U30', '2.90'); '2.10a' -> @('', '2.10a'); throws ArgumentException.
    #>
    param([Parameter(Mandatory = $true)][String]$Text)
    $tokens = @($Text.Trim() -split '\s+' | Where-Object { $_ -ne '' })
    if ($tokens.Count -eq 1) {
        $m = [regex]::Match($tokens[0], $FleetVersionTokenPattern)
        if ($m.Success) {
            return , @('', $m.Groups[1].Value)
        }
        return , @('', $tokens[0])
    }
    $marked = @(for ($i = 0; $i -lt $tokens.Count; $i++) {
            if ([regex]::IsMatch($tokens[$i], $FleetVersionTokenPattern)) { $i }
        })
    if ($marked.Count -eq 1 -and $marked[0] -eq $tokens.Count - 1) {
        $family = $tokens[0..($tokens.Count - 2)] -join ' '
        return , @($family, [regex]::Match($tokens[-1], $FleetVersionTokenPattern).Groups[1].Value)
    }
    if ($tokens.Count -eq 2 -and $tokens[1] -match '^\d' -and $tokens[0] -notmatch '^\d') {
        return , @($tokens[0], $tokens[1])
    }
    throw [System.ArgumentException]"cannot tell which part of '$Text' is the version (write it as FAMILY vX.Y (MM/DD/YYYY))"
}

Function ConvertTo-FleetSegments {
    <#
    .SYNOPSIS
    '2.10a' -> segments @{ Number = 2; Tag = '' }, @{ Number = 10; Tag = 'a' }; throws ArgumentException.
    #>
    param([Parameter(Mandatory = $true)][String]$Text, [String]$Original = $Text)
    $segments = New-Object System.Collections.Generic.List[Object]
    foreach ($part in [regex]::Split($Text, $FleetSplitPattern)) {
        $m = [regex]::Match($part, $FleetSegmentPattern)
        if (-not $m.Success) {
            throw [System.ArgumentException]"'$Original': the part '$part' is neither a number, a number with a letter, nor a word"
        }
        if ($m.Groups[1].Success) {
            $segments.Add(@{ Number = [bigint]::Parse($m.Groups[1].Value); Tag = $m.Groups[2].Value.ToLowerInvariant() })
        }
        else {
            $segments.Add(@{ Number = $null; Tag = $m.Groups[3].Value.ToLowerInvariant() })
        }
    }
    return , $segments.ToArray()
}

Function ConvertTo-FleetVersion {
    <#
    .SYNOPSIS
    A version text -> @{ Text; Scheme (dotted, date, hex); Family; Key; Date }; throws ArgumentException with the reason.
    #>
    param([AllowNull()][Object]$Text)
    if ($null -eq $Text -or $Text -is [bool]) {
        throw [System.ArgumentException]"no version"
    }
    $t = "$Text".Trim()
    if ($FleetNotAVersion -contains $t.ToLowerInvariant()) {
        if ($t -eq '') {
            throw [System.ArgumentException]"no version (empty)"
        }
        throw [System.ArgumentException]"no version ('$t')"
    }
    $rest = $t
    $date = $null
    $m = [regex]::Match($t, $FleetTrailingDatePattern)
    if ($m.Success) {
        $rest = $m.Groups[1].Value
        $date = ConvertFrom-FleetDate -Text $m.Groups[2].Value
    }
    if ($rest.Trim() -eq '') {
        throw [System.ArgumentException]"'$t' holds a date but no version"
    }
    $hex = [regex]::Match($rest.Trim(), $FleetHexPattern)
    if ($hex.Success) {
        $number = [bigint]::Parse('0' + $hex.Groups[1].Value, [System.Globalization.NumberStyles]::AllowHexSpecifier)
        return @{ Text = $t; Scheme = 'hex'; Family = ''; Key = @(@{ Number = $number; Tag = '' }); Date = $date }
    }
    $familyAndNumber = Split-FleetFamily -Text $rest.Trim()
    $key = ConvertTo-FleetSegments -Text $familyAndNumber[1] -Original $t
    if ($null -eq $key[0].Number) {
        throw [System.ArgumentException]"'$t' does not start with a number"
    }
    $scheme = 'dotted'
    if ($key.Count -ge 2 -and $null -ne $key[0].Number -and $null -ne $key[1].Number -and $key[0].Tag -eq '' -and $key[1].Tag -eq '' -and
        $key[0].Number -ge 1990 -and $key[0].Number -le 2199 -and $key[1].Number -ge 0 -and $key[1].Number -le 12) {
        $scheme = 'date'
    }
    $family = (($familyAndNumber[0] -split '\s+' | Where-Object { $_ -ne '' }) -join ' ').ToLowerInvariant()
    return @{ Text = $t; Scheme = $scheme; Family = $family; Key = $key; Date = $date }
}

Function Get-FleetSegmentText {
    param([Hashtable]$Segment)
    if ($null -eq $Segment.Number) {
        return $Segment.Tag
    }
    return "$($Segment.Number)$($Segment.Tag)"
}

Function Compare-FleetSegment {
    <#
    .SYNOPSIS
    @{ Order = -1|0|1|$null; Reason } for two segments (versions.py _compare_segment).
    #>
    param([Hashtable]$A, [Hashtable]$B)
    if ($null -eq $A.Number -or $null -eq $B.Number) {
        if ($A.Number -eq $B.Number -and $A.Tag -ceq $B.Tag) {
            return @{ Order = 0; Reason = '' }
        }
        return @{ Order = $null; Reason = "'$(Get-FleetSegmentText $A)' and '$(Get-FleetSegmentText $B)' have no defined order" }
    }
    if ($A.Number -ne $B.Number) {
        return @{ Order = $(if ($A.Number -gt $B.Number) { 1 } else { -1 }); Reason = '' }
    }
    if ($A.Tag -ceq $B.Tag) {
        return @{ Order = 0; Reason = '' }
    }
    if ($A.Tag.Length -le 1 -and $B.Tag.Length -le 1) {
        return @{ Order = [Math]::Sign([String]::CompareOrdinal($A.Tag, $B.Tag)); Reason = '' }
    }
    return @{ Order = $null; Reason = "tags '$(Get-FleetSegmentText $A)' and '$(Get-FleetSegmentText $B)' have no defined order (pre-release or build?)" }
}

Function Compare-FleetKey {
    param([Object[]]$A, [Object[]]$B)
    $length = [Math]::Max($A.Count, $B.Count)
    $zero = @{ Number = [bigint]::Zero; Tag = '' }
    $padA = @(for ($i = 0; $i -lt $length; $i++) { if ($i -lt $A.Count) { $A[$i] } else { $zero } })
    $padB = @(for ($i = 0; $i -lt $length; $i++) { if ($i -lt $B.Count) { $B[$i] } else { $zero } })
    for ($i = 0; $i -lt $length; $i++) {
        $result = Compare-FleetSegment -A $padA[$i] -B $padB[$i]
        if ($null -eq $result.Order) {
            return $result
        }
        if ($result.Order -ne 0) {
            # 2.10a against 2.10.1: both come after 2.10 and nothing says which is later.
            if ($padA[$i].Number -eq $padB[$i].Number -and ($padA[$i].Tag -eq '' -or $padB[$i].Tag -eq '')) {
                $plain = if ($padA[$i].Tag -eq '') { $padA } else { $padB }
                for ($j = $i + 1; $j -lt $length; $j++) {
                    if ($plain[$j].Number -ne 0 -or $plain[$j].Tag -ne '') {
                        $textA = Get-FleetSegmentText $padA[$i]
                        $textB = Get-FleetSegmentText $padB[$i]
                        return @{ Order = $null; Reason = "'$textA' and '$textB' have no defined order (a letter against more numbers)" }
                    }
                }
            }
            return $result
        }
    }
    return @{ Order = 0; Reason = '' }
}

Function Compare-FleetVersion {
    <#
    .SYNOPSIS
    Order of A against B: @{ Order = -1 older | 0 same | 1 newer | $null unknown; Reason }.
    #>
    param([AllowNull()][Object]$A, [AllowNull()][Object]$B, [String]$Scheme = 'auto')
    if ($Scheme -ne 'auto') {
        return @{ Order = $null; Reason = "$Scheme versions are compared on Linux nodes only" }
    }
    try {
        $va = ConvertTo-FleetVersion -Text $A
    }
    catch [System.ArgumentException] {
        return @{ Order = $null; Reason = "cannot read '$A': $($_.Exception.Message)" }
    }
    try {
        $vb = ConvertTo-FleetVersion -Text $B
    }
    catch [System.ArgumentException] {
        return @{ Order = $null; Reason = "cannot read '$B': $($_.Exception.Message)" }
    }
    if ($va.Scheme -ne $vb.Scheme) {
        return @{ Order = $null; Reason = "'$($va.Text)' is a $($va.Scheme) version and '$($vb.Text)' a $($vb.Scheme) version" }
    }
    if ($va.Family -and $vb.Family -and $va.Family -ne $vb.Family) {
        return @{ Order = $null; Reason = "'$($va.Text)' and '$($vb.Text)' belong to different families ($($va.Family), $($vb.Family))" }
    }
    $result = Compare-FleetKey -A $va.Key -B $vb.Key
    if ($null -eq $result.Order) {
        return @{ Order = $null; Reason = "'$($va.Text)' vs '$($vb.Text)': $($result.Reason)" }
    }
    if ($null -ne $va.Date -and $null -ne $vb.Date) {
        $byDate = [Math]::Sign($va.Date - $vb.Date)
        if ($result.Order -eq 0 -and $byDate -ne 0) {
            return @{ Order = $null; Reason = "'$($va.Text)' and '$($vb.Text)' have the same version but different dates" }
        }
        if ($result.Order -ne 0 -and $byDate -ne 0 -and $byDate -ne $result.Order) {
            return @{ Order = $null; Reason = "'$($va.Text)' and '$($vb.Text)': the version order and the date order disagree" }
        }
    }
    return $result
}

# ------------------------------------------------------------------------------------------
# Detection (detect.py)
# ------------------------------------------------------------------------------------------

# Where each method's answer comes from (detect.py SOURCES).
$script:FleetDetectionSources = @{
    command = 'the output of a command'; file = 'a file on the node'; package = 'the package manager'
    registry = 'the Windows registry'; dmi = 'SMBIOS (DMI) of the node'; fwupd = 'fwupd'
    redfish = "the BMC's Redfish firmware inventory"; component = 'the Smart Component itself'
}
$script:FleetComponentDecides = 'the component decides (its "not needed" return code)'

Function New-FleetDetection {
    param([String]$State, [String]$Method, [AllowNull()][Object]$Version = $null, [String]$Reason = '', [String]$Scheme = 'auto')
    $source = if ($script:FleetDetectionSources.ContainsKey($Method)) { $script:FleetDetectionSources[$Method] } else { '' }
    return @{ state = $State; version = $Version; scheme = $Scheme; method = $Method; reason = $Reason; source = $source }
}

Function Select-FleetVersion {
    <#
    .SYNOPSIS
    @(version or $null, reason): the regex's 'version' group or group 1 (or the whole match); without a regex, the first non-empty line.
    #>
    param([AllowEmptyString()][String]$Text, [AllowNull()][String]$Regex, [String]$What)
    if (-not $Regex) {
        foreach ($line in ($Text -split "`r?`n")) {
            if ($line.Trim()) {
                return , @($line.Trim(), '')
            }
        }
        return , @($null, "$What is empty")
    }
    $m = [regex]::Match($Text, $Regex, [System.Text.RegularExpressions.RegexOptions]::Multiline)
    if (-not $m.Success) {
        return , @($null, "$What does not match '$Regex'")
    }
    if ($m.Groups['version'].Success) {
        $value = $m.Groups['version'].Value
    }
    elseif ($m.Groups.Count -gt 1) {
        $value = $m.Groups[1].Value
    }
    else {
        $value = $m.Value
    }
    if (-not $value.Trim()) {
        return , @($null, "${What}: the regex '$Regex' matched an empty version")
    }
    return , @($value.Trim(), '')
}

Function ConvertTo-FleetArgumentString {
    <#
    .SYNOPSIS
    An argv -> one Windows command line (the MS C runtime quoting rules, as Python's subprocess.list2cmdline).
    #>
    param([String[]]$Argv)
    $quoted = foreach ($arg in $Argv) {
        $needQuote = ($arg -eq '') -or $arg.Contains(' ') -or $arg.Contains("`t")
        $builder = New-Object System.Text.StringBuilder
        if ($needQuote) {
            [void]$builder.Append('"')
        }
        $backslashes = 0
        foreach ($char in $arg.ToCharArray()) {
            if ($char -eq '\') {
                $backslashes++
            }
            elseif ($char -eq '"') {
                [void]$builder.Append('\' * ($backslashes * 2 + 1))
                [void]$builder.Append('"')
                $backslashes = 0
            }
            else {
                [void]$builder.Append('\' * $backslashes)
                [void]$builder.Append($char)
                $backslashes = 0
            }
        }
        if ($needQuote) {
            [void]$builder.Append('\' * ($backslashes * 2))
            [void]$builder.Append('"')
        }
        else {
            [void]$builder.Append('\' * $backslashes)
        }
        $builder.ToString()
    }
    return ($quoted -join ' ')
}

Function Invoke-FleetDetectCommand {
    param([Hashtable]$Spec, [Double]$Timeout)
    $argv = @($Spec.command | ForEach-Object { "$_" })
    $scheme = if ($Spec.scheme) { $Spec.scheme } else { 'auto' }
    if ($Spec.timeout) {
        $Timeout = [Double]$Spec.timeout
    }
    $info = New-Object System.Diagnostics.ProcessStartInfo
    $info.FileName = $argv[0]
    $info.Arguments = ConvertTo-FleetArgumentString -Argv @($argv | Select-Object -Skip 1)
    $info.UseShellExecute = $false
    $info.RedirectStandardOutput = $true
    $info.RedirectStandardError = $true
    $info.CreateNoWindow = $true
    try {
        $process = [System.Diagnostics.Process]::Start($info)
    }
    catch {
        return New-FleetDetection -State 'absent' -Method 'command' -Scheme $scheme -Reason "$($argv[0]) is not installed ($($_.Exception.Message))"
    }
    $stdout = $process.StandardOutput.ReadToEndAsync()
    $stderr = $process.StandardError.ReadToEndAsync()
    if (-not $process.WaitForExit([int]($Timeout * 1000))) {
        # taskkill /T: the program's children go too.
        & taskkill.exe /F /T /PID $process.Id 2>&1 | Out-Null
        return New-FleetDetection -State 'error' -Method 'command' -Scheme $scheme -Reason "$($argv[0]) gave no answer in $Timeout s"
    }
    $process.WaitForExit()
    $output = $stdout.Result + $stderr.Result
    $rc = $process.ExitCode
    if (@($Spec.absent_rc) -contains $rc) {
        return New-FleetDetection -State 'absent' -Method 'command' -Scheme $scheme -Reason "$($argv[0]) returned $rc, which means not installed"
    }
    if ($rc -ne 0) {
        $tail = $output.Trim()
        if ($tail.Length -gt 200) {
            $tail = $tail.Substring($tail.Length - 200)
        }
        return New-FleetDetection -State 'error' -Method 'command' -Scheme $scheme -Reason "$($argv[0]) returned ${rc}: $tail"
    }
    $picked = Select-FleetVersion -Text $output -Regex $Spec.regex -What "the output of $($argv[0])"
    if ($null -eq $picked[0]) {
        return New-FleetDetection -State 'error' -Method 'command' -Scheme $scheme -Reason $picked[1]
    }
    return New-FleetDetection -State 'present' -Method 'command' -Scheme $scheme -Version $picked[0]
}

Function Invoke-FleetDetectFile {
    param([Hashtable]$Spec)
    $path = "$($Spec.path)"
    $scheme = if ($Spec.scheme) { $Spec.scheme } else { 'auto' }
    if (-not (Test-Path -LiteralPath $path -PathType Leaf)) {
        if (Test-Path -LiteralPath $path) {
            return New-FleetDetection -State 'error' -Method 'file' -Scheme $scheme -Reason "$path is not a file"
        }
        return New-FleetDetection -State 'absent' -Method 'file' -Scheme $scheme -Reason "$path does not exist"
    }
    try {
        if ($Spec.version_info) {
            $text = "$((Get-Item -LiteralPath $path -ErrorAction Stop).VersionInfo.FileVersion)"
        }
        else {
            $bytes = [System.IO.File]::ReadAllBytes($path)
            $count = [Math]::Min($bytes.Length, 65536)
            $text = [System.Text.Encoding]::UTF8.GetString($bytes, 0, $count)
        }
    }
    catch {
        return New-FleetDetection -State 'error' -Method 'file' -Scheme $scheme -Reason "cannot read ${path}: $($_.Exception.Message)"
    }
    $picked = Select-FleetVersion -Text $text -Regex $Spec.regex -What $path
    if ($null -eq $picked[0]) {
        return New-FleetDetection -State 'error' -Method 'file' -Scheme $scheme -Reason $picked[1]
    }
    return New-FleetDetection -State 'present' -Method 'file' -Scheme $scheme -Version $picked[0]
}

Function Invoke-FleetDetectRegistry {
    param([Hashtable]$Spec)
    $scheme = if ($Spec.scheme) { $Spec.scheme } else { 'auto' }
    if ($Spec.display_name) {
        $entries = @(Get-ItemProperty -Path $FleetUninstallKeys -ErrorAction SilentlyContinue |
                Where-Object { $_.PSObject.Properties['DisplayName'] -and $_.DisplayName -match $Spec.display_name })
        if ($entries.Count -eq 0) {
            return New-FleetDetection -State 'absent' -Method 'registry' -Scheme $scheme -Reason "no uninstall entry matches '$($Spec.display_name)'"
        }
        $found = @($entries | ForEach-Object { "$($_.DisplayVersion)" } | Sort-Object -Unique)
        if ($found.Count -gt 1) {
            $names = ($entries | ForEach-Object { $_.DisplayName }) -join ', '
            return New-FleetDetection -State 'error' -Method 'registry' -Scheme $scheme -Reason "several uninstall entries match with different versions: $names"
        }
        $text = $found[0]
        $what = "DisplayVersion of '$($entries[0].DisplayName)'"
    }
    else {
        if (-not (Test-Path -LiteralPath $Spec.key)) {
            return New-FleetDetection -State 'absent' -Method 'registry' -Scheme $scheme -Reason "registry key $($Spec.key) does not exist"
        }
        $item = Get-ItemProperty -LiteralPath $Spec.key -ErrorAction SilentlyContinue
        if ($null -eq $item -or -not $item.PSObject.Properties[$Spec.value]) {
            return New-FleetDetection -State 'absent' -Method 'registry' -Scheme $scheme -Reason "registry value $($Spec.key)\$($Spec.value) does not exist"
        }
        $text = "$($item.($Spec.value))"
        $what = "$($Spec.key)\$($Spec.value)"
    }
    $picked = Select-FleetVersion -Text $text -Regex $Spec.regex -What $what
    if ($null -eq $picked[0]) {
        return New-FleetDetection -State 'error' -Method 'registry' -Scheme $scheme -Reason $picked[1]
    }
    return New-FleetDetection -State 'present' -Method 'registry' -Scheme $scheme -Version $picked[0]
}

Function Get-FleetDmiValue {
    <#
    .SYNOPSIS
    A DMI field by its Linux name (bios_version, product_name...) from CIM; throws ArgumentException.
    #>
    param([String]$Field)
    if (-not $FleetDmiMap.ContainsKey($Field)) {
        throw [System.ArgumentException]"DMI field $Field is not known on Windows (known: $(($FleetDmiMap.Keys | Sort-Object) -join ', '))"
    }
    $class, $property = $FleetDmiMap[$Field]
    $instance = Get-CimInstance -ClassName $class -ErrorAction Stop | Select-Object -First 1
    if ($Field -eq 'bios_release') {
        return "$($instance.SystemBiosMajorVersion).$($instance.SystemBiosMinorVersion)"
    }
    $value = $instance.$property
    if ($value -is [DateTime]) {
        return $value.ToString('MM/dd/yyyy', [System.Globalization.CultureInfo]::InvariantCulture)
    }
    return "$value".Trim()
}

Function Invoke-FleetDetectDmi {
    param([Hashtable]$Spec)
    $scheme = if ($Spec.scheme) { $Spec.scheme } else { 'auto' }
    $template = if ($Spec.field) { "{$($Spec.field)}" } else { "$($Spec.format)" }
    $text = $template
    foreach ($m in [regex]::Matches($template, '{([^{}]*)}')) {
        $field = $m.Groups[1].Value
        try {
            $value = Get-FleetDmiValue -Field $field
        }
        catch {
            return New-FleetDetection -State 'error' -Method 'dmi' -Scheme $scheme -Reason "cannot read DMI ${field}: $($_.Exception.Message)"
        }
        if (-not $value) {
            return New-FleetDetection -State 'error' -Method 'dmi' -Scheme $scheme -Reason "DMI $field is empty"
        }
        $text = $text.Replace($m.Value, $value)
    }
    $picked = Select-FleetVersion -Text $text -Regex $Spec.regex -What "DMI value '$text'"
    if ($null -eq $picked[0]) {
        return New-FleetDetection -State 'error' -Method 'dmi' -Scheme $scheme -Reason $picked[1]
    }
    return New-FleetDetection -State 'present' -Method 'dmi' -Scheme $scheme -Version $picked[0]
}

Function Get-FleetDetection {
    <#
    .SYNOPSIS
    The installed version per a detect spec: @{ state (present, absent, error); version; scheme; method; reason }.
    #>
    param([Parameter(Mandatory = $true)][AllowNull()][Object]$Spec, [Double]$Timeout = 30)
    if ($Spec -isnot [System.Collections.IDictionary]) {
        return New-FleetDetection -State 'error' -Method '?' -Reason 'detect: must be a mapping with a method'
    }
    $method = "$($Spec.method)"
    switch ($method) {
        'command' {
            if (-not $Spec.command) {
                return New-FleetDetection -State 'error' -Method $method -Reason 'detect.command: required for method command'
            }
            return Invoke-FleetDetectCommand -Spec $Spec -Timeout $Timeout
        }
        'file' {
            return Invoke-FleetDetectFile -Spec $Spec
        }
        'registry' {
            if (-not $Spec.display_name -and -not ($Spec.key -and $Spec.value)) {
                return New-FleetDetection -State 'error' -Method $method -Reason 'detect.key: registry needs key and value, or display_name'
            }
            return Invoke-FleetDetectRegistry -Spec $Spec
        }
        'dmi' {
            return Invoke-FleetDetectDmi -Spec $Spec
        }
        { $_ -in @('package', 'fwupd') } {
            return New-FleetDetection -State 'error' -Method $method -Reason "detect method $method exists only on Linux nodes"
        }
        'redfish' {
            # Never 'absent': a plan cannot tell, so the component is skipped unless forced.
            return New-FleetDetection -State 'error' -Method $method -Reason 'redfish detection is not supported on Windows nodes yet'
        }
        'component' {
            return New-FleetDetection -State 'deferred' -Method $method -Reason 'nothing on the node can tell; the component decides when it runs'
        }
    }
    return New-FleetDetection -State 'error' -Method $method -Reason "detect.method: '$method' is not one of command, file, package, registry, dmi, fwupd, redfish, component"
}

Function Test-FleetAppliesTo {
    <#
    .SYNOPSIS
    @($true, '') when every DMI field of applies_to matches this node, else @($false, why).
    #>
    param([AllowNull()][Object]$AppliesTo)
    if ($null -eq $AppliesTo) {
        return , @($true, '')
    }
    foreach ($field in ($AppliesTo.Keys | Sort-Object)) {
        $wanted = $AppliesTo[$field]
        try {
            $value = Get-FleetDmiValue -Field $field
        }
        catch {
            return , @($false, "cannot read DMI ${field}: $($_.Exception.Message)")
        }
        if ($wanted -is [System.Collections.IList]) {
            if (@($wanted) -cnotcontains $value) {
                return , @($false, "DMI $field is '$value', not one of $(@($wanted) -join ', ')")
            }
        }
        elseif (-not [regex]::IsMatch($value, "$wanted")) {
            return , @($false, "DMI $field is '$value', which does not match '$wanted'")
        }
    }
    return , @($true, '')
}

# ------------------------------------------------------------------------------------------
# Plan (plan.py)
# ------------------------------------------------------------------------------------------

Function New-FleetPlanEntry {
    param([System.Collections.IDictionary]$Component, [String]$Action, [String]$Reason, [AllowNull()][Object]$Installed = $null,
        [AllowNull()][Object]$Comparison = $null, [AllowNull()][Hashtable]$Detection = $null, [AllowNull()][Object]$NotDeployable = $null)
    return @{
        name = $Component.name; kind = $Component.kind; os = $Component.os
        installed = $Installed; available = $Component.version; action = $Action; reason = $Reason
        comparison = $Comparison; detection = $Detection; requires = @($Component.requires | Where-Object { $null -ne $_ })
        source = if ($null -ne $Detection) { $Detection.source } else { $null }; not_deployable = $NotDeployable
    }
}

Function Get-FleetNotOffered {
    # Why the repository holds this component back (plan.py not_offered), or $null.
    param([System.Collections.IDictionary]$Component, [Hashtable]$Policy)
    if ($Component.deployable -is [bool] -and -not $Component.deployable) {
        return "not deployable: $($Component.not_deployable)"
    }
    if ($Component.superseded_by -and @($Policy.components) -notcontains $Component.name) {
        return "superseded by $($Component.superseded_by) (name $($Component.name) in the policy's components to install this version)"
    }
    return $null
}

Function Get-FleetNotSelected {
    param([System.Collections.IDictionary]$Component, [Hashtable]$Policy)
    if ($Component.os -and $Component.os -ne 'windows') {
        return "for $($Component.os) nodes, this node runs windows"
    }
    if (@($Policy.components).Count -gt 0 -and @($Policy.components) -notcontains $Component.name) {
        return 'not in the selected components'
    }
    if ($Policy.only -eq 'firmware' -and $Component.kind -ne 'firmware') {
        return "only firmware is selected, this is $($Component.kind)"
    }
    if ($Policy.only -eq 'software' -and $Component.kind -eq 'firmware') {
        return 'only software is selected, this is firmware'
    }
    return $null
}

Function Get-FleetDecision {
    <#
    .SYNOPSIS
    The plan entry of one component from its detection and the policy (plan.py decide).
    #>
    param([System.Collections.IDictionary]$Component, [Hashtable]$Detection, [Hashtable]$Policy)
    $available = $Component.version
    if ($Detection.state -eq 'absent') {
        return New-FleetPlanEntry $Component 'install' "not installed ($($Detection.reason))" $null $null $Detection
    }
    if ($Detection.state -eq 'deferred') {
        return New-FleetPlanEntry $Component 'install' $script:FleetComponentDecides $null $null $Detection
    }
    if ($Detection.state -ne 'present') {
        $why = "cannot tell the installed version: $($Detection.reason)"
        if ($Policy.force) {
            return New-FleetPlanEntry $Component 'install' "force: $why" $null 'unknown' $Detection
        }
        return New-FleetPlanEntry $Component 'skip' "$why (force installs anyway)" $null 'unknown' $Detection
    }
    $installed = $Detection.version
    $result = Compare-FleetVersion -A $installed -B $available -Scheme $Detection.scheme
    if ($null -eq $result.Order) {
        if ($Policy.force) {
            return New-FleetPlanEntry $Component 'install' "force: versions cannot be compared: $($result.Reason)" $installed 'unknown' $Detection
        }
        return New-FleetPlanEntry $Component 'skip' "versions cannot be compared: $($result.Reason) (force installs anyway)" $installed 'unknown' $Detection
    }
    if ($result.Order -lt 0) {
        return New-FleetPlanEntry $Component 'upgrade' "installed $installed is older than $available" $installed 'older' $Detection
    }
    if ($result.Order -eq 0) {
        if ($Policy.rewrite -or $Policy.force) {
            $why = if ($Policy.rewrite) { 'rewrite' } else { 'force' }
            return New-FleetPlanEntry $Component 'rewrite' "installed $installed is current; $why" $installed 'same' $Detection
        }
        return New-FleetPlanEntry $Component 'skip' "already current ($installed)" $installed 'same' $Detection
    }
    if ($Policy.allow_downgrade -or $Policy.force) {
        $why = if ($Policy.allow_downgrade) { 'allow_downgrade' } else { 'force' }
        return New-FleetPlanEntry $Component 'downgrade' "installed $installed is newer than $available; $why" $installed 'newer' $Detection
    }
    return New-FleetPlanEntry $Component 'skip' "installed $installed is newer than $available (allow_downgrade to go back)" $installed 'newer' $Detection
}

Function Invoke-FleetInventory {
    <#
    .SYNOPSIS
    One plan entry per baseline component, in the order given; plus the count per action.
    #>
    param([Object[]]$Baseline, [Hashtable]$Policy, [Double]$Timeout = 30)
    $entries = New-Object System.Collections.Generic.List[Object]
    foreach ($component in $Baseline) {
        # not_deployable: the repository holds it back or it is for another OS (plan.py plan).
        $heldBack = Get-FleetNotOffered -Component $component -Policy $Policy
        if (-not $heldBack -and $component.os -and $component.os -ne 'windows') {
            $heldBack = "for $($component.os) nodes, this node runs windows"
        }
        if ($heldBack) {
            $entries.Add((New-FleetPlanEntry $component 'skip' $heldBack -NotDeployable $heldBack))
            continue
        }
        $reason = Get-FleetNotSelected -Component $component -Policy $Policy
        if ($reason) {
            $entries.Add((New-FleetPlanEntry $component 'skip' $reason))
            continue
        }
        $fits = Test-FleetAppliesTo -AppliesTo $component.applies_to
        if (-not $fits[0]) {
            $why = "does not apply to this node: $($fits[1])"
            $entries.Add((New-FleetPlanEntry $component 'skip' $why -NotDeployable $why))
            continue
        }
        $detection = Get-FleetDetection -Spec $component.detect -Timeout $Timeout
        $entries.Add((Get-FleetDecision -Component $component -Detection $detection -Policy $Policy))
    }
    $summary = [ordered]@{ install = 0; upgrade = 0; downgrade = 0; rewrite = 0; skip = 0 }
    foreach ($entry in $entries) {
        $summary[$entry.action]++
    }
    return @{ Inventory = $entries.ToArray(); Summary = $summary; UpdateNeeded = ($summary.skip -lt $entries.Count) }
}

# ------------------------------------------------------------------------------------------
# Install commands (installers.py, Windows kinds) for the agent's Windows side
# ------------------------------------------------------------------------------------------

Function Get-FleetInstallCommand {
    <#
    .SYNOPSIS
    The argv that installs a component from the local file Path on Windows (installers.py build_command).
    #>
    param([System.Collections.IDictionary]$Component, [String]$Path)
    $wantsFlag = $Component.action -in @('downgrade', 'rewrite') -or $Component.force
    switch ("$($Component.install)") {
        'script' {
            if ($Path -match '\.ps1$') {
                $command = @('powershell.exe', '-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-File', $Path)
            }
            elseif ($Path -match '\.(cmd|bat)$') {
                $command = @('cmd.exe', '/d', '/c', $Path)
            }
            else {
                $command = @($Path)
            }
        }
        'smart_component' {
            $command = @($Path, '/s')
            if ($wantsFlag) {
                $command += '/f'
            }
        }
        'msi' {
            $command = @('msiexec.exe', '/i', $Path, '/qn', '/norestart', '/l*v', "$Path.log")
            if ($Component.action -eq 'rewrite' -or $Component.force) {
                $command += @('REINSTALL=ALL', 'REINSTALLMODE=vomus')
            }
        }
        'exe' {
            $command = @($Path)
        }
        default {
            throw [System.ArgumentException]"component '$($Component.name)': install kind '$($Component.install)' does not exist on windows (there: script, smart_component, msi, exe)"
        }
    }
    $extra = @($Component.args | Where-Object { $null -ne $_ } | ForEach-Object { "$_" })
    return , @($command + $extra)
}

Function Get-FleetInstallStatus {
    <#
    .SYNOPSIS
    The status of a return code for a component on Windows (returncodes.py): installed, reboot_required, not_needed or failed.
    #>
    param([System.Collections.IDictionary]$Component, [Int64]$ReturnCode)
    if ($Component.returncodes) {
        $table = @{}
        foreach ($key in $Component.returncodes.Keys) {
            $table[[Int64]"$key"] = $Component.returncodes[$key]
        }
    }
    elseif ($Component.install -eq 'smart_component') {
        $table = $FleetSmartComponentWindowsCodes
    }
    elseif ($Component.install -in @('msi', 'exe')) {
        $table = $FleetWindowsInstallerCodes
    }
    else {
        $table = $FleetZeroIsSuccessCodes
    }
    $status = 'failed'
    foreach ($key in $table.Keys) {
        if ([Int64]$key -eq $ReturnCode) {
            $status = $table[$key]
        }
    }
    if ($status -in @('installed', 'reboot_required')) {
        if ($Component.reboot -eq 'required') {
            $status = 'reboot_required'
        }
        elseif ($Component.reboot -eq 'none') {
            $status = 'installed'
        }
    }
    return $status
}

$exportMembers = @{
    Function = @(
        'Compare-FleetVersion', 'ConvertTo-FleetVersion', 'Get-FleetDetection', 'Test-FleetAppliesTo', 'Get-FleetDecision',
        'Invoke-FleetInventory', 'Get-FleetInstallCommand', 'Get-FleetInstallStatus', 'ConvertTo-FleetArgumentString'
    )
    Variable = @('FleetSegmentPattern', 'FleetSplitPattern', 'FleetHexPattern', 'FleetTrailingDatePattern', 'FleetVersionTokenPattern')
}
Export-ModuleMember @exportMembers
