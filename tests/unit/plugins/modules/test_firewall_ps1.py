# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Windows twin of fleet.firmware.firewall, checked without Windows.

PowerShell and the Windows Firewall cannot run here. What can be checked is checked against
the Python side and the one documentation block:

* the validation tables of FleetFirewall.psm1 (tag and port patterns, protocol and direction
  maps) accept and refuse exactly what the Python backends do;
* the names it builds (rules ``fleet-firmware-<tag>-<port>-<proto>``, group
  ``fleet-firmware-<tag>``, lease task ``fleet-firmware-<tag>-lease``) and the lease task's
  script, by evaluating the .psm1's own format strings;
* the argument spec of firewall.ps1 matches the module's DOCUMENTATION and firewall.py;
* every Fleet* command firewall.ps1 calls is defined and exported by the .psm1.
"""
from __future__ import annotations

import base64
import re

import pytest

import powershell_source as source

from ansible_collections.fleet.firmware.plugins.module_utils.firewall import common

PSM1 = source.read("plugins/module_utils/FleetFirewall.psm1")
PS1 = source.read("plugins/modules/firewall.ps1")
DOCS = source.module_docs("firewall")


def ps_string(name: str) -> str:
    return source.ps_string(PSM1, name)


def ps_hashtable(name: str) -> dict[str, str]:
    return source.ps_table(PSM1, name)


def dotnet_to_python(pattern: str) -> str:
    """.NET named groups ``(?<n>...)`` are Python's ``(?P<n>...)``; the rest is common syntax."""
    return pattern.replace("(?<", "(?P<")


def ps_format(fmt: str, *args) -> str:
    """PowerShell's -f is .NET String.Format: {0} {1} ... and `` `$ `` is a literal $."""
    return fmt.format(*args).replace("`$", "$")


@pytest.mark.parametrize("tag", ["run-1", "a", "x" * 32, "0-9-z", "Run-1", "", "x" * 33, "run_1", "run 1", "*", "run-1\n"])
def test_tag_pattern_accepts_what_python_accepts(tag):
    ps = re.compile(ps_string("FleetTagPattern"))
    # -cnotmatch is case-sensitive like Python's re; $ must not accept a trailing newline.
    ps_ok = bool(ps.search(tag)) and not tag.endswith("\n")
    try:
        common.validate_tag(tag)
        py_ok = True
    except common.FirewallError:
        py_ok = False
    assert ps_ok == py_ok


def test_patterns_are_the_same_as_the_python_ones():
    assert ps_string("FleetTagPattern") == common.TAG_RE.pattern
    assert dotnet_to_python(ps_string("FleetPortPattern")) == common.PORT_RE.pattern
    assert ps_string("FleetMarker") == common.MARKER


@pytest.mark.parametrize("value, expected", [
    ("62286", ("tcp", 62286, 62286, "62286")),
    ("62286/tcp", ("tcp", 62286, 62286, "62286")),
    ("137/UDP", ("udp", 137, 137, "137")),
    ("1000-2000/udp", ("udp", 1000, 2000, "1000-2000")),
    ("0/tcp", None), ("70000", None), ("2000-1000/tcp", None), ("22/icmp", None), ("ssh", None), ("22/", None),
])
def test_port_parsing_mirrors_the_psm1_and_agrees_with_python(value, expected):
    """The .psm1's ConvertTo-FleetPort steps, run on its own pattern and protocol map."""
    match = re.match(dotnet_to_python(ps_string("FleetPortPattern")), value.strip())
    protocols = ps_hashtable("FleetProtocolMap")
    ps_result = None
    if match:
        proto = (match.group("proto") or "tcp").lower()
        first = int(match.group("first"))
        last = int(match.group("last") or first)
        if proto in protocols and all(1 <= n <= 65535 for n in (first, last)) and first <= last:
            ps_result = (proto, first, last, str(first) if first == last else f"{first}-{last}")
    assert ps_result == expected
    if expected is None:
        with pytest.raises(common.FirewallError):
            common.parse_port(value)
    else:
        port = common.parse_port(value)
        assert (port.proto, port.first, port.last, port.text) == expected


def test_protocol_and_direction_maps_cover_exactly_the_python_choices():
    assert ps_hashtable("FleetProtocolMap") == {"tcp": "TCP", "udp": "UDP"}
    assert set(ps_hashtable("FleetProtocolMap")) == set(common.PROTOCOLS)
    assert ps_hashtable("FleetDirectionMap") == {"in": "Inbound", "out": "Outbound"}
    assert set(ps_hashtable("FleetDirectionMap")) == set(common.DIRECTIONS)


