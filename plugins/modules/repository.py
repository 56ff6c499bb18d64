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
  - With O(spp) the module imports an HPE Service Pack for ProLiant instead, and any number of
    additional-package (hotfix) folders layered over it (O(additional)). Every Smart Component's
    C(cp*.xml) becomes a component (name, description, version and revision, release date, OS,
    kind, install kind, ROM families as C(applies_to), devices and their target identifiers,
    criticality, reboot, timeout, detection, signature files). Components for VMware or an OS the
    collection does not know are returned in RV(not_imported) with the reason; C(.fwpkg) packages
    are imported as not deployable (only a BMC can flash them). The mapping is documented in
    C(docs/repository.md), section "From an SPP".
  - A manifest is written only when it validates. When validation fails, the previous manifest
    stays as it was, byte for byte, and the text that was not written is returned in RV(proposed).
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
      - The repository folder on the controller, where the manifest is written.
      - With O(spp) it may be the SPP folder itself when that is writable, or any other folder (an
        SPP on a read-only ISO). Imported components carry their C(source) folder, and their C(file)
        and C(signature) are relative to it.
    type: path
    required: true
  spp:
    description:
      - An SPP folder to import (a mirror, an extracted or a mounted ISO; only read). The current
        layout (C(packages/) + C(manifest/), SPP 2017.07.0 and later) and the older one
        (C(hp/swpackages/)) are both read. When both exist, C(packages/) is used.
      - Each import replaces the components of the previous import; hand-written components of the
        same manifest (without C(identity) and C(source)) are kept as written.
      - Needs the Python package C(defusedxml) on the controller (C(cp*.xml) is untrusted input).
    type: path
  additional:
    description:
      - Additional-package (hotfix) folders layered over O(spp), in order. A folder holds its
        C(cp*.xml) at the top or in C(packages/).
      - The same C(cp*.xml) identity for the same OS is the same component. Every version is kept.
        The newest is named after the identity (C(cp045678)); each older one is named
        C(<identity>-<version>[-<revision>]) and is skipped by the plan unless the policy's
        C(components) names it.
      - The same identity and version in two folders with different bytes is an error naming both files.
    type: list
    elements: path
    default: []
  overrides:
    description:
      - "Fields to set on imported components, by component name (C({cp045678: {timeout: 7200}})).
        A field set to V(null) is removed. Every field but C(name) can be overridden, and the result
        is validated like any manifest."
      - An override naming no imported component is an error. Overrides are applied at each import,
        so keep them in the playbook.
    type: dict
    default: {}
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
      - Hidden files, C(*.sig), C(*.compsig), C(*.asc), C(*.sha256), C(*.md), C(*.txt), C(README*) and the manifest itself are never components.
      - A stub makes validation fail until a person fills it in, so nothing is written; copy
        RV(proposed) to the manifest and fill in the empty fields.
      - Not used with O(spp).
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
  trust:
    description:
      - The folder of trust anchors on the controller that component and manifest signatures must chain to.
      - Certificates (C(*.pem), C(*.crt), C(*.cer), C(*.der), PEM or DER) for C(.compsig) files, C(manifest.yml.sig)
        and Authenticode; ASCII-armoured or binary GPG public keys (C(*.asc), C(*.gpg)) for RPM header signatures.
        Only these anchors are trusted, never the system's certificate store or rpm keyring.
      - A file in the folder that cannot be read is an error naming it.
    type: path
  signatures:
    description:
      - V(required) (the default) marks every component without a valid signature not deployable
        (C(deployable=false) in RV(components), with the reason in C(not_deployable)).
        A component is trusted by its own signature (its C(signature) C(.compsig) or C(_partN.compsig) set,
        an RPM's header signature, Authenticode of a C(.exe)), or through a valid signed manifest (C(manifest.yml.sig)).
        A signature that is there but fails always makes the component not deployable.
      - V(warn) checks and reports, but leaves every component deployable; V(off) checks nothing.
        Both print a warning in every run.
      - V(required) without O(trust) is an error.
    type: str
    choices: [required, warn, "off"]
    default: required
  reapprove:
    description:
      - Names of components whose changed file is accepted (its new hash recorded) although the manifest is signed.
      - Under a signed manifest a file whose hash no longer matches is an error naming the component, and
        nothing is written, unless the component is named here. Re-approving changes the manifest, so it
        needs O(sign_cert) and O(sign_key) to sign it again.
    type: list
    elements: str
    default: []
  sign_cert:
    description:
      - Certificate (PEM) to sign the manifest with; the module writes C(manifest.yml.sig) (detached CMS, DER)
        beside the manifest whenever the manifest is written or its signature is missing or does not match.
      - Needs O(sign_key).
    type: path
  sign_key:
    description:
      - Private key (PEM) of O(sign_cert). Read by openssl from the file; keep it 0600.
    type: path
  sign_key_passphrase:
    description:
      - Passphrase of an encrypted O(sign_key). Handed to openssl in a 0600 temporary file, never on a command line.
    type: str
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
requirements:
  - defusedxml (on the controller, with O(spp))
  - asn1crypto (optional, on the controller; reads each C(.compsig) without an extra C(openssl) process)
"""

EXAMPLES = r"""
- name: Refresh the manifest of the repository and validate it (on the controller)
  fleet.firmware.repository:
    path: /srv/firmware/2024.04
    trust: /etc/fleet/trust
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

- name: Import an SPP from a mounted ISO plus a hotfix folder; the manifest lives elsewhere
  fleet.firmware.repository:
    path: /srv/firmware/baseline-2023.10
    spp: /mnt/spp-2023.10.00.00
    additional:
      - /srv/firmware/hotfixes/2023.12
    overrides:
      cp045077:
        timeout: 7200
        requires: [cp045007]
  delegate_to: localhost
  run_once: true
  register: baseline

- name: Say what will never be deployed, and why
  ansible.builtin.debug:
    msg: >-
      {{ baseline.components | rejectattr('deployable') | map(attribute='not_deployable') | list
         + baseline.not_imported | map(attribute='reason') | list }}

- name: Re-approve a replaced file under a signed manifest, and sign the manifest again
  fleet.firmware.repository:
    path: /srv/firmware/2024.04
    trust: /etc/fleet/trust
    reapprove: [nic-firmware]
    sign_cert: /etc/fleet/signing/repo-signer.crt
    sign_key: /etc/fleet/signing/repo-signer.key
    sign_key_passphrase: "{{ vault_repo_signing_passphrase }}"
  delegate_to: localhost
  run_once: true

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
      fields plus C(path), the file's absolute path on the controller, and C(deployable) (V(true)
      unless the manifest says otherwise; then C(not_deployable) says why).
    - Empty when validation found problems.
  returned: always
  type: list
  elements: dict
  contains:
    deployable:
      description: Whether the component may be planned for install (V(false) for a BMC-only package, or without a valid signature).
      returned: always
      type: bool
    not_deployable:
      description: Why not, when C(deployable) is V(false).
      returned: when deployable is false
      type: str
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
      deployable: true
    - name: cp037722
      identity: cp037722
      description: "Online Flash Component for Windows x64 - Gen10 NVMe Backplane PIC Firmware: This component updates ..."
      version: "1.20"
      revision: D
      release_date: "2018-10-27"
      criticality: optional
      kind: firmware
      os: windows
      source: /mnt/spp-2023.10.00.00
      file: packages/cp037722.exe
      sha256: 9b2c4e6a8d0f1b3c5e7a9d1f3b5c7e9a0d2f4b6c8e0a1c3e5f7b9d0e2a4c6f8b
      size: 2408448
      signature: packages/cp037722.compsig
      applies_to: {bios_version: "^(I41|U34|U30|U32)"}
      devices: [{name: NVMe Backplane PIC, targets: [00000000-0000-0000-0000-000049535320]}]
      detect: {method: redfish, targets: [00000000-0000-0000-0000-000049535320]}
      install: smart_component
      timeout: 3600
      reboot: if_rc
      requires: []
      path: /mnt/spp-2023.10.00.00/packages/cp037722.exe
      deployable: true
    - name: cp045168
      identity: cp045168
      version: "2.96"
      kind: firmware
      os: linux
      source: /mnt/spp-2023.10.00.00
      file: packages/ilo5_296.fwpkg
      deployable: false
      not_deployable: only a BMC can flash it (in-band deployment impossible)
