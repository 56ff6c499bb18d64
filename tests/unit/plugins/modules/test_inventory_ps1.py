# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Windows twin of fleet.firmware.inventory, checked without Windows.

PowerShell cannot run here. What can be checked is checked against the Python side:

* the version patterns of FleetInventory.psm1 are the ones of versions.py, and the return-code
  tables the ones of returncodes.py;
* the install commands Get-FleetInstallCommand builds, evaluated from the .psm1's own arrays,
  are what installers.build_command builds for Windows;
* ConvertTo-FleetArgumentString follows the same quoting rules as subprocess.list2cmdline
  (a Python transcription of the .psm1's loop, checked on awkward arguments);
* the argument spec of inventory.ps1 matches the module's DOCUMENTATION;
* every command the twin calls exists, with parameters it has (tree-sitter-powershell).
"""
from __future__ import annotations

import re
import subprocess

import pytest

import powershell_source as source

from ansible_collections.fleet.firmware.plugins.module_utils import installers, returncodes, versions

PSM1 = source.read("plugins/module_utils/FleetInventory.psm1")
PS1 = source.read("plugins/modules/inventory.ps1")
DOCS = source.module_docs("inventory")


def ps_string(name: str) -> str:
    return source.ps_string(PSM1, name)


def ps_codes(name: str) -> dict[int, str]:
    return source.ps_table(PSM1, name, key=int)


@pytest.mark.parametrize("ps_name, python", [
    ("FleetSegmentPattern", versions._SEGMENT_RE), ("FleetSplitPattern", versions._SPLIT_RE), ("FleetHexPattern", versions._HEX_RE),
    ("FleetTrailingDatePattern", versions._TRAILING_DATE_RE), ("FleetVersionTokenPattern", versions._VERSION_TOKEN_RE),
])
def test_version_patterns_are_the_python_ones(ps_name, python):
    assert ps_string(ps_name) == python.pattern


def test_not_a_version_words_are_the_python_ones():
    words = re.search(r"^\$FleetNotAVersion = @\((.*)\)$", PSM1, re.M).group(1)
    assert {w.strip(" '") for w in words.split(",")} == versions._NOT_A_VERSION


@pytest.mark.parametrize("ps_name, table", [
    ("FleetSmartComponentWindowsCodes", returncodes.SMART_COMPONENT_WINDOWS),
    ("FleetWindowsInstallerCodes", returncodes.WINDOWS_INSTALLER),
    ("FleetZeroIsSuccessCodes", returncodes.ZERO_IS_SUCCESS),
])
def test_return_code_tables_are_the_python_ones(ps_name, table):
    assert ps_codes(ps_name) == {code: entry[0] for code, entry in table.items()}


def test_windows_smart_component_codes_differ_from_linux():
    # HP SUM: Windows cp*.exe 0 = failed, 1 = ok; Linux 0 = ok.
    assert ps_codes("FleetSmartComponentWindowsCodes")[0] == "failed"
    assert returncodes.SMART_COMPONENT_LINUX[0][0] == "installed"


def install_arrays() -> dict[str, str]:
    body = re.search(r"Function Get-FleetInstallCommand \{(.*?)\n\}", PSM1, re.S).group(1)
    return dict(re.findall(r"\$command (\+?=) (.*)", body)) and {
        "ps1": re.search(r"\$command = (@\('powershell\.exe'.*?\))", body).group(1),
        "cmd": re.search(r"\$command = (@\('cmd\.exe'.*?\))", body).group(1),
        "smart": re.search(r"\$command = (@\(\$Path, '/s'\))", body).group(1),
        "msi": re.search(r"\$command = (@\('msiexec\.exe'.*?\))", body).group(1),
        "msi_rewrite": re.search(r"\$command \+= (@\('REINSTALL=ALL'.*?\))", body).group(1),
    }


def evaluate(array: str, path: str) -> list[str]:
    """A PowerShell array literal of 'single', "double with $Path" and $Path items -> list."""
    items = re.findall(r"'([^']*)'|\"([^\"]*)\"|(\$Path)", array[2:-1])
    return [single if single or (not double and not var) else (double.replace("$Path", path) if double else path) for single, double, var in items]


P = "C:\\Windows\\Temp\\fleet\\c"


def test_install_commands_are_the_python_ones():
    arrays = install_arrays()
    assert evaluate(arrays["ps1"], P + ".ps1") == installers.build_command({"name": "c", "install": "script"}, P + ".ps1", "windows")
    assert evaluate(arrays["cmd"], P + ".cmd") == installers.build_command({"name": "c", "install": "script"}, P + ".cmd", "windows")
    assert evaluate(arrays["smart"], P) == installers.build_command({"name": "c", "install": "smart_component"}, P, "windows")
    assert evaluate(arrays["msi"], P) == installers.build_command({"name": "c", "install": "msi"}, P, "windows")
    assert evaluate(arrays["msi"], P) + evaluate(arrays["msi_rewrite"], P) == installers.build_command(
        {"name": "c", "install": "msi", "action": "rewrite"}, P, "windows")
    assert "$command += '/f'" in PSM1 and installers.build_command({"name": "c", "install": "smart_component", "force": True}, P, "windows")[-1] == "/f"


def list2cmdline_like_the_psm1(argv: list[str]) -> str:
    """A line-by-line transcription of ConvertTo-FleetArgumentString."""
    quoted = []
    for arg in argv:
        need_quote = arg == "" or " " in arg or "\t" in arg
        out, backslashes = ['"'] if need_quote else [], 0
        for char in arg:
            if char == "\\":
                backslashes += 1
            elif char == '"':
                out.append("\\" * (backslashes * 2 + 1) + '"')
                backslashes = 0
            else:
                out.append("\\" * backslashes + char)
                backslashes = 0
        out.append("\\" * (backslashes * 2) + '"' if need_quote else "\\" * backslashes)
        quoted.append("".join(out))
    return " ".join(quoted)


@pytest.mark.parametrize("argv", [
    ["--version"], ["a b", "c"], [""], ['say "hi"'], ["C:\\path with space\\"], ["x\\\\\"y"], ["tab\there"], ["trail\\"], ['"'], ["a\\b c"],
])
def test_argument_quoting_follows_the_windows_rules(argv):
    assert list2cmdline_like_the_psm1(argv) == subprocess.list2cmdline(argv)
    assert "$needQuote = ($arg -eq '') -or $arg.Contains(' ') -or $arg.Contains(\"`t\")" in PSM1
    assert "[void]$builder.Append('\\' * ($backslashes * 2 + 1))" in PSM1


def test_ps1_argument_spec_matches_the_documentation():
    options = source.ps1_options(PS1)
    documented = DOCS["options"]
    assert set(options) == set(documented)
    for name, doc in documented.items():
        spec = options[name]
        assert spec["type"].strip('"') == doc["type"], name
        if "elements" in doc:
            assert spec["elements"].strip('"') == doc["elements"], name
        if "choices" in doc:
            assert [c.strip(' "') for c in spec["choices"].split(",")] == [str(c) for c in doc["choices"]], name
        if doc.get("required"):
            assert spec.get("required") == "$true", name
        elif isinstance(doc.get("default"), bool):
            assert spec["default"] == ("$true" if doc["default"] else "$false"), name
        elif isinstance(doc.get("default"), (str, int, float)):
            assert float(spec["default"].strip('"')) == float(doc["default"]) if doc["type"] == "float" else spec["default"].strip('"') == str(doc["default"])
        elif doc.get("default") == []:
            assert spec["default"] == "@()", name


def test_dmi_fields_on_windows_are_linux_names():
    fields = re.findall(r"^    (\w+) = @\('Win32_\w+', '\w+'\)$", PSM1, re.M)
    assert {"bios_vendor", "bios_version", "bios_date", "bios_release", "product_name", "sys_vendor"} <= set(fields)


def test_every_fleet_command_the_ps1_calls_is_defined_and_exported():
    called = set(re.findall(r"\b([A-Z][a-z]+-Fleet[A-Za-z]+)\b", PS1))
    defined = set(re.findall(r"^Function ([A-Za-z]+-Fleet[A-Za-z]+) \{", PSM1, re.M))
    exported = set(re.findall(r"'([A-Za-z]+-Fleet[A-Za-z]+)'", PSM1.split("$exportMembers", 1)[1]))
    assert called and called <= defined and called <= exported and exported <= defined
    assert "#AnsibleRequires -PowerShell ..module_utils.FleetInventory" in PS1


COMMON_PARAMETERS = {"ErrorAction", "WarningAction", "Verbose", "Debug", "ErrorVariable", "OutVariable"}
KNOWN_CMDLETS = {
    "Where-Object": set(), "ForEach-Object": set(), "Out-Null": set(), "Sort-Object": {"Unique"},
    "Select-Object": {"Skip", "First", "Unique"}, "Get-ItemProperty": {"Path", "LiteralPath", "Name"},
    "Test-Path": {"LiteralPath", "PathType"}, "Get-Item": {"LiteralPath"}, "Get-CimInstance": {"ClassName"},
    "New-Object": set(), "Export-ModuleMember": set(), "taskkill.exe": set(),
}


def declared_functions() -> dict[str, set[str]]:
    found = {}
    for node in source.walk(source.syntax_tree(PSM1)):
        if node.type == "function_statement":
            name = next(c for c in node.children if c.type == "function_name").text.decode()
            found[name] = {var.text.decode()[1:] for par in source.walk(node) if par.type == "script_parameter"
                           for var in par.children if var.type == "variable"}
    return found


@pytest.mark.parametrize("file_name", ["FleetInventory.psm1", "inventory.ps1"])
def test_every_command_and_parameter_the_twin_uses_exists(file_name):
    text = PSM1 if file_name.endswith(".psm1") else PS1
    functions = declared_functions()
    assert "Invoke-FleetInventory" in functions and "Baseline" in functions["Invoke-FleetInventory"]
    used = []
    for node in source.walk(source.syntax_tree(text)):
        if node.type == "command":
            name = next((c.text.decode() for c in node.children if c.type == "command_name"), None)
            if name:
                used.append((name, {n.text.decode().lstrip("-") for n in source.walk(node) if n.type == "command_parameter" and n.parent.parent == node}))
    assert used
    for name, params in used:
        allowed = functions.get(name, KNOWN_CMDLETS.get(name))
        assert allowed is not None, f"{file_name}: unknown command {name}"
        unknown = params - allowed - COMMON_PARAMETERS
        if name in ("taskkill.exe",):
            continue
        assert not unknown, f"{file_name}: {name} has no parameter(s) {sorted(unknown)}"
