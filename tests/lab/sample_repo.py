# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A sample repository of fake components for the lab (`make demo`, tests).

Each component is a shell script that sleeps a little, writes its version into a state folder on
the node (what a real installer changes, detected by the manifest's `file` method) and exits with
a chosen code. A component can fail on chosen nodes only (by their hostname), which is how the
tests make a canary fail.

    python3 tests/lab/sample_repo.py OUT_DIR --state-dir /var/lib/fleet-lab-13/node [--fail-on lin01] [--pki PKI_DIR]

The repository is signed the way a real one is (docs/repository.md, "Signatures and trust
anchors"): every component has a detached CMS signature (``<file>.compsig``, its ``signature``
field) and the manifest has ``manifest.yml.sig``, both by a lab CA's code-signing certificate
(tests/lab/spp_pki.py). The CLI writes that lab PKI into ``--pki`` (default: ``OUT_DIR/../pki``,
keys 0600); ``PKI_DIR/anchors`` is the folder to pass as ``trust``.
"""
from __future__ import annotations

import argparse
import hashlib
import shlex
from pathlib import Path

import yaml

import spp_pki

# name, version, kind, requires, seconds the install takes
SAMPLE = (
    ("bmc-firmware", "2.31", "firmware", (), 1),
    ("nic-firmware", "14.2.0", "firmware", (), 1),
    ("storage-driver", "5.6.1", "software", ("nic-firmware",), 0),
)


def script(name: str, version: str, state_dir: str, sleep: float, fail_on: list[str], rc_fail: int = 3) -> str:
    """The installer: fails (rc 3, Linux 'failed') on the hosts in ``fail_on``, else writes the version."""
    body = "#!/bin/sh\n"
    if fail_on:
        hosts = " ".join(shlex.quote(h) for h in fail_on)
        body += (f'for h in {hosts}; do if [ "$(cat /proc/sys/kernel/hostname)" = "$h" ]; then '
                 f'echo "{name} {version}: simulated failure on $h"; exit {rc_fail}; fi; done\n')
    if sleep:
        body += f"sleep {sleep}\n"
    body += f"mkdir -p {shlex.quote(state_dir)}\necho {shlex.quote(version)} > {shlex.quote(state_dir)}/{name}.version\n"
    body += f"echo {name} {version} installed\nexit 0\n"
    return body


def make_sample_repo(folder: Path, state_dir: str, fail_on: list[str] | None = None, fail_component: str = "nic-firmware",
                     components: tuple = SAMPLE, pki: spp_pki.LabPki | None = None) -> Path:
    """Write the scripts and manifest.yml into ``folder``; ``fail_component`` fails on ``fail_on``.
    Everything is signed by ``pki``'s signer (default: the process's shared lab PKI, whose
    ``anchors`` folder is then the ``trust`` to pass)."""
    pki = pki or spp_pki.shared_lab_pki()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, version, kind, requires, sleep in components:
        path = folder / f"{name}-{version}.sh"
        path.write_text(script(name, version, state_dir, sleep, list(fail_on or []) if name == fail_component else []))
        path.chmod(0o755)
        entries.append({
            "name": name, "version": version, "kind": kind, "os": "linux", "file": path.name,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "size": path.stat().st_size,
            "detect": {"method": "file", "path": f"{state_dir}/{name}.version"},
            "install": "script", "reboot": "none", "requires": list(requires),
            "signature": spp_pki.sign_file(path, pki.signer).name,
        })
    (folder / "manifest.yml").write_text(yaml.safe_dump({"format": 1, "components": entries}, sort_keys=False))
    spp_pki.sign_manifest(folder, pki.signer)
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--state-dir", required=True, help="folder on the nodes where the fake installers write their versions")
    parser.add_argument("--fail-on", action="append", default=[], help="hostname whose nic-firmware install fails (repeatable)")
    parser.add_argument("--pki", type=Path, help="folder for the lab PKI that signs the repository (default: OUT_DIR/../pki)")
    args = parser.parse_args()
    pki = spp_pki.make_lab_pki(args.pki or args.folder.resolve().parent / "pki")
    folder = make_sample_repo(args.folder, args.state_dir, args.fail_on, pki=pki)
    print(f"sample repository: {folder} ({len(SAMPLE)} components, signed; trust anchors: {pki.anchors})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
