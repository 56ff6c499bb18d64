# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The roles' ``fleet_*`` variables, read and checked inside the deploy action (issue 15, item 1).

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time.

``fleet.firmware.update_fleet`` runs one task per host: ``fleet.firmware.deploy`` with
``role: fleet_update``. What the roles' tasks did per host (the role's argument spec, the checks
an argument spec cannot express, the path choice) happens here, from the same files the roles
use: each role's ``meta/argument_specs.yml`` (the one declaration of its variables) and
``defaults/main.yml``. The messages are the roles' own, so a bad variable reads the same
whichever way the node is updated.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import typing as t

import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.fleet.firmware.plugins.module_utils.detect import REDFISH_OPTIONS  # the BMC's options, declared once
from ansible_collections.fleet.firmware.plugins.module_utils.runtag import TAG_RE  # the one run-tag pattern

ROLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "roles")
ROLES = ("fleet_update", "linux_node", "windows_node")
WINDOWS_CONNECTIONS = ("winrm", "psrp")
# deploy option <- role variable (the roles' tasks passed exactly these).
DEPLOY_OPTIONS = ("repository", "run_dir", "delivery", "repository_url", "open_firewall", "engine_port", "engine_address",
                  "agent_port", "staging_dir", "lease", "firewall_backend", "allow_downgrade", "rewrite", "force", "only",
                  "components", "on_failed_dependency", "reboot", "reboot_command", "reboot_delay", "reboot_timeout", "resume",
                  "timeout", "progress_interval", "agent_start", "trust", "signatures", "open_controller_firewall",
                  "controller_address", *REDFISH_OPTIONS,
                  "approved_hashes", "denied_versions", "required_versions", "min_criticality")
EMPTY_MEANS_UNSET = ("run_tag", "run_dir", "repository_url", "engine_address", "staging_dir", "node_addresses", "controller_address",
                     "trust", "signatures", "redfish_address", "redfish_username", "redfish_password", "redfish_ca_path",
                     "min_criticality")


class RoleVariablesError(Exception):
    """Bad role variables; the message names each bad one (nothing has touched the node)."""


@dataclasses.dataclass
class NodeUpdate:
    """What one host's update needs, from its role variables."""
    path: str
    deploy: dict
    tag: str | None
    preflight: dict | None  # fleet.firmware.preflight's arguments; None: no preflight
    staging_min_free_mb: int
    variables: dict


@functools.lru_cache(maxsize=None)
def role_files(role: str) -> tuple[dict, dict]:
    """(argument spec options, defaults) of one of the collection's roles; read once per worker."""
    with open(os.path.join(ROLES_DIR, role, "meta", "argument_specs.yml"), encoding="utf-8") as handle:
        options = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    with open(os.path.join(ROLES_DIR, role, "defaults", "main.yml"), encoding="utf-8") as handle:
        defaults = yaml.safe_load(handle) or {}
    return options, defaults


def module_spec(options: dict) -> dict:
    """A role's documented options as a module argument spec (the same keys, without the prose)."""
    keep = ("type", "required", "default", "choices", "elements", "no_log")
    return {name: {k: v for k, v in option.items() if k in keep} for name, option in options.items()}


def pick_path(connection: str, fleet_path: str | None) -> str:
    """fleet_path, else the connection: winrm/psrp -> windows, else linux (the fleet_update role's rule)."""
    if fleet_path:
        return fleet_path
    return "windows" if (connection or "ssh").split(".")[-1] in WINDOWS_CONNECTIONS else "linux"


def collect(role: str, path: str, lookup: t.Callable[[str], t.Any]) -> tuple[dict, dict]:
    """(merged argument spec, values): the role's variables (and, for fleet_update, the path
    role's), each from ``lookup(name)`` (raises KeyError when the host has none) or the defaults."""
    roles = ("fleet_update", f"{path}_node") if role == "fleet_update" else (role,)
    spec: dict = {}
    defaults: dict = {}
    for name in roles:
        options, role_defaults = role_files(name)
        spec.update(module_spec(options))
        defaults.update(role_defaults)
    values = {}
    for name in spec:
        try:
            values[name] = lookup(name)
        except KeyError:
            if name in defaults:
                values[name] = defaults[name]
    return spec, values


def validate(spec: dict, values: dict) -> dict:
    """The argument spec's check (types, choices, required), as the role's validation said it."""
    # A null default (``fleet_path: null``) is no value, as for the role's own validation.
    result = ArgumentSpecValidator(spec).validate({k: v for k, v in values.items() if v is not None})
    if result.error_messages:
        raise RoleVariablesError("Validation of arguments failed:\n" + "\n".join(result.error_messages))
    return result.validated_parameters


