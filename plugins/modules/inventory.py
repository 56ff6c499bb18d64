#!/usr/bin/python
# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: inventory
author: fleet.firmware developers (@fleet-firmware)
short_description: What is installed on a node, and what each repository component would do
version_added: 0.1.0
description:
  - HP SUM's inventory and analysis steps. For every component of a repository baseline, the
    module finds the installed version on the node with the component's C(detect) method. It then
    compares that version with the component's version and decides an action under the policy.
    The action is V(install) (nothing installed), V(upgrade), V(downgrade), V(rewrite) or V(skip),
    always with a reason.
  - Side-effect free. It only reads files, package databases, DMI values, fwupd, the registry and
    the BMC's Redfish firmware inventory, and runs the C(detect) commands of the manifest. It never
    changes the node, also outside check mode.
  - Detection without hand-written rules, as an imported SPP baseline has it. The system ROM is
    read from DMI, packaged drivers and software from the package manager, and device firmware from
    the BMC's Redfish firmware inventory, matched by the component's target identifiers.
    Where nothing can tell, the Smart Component decides for itself (C(detect.method=component)); the
    plan then says V(install) with the reason C(the component decides (its "not needed" return code)).
  - The BMC (an iLO) is asked once per node and run, from the node by default, at the address of its
    host interface (O(redfish_address)), because the controller often cannot reach the management
    network. With O(redfish_from=controller) the controller asks the BMC and hands the inventory to
    the node; the credentials then never leave the controller.
  - The deploy action and the node agent use the same detection and comparison code, so the
    inventory, the check mode of a deployment and the check after a reboot always agree.
  - Versions are compared as dotted numbers, with one trailing letter (V(2.10a)), as dates
    (V(2024.04.00.00)), and in vendor forms such as V(U30 v2.90 (07/20/2023)). Package versions
    follow dpkg or rpm rules. Two versions that cannot be compared give the comparison
    V(unknown) with the reason, and the action V(skip) unless O(force=true). The module never guesses.
options:
  baseline:
    description:
      - The repository's components, as returned in C(components) by P(fleet.firmware.repository#module)
        (already validated and in dependency order). Each needs at least C(name), C(version), C(os) and C(detect).
        C(kind) is needed for O(only), and C(applies_to) is used when present. Other fields are ignored.
    type: list
    elements: dict
    required: true
  allow_downgrade:
    description: Plan a V(downgrade) when the installed version is newer than the component's.
    type: bool
    default: false
  rewrite:
    description: Plan a V(rewrite) (install the same version again) when the installed version is current.
    type: bool
    default: false
  force:
    description:
      - Plan an install whatever is installed. A newer version gives V(downgrade), the same version
        gives V(rewrite), and an installed version that cannot be detected or compared gives V(install).
    type: bool
    default: false
  only:
    description: Which components to consider; drivers count as software. The others get V(skip).
    type: str
    choices: [all, firmware, software]
    default: all
  components:
    description: Names of the components to consider (empty means all). The others get V(skip).
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds each detection (a command, C(dpkg-query), C(fwupdmgr)) may take.
    type: float
    default: 30
  redfish_address:
    description:
      - The BMC's address for C(redfish) detection, as the node (or, with O(redfish_from=controller),
        the controller) reaches it. On an iLO asked from the node this is the host interface's address.
      - A host name, an IPv4 or IPv6 literal (with a port as V(host:port) or V([fd00::5]:8443)), or a
        URL V(https://host:port). V(http://) is accepted for labs only (the credentials then travel in clear).
      - Without it, every component with C(redfish) detection gets C(detection.state=error) and
        action V(skip) (never "not installed").
    type: str
  redfish_username:
    description: The BMC account (HTTP Basic authentication, sent to O(redfish_address) only, never after a redirect).
    type: str
  redfish_password:
    description: The BMC account's password. It is never part of a result, a log or a command line.
    type: str
  redfish_validate_certs:
    description: Check the BMC's TLS certificate (against O(redfish_ca_path), else the system's CA bundle).
    type: bool
    default: true
  redfish_ca_path:
    description:
      - A PEM file with the CA that signed the BMC's certificate. With O(redfish_from=node) it is a
        path on the node, with O(redfish_from=controller) a path on the controller.
    type: path
  redfish_timeout:
    description: Seconds each request to the BMC may take.
    type: float
    default: 30
  redfish_from:
    description:
      - Who asks the BMC. V(node) (the default) asks from the node, through its host interface.
      - V(controller) asks from the controller and passes the inventory to the node with
        O(redfish_inventory); the node then never sees the credentials. The action does that
        on POSIX and Windows hosts alike.
    type: str
    choices: [node, controller]
    default: node
  redfish_inventory:
    description:
      - The BMC's firmware inventory items (the C(Members) of
        C(/redfish/v1/UpdateService/FirmwareInventory?$expand=.)), used instead of asking the BMC.
      - Set by the action for O(redfish_from=controller); it may also be given by hand (an inventory
        fetched some other way).
    type: list
    elements: dict
  redfish_inventory_error:
    description:
      - Why the controller could not read the BMC's inventory (set by the action for O(redfish_from=controller)).
        Every component with C(redfish) detection then gets C(detection.state=error) with this reason.
    type: str
