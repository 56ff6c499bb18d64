# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Windows agent (FleetAgent.psm1, fleet_agent.ps1, agent.ps1), checked without Windows.

PowerShell, Schannel, the Windows Firewall and the Task Scheduler cannot run here. What can be
checked is checked against the Python agent, the module's one documentation block and the
other Python tables:

* the .psm1's validation tables and defaults equal the Python agent's (tag, sha256, node id,
  port, lease, firewall grace), its return-code tables equal returncodes.py's for Windows, its
  install kinds and argv equal installers.build_command(os_name="windows");
* the routes it serves and the status fields it returns are the Python agent's;
* agent.ps1's argument spec equals the documentation and agent.py's spec, and the configuration
  document it builds has the keys of the Python module's;
* the text it builds for Windows (the sweep task's script, -EncodedCommand, the agent task's
  command line) by evaluating the .psm1's own format strings; the command-line quoting by
  running its own two regular expressions through the Windows command-line parsing rules;
* every Fleet* command it calls exists with the parameters it passes, and every cmdlet and
  parameter of Windows it uses is in the list below (taken from Microsoft's documentation).
"""
from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.fleet.firmware.plugins.module_utils import agent as py_agent
from ansible_collections.fleet.firmware.plugins.module_utils import installers, returncodes
from ansible_collections.fleet.firmware.plugins.modules import agent as py_module
from ansible_collections.fleet.firmware.plugins.plugin_utils import agent_windows, smb_stage

REPO = Path(__file__).resolve().parents[4]
PSM1 = (REPO / "plugins/module_utils/FleetAgent.psm1").read_text()
FIREWALL_PSM1 = (REPO / "plugins/module_utils/FleetFirewall.psm1").read_text()
SCRIPT = (REPO / "plugins/module_utils/fleet_agent.ps1").read_text()
PS1 = (REPO / "plugins/modules/agent.ps1").read_text()
DOCS = yaml.safe_load(re.search(r'DOCUMENTATION = r"""(.*?)"""', (REPO / "plugins/modules/agent.py").read_text(), re.S).group(1))


def ps_value(name: str) -> str:
    match = re.search(r"^\$%s = (.*)$" % re.escape(name), PSM1, re.M)
    assert match, f"${name} not found in FleetAgent.psm1"
    return match.group(1).strip()


def ps_string(name: str) -> str:
    value = ps_value(name)
    assert value.startswith("'") and value.endswith("'"), value
    return value[1:-1].replace("''", "'")


def ps_list(name: str) -> list[str]:
    return [item.strip().strip("'") for item in ps_value(name).split(",")]


def ps_int_table(name: str) -> dict[int, str]:
    body = re.match(r"@\{(.*)\}$", ps_value(name)).group(1)
    return {int(k): v.strip().strip("'") for k, v in (pair.split("=") for pair in body.split(";"))}


# What the Linux agent has and the Windows agent does not have yet (docs/agent.md, Windows):
# pull delivery (the node downloads from the engine) and the plan on the node. Any other
# difference from the Python agent fails the tests below.
NOT_YET_ON_WINDOWS_ROUTES = {"POST /v1/fetch", "POST /v1/plan"}
NOT_YET_ON_WINDOWS_STATUS = {"downloads"}


def function_body(text: str, name: str) -> str:
    match = re.search(r"^Function %s \{(.*?)^\}" % re.escape(name), text, re.S | re.M)
    assert match, f"Function {name} not found"
    return match.group(1)


# ---------------------------------------------------------------- tables equal to the Python side


def test_patterns_and_defaults_are_the_python_agents():
    assert ps_string("FleetAgentTagPattern") == py_agent.TAG_RE.pattern
    assert ps_string("FleetAgentShaPattern") == py_agent.SHA_RE.pattern
    assert ps_string("FleetAgentNodePattern") == py_agent.NODE_RE.pattern
    assert ps_string("FleetAgentFileNamePattern") == smb_stage.FILE_NAME_RE.pattern
    assert int(ps_value("FleetAgentDefaultPort")) == py_agent.DEFAULT_PORT
    assert int(ps_value("FleetAgentDefaultLease")) == py_agent.DEFAULT_LEASE
    assert int(ps_value("FleetAgentFirewallGrace")) == py_agent.FIREWALL_GRACE
    assert int(ps_value("FleetAgentMaxJsonBody")) == py_agent.MAX_JSON_BODY
    # server_key may come as server_pfx on Windows (checked in Test-FleetAgentConfig).
    assert set(ps_list("FleetAgentRequired")) | {"server_key"} == set(py_agent.REQUIRED)
    assert "if (-not $Raw.ContainsKey('server_pfx') -and -not $Raw.ContainsKey('server_key')) { $missing += 'server_key' }" in PSM1


def test_lease_bounds_are_the_python_agents():
    # Python: _int_in(lease, 5, 7 * 24 * 3600)
    assert int(ps_value("FleetAgentMinLease")) == 5
    assert int(ps_value("FleetAgentMaxLease")) == 7 * 24 * 3600


def test_return_code_tables_are_returncodes_py():
    assert ps_int_table("FleetAgentSmartComponentCodes") == {rc: entry[0] for rc, entry in returncodes.SMART_COMPONENT_WINDOWS.items()}
    assert ps_int_table("FleetAgentMsiCodes") == {rc: entry[0] for rc, entry in returncodes.WINDOWS_INSTALLER.items()}
    assert ps_int_table("FleetAgentZeroCodes") == {rc: entry[0] for rc, entry in returncodes.ZERO_IS_SUCCESS.items()}
    assert ps_list("FleetAgentSuccess") == list(returncodes.SUCCESS_STATUSES)
    assert tuple(ps_list("FleetAgentWindowsKinds")) == installers.KINDS_BY_OS["windows"]


def branch_argv(kind: str, path: str) -> list[str]:
    """The argv literal of one switch branch of Get-FleetAgentInstallCommand, with $Path filled in."""
    body = function_body(PSM1, "Get-FleetAgentInstallCommand")
    branch = re.search(r"'%s' \{\s*\$argv = @\((.*?)\)\n" % kind, body).group(1)
    items = [item.strip() for item in branch.split(",")]
    return [path if i == "$Path" else path + ".log" if i == '"$Path.log"' else i.strip("'") for i in items]


@pytest.mark.parametrize("kind", ["smart_component", "msi"])
def test_install_argv_is_installers_build_command_for_windows(kind):
    path = "C:\\Windows\\Temp\\fleet-firmware-run-1\\components\\abc-cp045123.exe"
    expected = installers.build_command({"name": "x", "install": kind}, path, os_name="windows")
    assert branch_argv(kind, path) == expected
    forced = installers.build_command({"name": "x", "install": kind, "force": True}, path, os_name="windows")
    extra = forced[len(expected):]
    body = function_body(PSM1, "Get-FleetAgentInstallCommand")
    assert "$argv += " + ("'/f'" if kind == "smart_component" else "@('REINSTALL=ALL', 'REINSTALLMODE=vomus')") in body
    assert extra == (["/f"] if kind == "smart_component" else ["REINSTALL=ALL", "REINSTALLMODE=vomus"])


def test_script_installs_use_the_interpreter_of_installers():
    body = function_body(PSM1, "Get-FleetAgentInstallCommand")
    assert "@('cmd.exe', '/d', '/c', $Path)" in body
    assert installers.build_command({"name": "s", "install": "script"}, "x.cmd", os_name="windows") == ["cmd.exe", "/d", "/c", "x.cmd"]
    ps = installers.build_command({"name": "s", "install": "script"}, "x.ps1", os_name="windows")
    assert ps[0].lower() == "powershell.exe" and ps[-1] == "x.ps1" and "-File" in ps


# ---------------------------------------------------------------- command-line quoting


def ps_argument(value: str) -> str:
    """ConvertTo-FleetAgentArgument, run with the .psm1's own regular expressions."""
    body = function_body(PSM1, "ConvertTo-FleetAgentArgument")
    plain = re.search(r"-notmatch '([^']*)'", body).group(1)
    quote_re, tail_re = re.findall(r"\[regex\]::Replace\(\$\w+, '([^']*)'", body)
    if value != "" and not re.search(plain, value):
        return value
    quoted = re.sub(quote_re, lambda m: m.group(1) + m.group(1) + '\\"', value)
    quoted = re.sub(tail_re, lambda m: m.group(1) + m.group(1), quoted)
    return '"' + quoted + '"'


def windows_argv(line: str) -> list[str]:
    """CommandLineToArgvW's rules for the arguments after the program name (2n, 2n+1 backslashes)."""
    args, current, quoted, i, started = [], "", False, 0, False
    while i < len(line):
        c = line[i]
        if c == "\\":
            n = len(line[i:]) - len(line[i:].lstrip("\\"))
            if i + n < len(line) and line[i + n] == '"':
                current += "\\" * (n // 2)
                if n % 2:
                    current += '"'
                    i += n + 1
                else:
                    i += n
                started = True
                continue
            current += "\\" * n
            i += n
            started = True
            continue
        if c == '"':
            quoted = not quoted
            started = True
        elif c in " \t" and not quoted:
            if started:
                args.append(current)
            current, started = "", False
        else:
            current += c
            started = True
        i += 1
    if started:
        args.append(current)
    return args


def test_the_quoting_regexes_are_found():
    body = function_body(PSM1, "ConvertTo-FleetAgentArgument")
    assert re.search(r"-notmatch '([^']*)'", body).group(1) == '[\\s"]'
    assert re.findall(r"\[regex\]::Replace\(\$\w+, '([^']*)'", body) == ['(\\\\*)"', '(\\\\+)$']


@pytest.mark.parametrize("argv", [
    ["/s"], ["/s", "/f"], ["C:\\Program Files\\x\\setup.exe"], ["a b", "c"], ['say "hi"'], ["trailing\\"], ["dir with space\\"],
    ["back\\\\slash\"quote"], [""], ["REINSTALL=ALL", "/l*v", "C:\\t\\a b.msi.log"],
])
def test_install_arguments_survive_the_windows_command_line(argv):
    line = " ".join(ps_argument(a) for a in argv)
    assert windows_argv(line) == argv


# ---------------------------------------------------------------- protocol


def test_routes_are_the_python_agents():
    body = function_body(PSM1, "Invoke-FleetAgentRequest")
    ps_routes = set(re.findall(r"'(GET /v1/\w+)'", body))
    ps_routes |= {f"POST {path}" for path in re.findall(r"'(/v1/\w+)' \{", body)}
    py_handler = (REPO / "plugins/module_utils/agent.py").read_text()
    py_routes = {f"{m} {p}" for m, p in re.findall(r'\("(GET|POST)", "(/v1/\w+)"\)', py_handler)}
    assert ps_routes == py_routes - NOT_YET_ON_WINDOWS_ROUTES
    assert "'/v1/components/'" in body and "$Request.Method -ne 'PUT'" in body
    known = body.split("$known = ", 1)[1].split("\n", 1)[0]
    assert set(re.findall(r"'(/v1/\w+)'", known)) == {route.split(" ")[1] for route in py_routes - NOT_YET_ON_WINDOWS_ROUTES}


def test_status_codes_have_reasons_and_are_documented():
    used = {int(s) for s in re.findall(r"Status = (\d{3})", PSM1)}
    reasons = {int(k) for k in re.findall(r"(\d{3}) = '", PSM1.split("$FleetAgentHttpReasons = @{", 1)[1].split("}", 1)[0])}
    assert used <= reasons
    documented = {int(s) for s in re.findall(r"\b(4\d\d|5\d\d)\b", (REPO / "docs/agent.md").read_text().split("## Protocol", 1)[1].split("|", 1)[0])}
    assert used - {200, 201, 202} <= documented | {500, 507}


def test_status_fields_are_the_python_agents():
    body = function_body(PSM1, "Get-FleetAgentStatus")
    ps_keys = set(re.findall(r"(?:^|; |\{ )\s*(\w+) = ", body.split("return @{", 1)[1], re.M))
    agent = py_agent.Agent({"tag": "run-1", "staging": "/var/tmp/fleet-firmware-run-1", "lease": 300, "run_id": "r", "node_id": "n", "port": 1})
    assert ps_keys == set(agent.status()) - NOT_YET_ON_WINDOWS_STATUS


def test_public_component_fields_are_the_python_jobs():
    keep = re.search(r"\$keep = (.*)", function_body(PSM1, "Get-FleetAgentPublicComponent")).group(1)
    job = py_agent.Job([{"name": "a", "sha256": "0" * 64, "version": "1", "rc": 1, "result": "x", "duration": 1, "output": "",
                         "reason": "", "extra": 1}])
    assert {k.strip(" '") for k in keep.split(",")} == set(job.public()[0].keys())


def test_readiness_answer_has_the_python_agents_fields():
    body = function_body(PSM1, "Start-FleetAgentListening").split("return @{", 1)[1]
    assert set(re.findall(r"(\w+) = ", body)) == {"ready", "pid", "addresses", "port", "lease_expires", "staging", "firewall"}


def test_the_token_comparison_is_constant_time_and_bearer():
    body = function_body(PSM1, "Test-FleetAgentToken")
    assert "'Bearer ' + $Token" in body and "-bxor" in body and "return $diff -eq 0" in body
    assert "-eq $Token" not in body


def test_the_client_certificate_is_required_and_pinned():
    connection = function_body(PSM1, "Invoke-FleetAgentConnection")
    # AuthenticateAsServer(cert, clientCertificateRequired=$true, protocols, checkRevocation=$false)
    assert "$ssl.AuthenticateAsServer($Agent.Certificate, $true, (Get-FleetAgentSslProtocol), $false)" in connection
    check = function_body(PSM1, "Test-FleetAgentClientCertificate")
    assert "(Get-FleetAgentFingerprint -Der $root.RawData) -ne $Fingerprint" in check
    assert "$elements.Count -lt 2" in check  # the CA itself is no client certificate
    assert ps_string("FleetAgentClientAuthOid") == "1.3.6.1.5.5.7.3.2"
    assert "Tls12" in function_body(PSM1, "Get-FleetAgentSslProtocol")


# ---------------------------------------------------------------- what it builds for Windows


def ps_format(fmt: str, *args) -> str:
    return fmt.replace("{{", "\0").replace("}}", "\1").format(*args).replace("\0", "{").replace("\1", "}").replace("`$", "$")


def test_the_sweep_script_removes_only_the_tags_things():
    body = function_body(PSM1, "Get-FleetAgentSweepScript")
    fmt = "".join(re.findall(r'"((?:[^"`]|`.)*)"', body))
    staging = "C:\\Windows\\Temp\\fleet-firmware-run-1"
    script = ps_format(fmt, "fleet-firmware-run-1", staging)
    assert script.split("; ") == [
        "Get-CimInstance Win32_Process | Where-Object { $_.CommandLine -like '*fleet_agent.ps1*fleet-firmware-run-1*' } | "
        "ForEach-Object { Stop-Process -Id $_.ProcessId -Force -ErrorAction SilentlyContinue }",
        "Remove-NetFirewallRule -Group 'fleet-firmware-run-1' -ErrorAction SilentlyContinue",
        f"Remove-Item -LiteralPath '{staging}' -Recurse -Force -ErrorAction SilentlyContinue",
        "Unregister-ScheduledTask -TaskName 'fleet-firmware-run-1-lease' -Confirm:$false -ErrorAction SilentlyContinue",
        "Unregister-ScheduledTask -TaskName 'fleet-firmware-run-1-agent' -Confirm:$false -ErrorAction SilentlyContinue",
        "Unregister-ScheduledTask -TaskName 'fleet-firmware-run-1-sweep' -Confirm:$false -ErrorAction SilentlyContinue",
    ]
    # The group and the lease task are the firewall twin's names for the same tag.
    assert "Get-FleetGroupName" in FIREWALL_PSM1 and "'{0}-{1}-lease' -f $FleetMarker, $Tag" in FIREWALL_PSM1
    assert not _parse_errors(script)
    encoded = base64.b64encode(script.encode("utf-16-le")).decode()
    assert base64.b64decode(encoded).decode("utf-16-le") == script
    assert "[System.Text.Encoding]::Unicode.GetBytes($Script)" in function_body(PSM1, "Get-FleetAgentEncodedArgument")


def test_task_names_and_paths():
    fmt = re.search(r"return '([^']+)' -f \$FleetAgentMarker, \$Tag, \$Kind", function_body(PSM1, "Get-FleetAgentTaskName")).group(1)
    assert ps_format(fmt, "fleet-firmware", "run-1", "agent") == "fleet-firmware-run-1-agent"
    staging = re.search(r"-ChildPath \('([^']+)' -f \$FleetAgentMarker, \$Tag\)", function_body(PSM1, "Get-FleetAgentStagingPath")).group(1)
    assert "C:\\Windows\\" + ps_format(staging, "fleet-firmware", "run-1") == smb_stage.node_path(smb_stage.staging_relpath("run-1"))
    assert tuple(ps_list("FleetAgentStagedFiles")) == agent_windows.AGENT_FILES
    for name in agent_windows.AGENT_FILES:
        assert Path(agent_windows.agent_files()[name]).is_file()


def test_the_agent_task_command_line_holds_paths_only():
    body = function_body(PS1, "Get-AgentTaskArgument")
    fmt = re.search(r"return '([^']+)' -f \$script, \$config", body).group(1)
    line = ps_format(fmt, "C:\\Windows\\Temp\\fleet-firmware-run-1\\fleet_agent.ps1", "C:\\Windows\\Temp\\fleet-firmware-run-1\\agent-config.json")
    assert line == ('-NoProfile -NonInteractive -ExecutionPolicy Bypass -File "C:\\Windows\\Temp\\fleet-firmware-run-1\\fleet_agent.ps1" '
                    '-ConfigPath "C:\\Windows\\Temp\\fleet-firmware-run-1\\agent-config.json"')
    assert "param(\n    [Parameter(Mandatory = $true)][string]$ConfigPath\n)" in SCRIPT
    # No time limit (the Task Scheduler's default would stop the agent after 72 h), SYSTEM, one instance.
    register = function_body(PS1, "Register-AgentTask")
    assert "-ExecutionTimeLimit ([TimeSpan]::Zero)" in register and "-UserId 'SYSTEM'" in register and "-MultipleInstances IgnoreNew" in register


def test_the_config_file_is_protected_before_it_is_written_and_always_removed():
    body = function_body(PS1, "Invoke-AgentStart")
    acl = body.index("Set-FleetAgentFolderAcl -Path $staging")
    write = body.index("[System.IO.File]::WriteAllText($configFile")
    assert acl < write
    assert "finally {\n        # Whatever happened, the secrets do not stay on disk.\n        Remove-Item -LiteralPath $configFile" in body
    reader = function_body(PSM1, "Read-FleetAgentConfigFile")
    assert "finally {\n        Remove-Item -LiteralPath $Path -Force" in reader
    folder = function_body(PSM1, "Set-FleetAgentFolderAcl")
    assert "SetAccessRuleProtection($true, $false)" in folder
    assert ps_string("FleetAgentSystemSid") == "S-1-5-18" and ps_string("FleetAgentAdministratorsSid") == "S-1-5-32-544"


def test_the_config_document_has_the_python_modules_keys():
    body = function_body(PS1, "New-AgentConfigDocument")
    ps_keys = set(re.findall(r"\$config\.(\w+) = ", body))
    secret_keys = {k.strip(" '") for k in re.search(r"^\$SecretKeys = (.*)$", PS1, re.M).group(1).split(",")}
    ps_keys |= secret_keys | {"server_key"}
    params = {k: None for k in py_module.argument_spec()}
    params.update(tag="run-1", agent_port=62286, bind=[], controller=["198.18.0.1"], lease=300, open_firewall=True, firewall_backend="auto",
                  secrets={k: "x" for k in py_module.SECRET_KEYS})
    assert ps_keys == set(py_module.agent_config(params, "/var/tmp/fleet-firmware-run-1"))


# ---------------------------------------------------------------- the module's argument spec


def ps1_options() -> dict[str, dict[str, str]]:
    block = re.search(r"options = @\{(.*?)\n    \}", PS1, re.S).group(1)
    options = {}
    for name, body in re.findall(r"^\s+(\w+) = @\{ (.*) \}$", block, re.M):
        options[name] = dict(part.split(" = ", 1) for part in body.split("; "))
    return options


def test_ps1_argument_spec_matches_the_documentation_and_agent_py():
    options = ps1_options()
    assert set(options) == set(DOCS["options"]) == set(py_module.argument_spec())
    for name, doc in DOCS["options"].items():
        spec, py_spec = options[name], py_module.argument_spec()[name]
        assert spec["type"].strip("'") == doc["type"] == py_spec["type"], name
        if "choices" in doc:
            assert [c.strip(" '") for c in spec["choices"].split(",")] == [str(c) for c in doc["choices"]], name
        if doc.get("required"):
            assert spec.get("required") == "$true", name
        elif isinstance(doc.get("default"), bool):
            assert spec["default"] == ("$true" if doc["default"] else "$false"), name
        elif isinstance(doc.get("default"), (str, int)):
            assert spec["default"].strip("'") == str(doc["default"]), name
        elif doc.get("default") == []:
            assert spec["default"] == "@()", name
        else:
            assert "default" not in spec, name
        assert (spec.get("no_log") == "$true") == bool(py_spec.get("no_log")), name
        if doc.get("elements"):
            assert spec["elements"].strip("'") == doc["elements"], name


# ---------------------------------------------------------------- commands and parameters


def _tree(text: str):
    ts = pytest.importorskip("tree_sitter")
    tsp = pytest.importorskip("tree_sitter_powershell")
    return ts.Parser(ts.Language(tsp.language())).parse(text.encode()).root_node


def _walk(node):
    yield node
    for child in node.children:
        yield from _walk(child)


def _parse_errors(text: str) -> list[str]:
    return [f"{n.start_point}" for n in _walk(_tree(text)) if n.type == "ERROR" or n.is_missing]


def declared_functions(text: str) -> dict[str, set[str]]:
    found = {}
    for node in _walk(_tree(text)):
        if node.type == "function_statement":
            name = next(c for c in node.children if c.type == "function_name").text.decode()
            found[name] = {var.text.decode()[1:] for par in _walk(node) if par.type == "script_parameter"
                           for var in par.children if var.type == "variable"}
    return found


def calls(text: str) -> list[tuple[str, set[str]]]:
    out = []
    for node in _walk(_tree(text)):
        if node.type == "command":
            name = next((c.text.decode() for c in node.children if c.type == "command_name"), None)
            if name:
                params = {n.text.decode().lstrip("-").split(":")[0] for n in _walk(node) if n.type == "command_parameter" and n.parent.parent == node}
                out.append((name, params))
    return out


COMMON = {"ErrorAction", "WarningAction", "Verbose", "Debug", "ErrorVariable", "OutVariable", "Confirm", "WhatIf"}
# Windows cmdlets the agent uses, with the parameters it may pass (Microsoft's documentation).
KNOWN_CMDLETS = {
    "New-Object": {"TypeName", "ArgumentList"}, "Join-Path": {"Path", "ChildPath"}, "Split-Path": {"Path", "Parent", "Leaf"},
    "Test-Path": {"LiteralPath", "Path"}, "New-Item": {"ItemType", "Path"}, "Remove-Item": {"LiteralPath", "Recurse", "Force"},
    "Move-Item": {"LiteralPath", "Destination", "Force"}, "Copy-Item": {"LiteralPath", "Destination", "Force"},
    "Set-Acl": {"LiteralPath", "AclObject"}, "Get-Content": {"LiteralPath", "Tail"}, "ConvertFrom-Json": {"InputObject"},
    "ConvertTo-Json": {"InputObject", "Compress", "Depth"}, "Get-CimInstance": {"ClassName", "Filter"},
    "Get-Process": {"Id"}, "Stop-Process": {"Id", "Force"}, "Start-Sleep": {"Seconds", "Milliseconds"},
    "Write-Verbose": {"Message"}, "Where-Object": set(), "ForEach-Object": set(), "Out-Null": set(), "Select-Object": {"Skip"},
    "Set-StrictMode": {"Version"}, "Export-ModuleMember": {"Function"}, "Import-Module": {"Name", "Global", "DisableNameChecking"},
    "New-ScheduledTaskAction": {"Execute", "Argument", "WorkingDirectory"}, "New-ScheduledTaskTrigger": {"Once", "At"},
    "New-ScheduledTaskPrincipal": {"UserId", "LogonType", "RunLevel"},
    "New-ScheduledTaskSettingsSet": {"AllowStartIfOnBatteries", "DontStopIfGoingOnBatteries", "StartWhenAvailable", "ExecutionTimeLimit",
                                     "MultipleInstances"},
    "Register-ScheduledTask": {"TaskName", "Action", "Trigger", "Principal", "Settings", "Force"},
    "Get-ScheduledTask": {"TaskName"}, "Unregister-ScheduledTask": {"TaskName"}, "Start-ScheduledTask": {"TaskName"},
    "Stop-ScheduledTask": {"TaskName"},
}


@pytest.mark.parametrize("source", ["FleetAgent.psm1", "fleet_agent.ps1", "agent.ps1"])
def test_every_command_and_parameter_used_exists(source):
    text = {"FleetAgent.psm1": PSM1, "fleet_agent.ps1": SCRIPT, "agent.ps1": PS1}[source]
    functions = declared_functions(PSM1) | declared_functions(FIREWALL_PSM1) | declared_functions(PS1)
    exported = set(re.findall(r"'([A-Za-z]+-Fleet[A-Za-z]+)'", PSM1.split("$exportMembers", 1)[1]))
    exported |= set(re.findall(r"'([A-Za-z]+-Fleet[A-Za-z]+)'", FIREWALL_PSM1.split("$exportMembers", 1)[1]))
    used = calls(text)
    assert used
    for name, params in used:
        if name in functions:
            allowed = functions[name]
            if "-Fleet" in name and source != "FleetAgent.psm1":
                assert name in exported, f"{source}: {name} is not exported"
        else:
            assert name in KNOWN_CMDLETS, f"{source}: unknown command {name}"
            allowed = KNOWN_CMDLETS[name]
        unknown = params - allowed - COMMON
        assert not unknown, f"{source}: {name} has no parameter(s) {sorted(unknown)}"


def test_every_defined_function_is_exported():
    defined = set(declared_functions(PSM1))
    exported = set(re.findall(r"'([A-Za-z]+-Fleet[A-Za-z]+)'", PSM1.split("$exportMembers", 1)[1]))
    assert defined == exported


def test_the_module_loads_both_module_utils():
    assert "#AnsibleRequires -PowerShell ansible_collections.fleet.firmware.plugins.module_utils.FleetAgent" in PS1
    assert "#AnsibleRequires -PowerShell ansible_collections.fleet.firmware.plugins.module_utils.FleetFirewall" in PS1
    assert "#AnsibleRequires -CSharpUtil Ansible.Basic" in PS1
    assert PS1.startswith("#!powershell\n")
