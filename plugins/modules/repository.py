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
        (RV(components[].deployable) false, with the reason in RV(components[].not_deployable)).
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
from ansible_collections.fleet.firmware.plugins.module_utils.baseline import trust as trust_mod

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
    manifest_name = params["manifest"].replace(os.sep, "/")
    anchors = open_trust(module, params)
    was_signed = guard_signed_manifest(module, params, root, manifest_name, data, anchors)
    changes = []
    after_text = before_text
    if params["state"] == "present":
        data, changes = manifest_mod.refresh(root, data, manifest_name=params["manifest"].replace(os.sep, "/"),
                                             add_new=params["new_files"] == "add", remove_missing=params["missing_files"] == "remove")
        after_text = manifest_mod.dump(data)
        if not before_text:
            changes.insert(0, "created %s" % path)
    changed = after_text != before_text
    refuse_stale_signature(module, params, manifest_name, was_signed, changed)
    if changed and not module.check_mode:
        write_atomically(module, path, after_text)
    problems = manifest_mod.validate(data, root, verify=params["verify"])
    signed = sign_if_asked(module, params, root, manifest_name, anchors, changed) if not problems else []
    changes.extend(signed)
    changed = changed or bool(signed)
    components = manifest_mod.ordered_components(root, data) if not problems else []
    components, verdicts, manifest_verdict = signature_verdicts(module, params, root, manifest_name, components, anchors)
    result = dict(changed=changed, manifest=path, changes=changes, problems=[p._asdict() for p in problems],
                  components=public_components(components), signatures=verdicts, manifest_signature=manifest_verdict)
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
