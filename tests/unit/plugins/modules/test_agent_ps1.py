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
* the routes it serves, the status fields it returns, the error codes (409 hash mismatch, 504
  fetch failed) and the job options (on_failed_dependency) are the Python agent's, with no
  difference allowed;
* pull delivery (fetch) and the plan on the node: the retry rule, back-off, Range resume, run CA
  check, messages and the policy defaults are compared with agent.py and plan.py;
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

import powershell_source as source

from ansible_collections.fleet.firmware.plugins.module_utils import agent as py_agent
from ansible_collections.fleet.firmware.plugins.module_utils import detect, installers, plan, returncodes
from ansible_collections.fleet.firmware.plugins.modules import agent as py_module
from ansible_collections.fleet.firmware.plugins.plugin_utils import agent_windows, smb_stage

PSM1 = source.read("plugins/module_utils/FleetAgent.psm1")
FIREWALL_PSM1 = source.read("plugins/module_utils/FleetFirewall.psm1")
INVENTORY_PSM1 = source.read("plugins/module_utils/FleetInventory.psm1")
# The Python agent is a package (one room per concern): its source is every module of it.
PY_AGENT = "\n".join(source.read(str(path.relative_to(source.REPO))) for path in sorted((source.REPO / "plugins/module_utils/agent").glob("*.py")))
SCRIPT = source.read("plugins/module_utils/fleet_agent.ps1")
PS1 = source.read("plugins/modules/agent.ps1")
DOCS = source.module_docs("agent")


def ps_value(name: str) -> str:
    return source.ps_value(PSM1, name)


def ps_string(name: str) -> str:
    return source.ps_string(PSM1, name)


def ps_int_table(name: str) -> dict[int, str]:
    return source.ps_table(PSM1, name, key=int)


def ps_list(name: str) -> list[str]:
    return [item.strip().strip("'") for item in ps_value(name).split(",")]


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
    py_routes = {f"{m} {p}" for m, p in re.findall(r'\("(GET|POST)", "(/v1/\w+)"\)', PY_AGENT)}
    assert "POST /v1/fetch" in py_routes and "POST /v1/plan" in py_routes
    assert ps_routes == py_routes
    assert "'/v1/components/'" in body and "$Request.Method -ne 'PUT'" in body
    known = body.split("$known = ", 1)[1].split("\n", 1)[0]
    assert set(re.findall(r"'(/v1/\w+)'", known)) == {route.split(" ")[1] for route in py_routes}


def test_status_codes_have_reasons_and_are_documented():
    used = {int(s) for s in re.findall(r"Status = (\d{3})", PSM1)}
    reasons = {int(k) for k in re.findall(r"(\d{3}) = '", PSM1.split("$FleetAgentHttpReasons = @{", 1)[1].split("}", 1)[0])}
    assert used <= reasons
    protocol = source.read("docs/agent.md").split("## Protocol", 1)[1].split("\n## ", 1)[0]
    documented = {int(s) for s in re.findall(r"\b(4\d\d|5\d\d)\b", protocol)}
    assert used - {200, 201, 202} <= documented | {500, 507}


def test_status_fields_are_the_python_agents():
    body = function_body(PSM1, "Get-FleetAgentStatus")
    ps_keys = set(re.findall(r"(?:^|; |\{ )\s*(\w+) = ", body.split("return @{", 1)[1], re.M))
    agent = py_agent.Agent({"tag": "run-1", "staging": "/var/tmp/fleet-firmware-run-1", "lease": 300, "run_id": "r", "node_id": "n", "port": 1})
    assert "downloads" in agent.status()
    assert ps_keys == set(agent.status())


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
    steps = script.split("; ")
    # The agent task's command line is -EncodedCommand: the sweep decodes it before matching.
    assert "Get-CimInstance Win32_Process | Where-Object { (Get-Text $_.CommandLine) -like '*fleet_agent.ps1*fleet-firmware-run-1*' } | " \
        "ForEach-Object { Stop-Process -Id $_.ProcessId -Force -ErrorAction SilentlyContinue }" in steps
    assert "[System.Text.Encoding]::Unicode.GetString([Convert]::FromBase64String($m.Groups[1].Value))" in script
    assert steps[-5:] == [
        "Remove-NetFirewallRule -Group 'fleet-firmware-run-1' -ErrorAction SilentlyContinue",
        f"try {{ Remove-Tree '{staging}' }} catch {{ $null = $_ }}",
        "Unregister-ScheduledTask -TaskName 'fleet-firmware-run-1-lease' -Confirm:$false -ErrorAction SilentlyContinue",
        "Unregister-ScheduledTask -TaskName 'fleet-firmware-run-1-agent' -Confirm:$false -ErrorAction SilentlyContinue",
        "Unregister-ScheduledTask -TaskName 'fleet-firmware-run-1-sweep' -Confirm:$false -ErrorAction SilentlyContinue",
    ]
    # The staging goes without following a junction: a reparse point is deleted as a link, never descended.
    assert "-Recurse" not in script
    assert "if ($i.PSIsContainer -and -not $link) { Get-ChildItem -LiteralPath $i.FullName -Force | ForEach-Object { Remove-Tree $_.FullName } }" in script
    assert "$link = ($i.Attributes -band [System.IO.FileAttributes]::ReparsePoint) -ne 0" in script
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