signatures:
  description:
    - The signature verdict of every component (empty with O(signatures=off) or when validation found problems).
    - C(reason) is one of V(not signed), V(signature invalid), V(signature file missing), V(signer not trusted),
      V(signer expired), V(signature format not recognised); C(method) is V(cms), V(rpm), V(authenticode) or
      V(manifest) (trusted through the signed manifest); C(time_basis) is V(timestamp) when the signer's validity
      was judged at a trusted RFC 3161 timestamp, else V(verification).
    - Each component in RV(components) carries the same verdict as C(signature_verdict), and with
      O(signatures=required) a component without a valid one has C(deployable=false) and C(not_deployable), the reason.
  returned: always
  type: list
  elements: dict
  sample:
    - {name: nic-firmware, ok: false, reason: signer not trusted, signer: "", method: cms, time_basis: verification,
       detail: "cp045678.compsig: Verify error: unable to get local issuer certificate"}
signature_warnings:
  description: The warnings of O(signatures=warn) or O(signatures=off) (also shown as Ansible warnings in every run).
  returned: always
  type: list
  elements: str
  sample: ["signatures=warn: components whose signature does not verify are still deployed"]
manifest_signature:
  description: The verdict on C(manifest.yml.sig) (V(not signed) when there is none); null with O(signatures=off).
  returned: always
  type: dict
  sample: {ok: true, reason: "", signer: "CN=repo-signer,O=Example", method: cms, time_basis: verification, detail: ""}
