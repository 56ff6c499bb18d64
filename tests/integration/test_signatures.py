# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Signatures, fail closed, for real: fleet.firmware.repository and fleet.firmware.deploy against
repositories signed by the lab PKI (tests/lab/spp_pki.py, real openssl CMS signatures).

Each broken signature (a tampered file, a missing .compsig, the untrusted CA, an expired signer,
a truncated signature, a _partN set with one bad part, a signed manifest with a swapped file) is
refused with its reason named: the repository module marks the component not deployable, and
the deploy refuses the run on the controller, in check mode too, before anything reaches the node
(no agent, no staging folder, no firewall rule, nothing installed)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import spp_pki
import yaml

import conftest
from deploy_helpers import agent_processes, component, lab_trust, left_behind, make_repo
from firewall_helpers import module_args, reset_firewall, snapshot
from test_repository import repository

pytestmark = pytest.mark.lab

NODE = "lin01"


def state_dir(lab) -> str:
    return str(lab.lab.home / "node")


def script_of(repo: Path, name: str) -> Path:
    return next(repo.glob(f"{name}-*.sh"))


def entry_of(repo: Path, name: str) -> dict:
    return next(c for c in yaml.safe_load((repo / "manifest.yml").read_text())["components"] if c["name"] == name)


def set_entry(repo: Path, name: str, **fields) -> None:
    data = yaml.safe_load((repo / "manifest.yml").read_text())
    for entry in data["components"]:
        if entry["name"] == name:
            entry.update(fields)
    (repo / "manifest.yml").write_text(yaml.safe_dump(data, sort_keys=False))


def rehash(repo: Path, name: str) -> None:
    script = script_of(repo, name)
    set_entry(repo, name, sha256=hashlib.sha256(script.read_bytes()).hexdigest(), size=script.stat().st_size)


# -- the broken repositories: each function breaks the component "fw" of a signed repository


def tampered(repo: Path) -> None:
    """The file changed after it was signed (and the manifest was re-hashed to match)."""
    script = script_of(repo, "fw")
    script.write_text(script.read_text().replace("exit 0", "exit 0  "))
    rehash(repo, "fw")


def missing_compsig(repo: Path) -> None:
    (repo / entry_of(repo, "fw")["signature"]).unlink()


def untrusted_ca(repo: Path) -> None:
    spp_pki.sign_file(script_of(repo, "fw"), spp_pki.shared_lab_pki().untrusted_signer, repo / entry_of(repo, "fw")["signature"])


def expired_signer(repo: Path) -> None:
    spp_pki.sign_file(script_of(repo, "fw"), spp_pki.shared_lab_pki().expired_signer, repo / entry_of(repo, "fw")["signature"])


def truncated(repo: Path) -> None:
    spp_pki.truncate_signature(repo / entry_of(repo, "fw")["signature"])


def one_bad_part(repo: Path) -> None:
    """A component over 32 MiB signed in two _partN parts; the second signs other bytes."""
    script = script_of(repo, "fw")
    with script.open("ab") as handle:
        handle.write(b"#" * (spp_pki.PART_SIZE + 100) + b"\n")
    parts = spp_pki.sign_parts(script, spp_pki.shared_lab_pki().signer)
    spp_pki.sign_bytes(b"other bytes", spp_pki.shared_lab_pki().signer, parts[1])
    (repo / entry_of(repo, "fw")["signature"]).unlink()
    rehash(repo, "fw")
    set_entry(repo, "fw", signature=[p.name for p in parts])


BROKEN = [
    (tampered, "signature invalid"),
    (missing_compsig, "signature file missing"),
    (untrusted_ca, "signer not trusted"),
    (expired_signer, "signer expired"),
    (truncated, "signature format not recognised"),
    (one_bad_part, "signature invalid"),
]
IDS = [case[0].__name__ for case in BROKEN]