def agent_task_script(staging: str, sha256: dict[str, str]) -> str:
    """Get-AgentTaskScript's text, built from its own format string as PowerShell would."""
    body = function_body(PS1, "Get-AgentTaskScript")
    fmt = "".join(re.findall(r'"((?:[^"`]|`.)*)"', body.split("return ((", 1)[1]))
    expected = "; ".join(f"'{name}' = '{value}'" for name, value in sha256.items())
    return ps_format(fmt, staging.replace("'", "''"), expected)


def test_the_agent_task_checks_every_staged_files_sha256_before_it_runs_anything():
    staging = "C:\\Windows\\Temp\\fleet-firmware-run-1"
    digests = smb_stage.sha256_of({name: name.encode() for name in agent_windows.AGENT_FILES})
    script = agent_task_script(staging, digests)
    assert not _parse_errors(script)
    for name, digest in digests.items():
        assert f"'{name}' = '{digest}'" in script  # in the task's own command line, not in a staged file
    check = script.index("Get-FileHash -LiteralPath (Join-Path -Path $staging -ChildPath $name) -Algorithm SHA256")
    mismatch = script.index("if ($actual -ne $expected[$name]) {")
    run = script.index("& (Join-Path -Path $staging -ChildPath 'fleet_agent.ps1')")
    assert check < mismatch < run
    assert "does not have the SHA-256 the controller staged: nothing was run' -f $name) }; " \
        "[System.IO.File]::WriteAllText((Join-Path -Path $staging -ChildPath 'ready.json'), $answer); exit 3 }" in script
    # A quote in the staging path stays inside its string.
    assert "$staging = 'C:\\it''s'" in agent_task_script("C:\\it's", digests)
    # The command line is -EncodedCommand of that script; the agent process is recognised by decoding it.
    assert "Get-FleetAgentEncodedArgument -Script (Get-AgentTaskScript -Staging $Staging -Digests $Digests)" in function_body(PS1, "Get-AgentTaskArgument")
    decode = function_body(PSM1, "Get-FleetAgentCommandText")
    assert "'-EncodedCommand\\s+([A-Za-z0-9+/=]+)'" in decode and "[System.Text.Encoding]::Unicode.GetString" in decode
    assert "Get-FleetAgentCommandText -CommandLine $process.CommandLine" in function_body(PSM1, "Test-FleetAgentProcess")
    assert "param(\n    [Parameter(Mandatory = $true)][string]$ConfigPath\n)" in SCRIPT
    # No time limit (the Task Scheduler's default would stop the agent after 72 h), SYSTEM, one instance.
    register = function_body(PS1, "Register-AgentTask")
    assert "-ExecutionTimeLimit ([TimeSpan]::Zero)" in register and "-UserId 'SYSTEM'" in register and "-MultipleInstances IgnoreNew" in register


def test_agent_sha256_is_required_for_every_staged_file_and_checked():
    body = function_body(PS1, "Test-AgentSha256")
    assert "@($FleetAgentStagedFiles | Where-Object { -not $Digests.Contains($_) })" in body
    assert "[string]$name -cnotmatch $FleetAgentFileNamePattern" in body and "$value -cnotmatch $FleetAgentShaPattern" in body
    start = function_body(PS1, "Invoke-AgentStart")
    assert start.index("Test-AgentSha256 -Digests $Params.agent_sha256") < start.index("Register-AgentTask -Tag $tag -Staging $staging -Digests $sha256")
    # The action hands over what it staged, hashed on the controller.
    action = source.read("plugins/action/agent.py")
    assert 'agent_sha256=staged["sha256"]' in action


def test_folders_are_made_ours_or_refused_on_every_start():
    folder = function_body(PSM1, "Set-FleetAgentFolderAcl")
    create = folder.index("[System.IO.Directory]::CreateDirectory($Path, $security)")
    assert create < folder.index("Assert-FleetAgentOurs -Path $Path") < folder.index("Set-Acl -LiteralPath $Path -AclObject $security")
    ours = function_body(PSM1, "Assert-FleetAgentOurs")
    assert "($item.Attributes -band [System.IO.FileAttributes]::ReparsePoint) -ne 0" in ours
    assert "GetOwner([System.Security.Principal.SecurityIdentifier]).Value" in ours and "Test-FleetAgentTrustedOwner -Sid $owner" in ours
    assert "refused, left as it is" in ours
    trusted = function_body(PSM1, "Test-FleetAgentTrustedOwner")
    assert "$FleetAgentSystemSid" in trusted and "$FleetAgentAdministratorsSid" in trusted
    security = function_body(PSM1, "New-FleetAgentFolderSecurity")
    assert "SetAccessRuleProtection($true, $false)" in security and "SetOwner(" in security
    # %ProgramData%\\fleet-firmware: checked before the module reads or writes it, and on every holder write.
    for name in ("Invoke-AgentStart", "Invoke-AgentAbsent"):
        body = function_body(PS1, name)
        assert body.index("Assert-AgentControlFolder") < body.index("Get-LiveHolder")
    assert "Set-FleetAgentFolderAcl -Path $control" in function_body(PS1, "Assert-AgentControlFolder")
    assert "Set-FleetAgentFolderAcl -Path $ControlPath" in function_body(PSM1, "Set-FleetAgentHolder")
    assert "Set-FleetAgentFolderAcl -Path $Agent.Staging" in function_body(PSM1, "Start-FleetAgentListening")