problems:
  description: Every validation problem, each with C(component) (empty for the manifest itself), C(field) and C(message).
  returned: always
  type: list
  elements: dict
  sample:
    - {component: nic, field: sha256, message: "hash mismatch for nic.cab: manifest 0f3a..., file 9b2c..."}
not_imported:
  description:
    - The C(cp*.xml) files of an import that give no component (not C(skipped), which Ansible
      reads as "the task was skipped"), each with C(identity), C(file)
      (relative to C(source)), C(source), C(version) and C(reason) (VMware only, or an OS not recognised).
    - Empty without O(spp).
  returned: always
  type: list
  elements: dict
  sample:
    - {identity: cp045301, file: packages/cp045301.zip, source: /mnt/spp, version: "6.22",
       reason: "for VMware ESXi only (VMware ESXi 8.0): nodes run Linux or Windows"}
proposed:
  description: The manifest that was not written because validation failed (fill it in and save it as the manifest).
  returned: when validation failed and the manifest would have changed
  type: str
changes:
  description: What the refresh changed (or would change in check mode).
  returned: always
  type: list
  elements: str
  sample: ["updated tool: sha256 9b2c...", "added cp045678 for cp045678.exe (fill in the fields left empty)"]
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.fleet.firmware.plugins.module_utils import manifest as manifest_mod
from ansible_collections.fleet.firmware.plugins.module_utils.baseline import spp as spp_mod
from ansible_collections.fleet.firmware.plugins.module_utils.baseline import trust as trust_mod

MASK = "********"
# Fields an override may not change: the name is the override's own key.
NOT_OVERRIDABLE = ("name",)


def read_existing(path):
    # type: (str) -> tuple
    """(text or "" when absent, parsed data)."""
    if not os.path.exists(path):
        return "", {"format": manifest_mod.FORMAT, "components": []}
    with open(path, "r", encoding="utf-8") as handle:
        text = handle.read()
    return text, manifest_mod.parse_text(text, path)


def masked(value):
    # type: (object) -> object
    """A copy of manifest data with every component's environment values replaced by MASK."""
    if isinstance(value, dict):
        return dict((k, dict((name, MASK) for name in v) if k == "environment" and isinstance(v, dict) else masked(v))
                    for k, v in value.items())
    if isinstance(value, list):
        return [masked(v) for v in value]
    return value


def shown_text(text):
    # type: (str) -> str
    """Manifest text as the diff and ``proposed`` show it: with environment values masked (they
    are secret, docs/repository.md); unparsable text is not shown at all."""
    if not text:
        return text
    try:
        return manifest_mod.dump(masked(manifest_mod.parse_text(text, "manifest")))
    except manifest_mod.ManifestError:
        return "(the manifest cannot be parsed; not shown: it may hold secret environment values)\n"


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
    """What the module returns: secrets masked, ``deployable`` always said."""
    result = []
    for component in components:
        entry = dict(component)
        if entry.get("environment"):
            entry["environment"] = {key: MASK for key in entry["environment"]}
        entry.setdefault("deployable", True)
        result.append(entry)
    return result


