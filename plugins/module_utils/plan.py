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

Site policy (issue 19): ``approved_hashes`` (an allow-list of component SHA-256s: any other
component is never installed), ``denied_versions`` (``{name, version, reason}``: never installed),
``required_versions`` (``{name, version}``: a node older than that version gets it first, then the
target; when it needs a reboot the target waits for the next run) and ``min_criticality``
(``critical``, ``recommended``, ``optional``: a component the baseline rates lower is left out; one
without a rating is kept). An entry a site rule decided carries ``policy``: the rule's name.

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
DEFAULT_POLICY = {"allow_downgrade": False, "rewrite": False, "force": False, "only": "all", "components": [],
                  "approved_hashes": [], "denied_versions": [], "required_versions": [], "min_criticality": None}
CRITICALITY = ("optional", "recommended", "critical")  # lowest first
_HEX = "0123456789abcdef"
ORDER_WORD = {-1: "older", 0: "same", 1: "newer", None: "unknown"}
_Options = Optional[Mapping[str, Any]]
COMPONENT_DECIDES = 'the component decides (its "not needed" return code)'


def normalise_policy(policy):
    # type: (Optional[Mapping[str, Any]]) -> Dict[str, Any]
    merged = dict(DEFAULT_POLICY)
    merged.update({key: value for key, value in (policy or {}).items() if value is not None})
    if merged["only"] not in ONLY:
        raise ValueError("policy only=%r is not one of %s" % (merged["only"], ", ".join(ONLY)))
    merged["components"] = list(merged["components"] or [])
    merged["approved_hashes"] = _hashes(merged["approved_hashes"])
    merged["denied_versions"] = _version_rules("denied_versions", merged["denied_versions"])
    merged["required_versions"] = _version_rules("required_versions", merged["required_versions"])
    if merged["min_criticality"] not in (None, "") + CRITICALITY:
        raise ValueError("policy min_criticality=%r is not one of %s" % (merged["min_criticality"], ", ".join(CRITICALITY)))
    merged["min_criticality"] = merged["min_criticality"] or None
    return merged


def _hashes(values):
    # type: (Any) -> List[str]
    if not isinstance(values, (list, tuple)):
        raise ValueError("policy approved_hashes=%r must be a list of SHA-256 hex digests" % (values,))
    found = []
    for value in values:
        text = str(value).strip().lower()
        if len(text) != 64 or any(char not in _HEX for char in text):
            raise ValueError("policy approved_hashes: %r is not a SHA-256 hex digest (64 hex digits)" % (value,))
        found.append(text)
    return found


def _version_rules(key, values):
    # type: (str, Any) -> List[Dict[str, Any]]
    if not isinstance(values, (list, tuple)):
        raise ValueError("policy %s=%r must be a list of {name, version}" % (key, values))
    rules = []
    for value in values:
        if not isinstance(value, Mapping) or not value.get("name") or value.get("version") in (None, ""):
            raise ValueError("policy %s: %r needs a name and a version" % (key, value))
        rules.append({"name": str(value["name"]), "version": str(value["version"]), "reason": value.get("reason")})
    return rules


def _same_version(one, other, scheme="auto"):
    # type: (Any, Any, str) -> bool
    if str(one) == str(other):
        return True
    return versions.compare(str(one), str(other), scheme).order == 0


def _older(one, other, scheme="auto"):
    # type: (Any, Any, str) -> Optional[bool]
    """one < other; None when the versions cannot be ordered."""
    order = versions.compare(str(one), str(other), scheme).order
    return None if order is None else order < 0


def _base_name(component):
    # type: (Mapping[str, Any]) -> Any
    """The name a rule uses for a component: an older SPP version (``cp045678-1.40``) is named by
    the component that supersedes it (``cp045678``)."""
    return component.get("superseded_by") or component.get("name")


def site_refusal(component, policy):
    # type: (Mapping[str, Any], Mapping[str, Any]) -> Optional[Tuple[str, str]]
    """(rule, why) when the site policy never installs this component, else None."""
    approved = policy.get("approved_hashes") or []
    if approved and str(component.get("sha256") or "").lower() not in approved:
        return "approved_hashes", "not approved by the site policy: its sha256 %s is not in approved_hashes" % (
            str(component.get("sha256") or "(none)")[:16])
    for rule in policy.get("denied_versions") or []:
        if rule["name"] in (component.get("name"), _base_name(component)) and _same_version(component.get("version"), rule["version"]):
            return "denied_versions", "version %s is denied by the site policy, never installed%s" % (
                component.get("version"), ": %s" % rule["reason"] if rule.get("reason") else "")
    wanted = policy.get("min_criticality")
    rating = component.get("criticality")
    if wanted and rating in CRITICALITY and CRITICALITY.index(rating) < CRITICALITY.index(wanted):
        return "min_criticality", "criticality %s is below the site's min_criticality %s" % (rating, wanted)
    return None


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
    word = ORDER_WORD[result.order]
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
        refused = site_refusal(component, settled)
        if refused:
            entries.append(dict(_entry(component, SKIP, refused[1]), policy=refused[0]))
            continue
        fits, why = detect_mod.applies(component.get("applies_to"), dmi_root)
        if not fits:
            reason = "does not apply to this node: %s" % why
            entries.append(_entry(component, SKIP, reason, not_deployable=reason))
            continue
        detection = detect_mod.detect(component.get("detect") or {}, os_name=os_name, timeout=timeout, redfish=bmc)
        entries.append(decide(component, detection, settled))
    for rule in settled["required_versions"]:
        entries = required_first(entries, components, rule, settled)
    return entries