def test_no_removal_follows_a_reparse_point():
    tree = function_body(PSM1, "Remove-FleetAgentTree")
    assert "if ($item.PSIsContainer -and -not $link) {" in tree and "[System.IO.Directory]::Delete($item.FullName, $false)" in tree
    for text in (PSM1, PS1):
        assert not re.search(r"Remove-Item[^\n]*-Recurse", text.replace("Remove-Item -Recurse of Windows PowerShell 5.1", ""))
    assert "Remove-FleetAgentTree -Path $Agent.Staging" in function_body(PSM1, "Clear-FleetAgent")
    assert function_body(PS1, "Invoke-AgentAbsent").count("Remove-FleetAgentTree -Path $staging") == 1
    assert function_body(PS1, "Invoke-AgentStart").count("Remove-FleetAgentTree -Path $staging") == 1


@pytest.mark.parametrize("relative", sorted(str(p.relative_to(source.REPO)) for p in (source.REPO / "plugins").rglob("*.ps*1")))
def test_every_powershell_file_parses(relative):
    """PowerShell cannot run here: each .ps1/.psm1 is at least parsed (tree-sitter-powershell)."""
    assert not _parse_errors(source.read(relative))


def test_the_config_file_is_protected_before_it_is_written_and_always_removed():
    body = function_body(PS1, "Invoke-AgentStart")
    acl = body.index("Set-FleetAgentFolderAcl -Path $staging")
    write = body.index("[System.IO.File]::WriteAllText($configFile")
    assert acl < write
    assert "finally {\n        # Whatever happened, the secrets do not stay on disk.\n        Remove-Item -LiteralPath $configFile" in body
    reader = function_body(PSM1, "Read-FleetAgentConfigFile")
    assert "finally {\n        Remove-Item -LiteralPath $Path -Force" in reader
    folder = function_body(PSM1, "New-FleetAgentFolderSecurity")
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


def test_ps1_argument_spec_matches_the_documentation_and_agent_py():
    options = source.ps1_options(PS1)
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


def _parse_errors(text: str) -> list[str]:
    return [f"{n.start_point}" for n in source.walk(source.syntax_tree(text)) if n.type == "ERROR" or n.is_missing]


def declared_functions(text: str) -> dict[str, set[str]]:
    found = {}
    for node in source.walk(source.syntax_tree(text)):
        if node.type == "function_statement":
            name = next(c for c in node.children if c.type == "function_name").text.decode()
            found[name] = {var.text.decode()[1:] for par in source.walk(node) if par.type == "script_parameter"
                           for var in par.children if var.type == "variable"}
    return found


def calls(text: str) -> list[tuple[str, set[str]]]:
    out = []
    for node in source.walk(source.syntax_tree(text)):
        if node.type == "command":
            name = next((c.text.decode() for c in node.children if c.type == "command_name"), None)
            if name:
                params = {n.text.decode().lstrip("-").split(":")[0] for n in source.walk(node) if n.type == "command_parameter" and n.parent.parent == node}
                out.append((name, params))
    return out