def is_imported(component):
    # type: (object) -> bool
    """An imported component says where it came from and its cp*.xml identity; a hand-written
    component of the same manifest has neither (or not both) and is kept as written."""
    return isinstance(component, dict) and bool(component.get("identity")) and bool(component.get("source"))


def import_baseline(module, anchors=None):
    # type: (AnsibleModule, object) -> spp_mod.Imported
    """The SPP and additional folders as components; fails (nothing written) on any problem.
    With ``anchors`` each signature is checked while its file is hashed (one read of each file)."""
    if not spp_mod.HAS_DEFUSEDXML:
        module.fail_json(msg=missing_required_lib("defusedxml"))
    hasher = None
    if anchors is not None and module.params["signatures"] != "off":
        def hasher(jobs, workers):
            return trust_mod.hash_and_verify(jobs, anchors, workers)
    try:
        return spp_mod.import_folders(module.params["spp"], module.params["additional"] or [], hasher=hasher)
    except spp_mod.SppError as exc:
        module.fail_json(msg="import failed, nothing written: %s" % exc,
                         problems=[{"component": "", "field": p.element, "message": "%s: %s" % (p.file, p.message), "file": p.file}
                                   for p in exc.problems])


def apply_overrides(module, components, overrides):
    # type: (AnsibleModule, list, dict) -> list
    """Each override (component name -> fields) set on the imported component; a field set to
    null is removed. An override naming no component, or the name itself, is an error."""
    by_name = {c["name"]: c for c in components}
    unknown = sorted(name for name in overrides if name not in by_name)
    if unknown:
        module.fail_json(msg="overrides: %s %s no imported component (known: %s)"
                         % (", ".join(repr(n) for n in unknown), "names" if len(unknown) == 1 else "name", ", ".join(sorted(by_name))))
    for name, fields in sorted(overrides.items()):
        if not isinstance(fields, dict):
            module.fail_json(msg="overrides.%s: must be a mapping of field -> value" % name)
        for key, value in fields.items():
            if key in NOT_OVERRIDABLE:
                module.fail_json(msg="overrides.%s.%s: the name cannot be overridden (it is the key of the override)" % (name, key))
            if value is None:
                by_name[name].pop(key, None)
            else:
                by_name[name][key] = value
    return components


def import_changes(old, new):
    # type: (list, list) -> list
    """What an import changed, component by component (by name)."""
    before = {c.get("name"): c for c in old if is_imported(c)}
    after = {c["name"]: c for c in new}
    changes = []
    for name in sorted(set(after) - set(before)):
        changes.append("imported %s %s from %s" % (name, after[name].get("version"), after[name].get("source")))
    for name in sorted(set(before) - set(after)):
        changes.append("removed %s (no longer in the folders)" % name)
    for name in sorted(set(before) & set(after)):
        fields = sorted(k for k in set(before[name]) | set(after[name]) if before[name].get(k) != after[name].get(k))
        if fields:
            changes.append("updated %s: %s" % (name, ", ".join(fields)))
    return changes


def merge_import(module, root, data, imported, manifest_name):
    # type: (AnsibleModule, str, dict, spp_mod.Imported, str) -> tuple
    """(manifest, changes): the imported components (overrides applied) replace the earlier
    import; hand-written components stay as written (their hashes refreshed; the folder is
    never stubbed: it may be the SPP itself); the format becomes 2."""
    components = apply_overrides(module, [dict(c) for c in imported.components], module.params["overrides"] or {})
    old = list(data.get("components") or [])
    hand_written, refreshed = manifest_mod.refresh(root, {"components": [c for c in old if not is_imported(c)]}, manifest_name=manifest_name,
                                                   add_new=False, remove_missing=module.params["missing_files"] == "remove")
    merged = dict(data)
    merged["format"] = 2
    merged["components"] = components + hand_written["components"]
    return merged, import_changes(old, components) + refreshed


def build(module, root, data, manifest_name, anchors=None):
    # type: (AnsibleModule, str, dict, str, object) -> tuple
    """(manifest, changes, import) for state=present: an import when O(spp) is given, else a refresh."""
    params = module.params
    if params["spp"]:
        imported = import_baseline(module, anchors)
        merged, changes = merge_import(module, root, data, imported, manifest_name)
        return merged, changes, imported
    merged, changes = manifest_mod.refresh(root, data, manifest_name=manifest_name, add_new=params["new_files"] == "add",
                                           remove_missing=params["missing_files"] == "remove")
    return merged, changes, None