SITE_KEYS = ("approved_hashes", "denied_versions", "required_versions", "min_criticality")


def apply_site_policy(entries, components, policy):
    # type: (List[Dict[str, Any]], List[Mapping[str, Any]], Optional[Mapping[str, Any]]) -> List[Dict[str, Any]]
    """The site policy over a plan a node made without it (the controller's side, whatever the
    node's OS): a refused component becomes ``skip``, then each required version. Applying it to a
    plan that already has it changes nothing."""
    settled = normalise_policy({key: (policy or {}).get(key) for key in SITE_KEYS})
    by_name = {c.get("name"): c for c in components}
    result = []
    for entry in entries:
        refused = site_refusal(by_name.get(entry["name"], {}), settled) if entry["action"] != SKIP else None
        result.append(dict(entry, action=SKIP, reason=refused[1], policy=refused[0]) if refused else entry)
    for rule in settled["required_versions"]:
        result = required_first(result, components, rule, settled)
    return result


def _intermediate(components, name, version):
    # type: (List[Mapping[str, Any]], str, str) -> Optional[Mapping[str, Any]]
    """The repository's component that is version ``version`` of ``name`` (an older SPP version is
    kept as ``<name>-<version>`` with ``superseded_by: <name>``)."""
    for component in components:
        if component.get("name") != name and component.get("superseded_by") == name and _same_version(component.get("version"), version):
            return component
    return None


def required_first(entries, components, rule, policy):
    # type: (List[Dict[str, Any]], List[Mapping[str, Any]], Mapping[str, Any], Mapping[str, Any]) -> List[Dict[str, Any]]
    """required_versions: a node older than ``rule.version`` gets that version before the target
    (HP SUM flashes iLO 5 1.40 before 2.10). The intermediate goes just before the target in the
    plan (the install order); when it may need a reboot the target waits for the next run."""
    index = next((i for i, e in enumerate(entries) if e["name"] == rule["name"]), None)
    if index is None:
        return entries
    target = entries[index]
    if target.get("policy") == "required_versions":
        return entries  # applied already (by the node's plan)
    installed, step = target.get("installed"), rule["version"]
    if target["action"] not in (UPGRADE, DOWNGRADE, REWRITE) or installed is None:
        return entries  # nothing installed (nothing to pass through), or nothing to do
    if not (_older(installed, step) and _older(step, target["available"])):
        return entries  # the node is at the step already, or the target is not past it
    component = _intermediate(components, rule["name"], step)
    rule_word = "required_versions"
    if component is None:
        entries[index] = dict(target, action=SKIP, policy=rule_word,
                              reason="needs %s first (the node has %s; required_versions), which is not in the repository" % (step, installed))
        return entries
    refused = site_refusal(component, policy)
    if refused:
        entries[index] = dict(target, action=SKIP, policy=rule_word,
                              reason="needs %s first (the node has %s), which the site policy refuses: %s" % (step, installed, refused[1]))
        return entries
    first = dict(_entry(component, UPGRADE, "required intermediate version before %s: installed %s is older than %s" % (
        target["available"], installed, step), installed, "older", target.get("detection")), policy=rule_word)
    if (component.get("reboot") or "none") != "none":
        then = dict(target, action=SKIP, policy=rule_word, reason="waits for %s to be activated (it may need a reboot: reboot %s); "
                    "%s installs in the next run, after the reboot" % (step, component.get("reboot"), target["available"]))
    else:
        then = dict(target, policy=rule_word, requires=list(target.get("requires") or []) + [component["name"]],
                    reason="%s, after the required intermediate version %s" % (target["reason"], step))
    rest = [e for i, e in enumerate(entries) if i != index and e["name"] != component["name"]]
    place = sum(1 for i in range(index) if entries[i]["name"] != component["name"])
    return rest[:place] + [first, then] + rest[place:]


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