COMMON = {"ErrorAction", "WarningAction", "Verbose", "Debug", "ErrorVariable", "OutVariable", "Confirm", "WhatIf"}
# Windows cmdlets the agent uses, with the parameters it may pass (Microsoft's documentation).
KNOWN_CMDLETS = {
    "New-Object": {"TypeName", "ArgumentList"}, "Join-Path": {"Path", "ChildPath"}, "Split-Path": {"Path", "Parent", "Leaf"},
    "Test-Path": {"LiteralPath", "Path"}, "New-Item": {"ItemType", "Path"}, "Get-Item": {"LiteralPath", "Force"},
    "Get-ChildItem": {"LiteralPath", "Force"}, "Sort-Object": set(), "Get-FileHash": {"LiteralPath", "Algorithm"},
    "Remove-Item": {"LiteralPath", "Recurse", "Force"},
    "Move-Item": {"LiteralPath", "Destination", "Force"}, "Copy-Item": {"LiteralPath", "Destination", "Force"},
    "Set-Acl": {"LiteralPath", "AclObject"}, "Get-Content": {"LiteralPath", "Tail"}, "ConvertFrom-Json": {"InputObject"},
    "ConvertTo-Json": {"InputObject", "Compress", "Depth"}, "Get-CimInstance": {"ClassName", "Filter"},
    "Get-Process": {"Id"}, "Stop-Process": {"Id", "Force"}, "Start-Sleep": {"Seconds", "Milliseconds"},
    "Write-Verbose": {"Message"}, "Where-Object": set(), "ForEach-Object": set(), "Out-Null": set(), "Select-Object": {"Skip", "Last", "Unique"},
    "Set-StrictMode": {"Version"}, "Export-ModuleMember": {"Function"}, "Import-Module": {"Name", "Global", "DisableNameChecking"},
    "New-ScheduledTaskAction": {"Execute", "Argument", "WorkingDirectory"}, "New-ScheduledTaskTrigger": {"Once", "At"},
    "New-ScheduledTaskPrincipal": {"UserId", "LogonType", "RunLevel"},
    "New-ScheduledTaskSettingsSet": {"AllowStartIfOnBatteries", "DontStopIfGoingOnBatteries", "StartWhenAvailable", "ExecutionTimeLimit",
                                     "MultipleInstances"},
    "Register-ScheduledTask": {"TaskName", "Action", "Trigger", "Principal", "Settings", "Force"},
    "Get-ScheduledTask": {"TaskName"}, "Unregister-ScheduledTask": {"TaskName"}, "Start-ScheduledTask": {"TaskName"},
    "Stop-ScheduledTask": {"TaskName"},
}


@pytest.mark.parametrize("file_name", ["FleetAgent.psm1", "fleet_agent.ps1", "agent.ps1"])
def test_every_command_and_parameter_used_exists(file_name):
    text = {"FleetAgent.psm1": PSM1, "fleet_agent.ps1": SCRIPT, "agent.ps1": PS1}[file_name]
    functions = declared_functions(PSM1) | declared_functions(FIREWALL_PSM1) | declared_functions(INVENTORY_PSM1) | declared_functions(PS1)
    own = set(declared_functions(PSM1))
    exported = set(re.findall(r"'([A-Za-z]+-Fleet[A-Za-z]+)'", PSM1.split("$exportMembers", 1)[1]))
    exported |= set(re.findall(r"'([A-Za-z]+-Fleet[A-Za-z]+)'", FIREWALL_PSM1.split("$exportMembers", 1)[1]))
    exported |= set(re.findall(r"'([A-Za-z]+-Fleet[A-Za-z]+)'", INVENTORY_PSM1.split("$exportMembers", 1)[1]))
    used = calls(text)
    assert used
    for name, params in used:
        if name in functions:
            allowed = functions[name]
            if "-Fleet" in name and (file_name != "FleetAgent.psm1" or name not in own):
                assert name in exported, f"{file_name}: {name} is not exported"
        else:
            assert name in KNOWN_CMDLETS, f"{file_name}: unknown command {name}"
            allowed = KNOWN_CMDLETS[name]
        unknown = params - allowed - COMMON
        assert not unknown, f"{file_name}: {name} has no parameter(s) {sorted(unknown)}"


def test_every_defined_function_is_exported():
    defined = set(declared_functions(PSM1))
    exported = set(re.findall(r"'([A-Za-z]+-Fleet[A-Za-z]+)'", PSM1.split("$exportMembers", 1)[1]))
    assert defined == exported


def test_the_module_loads_both_module_utils():
    assert "#AnsibleRequires -PowerShell ansible_collections.fleet.firmware.plugins.module_utils.FleetAgent" in PS1
    assert "#AnsibleRequires -PowerShell ansible_collections.fleet.firmware.plugins.module_utils.FleetFirewall" in PS1
    assert "#AnsibleRequires -CSharpUtil Ansible.Basic" in PS1
    assert PS1.startswith("#!powershell\n")


# ---------------------------------------------------------------- parity: error codes and job options


def ps_catch_status(exception_type: str) -> int:
    body = function_body(PSM1, "Invoke-FleetAgentRequest")
    match = re.search(r"catch \[%s\] \{.*?Status = (\d{3})" % re.escape(exception_type), body, re.S)
    assert match, exception_type
    return int(match.group(1))


def py_except_status(name: str) -> int:
    return int(re.search(r"except %s as exc:\s+self\._send\((\d{3})" % name, PY_AGENT).group(1))


def test_hash_mismatch_is_409_and_fetch_failed_is_504_as_on_linux():
    assert ps_catch_status("System.IO.InvalidDataException") == py_except_status("HashMismatch") == 409
    assert ps_catch_status("System.TimeoutException") == py_except_status("FetchFailed") == 504
    # Disk full is 507, another I/O error 500, as agent.py's OSError handling.
    io_branch = function_body(PSM1, "Invoke-FleetAgentRequest").split("catch [System.IO.IOException]")[1]
    assert ps_catch_status("System.IO.IOException") == 507 and "Status = 500" in io_branch
    # The specific catches come before the general one (PowerShell takes the first that matches).
    body = function_body(PSM1, "Invoke-FleetAgentRequest")
    assert body.index("catch [System.IO.InvalidDataException]") < body.index("catch [System.TimeoutException]") < body.index("    catch {\n")
    # What throws them: a mismatch after a push or a pull, and a fetch that reached no URL.
    assert "throw [System.IO.InvalidDataException]" in function_body(PSM1, "Complete-FleetAgentFetch")
    assert "throw [System.IO.InvalidDataException]" in function_body(PSM1, "Save-FleetAgentComponent")
    assert 'throw [System.TimeoutException]("the node cannot download {0}: {1}"' in function_body(PSM1, "Invoke-FleetAgentFetch")
    assert "raise FetchFailed(\"the node cannot download %s: %s\"" in PY_AGENT
    assert "504 = 'Gateway Timeout'" in PSM1.split("$FleetAgentHttpReasons = @{", 1)[1].split("}", 1)[0]