def range_problems(v: dict) -> list[str]:
    """The checks an argument spec cannot express (roles/*/tasks/checks.yml said the same)."""
    checks = [
        (not 5 <= v["fleet_lease"] <= 604800, f"fleet_lease={v['fleet_lease']} must be 5 to 604800 seconds"),
        (not 1 <= v["fleet_agent_port"] <= 65535, f"fleet_agent_port={v['fleet_agent_port']} must be 1 to 65535"),
        (not 1 <= v["fleet_engine_port"] <= 65535, f"fleet_engine_port={v['fleet_engine_port']} must be 1 to 65535"),
        (v["fleet_timeout"] < 1, f"fleet_timeout={v['fleet_timeout']} must be 1 or more"),
        (v["fleet_reboot_timeout"] < 1, f"fleet_reboot_timeout={v['fleet_reboot_timeout']} must be 1 or more"),
        (v["fleet_reboot_delay"] < 0, f"fleet_reboot_delay={v['fleet_reboot_delay']} must be 0 or more"),
        (v["fleet_progress_interval"] < 0, f"fleet_progress_interval={v['fleet_progress_interval']} must be 0 or more"),
        (v["fleet_delivery"] == "url" and not v.get("fleet_repository_url"), "fleet_delivery=url needs fleet_repository_url"),
        (v.get("fleet_run_tag") is not None and not TAG_RE.fullmatch(str(v["fleet_run_tag"])),
         f"fleet_run_tag={v.get('fleet_run_tag')} must be 1 to 32 characters of a-z, 0-9 and -"),
    ]
    return [message for bad, message in checks if bad]


def winrm_problems(v: dict) -> list[str]:
    """WinRM settings that would send credentials or messages in clear (windows_node's refusal)."""
    http = v.get("fleet_winrm_scheme") == "http"
    checks = [
        (http and v.get("fleet_winrm_transport") == "basic",
         "fleet_winrm_transport=basic over fleet_winrm_scheme=http would send the password in clear; use https, or ntlm/kerberos/credssp"),
        (http and v.get("fleet_winrm_transport") == "certificate", "fleet_winrm_transport=certificate needs fleet_winrm_scheme=https"),
        (http and v.get("fleet_winrm_message_encryption") == "never",
         "fleet_winrm_message_encryption=never over fleet_winrm_scheme=http is refused: messages must be encrypted over HTTP"),
    ]
    return [message for bad, message in checks if bad]


def node_update(role: str, host: str, connection: str, lookup: t.Callable[[str], t.Any], home: str) -> NodeUpdate:
    """Every check the roles made, then what the deploy, the preflight and the free-space check get."""
    if role not in ROLES:
        raise RoleVariablesError(f"role={role!r} is not one of {', '.join(ROLES)}")
    try:
        fleet_path = lookup("fleet_path")
    except KeyError:
        fleet_path = None
    if role == "fleet_update" and fleet_path not in (None, "", "linux", "windows"):
        raise RoleVariablesError(f"Validation of arguments failed:\nvalue of fleet_path must be one of: linux, windows, got: {fleet_path}")
    path = {"linux_node": "linux", "windows_node": "windows"}.get(role) or pick_path(connection, fleet_path)
    spec, values = collect(role, path, lookup)
    v = validate(spec, values)
    for name in EMPTY_MEANS_UNSET:  # the roles' `default(omit, true)`: an empty value is no value
        if v.get(f"fleet_{name}") in ("", []):
            v[f"fleet_{name}"] = None
    problems = range_problems(v)
    if problems:
        raise RoleVariablesError("invalid fleet.firmware variables: " + "; ".join(problems))
    if path == "windows":
        problems = winrm_problems(v)
        if problems:
            raise RoleVariablesError(f"refused WinRM settings for {host}: " + "; ".join(problems))
    deploy = {option: v.get(f"fleet_{option}") for option in DEPLOY_OPTIONS}
    deploy["tag"] = v.get("fleet_run_tag")
    preflight = None
    if role == "fleet_update" and v["fleet_preflight"]:
        tag = v.get("fleet_run_tag")
        run_dir = v.get("fleet_run_dir") or (os.path.join(home, ".ansible", "fleet-firmware", "runs", tag) if tag else None)
        preflight = {"path": path, "addresses": v.get("fleet_node_addresses"), "controller_address": v.get("fleet_controller_address") or [],
                     "engine_port": v["fleet_engine_port"], "agent_port": v["fleet_agent_port"], "engine_run_dir": run_dir,
                     "timeout": v["fleet_preflight_timeout"], "delivery": v["fleet_delivery"]}
    free = v.get("fleet_staging_min_free_mb") or 0 if path == "linux" else 0
    return NodeUpdate(path=path, deploy=deploy, tag=deploy["tag"], preflight=preflight, staging_min_free_mb=free, variables=v)


def free_space_problem(df_output: str, host: str, wanted_mb: int) -> str | None:
    """``df -Pk /var/tmp``'s answer against fleet_staging_min_free_mb (linux_node's message)."""
    lines = [line for line in df_output.splitlines() if line.strip()]
    try:
        free_kib = int(lines[-1].split()[3])
    except (IndexError, ValueError):
        return f"cannot read the free space of /var/tmp on {host} from df: {df_output.strip()[:200]!r}"
    if free_kib >= wanted_mb * 1024:
        return None
    return f"/var/tmp on {host} has {free_kib // 1024} MiB free, fleet_staging_min_free_mb asks for {wanted_mb} MiB"
