# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# The Windows node agent process (docs/agent.md). Staged with FleetAgent.psm1, FleetFirewall.psm1 and
# FleetInventory.psm1 (detection and plan: GET /v1/inventory, POST /v1/plan) in %SystemRoot%\Temp\fleet-firmware-<tag>\ and started by the agent module (agent.ps1) as the
# scheduled task fleet-firmware-<tag>-agent, running as SYSTEM:
#   powershell.exe -NoProfile -NonInteractive -ExecutionPolicy Bypass -EncodedCommand <script>
# where <script> (agent.ps1's Get-AgentTaskScript) first checks the SHA-256 of every staged file
# against the controller's values, which it carries itself, and then runs
#   <staging>\fleet_agent.ps1 -ConfigPath <staging>\agent-config.json
# The configuration file (secrets included) is ACL'd to SYSTEM and Administrators; the agent reads
# it and deletes it at once. It answers in <staging>\ready.json instead of a line on stdout: a
# scheduled task has no pipe back to the module. Not run in the project's tests (no Windows).

[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)][string]$ConfigPath
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0
# -Global: FleetAgent.psm1 calls the firewall and inventory twins' functions from its own session state.
Import-Module -Name (Join-Path -Path $PSScriptRoot -ChildPath 'FleetFirewall.psm1') -Global -DisableNameChecking
Import-Module -Name (Join-Path -Path $PSScriptRoot -ChildPath 'FleetInventory.psm1') -Global -DisableNameChecking
Import-Module -Name (Join-Path -Path $PSScriptRoot -ChildPath 'FleetAgent.psm1') -Global -DisableNameChecking

$code = Start-FleetAgent -ConfigPath $ConfigPath
exit $code