def signed_repo(lab, tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", state_dir(lab), [component("fw", "1.0"), component("tool", "2.0", kind="software")])


# -- fleet.firmware.repository


def test_required_without_trust_is_an_error_naming_trust_and_writes_nothing(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "tool.sh").write_text("#!/bin/sh\n")
    status, result = repository({"path": str(repo), "trust": None})
    assert status == "FAILED" and result["msg"].startswith("trust: "), result
    assert not (repo / "manifest.yml").exists()


def test_a_broken_anchor_is_an_error_naming_the_file(tmp_path):
    folder = tmp_path / "anchors"
    folder.mkdir()
    (folder / "broken.pem").write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    status, result = repository({"path": str(tmp_path), "trust": str(folder)})
    assert status == "FAILED" and "broken.pem" in result["msg"], result


def test_a_good_repository_lists_every_verdict_and_stays_deployable(lab, tmp_path):
    repo = signed_repo(lab, tmp_path)
    status, result = repository({"path": str(repo), "state": "validated"})
    assert status == "SUCCESS", result
    assert {v["name"]: (v["ok"], v["method"], v["time_basis"]) for v in result["signatures"]} == {
        "fw": (True, "cms", "verification"), "tool": (True, "cms", "verification")}
    assert all(c.get("deployable", True) for c in result["components"])
    assert result["manifest_signature"]["reason"] == "not signed"


@pytest.mark.parametrize("breaking, reason", BROKEN, ids=IDS)
def test_repository_marks_a_broken_signature_not_deployable_with_its_reason(lab, tmp_path, breaking, reason):
    repo = signed_repo(lab, tmp_path)
    breaking(repo)
    status, result = repository({"path": str(repo), "state": "validated"})
    if breaking is missing_compsig:
        # A signature the manifest names but the folder lacks is a validation problem of its own.
        assert status == "FAILED" and f"field signature: {reason}" in result["msg"], result
        return
    assert status == "SUCCESS", result
    by_name = {c["name"]: c for c in result["components"]}
    assert (by_name["fw"]["deployable"], by_name["fw"]["not_deployable"]) == (False, reason), by_name["fw"]
    assert by_name["tool"].get("deployable", True) is True
    assert {v["name"]: v["reason"] for v in result["signatures"]} == {"fw": reason, "tool": ""}


@pytest.mark.parametrize("policy", ["warn", "off"])
def test_warn_and_off_print_a_warning_in_every_run_and_keep_components_deployable(lab, tmp_path, policy):
    repo = signed_repo(lab, tmp_path)
    untrusted_ca(repo)
    for _run in range(2):
        status, result = repository({"path": str(repo), "state": "validated", "signatures": policy})
        assert status == "SUCCESS"
        assert any(f"signatures={policy}" in w for w in result["signature_warnings"]), result
        assert all(c.get("deployable", True) for c in result["components"])
    assert ([v["reason"] for v in result["signatures"] if v["name"] == "fw"] == ["signer not trusted"]) == (policy == "warn")


def signed_manifest_repo(lab, tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo", state_dir(lab), [component("fw", "1.0"), component("tool", "2.0")], sign=False)
    signer = spp_pki.shared_lab_pki().signer
    status, result = repository({"path": str(repo), "sign_cert": str(signer.cert), "sign_key": str(signer.key)})
    assert status == "CHANGED" and "signed manifest.yml" in result["changes"], result
    return repo


def test_a_signed_manifest_trusts_its_unsigned_components(lab, tmp_path):
    repo = signed_manifest_repo(lab, tmp_path)
    status, result = repository({"path": str(repo)})
    assert status == "SUCCESS" and result["changed"] is False, result
    assert result["manifest_signature"]["ok"] is True
    assert {v["name"]: v["method"] for v in result["signatures"]} == {"fw": "manifest", "tool": "manifest"}
    assert all(c.get("deployable", True) for c in result["components"])


def test_a_swapped_file_under_a_signed_manifest_is_refused_then_accepted_only_by_reapprove(lab, tmp_path):
    repo = signed_manifest_repo(lab, tmp_path)
    script = script_of(repo, "fw")
    script.write_text("#!/bin/sh\necho swapped\nexit 0\n")
    before = ((repo / "manifest.yml").read_bytes(), (repo / "manifest.yml.sig").read_bytes())

    # state=present no longer re-hashes it silently: an error naming the component, nothing written.
    status, result = repository({"path": str(repo)})
    assert status == "FAILED" and "component 'fw'" in result["msg"] and "reapprove" in result["msg"], result
    assert ((repo / "manifest.yml").read_bytes(), (repo / "manifest.yml.sig").read_bytes()) == before
    # Re-approving changes the signed manifest: without the key to sign it again, refused too.
    status, result = repository({"path": str(repo), "reapprove": ["fw"]})
    assert status == "FAILED" and "sign_cert" in result["msg"], result
    assert ((repo / "manifest.yml").read_bytes(), (repo / "manifest.yml.sig").read_bytes()) == before
    status, result = repository({"path": str(repo), "reapprove": ["nope"]})
    assert status == "FAILED" and "reapprove: nope" in result["msg"], result

    signer = spp_pki.make_signer(tmp_path / "signer", spp_pki.shared_lab_pki().ca, "approver", passphrase="s3cret-Passphrase")
    status, result = repository({"path": str(repo), "reapprove": ["fw"], "sign_cert": str(signer.cert), "sign_key": str(signer.key),
                                 "sign_key_passphrase": "s3cret-Passphrase"}, "-v")
    assert status == "CHANGED", result
    assert "s3cret-Passphrase" not in repr(result)
    assert entry_of(repo, "fw")["sha256"] == hashlib.sha256(script.read_bytes()).hexdigest()
    assert result["manifest_signature"]["ok"] and "approver" in result["manifest_signature"]["signer"]


# -- fleet.firmware.deploy


@pytest.fixture
def fresh(lab):
    reset_firewall(lab, NODE)
    lab.node_run(NODE, ["sh", "-c", f"rm -f {state_dir(lab)}/*.version"])
    return snapshot(lab, NODE)


def deploy(lab, repo: Path, tag: str, extra: list[str] | None = None, **kwargs) -> conftest.HostResult:
    args = dict(repository=str(repo), tag=tag, run_dir=str(lab.lab.home / "runs" / tag), lease=30, trust=lab_trust(), **kwargs)
    return lab.adhoc(NODE, "fleet.firmware.deploy", module_args(**args), extra=extra, timeout=300)[NODE]


def installed(lab, name: str) -> str | None:
    proc = lab.node_run(NODE, ["cat", f"{state_dir(lab)}/{name}.version"], check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def nothing_reached_the_node(lab, tag: str, before: dict) -> None:
    assert left_behind(lab, NODE, tag, before) == [] and not agent_processes(lab, NODE)
    assert installed(lab, "fw") is None and installed(lab, "tool") is None
    assert not (lab.lab.home / "runs" / tag).exists(), "a run folder (engine, ledger) was made for a refused run"


@pytest.mark.parametrize("breaking, reason", BROKEN, ids=IDS)
def test_deploy_refuses_a_broken_signature_before_anything_reaches_the_node(lab, fresh, tmp_path, breaking, reason):
    repo = signed_repo(lab, tmp_path)
    breaking(repo)
    tag = "sig-" + breaking.__name__.replace("_", "-")[:20]
    for extra in (["--check"], None):
        result = deploy(lab, repo, tag, extra=extra)
        assert result.status == "FAILED", result.data
        expected = f"component 'fw', field signature: {reason}" if breaking is missing_compsig else f"fw: {reason}"
        assert expected in result.data["msg"] and "tool" not in result.data["msg"], result.data["msg"]
        nothing_reached_the_node(lab, tag, fresh)


def test_deploy_refuses_a_swapped_file_under_a_signed_manifest(lab, fresh, tmp_path):
    repo = signed_manifest_repo(lab, tmp_path)
    script_of(repo, "fw").write_text("#!/bin/sh\necho swapped\nexit 0\n")
    rehash(repo, "fw")  # someone also edited the hash in the manifest: its signature no longer matches
    result = deploy(lab, repo, "sig-swapped")
    assert result.status == "FAILED" and "manifest signature" in result.data["msg"] and "signature invalid" in result.data["msg"]
    nothing_reached_the_node(lab, "sig-swapped", fresh)


def test_deploy_without_trust_under_required_names_trust(lab, fresh, tmp_path):
    repo = signed_repo(lab, tmp_path)
    result = lab.adhoc(NODE, "fleet.firmware.deploy", module_args(repository=str(repo), tag="sig-notrust"), timeout=300)[NODE]
    assert result.status == "FAILED" and result.data["msg"].startswith("trust: "), result.data
    nothing_reached_the_node(lab, "sig-notrust", fresh)


def test_deploy_with_warn_installs_and_warns(lab, fresh, tmp_path):
    repo = signed_repo(lab, tmp_path)
    untrusted_ca(repo)
    result = deploy(lab, repo, "sig-warn", signatures="warn")
    assert result.status == "CHANGED", result.data
    warnings = result.data["signature_warnings"]
    assert any("signatures=warn" in w for w in warnings) and any("fw: signer not trusted" in w for w in warnings), warnings
    assert installed(lab, "fw") == "1.0"


def test_deploy_of_a_good_signed_repository_installs(lab, fresh, tmp_path):
    repo = signed_repo(lab, tmp_path)
    result = deploy(lab, repo, "sig-good")
    assert result.status == "CHANGED", result.data
    assert not result.data.get("signature_warnings")
    assert (installed(lab, "fw"), installed(lab, "tool")) == ("1.0", "2.0")
