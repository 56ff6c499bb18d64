#!/usr/bin/python
# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: repository
author: fleet.firmware developers (@fleet-firmware)
short_description: Build, refresh and validate a firmware repository manifest
version_added: 0.1.0
description:
  - A repository is a folder of component files (firmware, drivers, software) plus C(manifest.yml),
    which describes each component. The format is documented in C(docs/repository.md) of the collection.
  - With O(state=present) the module builds or refreshes the manifest from the folder. It hashes
    every file (SHA-256) and records its size, keeps every hand-written field, and adds a stub
    for each file that no component names yet. It then validates the result.
  - With O(state=validated) the module only validates and never writes.
  - Validation reports every problem, each naming the component and the field. It checks unknown keys,
    missing required fields, missing files, hash and size mismatches, dependency cycles and
    unknown dependencies, versions that cannot be compared, detect and install settings that
    do not exist for the component's OS, and file names that escape the folder (C(..),
    absolute names, symbolic links that lead out of the folder).
  - "B(Runs on the controller), where the repository lives. Use C(delegate_to: localhost) with
    C(run_once: true), or run it in a play on C(localhost). Nodes never read the manifest; they
    get the components from the returned RV(components)."
options:
  path:
    description:
      - The repository folder on the controller.
    type: path
    required: true
  manifest:
    description:
      - The manifest's file name, relative to O(path).
    type: str
    default: manifest.yml
  state:
    description:
      - V(present) builds or refreshes the manifest (writes it when something changed), then validates it.
      - V(validated) validates the manifest as it is and changes nothing.
    type: str
    choices: [present, validated]
    default: present
  new_files:
    description:
      - What O(state=present) does with files of the folder that no component names.
      - V(add) adds a stub component with what the file name tells (name, install kind, OS). The
        fields only a person can know (C(version), C(detect), often C(kind)) are left empty, and
        validation fails until they are filled in.
      - V(ignore) leaves them out.
      - Hidden files, C(*.sig), C(*.asc), C(*.sha256), C(*.md), C(*.txt), C(README*) and the manifest itself are never components.
    type: str
    choices: [add, ignore]
    default: add
  missing_files:
    description:
      - What O(state=present) does with components whose file is gone.
      - V(keep) keeps them, and validation reports the missing file. V(remove) drops them from the manifest.
    type: str
    choices: [keep, remove]
    default: keep
  verify:
    description:
      - Check every file against its C(sha256) when validating. Without it only sizes are compared.
    type: bool
    default: true
  fail_on_problems:
    description:
      - Fail when validation finds problems. With V(false) the problems are only returned in RV(problems).
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Reports what would be written; writes nothing.
  diff_mode:
    support: full
    description: Shows the manifest before and after.
  platform:
    support: full
    platforms: [posix]
    description: Runs on the controller (delegate to localhost).
notes:
  - YAML comments in C(manifest.yml) are not kept when the module rewrites it. Hand-written fields
    are kept, and fields are written in a fixed order.
  - Values of a component's C(environment) are replaced by V(********) in RV(components).
seealso:
  - module: fleet.firmware.inventory
"""

EXAMPLES = r"""
- name: Refresh the manifest of the repository and validate it (on the controller)
  fleet.firmware.repository:
    path: /srv/firmware/2024.04
  delegate_to: localhost
  run_once: true
  register: repo

- name: Only validate (for example in CI), reporting problems without failing
  fleet.firmware.repository:
    path: /srv/firmware/2024.04
    state: validated
    fail_on_problems: false
  delegate_to: localhost
  run_once: true
  register: check

- name: Inventory and plan on every node against the validated components
  fleet.firmware.inventory:
    baseline: "{{ repo.components }}"
"""

RETURN = r"""
manifest:
  description: The manifest's path.
  returned: always
  type: str
  sample: /srv/firmware/2024.04/manifest.yml