@pytest.mark.parametrize("tag, port, proto, name", [
    ("run-1", "62286", "tcp", "fleet-firmware-run-1-62286-tcp"),
    ("a", "1000-2000", "udp", "fleet-firmware-a-1000-2000-udp"),
])
def test_rule_names_are_built_from_the_tag_port_and_protocol(tag, port, proto, name):
    assert ps_format(ps_string("FleetRuleNameFormat"), common.MARKER, tag, port, proto) == name
    assert "Get-FleetRuleName" in PSM1 and "$FleetRuleNameFormat -f $FleetMarker, $Tag, $Port.Text, $Port.Proto" in PSM1


def test_group_and_lease_task_names():
    group = re.search(r"Function Get-FleetGroupName \{.*?return '([^']+)' -f \$FleetMarker, \$Tag", PSM1, re.S).group(1)
    task = re.search(r"Function Get-FleetLeaseTaskName \{.*?return '([^']+)' -f \$FleetMarker, \$Tag", PSM1, re.S).group(1)
    assert ps_format(group, common.MARKER, "run-1") == "fleet-firmware-run-1"
    assert ps_format(task, common.MARKER, "run-1") == "fleet-firmware-run-1-lease"


def test_the_lease_task_removes_the_group_then_itself():
    body = re.search(r"Function Get-FleetLeaseScript \{(.*?)\n\}", PSM1, re.S).group(1)
    parts = re.findall(r'"((?:[^"`]|`.)*)"', body)
    script = ps_format("".join(parts), "fleet-firmware-run-1", "fleet-firmware-run-1-lease")
    assert script == ("Remove-NetFirewallRule -Group 'fleet-firmware-run-1' -ErrorAction SilentlyContinue; "
                      "Unregister-ScheduledTask -TaskName 'fleet-firmware-run-1-lease' -Confirm:$false -ErrorAction SilentlyContinue")
    # The task runs it as -EncodedCommand: UTF-16LE base64, no quoting in the task's command line.
    encoded = base64.b64encode(script.encode("utf-16-le")).decode()
    assert base64.b64decode(encoded).decode("utf-16-le") == script
    assert "[System.Text.Encoding]::Unicode.GetBytes" in PSM1 and "-EncodedCommand {0}" in PSM1


def test_rule_parameters_scope_the_port_and_the_source():
    body = re.search(r"Function New-FleetRuleParameter \{(.*?)\n\}", PSM1, re.S).group(1)
    assert "Group = Get-FleetGroupName -Tag $Tag" in body
    assert "Action = 'Allow'" in body and "RemoteAddress = 'Any'" in body
    assert "if ($Source.Count -gt 0) { $rule.RemoteAddress = $Source }" in body
    # in: the node's own (local) port is opened; out: the remote one.
    assert "if ($Direction -eq 'in') { $rule.LocalPort = $Port.Text } else { $rule.RemotePort = $Port.Text }" in body


def test_ps1_argument_spec_matches_the_documentation():
    options = source.ps1_options(PS1)
    documented = DOCS["options"]
    assert set(options) == set(documented)
    for name, doc in documented.items():
        spec = options[name]
        assert spec["type"].strip("'") == doc["type"], name
        if "choices" in doc:
            assert [c.strip(" '") for c in spec["choices"].split(",")] == [str(c) for c in doc["choices"]], name
        if doc.get("required"):
            assert spec.get("required") == "$true", name
        elif isinstance(doc.get("default"), (str, int)):
            assert spec["default"].strip("'") == str(doc["default"]), name
        elif doc.get("default") == []:
            assert spec["default"] == "@()", name


def test_every_fleet_command_the_ps1_calls_is_defined_and_exported():
    called = set(re.findall(r"\b([A-Z][a-z]+-Fleet[A-Za-z]+)\b", PS1))
    defined = set(re.findall(r"^Function ([A-Za-z]+-Fleet[A-Za-z]+) \{", PSM1, re.M))
    exported = set(re.findall(r"'([A-Za-z]+-Fleet[A-Za-z]+)'", PSM1.split("$exportMembers", 1)[1]))
    assert called and called <= defined <= exported | defined
    assert called <= exported
    assert "#AnsibleRequires -PowerShell ansible_collections.fleet.firmware.plugins.module_utils.FleetFirewall" in PS1
    assert "#AnsibleRequires -CSharpUtil Ansible.Basic" in PS1