def test_on_failed_dependency_choices_default_and_message_are_the_python_agents():
    assert tuple(ps_list("FleetAgentOnFailedDependency")) == py_agent.ON_FAILED_DEPENDENCY
    validate = function_body(PSM1, "Test-FleetAgentJob")
    fmt = re.search(r"throw \(\"([^\"]+)\" -f \$onFailed", validate).group(1)
    ps_message = ps_format(fmt.replace("'{0}'", "{0!r}"), "bogus", ", ".join(py_agent.ON_FAILED_DEPENDENCY))
    with pytest.raises(py_agent.AgentError) as err:
        py_agent.validate_job({"components": [], "on_failed_dependency": "bogus"})
    assert ps_message == str(err.value)
    assert "return 'omit_component'" in function_body(PSM1, "Get-FleetAgentOnFailedDependency")
    assert "[ValidateSet('omit_component', 'omit_host', 'force')][string]$OnFailedDependency = 'omit_component'" in function_body(PSM1, "Add-FleetAgentJob")
    # The route hands it to the job (400 on a bad value, as agent.py).
    route = function_body(PSM1, "Invoke-FleetAgentRequest")
    assert "Add-FleetAgentJob -Agent $Agent -Components $components -OnFailedDependency $onFailed" in route


def ps_blocked_by(broken: list[str], mode: str, requires: list[str]) -> str:
    """Get-FleetAgentBlockedBy, its branches replayed with the .psm1's own messages."""
    body = function_body(PSM1, "Get-FleetAgentBlockedBy")
    host_fmt = re.search(r"return '(omit_host: [^']+)' -f", body).group(1)
    component_fmt = re.search(r"return '(omit_component: [^']+)' -f", body).group(1)
    assert "$Agent.OnFailedDependency -eq 'force') { return '' }" in body
    assert "[System.Array]::Sort($broken, [System.StringComparer]::Ordinal)" in body and "Select-Object -Unique" in body
    assert "$requires -ccontains $_" in body
    ordered = sorted(set(broken))
    if not ordered or mode == "force":
        return ""
    if mode == "omit_host":
        return host_fmt.format(", ".join(ordered))
    failed = [name for name in ordered if name in requires]
    return component_fmt.format(", ".join(failed)) if failed else ""


@pytest.mark.parametrize("mode", py_agent.ON_FAILED_DEPENDENCY)
@pytest.mark.parametrize("broken, requires", [
    ([], ["a"]), (["a"], []), (["a"], ["a"]), (["b", "a", "b"], ["a", "b", "c"]), (["x"], ["a"]), (["B", "a"], ["a", "B"]),
])
def test_blocked_by_is_the_python_agents(mode, broken, requires):
    job = py_agent.Job([], mode)
    job.broken = set(broken)
    assert ps_blocked_by(broken, mode, requires) == py_agent.Agent._blocked_by(job, {"name": "c", "requires": requires})


def test_the_job_step_skips_what_is_blocked_and_remembers_failures():
    step = function_body(PSM1, "Step-FleetAgentJob")
    assert "$blocked = Get-FleetAgentBlockedBy -Agent $Agent -Component $component" in step
    assert "if ($Agent.Cancelled -or $blocked) {" in step
    assert "$component.reason = $blocked\n                $Agent.Broken.Add([string]$component.name)" in step
    # A failed install and a component that could not start both break what depends on them.
    assert step.count("$Agent.Broken.Add([string]$component.name)") == 3
    assert "elseif (-not $component.reason) { $component.reason = 'cancelled' }" in step
    assert "$Agent.Broken = New-Object" in function_body(PSM1, "Add-FleetAgentJob")


# ---------------------------------------------------------------- pull delivery (POST /v1/fetch)


def test_fetch_constants_are_the_python_agents():
    assert int(ps_value("FleetAgentFetchAttempts")) == py_agent.FETCH_ATTEMPTS
    assert int(ps_value("FleetAgentFetchTimeout")) == py_agent.FETCH_TIMEOUT
    assert int(ps_value("FleetAgentFetchChunk")) == py_agent.CHUNK


def ps_condition_to_python(text: str) -> str:
    for ps, py in (("-eq", "=="), ("-ge", ">="), ("-and", "and"), ("-or", "or"), ("$", "")):
        text = text.replace(ps, py)
    return text