attributes:
  check_mode:
    support: full
    description: The module only reads; in check mode it does the same.
  diff_mode:
    support: none
    description: Nothing changes.
  platform:
    support: full
    platforms: [posix, windows]
    description:
      - Python on Linux nodes, the PowerShell twin C(inventory.ps1) on Windows nodes (C(registry), C(file), C(command), C(dmi)
        and C(component) detection; C(redfish) detection is not supported on Windows nodes yet and gives C(error)).
notes:
  - C(applies_to) compares DMI values (C(/sys/class/dmi/id) on Linux). A field that cannot be
    read does not match, so the component is skipped with the reason.
  - Windows itself cannot run in the collection's test lab. The PowerShell twin is checked by
    parsing and unit tests of its logic only.
  - C(redfish) matching rule. An inventory item matches when one of its target identifiers
    (C(Oem.Hpe.Targets), case ignored) is one of the component's C(detect.targets), and its
    C(Name) matches C(detect.name) when that is given. Several matching items (a power supply in
    two bays) give the lowest of their versions. Items whose versions cannot be ordered give C(error).
seealso:
  - module: fleet.firmware.repository
"""

EXAMPLES = r"""
- name: Validate the repository on the controller
  fleet.firmware.repository:
    path: /srv/firmware/2024.04
    state: validated
  delegate_to: localhost
  run_once: true
  register: repo

- name: What would an update do on each node?
  fleet.firmware.inventory:
    baseline: "{{ repo.components }}"
  register: plan

- name: Show the components that would change
  ansible.builtin.debug:
    msg: "{{ plan.inventory | rejectattr('action', 'eq', 'skip') | map(attribute='name') | list }}"

- name: Device firmware from the iLO, asked from each node through its host interface
  fleet.firmware.inventory:
    baseline: "{{ repo.components }}"
    redfish_address: 16.1.15.1
    redfish_username: "{{ ilo_user }}"
    redfish_password: "{{ ilo_password }}"
    redfish_ca_path: /etc/pki/ilo-ca.pem

- name: The same, asked from the controller (the management network is reachable from there)
  fleet.firmware.inventory:
    baseline: "{{ repo.components }}"
    redfish_from: controller
    redfish_address: "{{ ilo_address }}"
    redfish_username: "{{ ilo_user }}"
    redfish_password: "{{ ilo_password }}"

- name: Only firmware, allowing downgrades
  fleet.firmware.inventory:
    baseline: "{{ repo.components }}"
    only: firmware
    allow_downgrade: true