# Cmdlets of Windows (NetSecurity, ScheduledTasks, core) the twin calls, with the parameters it
# may pass them (Microsoft's documentation of each cmdlet). A typo in a cmdlet or parameter
# name would only show on Windows: here it fails the test.
COMMON_PARAMETERS = {"ErrorAction", "WarningAction", "Verbose", "Debug", "ErrorVariable", "OutVariable", "Confirm", "WhatIf"}
KNOWN_CMDLETS = {
    "Get-NetFirewallRule": {"Name", "DisplayName", "Group", "Direction", "Enabled"},
    "New-NetFirewallRule": {"Name", "DisplayName", "Group", "Description", "Direction", "Protocol", "Action", "Profile",
                            "Enabled", "RemoteAddress", "LocalPort", "RemotePort", "LocalAddress"},
    "Remove-NetFirewallRule": {"Name", "DisplayName", "Group"},
    "Register-ScheduledTask": {"TaskName", "TaskPath", "Action", "Trigger", "Principal", "Settings", "Force", "Description"},
    "New-ScheduledTaskAction": {"Execute", "Argument", "WorkingDirectory"},
    "New-ScheduledTaskTrigger": {"Once", "At", "RepetitionInterval"},
    "New-ScheduledTaskPrincipal": {"UserId", "LogonType", "RunLevel", "GroupId"},
    "New-ScheduledTaskSettingsSet": {"AllowStartIfOnBatteries", "DontStopIfGoingOnBatteries", "StartWhenAvailable", "DeleteExpiredTaskAfter"},
    "Get-ScheduledTask": {"TaskName", "TaskPath"},
    "Unregister-ScheduledTask": {"TaskName", "TaskPath", "InputObject"},
    "Where-Object": set(), "ForEach-Object": set(), "Out-Null": set(), "Select-Object": {"Unique"},
    "Set-StrictMode": {"Version"}, "Export-ModuleMember": {"Function"},
}


def declared_functions() -> dict[str, set[str]]:
    """Function name -> its parameter names, from the .psm1's param blocks."""
    found = {}
    for node in source.walk(source.syntax_tree(PSM1)):
        if node.type == "function_statement":
            name = next(c for c in node.children if c.type == "function_name").text.decode()
            params = {var.text.decode()[1:] for par in source.walk(node) if par.type == "script_parameter"
                      for var in par.children if var.type == "variable"}
            found[name] = params
    return found


def calls(text: str) -> list[tuple[str, set[str]]]:
    out = []
    for node in source.walk(source.syntax_tree(text)):
        if node.type == "command":
            name = next((c.text.decode() for c in node.children if c.type == "command_name"), None)
            if name:
                params = {n.text.decode().lstrip("-") for n in source.walk(node) if n.type == "command_parameter" and n.parent.parent == node}
                out.append((name, params))
    return out


@pytest.mark.parametrize("file_name", ["FleetFirewall.psm1", "firewall.ps1"])
def test_every_command_and_parameter_the_twin_uses_exists(file_name):
    text = PSM1 if file_name.endswith(".psm1") else PS1
    functions = declared_functions()
    assert "Open-FleetFirewall" in functions and "Tag" in functions["Open-FleetFirewall"]
    used = calls(text)
    assert used
    for name, params in used:
        if name in functions:
            allowed = functions[name]
        else:
            assert name in KNOWN_CMDLETS, f"{file_name}: unknown command {name}"
            allowed = KNOWN_CMDLETS[name]
        unknown = params - allowed - COMMON_PARAMETERS
        assert not unknown, f"{file_name}: {name} has no parameter(s) {sorted(unknown)}"


def test_the_rule_splat_only_holds_parameters_of_new_netfirewallrule():
    body = re.search(r"Function New-FleetRuleParameter \{(.*?)\n\}", PSM1, re.S).group(1)
    keys = set(re.findall(r"^\s+(\w+) = ", body, re.M)) | set(re.findall(r"\$rule\.(\w+) = ", body))
    assert keys - {"name", "rule"} <= KNOWN_CMDLETS["New-NetFirewallRule"]
    assert {"Name", "Group", "Direction", "Protocol", "Action", "RemoteAddress", "LocalPort", "RemotePort"} <= keys


def test_the_description_fingerprints_what_the_rule_does():
    """A second open compares descriptions: same spec -> same text (no change), other source -> other text."""
    fmt = ps_string("FleetDescriptionFormat")
    one = ps_format(fmt, "run-1", "in", "tcp", "62286", "198.18.0.1")
    assert one == ps_format(fmt, "run-1", "in", "tcp", "62286", "198.18.0.1")
    assert one != ps_format(fmt, "run-1", "in", "tcp", "62286", "198.18.0.2")
    assert one != ps_format(fmt, "run-1", "out", "tcp", "62286", "198.18.0.1")
    body = re.search(r"Function Open-FleetFirewall \{(.*?)\n\}", PSM1, re.S).group(1)
    assert "$existing[$_.Name] -ne $_.Description" in body