@pytest.mark.parametrize("before", [0, 100])
@pytest.mark.parametrize("after", [0, 100, 200])
@pytest.mark.parametrize("attempt", range(8))
def test_the_give_up_rule_is_the_python_agents(before, after, attempt):
    fetch = function_body(PSM1, "Invoke-FleetAgentFetch")
    ps_rule = re.search(r"if \((\$after -eq \$before -and .*)\) \{ break \}", fetch).group(1)
    py_rule = re.search(r"if (_size\(partial\) == before and .*):\n\s+break", PY_AGENT).group(1)
    values = {"before": before, "after": after, "attempt": attempt}
    assert eval(ps_condition_to_python(ps_rule), {}, values) == eval(py_rule.replace("_size(partial)", "after"), {}, values)  # noqa: S307


def test_no_url_reachable_gives_up_after_two_rounds_and_bytes_keep_it_going():
    """The rule replayed: nothing ever arrives -> 2 rounds; bytes keep coming -> all 8 rounds."""
    fetch = function_body(PSM1, "Invoke-FleetAgentFetch")
    rule = ps_condition_to_python(re.search(r"if \((\$after -eq \$before -and .*)\) \{ break \}", fetch).group(1))

    def rounds(grow: bool) -> int:
        size = 0
        for attempt in range(int(ps_value("FleetAgentFetchAttempts"))):
            before, size = size, size + (10 if grow else 0)
            if eval(rule, {}, {"before": before, "after": size, "attempt": attempt}):  # noqa: S307
                return attempt + 1
        return attempt + 1

    assert rounds(grow=False) == 2
    assert rounds(grow=True) == py_agent.FETCH_ATTEMPTS
    assert "Wait-FleetAgentBackoff -Agent $Agent -Seconds ([math]::Min([math]::Pow(2, $attempt), 5.0))" in fetch
    assert "time.sleep(min(2.0 ** attempt, 5.0))" in PY_AGENT
    # The last error of each URL is named, as agent.py's errors[-len(urls):].
    assert "$last = @($errors | Select-Object -Last @($urls).Count)" in fetch


def test_the_fetch_request_is_checked_and_answered_as_on_linux():
    fetch = function_body(PSM1, "Invoke-FleetAgentFetch")
    ps_usage = re.search(r"throw '(a fetch is [^']+)'", fetch).group(1)
    assert f'raise AgentError("{ps_usage.replace(chr(34), chr(92) + chr(34))}")' in PY_AGENT
    assert "$hash -cnotmatch $FleetAgentShaPattern -or $urls -isnot [array] -or @($urls).Count -eq 0" in fetch
    # Already there and whole: cached, no download.
    assert "return @{ sha256 = $hash; size = Get-FleetAgentFileSize -Path $final; cached = $true }" in fetch
    assert 'return {"sha256": sha256, "size": os.path.getsize(final), "cached": True}' in PY_AGENT
    finish = function_body(PSM1, "Complete-FleetAgentFetch")
    assert "return @{ sha256 = $Hash; size = $size; cached = $false }" in finish
    assert "Remove-Item -LiteralPath $Partial -Force" in finish.split("throw", 1)[0]  # nothing kept on a mismatch
    assert "$Agent.Transfers.Remove($Hash)" in finish
    # Events: downloading, then downloaded with delivery pull (the ledger's vocabulary).
    assert "-State 'downloading' -Fields @{ sha256 = $hash; delivery = 'pull' }" in fetch
    assert "-State 'downloaded' -Fields @{ sha256 = $Hash; size = $size; delivery = 'pull' }" in finish
    assert '"$final.part"' in fetch and 'partial, errors = final + ".part", []' in PY_AGENT
    # run_ca defaults to true (the engine's certificate is issued by the run CA).
    assert "$runCa = $true" in fetch and 'bool(body.get("run_ca", True))' in PY_AGENT


def test_the_download_request_resumes_with_range_and_carries_the_token():
    request = function_body(PSM1, "New-FleetAgentDownloadRequest")
    # HttpWebRequest.AddRange(long from) sends "Range: bytes=<from>-", agent.py's "bytes=%d-" % have.
    assert "if ($Have -gt 0) { $request.AddRange($Have) }" in request
    assert '{"Range": "bytes=%d-" % have} if have else {}' in PY_AGENT
    assert "$request.Headers['Authorization'] = 'Bearer ' + [string]$Token" in request
    assert "$request.Timeout = $FleetAgentFetchTimeout * 1000" in request and "$request.ReadWriteTimeout = $FleetAgentFetchTimeout * 1000" in request
    # As http.client: no proxy, no redirects, http and https only.
    assert "$request.Proxy = $null" in request and "$request.AllowAutoRedirect = $false" in request
    assert "@('http', 'https') -notcontains $uri.Scheme" in request
    fmt = re.search(r"throw \"(URL '\$Url' is not http\(s\))\"", request).group(1)
    assert fmt.replace("'$Url'", repr("ftp://x/y")) == "URL %r is not http(s)" % "ftp://x/y"