components:
  description:
    - The manifest's components in dependency order (a component after everything it requires),
      as given to P(fleet.firmware.inventory#module) and the deploy action. Each has the manifest's
      fields plus C(path), the file's absolute path on the controller.
    - Empty when validation found problems.
  returned: always
  type: list
  elements: dict
  sample:
    - name: bios-u30
      version: U30 v2.92 (11/03/2023)
      kind: firmware
      os: linux
      file: bios/U30_2.92.scexe
      sha256: 0f3a9c1e5b7d2f4a6c8e0b1d3f5a7c9e1b3d5f7a9c0e2b4d6f8a1c3e5b7d9f0a
      size: 33554432
      detect: {method: dmi, format: "{bios_version} v{bios_release} ({bios_date})"}
      install: smart_component
      reboot: if_rc
      requires: []
      path: /srv/firmware/2024.04/bios/U30_2.92.scexe
problems:
  description: Every validation problem, each with C(component) (empty for the manifest itself), C(field) and C(message).
  returned: always
  type: list
  elements: dict
  sample:
    - {component: nic, field: sha256, message: "hash mismatch for nic.cab: manifest 0f3a..., file 9b2c..."}
changes:
  description: What the refresh changed (or would change in check mode).
  returned: always
  type: list
  elements: str
  sample: ["updated tool: sha256 9b2c...", "added cp045678 for cp045678.exe (fill in the fields left empty)"]
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.firmware.plugins.module_utils import manifest as manifest_mod

MASK = "********"


def read_existing(path):
    # type: (str) -> tuple
    """(text or "" when absent, parsed data)."""
    if not os.path.exists(path):
        return "", {"format": manifest_mod.FORMAT, "components": []}
    with open(path, "r", encoding="utf-8") as handle:
        text = handle.read()
    return text, manifest_mod.parse_text(text, path)


def write_atomically(module, path, text):
    # type: (AnsibleModule, str, str) -> None
    mode = os.stat(path).st_mode & 0o7777 if os.path.exists(path) else 0o644
    fd, temp = tempfile.mkstemp(prefix=".manifest-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temp, mode)
        module.atomic_move(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def public_components(components):
    # type: (list) -> list
    result = []
    for component in components:
        entry = dict(component)
        if entry.get("environment"):
            entry["environment"] = {key: MASK for key in entry["environment"]}
        result.append(entry)
    return result


def run_module(module):
    # type: (AnsibleModule) -> None
    params = module.params
    root = params["path"]
    if not os.path.isdir(root):
        module.fail_json(msg="repository folder %s does not exist" % root)
    path, why = manifest_mod.resolve_file(root, params["manifest"])
    if path is None:
        module.fail_json(msg="manifest: %s" % why)
    try:
        before_text, data = read_existing(path)
    except manifest_mod.ManifestError as exc:
        module.fail_json(msg=str(exc), problems=[p._asdict() for p in exc.problems])
    changes = []
    after_text = before_text
    if params["state"] == "present":
        data, changes = manifest_mod.refresh(root, data, manifest_name=params["manifest"].replace(os.sep, "/"),
                                             add_new=params["new_files"] == "add", remove_missing=params["missing_files"] == "remove")
        after_text = manifest_mod.dump(data)
        if not before_text:
            changes.insert(0, "created %s" % path)
    changed = after_text != before_text
    if changed and not module.check_mode:
        write_atomically(module, path, after_text)
    problems = manifest_mod.validate(data, root, verify=params["verify"])
    components = manifest_mod.ordered_components(root, data) if not problems else []
    result = dict(changed=changed, manifest=path, changes=changes, problems=[p._asdict() for p in problems],
                  components=public_components(components))
    if module._diff:
        result["diff"] = dict(before=before_text, after=after_text, before_header=path, after_header=path)
    if problems and params["fail_on_problems"]:
        module.fail_json(msg="%d problem(s) in %s: %s" % (len(problems), path, "; ".join(manifest_mod.format_problem(p) for p in problems)),
                         **result)
    module.exit_json(**result)


def main():
    # type: () -> None
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            manifest=dict(type="str", default=manifest_mod.MANIFEST_NAME),
            state=dict(type="str", choices=["present", "validated"], default="present"),
            new_files=dict(type="str", choices=["add", "ignore"], default="add"),
            missing_files=dict(type="str", choices=["keep", "remove"], default="keep"),
            verify=dict(type="bool", default=True),
            fail_on_problems=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    run_module(module)


if __name__ == "__main__":
    main()
