# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Collection hygiene: the tarball `ansible-galaxy collection build` makes installs into an empty
collections path, its playbooks run from there against the lab, `ansible-doc` renders every plugin,
and roles and playbooks pass `ansible-lint` (production profile).

Every Ansible command here sees ONLY the freshly installed copy (ANSIBLE_COLLECTIONS_PATH is the new
path, nothing else), never the working tree that build/collections links to.
"""
from __future__ import annotations

import json
import re
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest
import yaml

import conftest
from checks import recap
from deploy_helpers import component, lab_trust, make_repo
from firewall_helpers import wait_until

from ansible_collections.fleet.firmware.plugins.plugin_utils import engine as engine_mod

pytestmark = pytest.mark.lab

REPO = conftest.REPO
PLUGIN_TYPES = {"modules": "module", "lookup": "lookup", "callback": "callback"}
ZERO_RECAP = {"ok": 0, "changed": 0, "unreachable": 0, "failed": 0, "skipped": 0, "rescued": 0, "ignored": 0}
# Never in a release tarball: build output, test output, VCS and caches.
NOT_SHIPPED = ("build/", "tests/output/", ".git/", ".gitignore", ".pytest_cache/", "__pycache__/", ".pyc")


def run(argv: list[str], env: dict, timeout: int = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False, cwd=cwd)


@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    proc = run([conftest.ansible_bin("ansible-galaxy"), "collection", "build", "--force", "--output-path", str(out)],
               conftest.ansible_env(), cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    version = yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    path = out / f"fleet-firmware-{version}.tar.gz"
    assert path.is_file(), proc.stdout
    return path


@pytest.fixture(scope="module")
def installed(tmp_path_factory, tarball) -> dict:
    """The tarball installed offline into an empty collections path; the environment that sees only it."""
    path = tmp_path_factory.mktemp("collections")
    env = conftest.ansible_env()
    env["ANSIBLE_COLLECTIONS_PATH"] = str(path)
    proc = run([conftest.ansible_bin("ansible-galaxy"), "collection", "install", "--offline", "-p", str(path), str(tarball)], env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {"path": path, "root": path / "ansible_collections" / "fleet" / "firmware", "env": env}


def test_tarball_holds_the_collection_and_nothing_of_the_build_or_vcs(tarball):
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "MANIFEST.json" in names and "FILES.json" in names and "meta/runtime.yml" in names
    assert "playbooks/preflight.yml" in names and "plugins/action/deploy.py" in names
    shipped = [n for n in names if any(n.startswith(p) or f"/{p}" in n or n.endswith(p) for p in NOT_SHIPPED)]
    assert shipped == []


def test_the_installed_copy_is_the_one_ansible_sees(installed):
    proc = run([conftest.ansible_bin("ansible-galaxy"), "collection", "list", "fleet.firmware", "--format", "json"], installed["env"])
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert list(found) == [str(installed["path"] / "ansible_collections")], found
    # An installed collection is a copy, not the working tree's link.
    assert not installed["root"].is_symlink() and installed["root"].resolve() != REPO


def plugin_names(root: Path, folder: str) -> list[str]:
    return sorted(f"fleet.firmware.{p.stem}" for p in (root / "plugins" / folder).glob("*.py") if not p.stem.startswith("_"))


@pytest.mark.parametrize("folder", sorted(PLUGIN_TYPES))
def test_ansible_doc_lists_and_renders_every_plugin(installed, folder):
    names = plugin_names(installed["root"], folder)
    assert names, f"no {folder} plugins in the installed collection"
    kind, env = PLUGIN_TYPES[folder], installed["env"]
    listed = run([conftest.ansible_bin("ansible-doc"), "-t", kind, "-l", "fleet.firmware", "--json"], env)
    assert listed.returncode == 0, listed.stderr
    assert sorted(json.loads(listed.stdout)) == names
    dumped = run([conftest.ansible_bin("ansible-doc"), "-t", kind, "--json", *names], env)
    assert dumped.returncode == 0, dumped.stderr
    docs = json.loads(dumped.stdout)
    assert sorted(docs) == names
    for name in names:
        doc = docs[name]["doc"]
        assert doc.get("short_description") and doc.get("description"), name
        assert docs[name].get("examples") or kind == "callback", f"{name} has no EXAMPLES"
    # The text a person reads: rendered without a warning or error for every plugin.
    text = run([conftest.ansible_bin("ansible-doc"), "-t", kind, *names], env)
    assert text.returncode == 0 and "ERROR" not in text.stderr and "WARNING" not in text.stderr, text.stderr
    # Each plugin's own page, headed "> MODULE fleet.firmware.x (its path in the installed copy)".
    headers = re.findall(rf"^> {kind.upper()} (\S+) \((.+)\)$", text.stdout, re.M)
    assert [name for name, _path in headers] == names, headers
    assert all(path.startswith(str(installed["root"])) for _name, path in headers), headers


def test_the_installed_preflight_playbook_runs_over_the_lab(lab, installed, tmp_path):
    report = tmp_path / "preflight.json"
    argv = [conftest.ansible_bin("ansible-playbook"), "-i", str(lab.inventory), "fleet.firmware.preflight",
            "-e", "fleet_preflight_hosts=linux", "-e", f"fleet_preflight_report={report}"]
    proc = run(argv, installed["env"])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    data = json.loads(report.read_text())
    assert data["summary"]["nodes"] == 3 and data["summary"]["ok"] == 3, data["summary"]


def test_the_installed_deploy_updates_a_node_and_leaves_nothing(lab, installed, tmp_path):
    state = str(lab.lab.home / "node")
    repo = make_repo(tmp_path / "repo", state, [component("cb-fw", "3.1")])
    lab.node_run("lin01", ["rm", "-f", f"{state}/cb-fw.version"])
    tag = f"cb-{uuid.uuid4().hex[:8]}"
    playbook = tmp_path / "deploy.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Deploy with the installed collection", "hosts": "lin01", "gather_facts": False,
        "tasks": [{"name": "Deploy", "fleet.firmware.deploy": {
            "repository": str(repo), "trust": lab_trust(), "tag": tag, "run_dir": str(lab.lab.home / "runs" / tag), "lease": 30}}],
    }], sort_keys=False))
    proc = run([conftest.ansible_bin("ansible-playbook"), "-i", str(lab.inventory), str(playbook)], installed["env"])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert recap(proc.stdout) == {"lin01": dict(ZERO_RECAP, ok=1, changed=1)}, proc.stdout[-2000:]
    assert lab.node_run("lin01", ["cat", f"{state}/cb-fw.version"]).stdout.strip() == "3.1"
    assert lab.node_run("lin01", ["test", "-e", f"/var/tmp/fleet-firmware-{tag}"], check=False).returncode != 0
    # The run's engine stops by itself once its ansible-playbook is gone.
    assert wait_until(lambda: engine_mod.attach(str(lab.lab.home / "runs" / tag)) is None, 60)


def lint_targets() -> list[str]:
    roles = REPO / "roles"
    has_roles = roles.is_dir() and any(p.is_dir() for p in roles.iterdir())
    return [t for t in ("roles", "playbooks") if (REPO / t).is_dir()] if has_roles else []


def test_ansible_lint_production_profile_is_clean_on_roles_and_playbooks():
    targets = lint_targets()
    assert targets == ["roles", "playbooks"], targets
    env = conftest.ansible_env()
    argv = [conftest.ansible_bin("ansible-lint"), "--offline", "--profile", "production", "--nocolor", "--format", "pep8", *targets]
    proc = run(argv, env, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