def test_the_run_ca_check_pins_the_run_ca_and_only_with_run_ca():
    request = function_body(PSM1, "New-FleetAgentDownloadRequest")
    https = request.split("if ($uri.Scheme -eq 'https') {", 1)[1]
    assert https.index("if ($RunCa) {") < https.index("$request.ServerCertificateValidationCallback = ")
    assert request.count("ServerCertificateValidationCallback") == 1  # without run_ca: the system store decides
    assert ("Test-FleetAgentServerCertificate -Certificate $certificate -Errors $errors -CaCertificate $pin.Certificate "
            "-Fingerprint $pin.Fingerprint") in request
    assert "[System.Net.ServicePointManager]::ServerCertificateValidationCallback" not in PSM1  # never process-wide
    check = function_body(PSM1, "Test-FleetAgentServerCertificate")
    assert "(Get-FleetAgentFingerprint -Der $root.RawData) -ne $Fingerprint" in check
    assert "RemoteCertificateNameMismatch" in check  # the host name is checked, as create_default_context does
    assert "[void]$chain.ChainPolicy.ExtraStore.Add($CaCertificate)" in check
    assert "create_default_context(cadata=self.config[\"ca_cert\"]) if run_ca else ssl.create_default_context()" in PY_AGENT
    # The run CA is the certificate the agent was given (ca_cert), pinned by ca_fingerprint; the callback runs after
    # New-FleetAgentDownloadRequest returned, so it reads a module variable (never that function's locals).
    assert "$script:FleetAgentDownloadCa = @{ Certificate = $Agent.CaCertificate; Fingerprint = $Agent.Config.ca_fingerprint }" in request
    assert "$pin = $script:FleetAgentDownloadCa" in request and ps_value("FleetAgentDownloadCa") == "$null"
    assert "$Agent.CaCertificate = Get-FleetAgentPemCertificate -Pem $Agent.Config.ca_cert" in PSM1


def test_the_download_handles_status_codes_as_on_linux():
    save = function_body(PSM1, "Save-FleetAgentDownload")
    before_416 = save.split("if ($status -eq 416) {", 1)[1].split("}", 1)[0]
    assert "Remove-Item -LiteralPath $Partial" in before_416 and "throw 'the server refused the resume point (416)'" in before_416
    assert 'raise AgentError("the server refused the resume point (416)")' in PY_AGENT
    assert "if ($status -ne 200 -and $status -ne 206) { throw ('HTTP {0} {1}' -f $status, $response.StatusDescription) }" in save
    assert "$append = $status -eq 206" in save and "append=response.status == 206" in PY_AGENT
    assert 'throw "the download stopped after $done of $total bytes"' in save
    assert 'raise AgentError("the download stopped after %d of %s bytes"' in PY_AGENT
    # HTTP errors come back as responses, not exceptions, so 416 and 404 can be told apart.
    assert "if ($null -ne $web -and $null -ne $web.Response) { return $web.Response }" in function_body(PSM1, "Get-FleetAgentHttpResponse")


@pytest.mark.parametrize("content_range, content_length, append, expected", [
    ("bytes 100-199/200", "100", True, 200), ("", "300", False, 300), ("bytes 0-9/*", "10", True, None), ("", "", False, None),
    ("200", "5", True, 200),
])
def test_the_announced_size_is_read_as_on_linux(content_range, content_length, append, expected):
    body = function_body(PSM1, "Get-FleetAgentDownloadTotal")
    assert "$text = ([string]$ContentRange).Substring(([string]$ContentRange).LastIndexOf('/') + 1)" in body
    assert "if ($text -match '^\\d+$'" in body
    text = content_range[content_range.rfind("/") + 1:] if append else content_length  # Substring(LastIndexOf + 1)
    ps_total = int(text) if re.match(r"^\d+$", text) else None
    py_text = content_range.rpartition("/")[2] if append else content_length
    py_total = int(py_text) if py_text.isdigit() else None
    assert ps_total == py_total == expected


def test_a_download_keeps_serving_and_shows_its_progress():
    stream = function_body(PSM1, "Copy-FleetAgentDownloadStream")
    assert "$Agent.Transfers[$Hash] = @{ bytes = $done; size = $Total }" in stream
    assert 'self.transfers[sha256] = {"bytes": done, "size": int(total) if total.isdigit() else None}' in PY_AGENT
    assert "[void](Invoke-FleetAgentTick -Agent $Agent)" in stream and "if ($Agent.Stopping) { throw" in stream
    assert "$file.Flush($true)" in stream  # fsync, as agent.py
    # One download at a time (the loop serves requests between its chunks), and never stuck on.
    fetch = function_body(PSM1, "Invoke-FleetAgentFetch")
    assert "if ($Agent.Fetching) { throw 'a download is already in progress on this node' }" in fetch
    assert "finally {\n        $Agent.Fetching = $false" in fetch
    assert fetch.count("if ($Agent.Stopping) { throw") == 2  # before each round, and after a URL failed because of the stop
    # Nothing but whether a request was served leaves the tick (PowerShell returns every uncaptured output).
    tick = function_body(PSM1, "Invoke-FleetAgentTick")
    assert "$null = Invoke-FleetAgentConnection" in tick and "$null = Step-FleetAgentJob" in tick and tick.rstrip().endswith("return $busy")
    # The loop and the download share one tick.
    assert "Invoke-FleetAgentTick -Agent $Agent" in function_body(PSM1, "Invoke-FleetAgentLoop")
    assert "Invoke-FleetAgentTick -Agent $Agent" in function_body(PSM1, "Wait-FleetAgentBackoff")
    status = function_body(PSM1, "Get-FleetAgentStatus")
    assert "downloads = @{} + $Agent.Transfers" in status