"""

RETURN = r"""
inventory:
  description:
    - One entry per component of O(baseline), in the same order.
    - C(installed) is the installed version (null when not installed or not detectable), C(available)
      the component's version, and C(action) one of V(install), V(upgrade), V(downgrade), V(rewrite), V(skip).
    - C(reason) explains the action. C(comparison) is V(older), V(same), V(newer) or V(unknown) (the
      installed version against the available one; null when nothing was compared).
    - C(detection) holds C(state) (V(present), V(absent), V(error), V(deferred) for C(component)),
      C(version), C(scheme), C(method), C(reason) and C(source); C(redfish) adds C(devices), the
      matching inventory items (C(id), C(name), C(context), C(version)). It is null when the component
      was skipped before detection (other OS, not selected, does not apply).
    - C(source) says where the installed version came from (for example V(SMBIOS (DMI\) of the node),
      V(the rpm database), V(the BMC's Redfish firmware inventory of https://16.1.15.1 (asked from the node\)),
      V(the Smart Component itself)); null when nothing was detected.
    - >-
      C(not_deployable) says why the component can never go to this node, for a "why not deployable"
      column. The repository holds it back (V(not deployable: only a BMC can flash it (in-band deployment
      impossible\)), a signature that does not verify, V(superseded by cp045014 ...)), it is for another OS
      (V(for windows nodes, this node runs linux)), or its C(applies_to) does not match the node's DMI
      (V(does not apply to this node: ...)). Null when it could be deployed here, whatever C(action) is
      (a component the policy leaves out, such as one not in O(components), has a C(reason) but no C(not_deployable)).
  returned: always
  type: list
  elements: dict
  sample:
    - name: ilo5
      kind: firmware
      os: linux
      installed: null
      available: "2.96"
      action: skip
      reason: "not deployable: only a BMC can flash it (in-band deployment impossible)"
      not_deployable: "not deployable: only a BMC can flash it (in-band deployment impossible)"
      comparison: null
      requires: []
      source: null
      detection: null
    - name: bios-u30
      kind: firmware
      os: linux
      installed: U30 v2.90 (07/20/2023)
      available: U30 v2.92 (11/03/2023)
      action: upgrade
      reason: installed U30 v2.90 (07/20/2023) is older than U30 v2.92 (11/03/2023)
      comparison: older
      requires: []
      not_deployable: null
      source: SMBIOS (DMI) of the node
      detection: {state: present, version: U30 v2.90 (07/20/2023), scheme: auto, method: dmi, reason: "", source: SMBIOS (DMI) of the node}
summary:
  description: How many components get each action.
  returned: always
  type: dict
  sample: {install: 1, upgrade: 2, downgrade: 0, rewrite: 0, skip: 5}
update_needed:
  description: Whether any component's action is other than V(skip).
  returned: always
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.firmware.plugins.module_utils import detect as detect_mod
from ansible_collections.fleet.firmware.plugins.module_utils import plan as plan_mod


def redfish_settings(params):
    # type: (dict) -> dict
    """The BMC settings for the plan (empty without an address: redfish detection then says so)."""
    if not params.get("redfish_address"):
        return {}
    if params.get("redfish_inventory") is not None or params.get("redfish_inventory_error"):
        # Asked by the controller: the address only names the source.
        return {"address": params["redfish_address"], "origin": "controller"}
    return {"address": params["redfish_address"], "username": params.get("redfish_username"), "password": params.get("redfish_password"),
            "validate_certs": params["redfish_validate_certs"], "ca_path": params.get("redfish_ca_path"),
            "timeout": params["redfish_timeout"], "origin": "node"}


def run_module(module):
    # type: (AnsibleModule) -> None
    params = module.params
    for index, component in enumerate(params["baseline"]):
        missing = [key for key in ("name", "version", "os", "detect") if not component.get(key)]
        if missing:
            module.fail_json(msg="baseline entry %d (%s): missing %s" % (index + 1, component.get("name", "no name"), ", ".join(missing)))
    settings = redfish_settings(params)
    problems = detect_mod.redfish_settings_problems(settings) if settings.get("origin") == "node" else []
    if problems:
        module.fail_json(msg="redfish: %s" % detect_mod.mask("; ".join(problems), settings))
    policy = {key: params[key] for key in ("allow_downgrade", "rewrite", "force", "only", "components")}
    entries = plan_mod.plan(params["baseline"], policy, os_name="linux", timeout=params["timeout"],
                            redfish=settings, redfish_inventory=params["redfish_inventory"],
                            redfish_error=params["redfish_inventory_error"])
    counts, needed = plan_mod.summary(entries)
    module.exit_json(changed=False, inventory=entries, summary=counts, update_needed=needed)


def main():
    # type: () -> None
    module = AnsibleModule(
        argument_spec=dict(
            baseline=dict(type="list", elements="dict", required=True),
            allow_downgrade=dict(type="bool", default=False),
            rewrite=dict(type="bool", default=False),
            force=dict(type="bool", default=False),
            only=dict(type="str", choices=list(plan_mod.ONLY), default="all"),
            components=dict(type="list", elements="str", default=[]),
            timeout=dict(type="float", default=30.0),
            **detect_mod.REDFISH_OPTIONS,
            redfish_from=dict(type="str", choices=["node", "controller"], default="node"),
            redfish_inventory=dict(type="list", elements="dict"),
            redfish_inventory_error=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    run_module(module)


if __name__ == "__main__":
    main()