# -- signatures (trust): policy, the signed-manifest guard, manifest signing, verdicts


def open_trust(module, params):
    # type: (AnsibleModule, dict) -> object
    """The anchors (None with signatures=off and no trust); fails naming trust or the bad file."""
    for warning in filter(None, [trust_mod.policy_warning(params["signatures"])]):
        module.warn(warning)
    if bool(params["sign_cert"]) != bool(params["sign_key"]):
        module.fail_json(msg="sign_cert and sign_key go together (one of them is missing)")
    try:
        trust_mod.check_policy(params["signatures"], params["trust"])
        return trust_mod.load_anchors(params["trust"]) if params["trust"] else None
    except trust_mod.TrustError as exc:
        module.fail_json(msg=str(exc))


def guard_signed_manifest(module, params, root, manifest_name, data, anchors):
    # type: (AnsibleModule, dict, str, str, dict, object) -> bool
    """Before a refresh: True when the manifest is signed. A changed file under a signed manifest fails
    (naming the component) unless re-approved; a signature that no longer matches fails unless the
    module is given the key to sign again. Nothing has been written yet when it fails."""
    unknown = trust_mod.unknown_names(data, params["reapprove"])
    if unknown:
        module.fail_json(msg="reapprove: %s not in the manifest" % ", ".join(unknown))
    if not os.path.exists(trust_mod.manifest_signature_path(root, manifest_name)):
        return False
    if anchors is not None:
        verdict = trust_mod.verify_manifest(root, anchors, manifest_name)
        if not verdict.ok and not params["sign_cert"] and params["signatures"] == "required":
            module.fail_json(msg="the manifest signature fails: %s (%s); give sign_cert and sign_key to sign the manifest as it is now, "
                             "or remove %s.sig" % (verdict.reason, verdict.detail, manifest_name), manifest_signature=verdict.as_dict())
    if params["state"] == "present":
        problems, _reapproved = trust_mod.changed_files(root, data, params["reapprove"])
        if problems:
            module.fail_json(msg="; ".join(problems), problems=[dict(component="", field="sha256", message=m) for m in problems])
    return True


def refuse_stale_signature(module, params, manifest_name, was_signed, changed):
    # type: (AnsibleModule, dict, str, bool, bool) -> None
    """Before writing: a signed manifest that this run changes needs the key to sign it again."""
    if was_signed and changed and not params["sign_cert"]:
        module.fail_json(msg="%s is signed and this run changes it: give sign_cert and sign_key to sign it again" % manifest_name)


def sign_if_asked(module, params, root, manifest_name, anchors, changed):
    # type: (AnsibleModule, dict, str, str, object, bool) -> list
    """Sign the manifest when asked and needed (written this run, signature missing or not matching)."""
    if not params["sign_cert"]:
        return []
    if not changed:
        if anchors is not None and trust_mod.verify_manifest(root, anchors, manifest_name).ok:
            return []
        if anchors is None and os.path.exists(trust_mod.manifest_signature_path(root, manifest_name)):
            return []  # nothing to check it against: re-signed only when the manifest is written
    if module.check_mode:
        return ["would sign %s" % manifest_name]
    secret = trust_mod.passphrase_file(params["sign_key_passphrase"], root) if params["sign_key_passphrase"] else None
    try:
        trust_mod.sign_manifest(root, params["sign_cert"], params["sign_key"], passphrase_file=secret, manifest_name=manifest_name)
    except trust_mod.TrustError as exc:
        module.fail_json(msg=str(exc))
    finally:
        if secret:
            os.unlink(secret)
    return ["signed %s" % manifest_name]


def signature_verdicts(module, params, root, manifest_name, components, anchors):
    # type: (AnsibleModule, dict, str, str, list, object) -> tuple
    """(components with verdicts and deployable, per-component verdicts, manifest verdict)."""
    if anchors is None or params["signatures"] == "off":
        return components, [], None
    checked, manifest_verdict = trust_mod.check_repository(root, components, anchors, params["signatures"], manifest_name)
    if params["signatures"] == "warn":
        for line in trust_mod.untrusted(checked):
            module.warn("signatures=warn: %s (deployable anyway)" % line)
    verdicts = [dict(name=c["name"], **c["signature_verdict"]) for c in checked]
    return checked, verdicts, manifest_verdict.as_dict()