# ---------------------------------------------------------------- plan on the node (POST /v1/plan)


def test_the_plan_policy_defaults_are_plan_pys():
    body = function_body(PSM1, "ConvertTo-FleetAgentPolicy")
    literal = re.search(r"\$merged = @\{ (.*) \}", body).group(1)
    values = {"$false": False, "$true": True, "@()": [], "'all'": "all"}
    ps_defaults = {k: values[v] for k, v in (pair.split(" = ") for pair in literal.split("; "))}
    # The site policy (approved hashes, denied and required versions, criticality) is applied by the
    # controller to every node's plan (plan.apply_site_policy), so the node's plan never sees it.
    assert ps_defaults == {k: v for k, v in plan.DEFAULT_POLICY.items() if k not in plan.SITE_KEYS}
    assert tuple(ps_list("FleetAgentPolicyOnly")) == plan.ONLY
    assert "if ($null -ne $Policy[$key]) { $merged[$key] = $Policy[$key] }" in body  # None leaves the default
    fmt = re.search(r"throw \(\"([^\"]+)\" -f \$merged\.only", body).group(1)
    with pytest.raises(ValueError) as err:
        plan.normalise_policy({"only": "drivers"})
    assert ps_format(fmt.replace("'{0}'", "{0!r}"), "drivers", ", ".join(plan.ONLY)) == str(err.value)


def test_the_plan_uses_the_inventory_twin_and_answers_as_on_linux():
    body = function_body(PSM1, "Invoke-FleetAgentPlan")
    usage = re.search(r"throw '(a plan request is [^']+)'", body).group(1)
    assert f'raise AgentError("{usage.replace(chr(34), chr(92) + chr(34))}")' in PY_AGENT
    assert "Invoke-FleetInventory -Baseline @($Body.components) -Policy $settled -Timeout $FleetAgentDetectTimeout" in body
    assert int(ps_value("FleetAgentDetectTimeout")) == detect.DEFAULT_TIMEOUT
    assert "return @{ plan = $entries }" in body and 'return {"plan": entries}' in PY_AGENT
    assert "-State 'planned' -Fields @{ components = $entries.Count }" in body
    # The twin's entry has plan.py's keys.
    entry = function_body(INVENTORY_PSM1, "New-FleetPlanEntry").split("return @{", 1)[1]
    assert set(re.findall(r"(\w+) = ", entry)) == set(plan._entry({}, "skip", "x"))
    # Exported by the twin, which the agent process imports.
    exports = INVENTORY_PSM1.split("$exportMembers", 1)[1]
    assert "'Invoke-FleetInventory'" in exports and "'Get-FleetDetection'" in exports


def test_the_inventory_detects_like_the_python_agent():
    body = function_body(PSM1, "Get-FleetAgentInventory")
    assert "if ($_['detect'] -is [hashtable]) {" in body
    assert "$found = Get-FleetDetection -Spec $_['detect'] -Timeout $FleetAgentDetectTimeout" in body
    ps_keys = set(re.findall(r"\$entry(?:\.|\s*=\s*@\{ )(\w+)", body)) | set(re.findall(r"; (\w+) = ", body.split("$entry = @{", 1)[1].split("}", 1)[0]))
    assert ps_keys == {"name", "available", "installed", "detect"}
    assert 'entry = {"name": component["name"], "available": component.get("version")}' in PY_AGENT
    assert "entry.update(installed=found.get(\"version\"), detect=found)" in PY_AGENT


def test_the_agent_process_imports_every_staged_module():
    staged = ps_list("FleetAgentStagedFiles")
    assert "FleetInventory.psm1" in staged
    imported = re.findall(r"Import-Module -Name \(Join-Path -Path \$PSScriptRoot -ChildPath '([^']+)'\) -Global", SCRIPT)
    assert sorted(imported) == sorted(name for name in staged if name.endswith(".psm1"))
    # The agent's own module last: the twins' functions exist when it is loaded.
    assert imported[-1] == "FleetAgent.psm1"


def test_events_are_numbered_like_the_python_agents():
    """The deploy action copies new events into the ledger by their seq: both agents number them."""
    assert "seq=self.events_total" in PY_AGENT
    assert "$Agent.EventsTotal += 1" in PSM1 and "$entry.seq = $Agent.EventsTotal" in PSM1
