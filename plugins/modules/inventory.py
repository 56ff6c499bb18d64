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
  - Side-effect free. It only reads files, package databases, DMI values, fwupd and the registry,
    and runs the C(detect) commands of the manifest. It never changes the node, also outside check mode.
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
    description: Python on Linux nodes, the PowerShell twin C(inventory.ps1) on Windows nodes (C(registry), C(file), C(command), C(dmi) detection).
notes:
  - C(applies_to) compares DMI values (C(/sys/class/dmi/id) on Linux). A field that cannot be
    read does not match, so the component is skipped with the reason.
  - Windows itself cannot run in the collection's test lab. The PowerShell twin is checked by
    parsing and unit tests of its logic only.
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
    - C(detection) holds C(state) (V(present), V(absent), V(error)), C(version), C(scheme), C(method)
      and C(reason); it is null when the component was skipped before detection (other OS, not selected,
      does not apply).
  returned: always
  type: list
  elements: dict
  sample:
    - name: bios-u30
      kind: firmware
      os: linux
      installed: U30 v2.90 (07/20/2023)
      available: U30 v2.92 (11/03/2023)
      action: upgrade
      reason: installed U30 v2.90 (07/20/2023) is older than U30 v2.92 (11/03/2023)
      comparison: older
      requires: []
      detection: {state: present, version: U30 v2.90 (07/20/2023), scheme: auto, method: dmi, reason: ""}
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

from ansible_collections.fleet.firmware.plugins.module_utils import plan as plan_mod


def run_module(module):
    # type: (AnsibleModule) -> None
    params = module.params
    for index, component in enumerate(params["baseline"]):
        missing = [key for key in ("name", "version", "os", "detect") if not component.get(key)]
        if missing:
            module.fail_json(msg="baseline entry %d (%s): missing %s" % (index + 1, component.get("name", "no name"), ", ".join(missing)))
    policy = {key: params[key] for key in ("allow_downgrade", "rewrite", "force", "only", "components")}
    entries = plan_mod.plan(params["baseline"], policy, os_name="linux", timeout=params["timeout"])
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
        ),
        supports_check_mode=True,
    )
    run_module(module)


if __name__ == "__main__":
    main()
