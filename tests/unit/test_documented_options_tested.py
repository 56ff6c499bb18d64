# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every documented option is driven by a test end to end (issue 22, item 3).

The documented interface:

* each module's options (``DOCUMENTATION`` of plugins/modules/*.py; an action plugin's options
  are documented there too), top level;
* each role variable (roles/*/meta/argument_specs.yml);
* each manifest key and component field of docs/repository.md ("Top-level keys", "Component
  fields"), each detection method ("Detection") and each install kind (the ``install`` field).

"Exercised end to end" means: the name is *given* somewhere in the tests that run against the lab
(tests/integration, tests/faults; for the manifest also the lab's fixture generators in tests/lab
and the integration helpers that write manifests). Given means, read from the file's syntax and
not from its prose or comments:

* YAML files: a mapping key anywhere;
* Python files: a string dict key (``{"lease": 30}``), a keyword argument of a call that is not
  a process/wait helper (``deploy(lab, repo, lease=30)``; ``subprocess.run(timeout=...)`` does not
  count), and inside string literals ``name=`` (ad-hoc args, ``-e fleet_x=1``) or ``name:`` at
  the start of a line (YAML written by the test).

A module option counts only in a file that names the module (``fleet.firmware.<m>`` or the word
``<m>``), so ``lease`` of the agent is not credited by a deploy test that does not name the agent.
A detection method or install kind counts when it is given as the value of ``method``/``install``.

This is a name check, not proof: a test that passes an option and asserts nothing about it passes
here. It catches what it is for: an option added to the docs with no test that even passes it.
What cannot run in this lab is in ALLOWED below, each with its reason; an entry that becomes tested,
or stops being documented, fails the check too, so the list only shrinks.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.fleet.firmware.plugins.plugin_utils import role_variables as role_variables_mod

ROOT = Path(__file__).resolve().parents[2]
LAB_TESTS = [ROOT / "tests" / "integration", ROOT / "tests" / "faults"]
MANIFEST_FIXTURES = LAB_TESTS + [ROOT / "tests" / "lab"]
# Calls whose keyword arguments are the test's own plumbing, not options of ours.
PLUMBING_CALLS = {"run", "Popen", "check_output", "check_call", "communicate", "wait", "wait_for", "wait_until", "sleep",
                  "join", "get", "post", "urlopen", "create_connection", "dumps", "loads", "safe_dump", "dump", "open",
                  "read_text", "write_text", "mkdir", "settimeout", "sorted"}
STRING_KEY = re.compile(r"(?:^|[\s,{(\"'])([a-z][a-z0-9_]*)=")
STRING_YAML_KEY = re.compile(r"^\s*(?:-\s+)?([a-z][a-z0-9_]*):", re.M)

# What no lab test drives, on purpose (CANNOT_RUN_HERE) or not yet (NOT_YET). The check fails when an
# entry becomes tested or is no longer documented: the lists only shrink.
# Cannot run in this lab: permanent, each with its reason.
CANNOT_RUN_HERE = {
    "manifest:install=exe": "Windows installer: no Windows in the lab; the argv is unit-tested (test_installers.py)",
    "manifest:install=fwupd": "needs a running fwupd daemon with updatable devices; the lab nodes have neither",
    "manifest:install=msi": "Windows installer: the lab's Windows-like node is Samba + SSH without Windows (msiexec); "
                            "tests/unit/.../test_installers.py checks the argv",
    "manifest:method=fwupd": "needs fwupdmgr and a fwupd daemon with devices; the lab nodes have neither",
    "module:agent.smb_password": "Windows path (admin$): the agent is not started on the Windows-like node (no PowerShell there)",
    "module:agent.smb_user": "Windows path (admin$): the agent is not started on the Windows-like node (no PowerShell there)",
    "role:fleet_smb_domain": "a domain account for admin$ needs a domain controller; the lab's Samba is standalone",
    "role:fleet_winrm_port": "Windows only: WinRM needs a real Windows host (the lab's node speaks SSH + SMB)",
}
# Not driven by a lab test yet (found by this check when it was written, 2026-12-02): known gaps of
# issue 22 item 3, for the streams to close. Remove an entry with the test that drives it.
NOT_YET = {
    # Added this round by other streams (issues 17 and 19): lab tests still to come.
    "module:agent.agent_sha256",
    "module:compliance_report.formats",
    "module:compliance_report.run_tag",
    "role:fleet_approved_hashes",
    "role:fleet_denied_versions",
    "role:fleet_min_criticality",
    "role:fleet_required_versions",
    "manifest:deployable",
    "manifest:identity",
    "manifest:install=deb",
    "manifest:install=rpm",
    "manifest:not_deployable",
    "manifest:prerequisites",
    "manifest:release_date",
    "manifest:returncodes",
    "module:agent.agent_src",
    "module:agent.bind",
    "module:agent.controller",
    "module:agent.firewall_backend",
    "module:agent.node_id",
    "module:agent.open_firewall",
    "module:agent.run_id",
    "module:agent.secrets",
    "module:agent.start_timeout",
    "module:agent.stop_timeout",
    "module:agent.transfer",
    "module:agent.verify",
    "module:deploy.agent_start",
    "module:deploy.engine_address",
    "module:deploy.firewall_backend",
    "module:deploy.open_firewall",
    "module:inventory.redfish_inventory",
    "module:inventory.redfish_inventory_error",
    "module:inventory.redfish_validate_certs",
    "module:preflight_report.mode",
    "module:preflight_report.show",
    "module:render_report.results",
    "module:repository.missing_files",
    "module:repository.new_files",
    "module:repository.verify",
    "module:sweep.firewall_backend",
    "module:sweep.staging_root",
    "role:fleet_agent_start",
    "role:fleet_allow_downgrade",
    "role:fleet_become",
    "role:fleet_become_user",
    "role:fleet_components",
    "role:fleet_engine_address",
    "role:fleet_firewall_backend",
    "role:fleet_force",
    "role:fleet_node_addresses",
    "role:fleet_on_failed_dependency",
    "role:fleet_only",
    "role:fleet_open_firewall",
    "role:fleet_preflight_timeout",
    "role:fleet_progress_interval",
    "role:fleet_reboot_command",
    "role:fleet_reboot_delay",
    "role:fleet_reboot_timeout",
    "role:fleet_repository_url",
    "role:fleet_resume",
    "role:fleet_rewrite",
    "role:fleet_signatures",
    "role:fleet_smb_user",
    "role:fleet_staging_dir",
    "role:fleet_staging_min_free_mb",
    "role:fleet_timeout",
}
ALLOWED = {**CANNOT_RUN_HERE, **{key: "not driven by a lab test yet (issue 22 item 3)" for key in NOT_YET}}


# --------------------------------------------------------------------------------------------
# The documented interface
# --------------------------------------------------------------------------------------------


def module_options() -> dict[str, set[str]]:
    found = {}
    for path in sorted((ROOT / "plugins" / "modules").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "DOCUMENTATION" for t in node.targets):
                doc = yaml.safe_load(node.value.value)
                found[path.stem] = set((doc or {}).get("options") or {})
    return found


def role_variables() -> dict[str, set[str]]:
    found = {}
    for spec in sorted((ROOT / "roles").glob("*/meta/argument_specs.yml")):
        data = yaml.safe_load(spec.read_text(encoding="utf-8"))
        found[spec.parents[1].name] = set(data["argument_specs"]["main"].get("options") or {})
    return found


def _table_first_column(markdown: str, heading: str) -> list[tuple[str, str]]:
    """(first cell's backticked name, the rest of the row) of the table under ``## heading``."""
    section = markdown.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        match = re.match(r"^\|\s*`([a-z_0-9]+)`\s*\|(.*)$", line)
        if match:
            rows.append((match[1], match[2]))
    return rows


def manifest_interface() -> dict[str, set[str]]:
    text = (ROOT / "docs" / "repository.md").read_text(encoding="utf-8")
    fields = {name for name, _unused in _table_first_column(text, "Top-level keys")}
    component = _table_first_column(text, "Component fields")
    fields |= {name for name, _unused in component}
    [install_row] = [rest for name, rest in component if name == "install"]
    return {"field": fields, "method": {name for name, _unused in _table_first_column(text, "Detection")},
            "install": set(re.findall(r"`([a-z_]+)`", install_row))}


# --------------------------------------------------------------------------------------------
# What the tests give
# --------------------------------------------------------------------------------------------


def _yaml_keys(data, keys: set[str], values: list[tuple[str, str]]) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            keys.add(str(key))
            if isinstance(value, str):
                values.append((str(key), value))
            _yaml_keys(value, keys, values)
    elif isinstance(data, list):
        for item in data:
            _yaml_keys(item, keys, values)


def _string_keys(text: str, keys: set[str], values: list[tuple[str, str]]) -> None:
    keys.update(STRING_KEY.findall(text))
    keys.update(STRING_YAML_KEY.findall(text))
    values.extend(re.findall(r"\b([a-z_]+)[=:]\s*[\"']?([a-z_]+)", text))


def _call_name(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def given(path: Path) -> tuple[set[str], list[tuple[str, str]]]:
    """(names given as keys or arguments, (key, value) pairs) of one test file."""
    keys: set[str] = set()
    values: list[tuple[str, str]] = []
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix in (".yml", ".yaml"):
        for doc in yaml.safe_load_all(text):
            _yaml_keys(doc, keys, values)
        return keys, values
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    keys.add(key.value)
                    if isinstance(value, ast.Constant) and isinstance(value.value, str):
                        values.append((key.value, value.value))
        elif isinstance(node, ast.Call) and _call_name(node.func) not in PLUMBING_CALLS:
            for keyword in node.keywords:
                if keyword.arg:
                    keys.add(keyword.arg)
                    if isinstance(keyword.value, ast.Constant) and isinstance(keyword.value.value, str):
                        values.append((keyword.arg, keyword.value.value))
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                keys.add(node.slice.value)  # extravars["fleet_x"] = ...
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            _string_keys(node.value, keys, values)
    return keys, values


def _tasks(play: dict) -> list[dict]:
    found = []
    for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
        for task in play.get(section) or []:
            found.append(task)
            for nested in ("block", "rescue", "always"):
                found.extend(_tasks({"tasks": task.get(nested)}) if task.get(nested) else [])
    return found


def playbook_module_args() -> dict[str, dict[str, set[str]]]:
    """playbook -> module -> the options its tasks give (plugins of this collection only)."""
    found: dict[str, dict[str, set[str]]] = {}
    for path in sorted((ROOT / "playbooks").glob("*.yml")):
        for play in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            for task in _tasks(play):
                for key, args in task.items():
                    if str(key).startswith("fleet.firmware.") and isinstance(args, dict):
                        found.setdefault(path.stem, {}).setdefault(key.split(".")[-1], set()).update(args)
    return found


def lab_test_files(folders: list[Path]) -> list[Path]:
    return sorted(p for folder in folders for p in folder.rglob("*") if p.suffix in (".py", ".yml", ".yaml") and p.is_file())


def untested() -> dict[str, str]:
    """kind:name -> what is documented and given by no lab test."""
    lab_files = {path: given(path) for path in lab_test_files(LAB_TESTS)}
    texts = {path: path.read_text(encoding="utf-8", errors="replace") for path in lab_files}
    missing = {}
    for module, options in module_options().items():
        naming = [p for p, text in texts.items() if re.search(rf"\b{module}\b", text)]
        tested = set().union(*(lab_files[p][0] for p in naming)) if naming else set()
        for option in sorted(options - tested):
            missing[f"module:{module}.{option}"] = f"option {option!r} of fleet.firmware.{module}: no test under tests/integration or tests/faults gives it"
    # The collection's own playbooks, where a lab test runs them (names fleet.firmware.<playbook>).
    for playbook, given_args in playbook_module_args().items():
        if any(re.search(rf"\bfleet\.firmware\.{playbook}\b|\b{playbook}\.yml\b", text) for text in texts.values()):
            for module, options in given_args.items():
                for option in options:
                    missing.pop(f"module:{module}.{option}", None)
    every_key = set().union(*(keys for keys, _unused in lab_files.values()))
    # A deploy option is driven end to end when its role variable is (role=fleet_update passes it on).
    for option in set(role_variables_mod.DEPLOY_OPTIONS) - set(module_options().get("deploy", ())):
        missing[f"module:deploy.{option}"] = f"role_variables.DEPLOY_OPTIONS names {option!r}, which fleet.firmware.deploy does not document"
    via_roles = {option for option in role_variables_mod.DEPLOY_OPTIONS if f"fleet_{option}" in every_key}
    for key in [k for k in missing if k.startswith("module:deploy.") and k.split(".", 1)[1] in via_roles]:
        del missing[key]
    for role, variables in role_variables().items():
        for variable in sorted(variables - every_key):
            # One name for every role that declares it: a variable shared by the roles is tested once.
            missing.setdefault(f"role:{variable}", f"role variable {variable!r} (role {role}): no lab test sets it")
    fixture_files = {path: given(path) for path in lab_test_files(MANIFEST_FIXTURES)}
    fixture_keys = set().union(*(keys for keys, _unused in fixture_files.values()))
    pairs = {pair for _unused, found in fixture_files.values() for pair in found}
    interface = manifest_interface()
    for field in sorted(interface["field"] - fixture_keys):
        missing[f"manifest:{field}"] = f"manifest field {field!r} (docs/repository.md): no manifest a lab test deploys has it"
    for kind, key in (("method", "method"), ("install", "install")):
        for value in sorted(interface[kind] - {v for k, v in pairs if k == key}):
            missing[f"manifest:{key}={value}"] = f"{key}: {value} (docs/repository.md): no manifest a lab test deploys uses it"
    return missing


# --------------------------------------------------------------------------------------------
# The checks
# --------------------------------------------------------------------------------------------


def test_the_interface_is_read():
    """The readers find what they read (a renamed table or folder must not make the check vacuous)."""
    modules = module_options()
    assert {"deploy", "firewall", "agent", "inventory"} <= set(modules) and "lease" in modules["deploy"]
    assert {"fleet_update", "linux_node", "windows_node"} <= set(role_variables())
    interface = manifest_interface()
    assert {"format", "components", "name", "detect", "returncodes"} <= interface["field"]
    assert {"command", "dmi", "redfish"} <= interface["method"] and {"script", "rpm", "msi"} <= interface["install"]


def test_the_reader_sees_what_a_test_gives(tmp_path):
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "import subprocess\n"
        "def test_x(lab):\n"
        "    deploy(lab, repo, lease=30)\n"
        "    subprocess.run(['true'], timeout=5)\n"
        "    lab.adhoc('all', 'fleet.firmware.firewall', 'state=open port=1')\n"
        "    vars = {'fleet_agent_port': 1, 'method': 'dmi'}\n"
        "    # a comment naming fleet_never_given= does not count\n")
    keys, values = given(sample)
    assert {"lease", "state", "port", "fleet_agent_port"} <= keys
    assert "timeout" not in keys and "fleet_never_given" not in keys
    assert ("method", "dmi") in values


def test_every_documented_option_is_given_by_a_lab_test():
    missing = untested()
    new = {key: why for key, why in missing.items() if key not in ALLOWED}
    assert not new, ("documented but no test drives it end to end (add a lab test that gives it; only what cannot run in "
                     "the lab goes to CANNOT_RUN_HERE in tests/unit/test_documented_options_tested.py, with its reason):\n  "
                     + "\n  ".join(f"{key}: {why}" for key, why in sorted(new.items())))


def test_the_allow_list_only_holds_what_is_documented_and_untested():
    missing = untested()
    stale = sorted(key for key in ALLOWED if key not in missing)
    assert not stale, f"ALLOWED entries that are tested now or no longer documented (remove them): {', '.join(stale)}"


@pytest.mark.parametrize("key", sorted(ALLOWED))
def test_each_allow_list_entry_has_a_reason(key):
    assert len(ALLOWED[key]) > 20, key
