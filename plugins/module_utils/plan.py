# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Inventory and plan: what is installed on this node and what each component would do.

Runs on nodes (the inventory module, the agent): Python 3.6+, standard library only. Reads
only. The same code answers the inventory module, check mode of the deploy action, and the
agent's re-inventory after a reboot, so all three always agree.

Policy (HP SUM's names): ``allow_downgrade``, ``rewrite`` (install the same version again),
``force`` (install whatever the installed version, also when it cannot be compared), ``only``
(``firmware``, ``software`` — drivers count as software — or ``all``), ``components`` (names;
empty = all).

Actions: ``install`` (nothing installed), ``upgrade``, ``downgrade``, ``rewrite``, ``skip``;
every entry has a ``reason`` a person can read and a ``source``: where the installed version
came from (DMI, the package manager, the BMC's Redfish inventory and from where it was asked,
the component itself), null when the component was left out before detection.

A component with ``detect: {method: component}`` is planned ``install`` with the reason
``COMPONENT_DECIDES``: the Smart Component itself finds out whether it is needed and says so with
its "not needed" return code, which the installer reports as ``skipped``.

The BMC's firmware inventory (``redfish`` detection) is asked for at most once per plan, and only
when a selected component that applies to the node needs it.
"""
from typing import Any, Dict, List, Mapping, Optional, Tuple

from ansible_collections.fleet.firmware.plugins.module_utils import detect as detect_mod
from ansible_collections.fleet.firmware.plugins.module_utils import versions

INSTALL, UPGRADE, DOWNGRADE, REWRITE, SKIP = "install", "upgrade", "downgrade", "rewrite", "skip"
ACTIONS = (INSTALL, UPGRADE, DOWNGRADE, REWRITE, SKIP)
ONLY = ("all", "firmware", "software")
DEFAULT_POLICY = {"allow_downgrade": False, "rewrite": False, "force": False, "only": "all", "components": []}
_ORDER_WORD = {-1: "older", 0: "same", 1: "newer", None: "unknown"}
_Options = Optional[Mapping[str, Any]]
COMPONENT_DECIDES = 'the component decides (its "not needed" return code)'


def normalise_policy(policy):
    # type: (Optional[Mapping[str, Any]]) -> Dict[str, Any]
    merged = dict(DEFAULT_POLICY)
    merged.update({key: value for key, value in (policy or {}).items() if value is not None})
    if merged["only"] not in ONLY:
        raise ValueError("policy only=%r is not one of %s" % (merged["only"], ", ".join(ONLY)))
    merged["components"] = list(merged["components"] or [])
    return merged


def _entry(component, action, reason, installed=None, comparison=None, detection=None, not_deployable=None):
    # type: (Mapping[str, Any], str, str, Optional[str], Optional[str], Optional[Mapping[str, Any]], Optional[str]) -> Dict[str, Any]
    # not_deployable: why the component can never go to this node (data for the report's "why not
    # deployable" column); None when it could, whatever the action (a policy's choice is not that).
    return {"name": component.get("name"), "kind": component.get("kind"), "os": component.get("os"),
            "installed": installed, "available": component.get("version"), "action": action, "reason": reason,
            "comparison": comparison, "detection": dict(detection) if detection else None,
            "source": detection.get("source") if detection else None,
            "requires": list(component.get("requires") or []), "not_deployable": not_deployable}


def not_for_os(component, os_name):
    # type: (Mapping[str, Any], str) -> Optional[str]
    """Why the node's OS rules this component out, or None."""
    if component.get("os", os_name) != os_name:
        return "for %s nodes, this node runs %s" % (component.get("os"), os_name)
    return None


def not_selected(component, policy, os_name):
    # type: (Mapping[str, Any], Mapping[str, Any], str) -> Optional[str]
    """Why the policy or the node's OS leaves this component out, or None."""
    other_os = not_for_os(component, os_name)
    if other_os:
        return other_os
    if policy["components"] and component.get("name") not in policy["components"]:
        return "not in the selected components"
    kind = component.get("kind")
    if policy["only"] == "firmware" and kind != "firmware":
        return "only firmware is selected, this is %s" % kind
    if policy["only"] == "software" and kind == "firmware":
        return "only software is selected, this is firmware"
    return None


def not_offered(component, policy):
    # type: (Mapping[str, Any], Mapping[str, Any]) -> Optional[str]
    """Why the repository itself holds this component back (docs/repository.md, From an SPP), or None:
    not deployable (a BMC-only package...), or an older version another component supersedes,
    which installs only when the policy's ``components`` names it."""
    if component.get("deployable") is False:
        return "not deployable: %s" % component.get("not_deployable")
    newer = component.get("superseded_by")
    if newer and component.get("name") not in policy["components"]:
        return "superseded by %s (name %s in the policy's components to install this version)" % (newer, component.get("name"))
    return None


def decide(component, detection, policy):
    # type: (Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]) -> Dict[str, Any]
    """The action for one component from what detection found and the policy."""
    available = component.get("version")
    state = detection.get("state")
    if state == detect_mod.ABSENT:
        return _entry(component, INSTALL, "not installed (%s)" % detection.get("reason"), None, None, detection)
    if state == detect_mod.DEFERRED:
        return _entry(component, INSTALL, COMPONENT_DECIDES, None, None, detection)
    if state != detect_mod.PRESENT:
        why = "cannot tell the installed version: %s" % detection.get("reason")
        if policy["force"]:
            return _entry(component, INSTALL, "force: " + why, None, "unknown", detection)
        return _entry(component, SKIP, why + " (force installs anyway)", None, "unknown", detection)
    installed = detection.get("version")
    result = versions.compare(installed, available, detection.get("scheme") or "auto")
    word = _ORDER_WORD[result.order]
    if result.order is None:
        if policy["force"]:
            return _entry(component, INSTALL, "force: versions cannot be compared: %s" % result.reason, installed, word, detection)
        return _entry(component, SKIP, "versions cannot be compared: %s (force installs anyway)" % result.reason, installed, word, detection)
    if result.order < 0:
        return _entry(component, UPGRADE, "installed %s is older than %s" % (installed, available), installed, word, detection)
    if result.order == 0:
        if policy["rewrite"] or policy["force"]:
            return _entry(component, REWRITE, "installed %s is current; %s" % (installed, "rewrite" if policy["rewrite"] else "force"),
                          installed, word, detection)
        return _entry(component, SKIP, "already current (%s)" % installed, installed, word, detection)
    if policy["allow_downgrade"] or policy["force"]:
        why = "allow_downgrade" if policy["allow_downgrade"] else "force"
        return _entry(component, DOWNGRADE, "installed %s is newer than %s; %s" % (installed, available, why), installed, word, detection)
    return _entry(component, SKIP, "installed %s is newer than %s (allow_downgrade to go back)" % (installed, available),
                  installed, word, detection)


def plan(components, policy=None, os_name="linux", timeout=detect_mod.DEFAULT_TIMEOUT, dmi_root=detect_mod.DMI_ROOT,
         redfish=None, redfish_inventory=None, redfish_error=None):
    # type: (List[Mapping[str, Any]], _Options, str, float, str, _Options, Optional[List[Dict[str, Any]]], Optional[str]) -> List[Dict[str, Any]]
    """One entry per component, in the order given (the manifest's dependency order).

    ``redfish``: the BMC settings (``detect.RedfishSource``'s keys; the password never lands in an
    entry). ``redfish_inventory``: the inventory's items when the controller asked the BMC;
    ``redfish_error``: why the controller could not."""
    settled = normalise_policy(policy)
    bmc = detect_mod.RedfishSource(redfish, items=redfish_inventory, error=redfish_error)
    entries = []
    for component in components:
        held_back = not_offered(component, settled) or not_for_os(component, os_name)
        if held_back:
            entries.append(_entry(component, SKIP, held_back, not_deployable=held_back))
            continue
        reason = not_selected(component, settled, os_name)
        if reason:
            entries.append(_entry(component, SKIP, reason))
            continue
        fits, why = detect_mod.applies(component.get("applies_to"), dmi_root)
        if not fits:
            reason = "does not apply to this node: %s" % why
            entries.append(_entry(component, SKIP, reason, not_deployable=reason))
            continue
        detection = detect_mod.detect(component.get("detect") or {}, os_name=os_name, timeout=timeout, redfish=bmc)
        entries.append(decide(component, detection, settled))
    return entries


def summary(entries):
    # type: (List[Mapping[str, Any]]) -> Tuple[Dict[str, int], bool]
    """(count per action, whether anything would be installed)."""
    counts = {action: 0 for action in ACTIONS}
    for entry in entries:
        counts[entry["action"]] += 1
    return counts, any(entry["action"] != SKIP for entry in entries)


def redfish_settings(options):
    # type: (Any) -> Dict[str, Any]
    """Deploy's ``redfish_*`` options (the agent's plan request, or its launch parameters) as the
    BMC settings ``plan()`` takes; empty without ``redfish_address``."""
    if not isinstance(options, dict) or not options.get("redfish_address"):
        return {}
    return {"address": options["redfish_address"], "username": options.get("redfish_username"),
            "password": options.get("redfish_password"), "validate_certs": options.get("redfish_validate_certs", True),
            "ca_path": options.get("redfish_ca_path"), "timeout": options.get("redfish_timeout"), "origin": "node"}