def signature_warnings(params, components):
    # type: (dict, list) -> list
    """What signatures=warn/off warned about, for the result (Ansible shows and then drops ``warnings``)."""
    lines = list(filter(None, [trust_mod.policy_warning(params["signatures"])]))
    if params["signatures"] == "warn":
        lines.extend("signatures=warn: %s (deployable anyway)" % line for line in trust_mod.untrusted(components))
    return lines


def run_module(module):
    # type: (AnsibleModule) -> None
    params = module.params
    root = params["path"]
    if not os.path.isdir(root):
        module.fail_json(msg="repository folder %s does not exist" % root)
    path, why = manifest_mod.resolve_file(root, params["manifest"])
    if path is None:
        module.fail_json(msg="manifest: %s" % why)
    if params["spp"] and params["state"] != "present":
        module.fail_json(msg="spp imports with state=present; state=validated only validates the manifest as it is")
    for option in ("additional", "overrides"):
        if params[option] and not params["spp"]:
            module.fail_json(msg="%s needs spp (the SPP folder the additional packages are layered over)" % option)
    try:
        before_text, data = read_existing(path)
    except manifest_mod.ManifestError as exc:
        module.fail_json(msg=str(exc), problems=[p._asdict() for p in exc.problems])
    manifest_name = params["manifest"].replace(os.sep, "/")
    anchors = open_trust(module, params)
    was_signed = guard_signed_manifest(module, params, root, manifest_name, data, anchors)
    changes, imported = [], None
    after_text = before_text
    if params["state"] == "present":
        data, changes, imported = build(module, root, data, manifest_name, anchors)
        after_text = manifest_mod.dump(data)
        if not before_text:
            changes.insert(0, "created %s" % path)
    # The files were hashed moments ago by the import: validation does not read them again.
    problems = manifest_mod.validate(data, root, verify=params["verify"], known_hashes=imported.hashes if imported else None)
    changed = after_text != before_text and not problems
    refuse_stale_signature(module, params, manifest_name, was_signed, changed)
    # A manifest that fails validation is never written: the previous one stays byte for byte.
    if changed and not module.check_mode:
        write_atomically(module, path, after_text)
    signed = sign_if_asked(module, params, root, manifest_name, anchors, changed) if not problems else []
    changes.extend(signed)
    changed = changed or bool(signed)
    components = manifest_mod.ordered_components(root, data) if not problems else []
    components, verdicts, manifest_verdict = signature_verdicts(module, params, root, manifest_name, components, anchors)
    result = dict(changed=changed, manifest=path, changes=changes, problems=[p._asdict() for p in problems],
                  components=public_components(components), not_imported=imported.skipped if imported else [],
                  signatures=verdicts, manifest_signature=manifest_verdict,
                  signature_warnings=signature_warnings(params, components))
    if problems and after_text != before_text:
        result["proposed"] = shown_text(after_text)
    if module._diff:
        result["diff"] = dict(before=shown_text(before_text), after=shown_text(after_text if not problems else before_text),
                              before_header=path, after_header=path)
    if problems and params["fail_on_problems"]:
        module.fail_json(msg="%d problem(s) in %s, nothing written: %s" % (len(problems), path, "; ".join(manifest_mod.format_problem(p) for p in problems)),
                         **result)
    module.exit_json(**result)


def main():
    # type: () -> None
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            manifest=dict(type="str", default=manifest_mod.MANIFEST_NAME),
            state=dict(type="str", choices=["present", "validated"], default="present"),
            spp=dict(type="path"),
            additional=dict(type="list", elements="path", default=[]),
            overrides=dict(type="dict", default={}),
            new_files=dict(type="str", choices=["add", "ignore"], default="add"),
            missing_files=dict(type="str", choices=["keep", "remove"], default="keep"),
            verify=dict(type="bool", default=True),
            fail_on_problems=dict(type="bool", default=True),
            trust=dict(type="path"),
            signatures=dict(type="str", choices=list(trust_mod.POLICIES), default="required"),
            reapprove=dict(type="list", elements="str", default=[]),
            sign_cert=dict(type="path"),
            sign_key=dict(type="path", no_log=False),
            sign_key_passphrase=dict(type="str", no_log=True),
        ),
        supports_check_mode=True,
    )
    run_module(module)


if __name__ == "__main__":
    main()
