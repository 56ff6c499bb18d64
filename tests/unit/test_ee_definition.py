# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""execution-environment.yml: ansible-builder (v3 schema) writes a build context from it offline,
and that context carries our Python requirements, our bindep file and this collection.

No image is built (no podman/docker needed): `ansible-builder create` only writes the Containerfile
and the `_build/` folder, which is exactly what a `podman build` would consume.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EE_FILE = REPO / "execution-environment.yml"
BUILDER = Path(sys.executable).parent / "ansible-builder"


def galaxy_version() -> str:
    return yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]


def tarball_name() -> str:
    return f"fleet-firmware-{galaxy_version()}.tar.gz"


def requirement_lines(path: Path) -> list[str]:
    return [line.split("#")[0].strip() for line in path.read_text().splitlines() if line.split("#")[0].strip()]


def test_definition_is_v3_and_names_the_collection_of_this_version():
    ee = yaml.safe_load(EE_FILE.read_text())
    assert ee["version"] == 3
    deps = ee["dependencies"]
    assert deps["python"] == "requirements.txt" and deps["system"] == "bindep.txt"
    # A version bump in galaxy.yml must be followed here, or the build copies a file that is not there.
    assert deps["galaxy"]["collections"] == [{"name": f"collections/{tarball_name()}", "type": "file"}]
    assert [Path(entry["src"]).name for entry in ee["additional_build_files"]] == [tarball_name()]
    # ansible-core in the EE stays within the range the collection supports.
    core = deps["ansible_core"]["package_pip"]
    assert core.replace("ansible-core", "") in requirement_lines(REPO / "requirements.txt")[0]


@pytest.fixture
def context(tmp_path: Path) -> Path:
    """`ansible-builder create` in a copy of the project's definition files (placeholder tarball)."""
    if not BUILDER.exists():
        pytest.skip(f"ansible-builder is not installed in {BUILDER.parent} (pip install 'ansible-builder>=3.1,<4')")
    for name in ("execution-environment.yml", "requirements.txt", "bindep.txt"):
        shutil.copy(REPO / name, tmp_path / name)
    ee = yaml.safe_load(EE_FILE.read_text())
    tarball = tmp_path / ee["additional_build_files"][0]["src"]
    tarball.parent.mkdir(parents=True)
    tarball.write_bytes(b"placeholder: create does not read the collection")
    proc = subprocess.run([str(BUILDER), "create", "-f", "execution-environment.yml", "-c", "context", "--output-filename", "Containerfile"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return tmp_path / "context"


def test_create_writes_a_context_with_our_python_and_system_dependencies_and_the_collection(context: Path):
    build = context / "_build"
    assert requirement_lines(build / "requirements.txt") == requirement_lines(REPO / "requirements.txt")
    assert (build / "bindep.txt").read_text() == (REPO / "bindep.txt").read_text()
    assert (build / "collections" / tarball_name()).is_file()
    galaxy = yaml.safe_load((build / "requirements.yml").read_text())
    assert galaxy["collections"] == [{"name": f"collections/{tarball_name()}", "type": "file"}]
    containerfile = (context / "Containerfile").read_text()
    assert 'EE_BASE_IMAGE="quay.io/ansible/awx-ee:' in containerfile
    assert 'PYCMD="/usr/bin/python3.11"' in containerfile
    assert "ansible-core>=2.16,<2.20" in containerfile and "ansible-runner>=2.4,<3" in containerfile
    # The galaxy stage installs from /build (the copied _build), where the tarball sits.
    assert "COPY _build /build" in containerfile and "ansible-galaxy collection install" in containerfile
    # Introspection merges our requirements and bindep with those of the installed collections.
    assert "--user-pip=requirements.txt --user-bindep=bindep.txt" in containerfile
    # EPEL (osslsigncode for Authenticode) is enabled in the base stage, before bindep's dnf install runs.
    assert containerfile.index("dnf install -y epel-release") < containerfile.index("--user-bindep=bindep.txt")


def test_the_signature_tools_are_in_bindep_for_debian_and_for_the_ee():
    """trust.py's tools: openssl, rpm (rpmkeys), GnuPG and osslsigncode, on Debian and on RPM platforms."""
    rules = {}
    for line in (REPO / "bindep.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _sep, selectors = line.partition(" ")
            rules.setdefault(name, set()).update(selectors.strip("[] ").split())
    for name in ("openssl", "rpm", "gnupg", "osslsigncode"):
        assert "platform:dpkg" in rules.get(name, ()), name
    for name in ("openssl", "rpm", "gnupg2", "osslsigncode"):
        assert "platform:rpm" in rules.get(name, ()), name
