# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""trust: real detached CMS signatures made by openssl (tests/lab/spp_pki.py), checked against a
folder of anchors; every way a signature can be wrong is refused with HP SUM's reason, and an
error of any kind is a refusal (fail closed)."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import spp_pki

from ansible_collections.fleet.firmware.plugins.module_utils.baseline import trust


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> spp_pki.LabPki:
    return spp_pki.make_lab_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture()
def anchors(pki):
    with trust.load_anchors(str(pki.anchors)) as loaded:
        yield loaded


@pytest.fixture()
def repo(tmp_path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "cp000001.exe").write_bytes(os.urandom(4096))
    return root


def component(**fields) -> dict:
    return dict({"name": "nic", "file": "cp000001.exe", "install": "smart_component", "signature": "cp000001.compsig"}, **fields)


def verdict_of(repo, anchors, **fields) -> trust.Verdict:
    return trust.verify_component(component(**fields), str(repo), anchors)


# -- anchors


def test_anchors_of_a_missing_or_empty_folder_are_refused_naming_it(tmp_path):
    with pytest.raises(trust.TrustError, match="nowhere"):
        trust.load_anchors(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(trust.TrustError, match="empty.*holds no trust anchor"):
        trust.load_anchors(str(tmp_path / "empty"))


def test_a_broken_anchor_is_refused_naming_the_file_never_skipped(tmp_path, pki):
    folder = tmp_path / "anchors"
    shutil.copytree(pki.anchors, folder)
    (folder / "broken.crt").write_bytes(b"not a certificate")
    with pytest.raises(trust.TrustError, match="broken.crt"):
        trust.load_anchors(str(folder))


def test_a_der_anchor_is_read_like_a_pem_one(tmp_path, pki, repo):
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    folder = tmp_path / "der"
    folder.mkdir()
    cert = x509.load_pem_x509_certificate(pki.ca.cert.read_bytes())
    (folder / "lab-ca.der").write_bytes(cert.public_bytes(Encoding.DER))
    spp_pki.sign_file(repo / "cp000001.exe", pki.signer)
    with trust.load_anchors(str(folder)) as anchors:
        assert verdict_of(repo, anchors).ok


def test_the_anchor_copy_is_private_and_removed_on_close(pki):
    anchors = trust.load_anchors(str(pki.anchors))
    assert os.stat(anchors.cafile).st_mode & 0o777 == 0o600
    anchors.close()
    assert not os.path.exists(anchors.workdir)


# -- one .compsig


def test_a_signature_by_a_trusted_signer_verifies(pki, anchors, repo):
    spp_pki.sign_file(repo / "cp000001.exe", pki.signer)
    verdict = verdict_of(repo, anchors)
    assert verdict.ok, verdict
    assert (verdict.reason, verdict.method, verdict.time_basis) == ("", "cms", "verification")
    assert "CN=lab-signer" in verdict.signer


def test_a_tampered_file_is_signature_invalid(pki, anchors, repo):
    spp_pki.sign_file(repo / "cp000001.exe", pki.signer)
    data = bytearray((repo / "cp000001.exe").read_bytes())
    data[100] ^= 0xFF
    (repo / "cp000001.exe").write_bytes(bytes(data))
    verdict = verdict_of(repo, anchors)
    assert (verdict.ok, verdict.reason) == (False, "signature invalid")
    assert "cp000001.compsig" in verdict.detail


def test_a_missing_compsig_is_signature_file_missing(anchors, repo):
    verdict = verdict_of(repo, anchors)
    assert (verdict.ok, verdict.reason) == (False, "signature file missing")


def test_a_signature_by_the_untrusted_ca_is_signer_not_trusted(pki, anchors, repo):
    spp_pki.sign_file(repo / "cp000001.exe", pki.untrusted_signer)
    verdict = verdict_of(repo, anchors)
    assert (verdict.ok, verdict.reason) == (False, "signer not trusted")


def test_the_system_trust_store_is_never_used(pki, tmp_path, repo):
    """Anchors holding only the untrusted CA: the lab CA's signature must not verify through anything else."""
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "untrusted-ca.crt").write_bytes(pki.untrusted_ca.cert.read_bytes())
    spp_pki.sign_file(repo / "cp000001.exe", pki.signer)
    with trust.load_anchors(str(folder)) as anchors:
        assert verdict_of(repo, anchors).reason == "signer not trusted"


def test_an_expired_signer_is_signer_expired(pki, anchors, repo):
    spp_pki.sign_file(repo / "cp000001.exe", pki.expired_signer)
    verdict = verdict_of(repo, anchors)
    assert (verdict.ok, verdict.reason, verdict.time_basis) == (False, "signer expired", "verification")


def test_a_truncated_signature_is_format_not_recognised(pki, anchors, repo):
    spp_pki.truncate_signature(spp_pki.sign_file(repo / "cp000001.exe", pki.signer))
    verdict = verdict_of(repo, anchors)
    assert (verdict.ok, verdict.reason) == (False, "signature format not recognised")


@pytest.mark.parametrize("body", [b"", b"hello", b"-----BEGIN PKCS7-----\nMIIB\n-----END PKCS7-----\n", b"\x30\x03\x02\x01\x01"])
def test_anything_unparsable_is_format_not_recognised(anchors, repo, body):
    (repo / "cp000001.compsig").write_bytes(body)
    assert verdict_of(repo, anchors).reason == "signature format not recognised"


def test_an_embedded_not_detached_signature_is_format_not_recognised(pki, anchors, repo):
    import subprocess
    subprocess.run(["openssl", "cms", "-sign", "-binary", "-nodetach", "-in", str(repo / "cp000001.exe"), "-signer", str(pki.signer.cert),
                    "-inkey", str(pki.signer.key), "-outform", "DER", "-out", str(repo / "cp000001.compsig")], check=True)
    verdict = verdict_of(repo, anchors)
    assert verdict.reason == "signature format not recognised" and "embedded" in verdict.detail


def test_a_signer_without_code_signing_usage_is_not_trusted(pki, anchors, repo):
    spp_pki.sign_file(repo / "cp000001.exe", pki.tsa)  # chained to the lab CA, but a timestamping certificate
    verdict = verdict_of(repo, anchors)
    assert (verdict.reason, "code-signing" in verdict.detail) == ("signer not trusted", True)


def test_a_signer_without_any_extended_key_usage_is_accepted(tmp_path, pki, anchors, repo):
    """RFC 5280: no EKU extension means any use; only an EKU that excludes code signing is refused."""
    plain = spp_pki.make_signer(tmp_path, pki.ca, "no-eku-signer", usage=None)
    spp_pki.sign_file(repo / "cp000001.exe", plain)
    assert verdict_of(repo, anchors).ok


def test_a_signature_path_that_escapes_the_folder_is_missing(pki, anchors, repo):
    assert verdict_of(repo, anchors, signature="../cp000001.compsig").reason == "signature file missing"


def test_a_component_without_any_signature_is_not_signed(anchors, repo):
    (repo / "tool.sh").write_text("#!/bin/sh\n")
    assert trust.verify_component({"name": "t", "file": "tool.sh", "install": "script"}, str(repo), anchors).reason == "not signed"


def test_a_tool_that_errors_is_a_failure(pki, anchors, repo, monkeypatch):
    spp_pki.sign_file(repo / "cp000001.exe", pki.signer)
    monkeypatch.setenv("FLEET_OPENSSL", "/nonexistent/openssl")
    verdict = verdict_of(repo, anchors)
    assert verdict.ok is False and verdict.reason in trust.REASONS


def test_openssl_must_confirm_the_verification(pki, anchors, repo, monkeypatch):
    """A zero exit code without openssl's own confirmation is not enough (fail closed)."""
    spp_pki.sign_file(repo / "cp000001.exe", pki.signer)
    real = trust._run

    def silent(argv, stdin=None, env=None):
        rc, out, err = real(argv, stdin=stdin, env=env)
        return rc, out, err.replace("Verification successful", "") if "-verify" in argv else err

    monkeypatch.setattr(trust, "_run", silent)
    assert verdict_of(repo, anchors).reason == "signature invalid"


# -- _partN sets


@pytest.fixture()
def small_parts(monkeypatch):
    monkeypatch.setattr(trust, "PART_SIZE", 1024)
    return 1024


def parts_component(paths) -> dict:
    return component(signature=[p.name for p in paths])


def test_every_part_verifies_over_its_chunk(pki, anchors, repo, small_parts):
    parts = spp_pki.sign_parts(repo / "cp000001.exe", pki.signer, part_size=small_parts)
    assert len(parts) == 4
    verdict = trust.verify_component(parts_component(parts), str(repo), anchors)
    assert verdict.ok, verdict


def test_one_bad_part_refuses_the_component(pki, anchors, repo, small_parts):
    parts = spp_pki.sign_parts(repo / "cp000001.exe", pki.signer, part_size=small_parts)
    spp_pki.sign_bytes(b"other bytes", pki.signer, parts[2])
    verdict = trust.verify_component(parts_component(parts), str(repo), anchors)
    assert (verdict.ok, verdict.reason) == (False, "signature invalid")
    assert "cp000001_part3.compsig" in verdict.detail


def test_parts_that_do_not_cover_the_file_are_refused(pki, anchors, repo, small_parts):
    parts = spp_pki.sign_parts(repo / "cp000001.exe", pki.signer, part_size=small_parts)
    verdict = trust.verify_component(parts_component(parts[:3]), str(repo), anchors)
    assert (verdict.ok, verdict.reason) == (False, "signature invalid") and "chunks" in verdict.detail


def test_parts_out_of_order_still_verify_by_their_number(pki, anchors, repo, small_parts):
    parts = spp_pki.sign_parts(repo / "cp000001.exe", pki.signer, part_size=small_parts)
    assert trust.verify_component(parts_component(list(reversed(parts))), str(repo), anchors).ok


def test_a_missing_part_is_signature_file_missing(pki, anchors, repo, small_parts):
    parts = spp_pki.sign_parts(repo / "cp000001.exe", pki.signer, part_size=small_parts)
    parts[1].unlink()
    assert trust.verify_component(parts_component(parts), str(repo), anchors).reason == "signature file missing"


def test_parts_of_real_size_are_32_mib_chunks(pki, anchors, repo):
    big = repo / "cp000001.exe"
    with big.open("wb") as handle:
        handle.write(os.urandom(1 << 20) * 33)  # 33 MiB: two parts
    parts = spp_pki.sign_parts(big, pki.signer)
    assert [p.name for p in parts] == ["cp000001_part1.compsig", "cp000001_part2.compsig"]
    assert trust.verify_component(parts_component(parts), str(repo), anchors).ok


# -- timestamps


def test_a_trusted_timestamp_makes_the_time_basis_the_timestamp(pki, anchors, repo):
    spp_pki.timestamp_signature(spp_pki.sign_file(repo / "cp000001.exe", pki.signer), pki.tsa)
    verdict = verdict_of(repo, anchors)
    assert (verdict.ok, verdict.time_basis) == (True, "timestamp")


def test_a_timestamp_by_an_untrusted_tsa_refuses_the_component(tmp_path, pki, anchors, repo):
    rogue_tsa = spp_pki.make_signer(tmp_path, pki.untrusted_ca, "rogue-tsa", usage=spp_pki.ExtendedKeyUsageOID.TIME_STAMPING)
    spp_pki.timestamp_signature(spp_pki.sign_file(repo / "cp000001.exe", pki.signer), rogue_tsa)
    verdict = verdict_of(repo, anchors)
    assert (verdict.ok, verdict.reason, verdict.time_basis) == (False, "signature invalid", "timestamp")


def test_the_timestamp_time_is_what_the_signer_is_judged_at(pki, anchors, repo, monkeypatch):
    """An expired signer, stamped (openssl ts stamps now, so the token's time is replaced by one
    inside the signer's validity): the chain is then checked at that time and verifies."""
    spp_pki.timestamp_signature(spp_pki.sign_file(repo / "cp000001.exe", pki.expired_signer), pki.tsa)
    assert verdict_of(repo, anchors).reason == "signer expired"
    from cryptography import x509
    cert = x509.load_pem_x509_certificate(pki.expired_signer.cert.read_bytes())
    inside = int(cert.not_valid_before_utc.timestamp()) + 86400
    monkeypatch.setattr(trust, "_timestamp_time", lambda signature, anchors: (inside, ""))
    verdict = verdict_of(repo, anchors)
    assert (verdict.ok, verdict.time_basis) == (True, "timestamp"), verdict


# -- the manifest


def test_a_signed_manifest_verifies_and_a_changed_one_does_not(pki, anchors, repo):
    (repo / "manifest.yml").write_text("format: 1\ncomponents: []\n")
    assert trust.verify_manifest(str(repo), anchors).reason == "not signed"
    trust.sign_manifest(str(repo), str(pki.signer.cert), str(pki.signer.key))
    assert trust.verify_manifest(str(repo), anchors).ok
    (repo / "manifest.yml").write_text("format: 1\ncomponents: []\n# changed\n")
    assert trust.verify_manifest(str(repo), anchors).reason == "signature invalid"


def test_sign_manifest_reads_an_encrypted_key_passphrase_from_a_file(tmp_path, pki, anchors, repo):
    signer = spp_pki.make_signer(tmp_path, pki.ca, "locked-signer", passphrase="correct horse")
    (repo / "manifest.yml").write_text("format: 1\ncomponents: []\n")
    with pytest.raises(trust.TrustError, match="cannot sign"):
        trust.sign_manifest(str(repo), str(signer.cert), str(signer.key))
    assert not (repo / "manifest.yml.sig").exists()
    trust.sign_manifest(str(repo), str(signer.cert), str(signer.key), passphrase_file=str(signer.passphrase_file))
    assert trust.verify_manifest(str(repo), anchors).ok


# -- policy


def test_required_without_trust_names_trust():
    with pytest.raises(trust.TrustError, match="^trust: "):
        trust.check_policy("required", None)
    trust.check_policy("warn", None)
    trust.check_policy("off", None)


def test_check_repository_marks_unverified_components_not_deployable(pki, anchors, repo):
    spp_pki.sign_file(repo / "cp000001.exe", pki.untrusted_signer)
    (repo / "other.exe").write_bytes(b"x" * 10)
    spp_pki.sign_file(repo / "other.exe", pki.signer)
    components = [component(), component(name="other", file="other.exe", signature="other.compsig")]
    checked, manifest_verdict = trust.check_repository(str(repo), components, anchors, "required")
    assert manifest_verdict.reason == "not signed"
    assert (checked[0]["deployable"], checked[0]["not_deployable"]) == (False, "signer not trusted")
    assert "deployable" not in checked[1] and checked[1]["signature_verdict"]["ok"]
    warned = trust.check_repository(str(repo), components, anchors, "warn")[0]
    assert "deployable" not in warned[0] and warned[0]["signature_verdict"]["reason"] == "signer not trusted"


def test_a_signed_manifest_trusts_unsigned_components_but_never_outvotes_a_bad_signature(pki, anchors, repo):
    (repo / "tool.sh").write_text("#!/bin/sh\n")
    (repo / "manifest.yml").write_text("format: 1\ncomponents: []\n")
    trust.sign_manifest(str(repo), str(pki.signer.cert), str(pki.signer.key))
    spp_pki.sign_file(repo / "cp000001.exe", pki.untrusted_signer)
    components = [{"name": "tool", "file": "tool.sh", "install": "script"}, component()]
    checked, manifest_verdict = trust.check_repository(str(repo), components, anchors, "required")
    assert manifest_verdict.ok
    assert checked[0]["signature_verdict"]["method"] == "manifest" and "deployable" not in checked[0]
    assert checked[1]["not_deployable"] == "signer not trusted"


# -- RPM header signatures (rpmbuild + rpmsign make a real signed package; rpmkeys checks it)

needs_rpm = pytest.mark.skipif(not all(shutil.which(t) for t in ("rpmbuild", "rpmsign", "rpmkeys", "gpg")),
                               reason="rpm (rpmbuild, rpmsign, rpmkeys) and gpg are needed (bindep.txt)")


@pytest.fixture(scope="module")
def rpm_keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gpg")
    return spp_pki.make_gpg_key(folder, "lab-rpm"), spp_pki.make_gpg_key(folder, "rogue-rpm")


def rpm_anchors(tmp_path, pki, key, binary=False):
    folder = tmp_path / "rpm-anchors"
    folder.mkdir(exist_ok=True)
    (folder / "lab-ca.crt").write_bytes(pki.ca.cert.read_bytes())
    if binary:
        import subprocess
        data = subprocess.run(["gpg", "--batch", "--export", key.uid], env=dict(os.environ, GNUPGHOME=str(key.home)),
                              capture_output=True, check=True).stdout
        (folder / "lab-rpm.gpg").write_bytes(data)
    else:
        (folder / "lab-rpm.asc").write_bytes(key.public.read_bytes())
    return trust.load_anchors(str(folder))


def rpm_component(path: Path) -> dict:
    return {"name": "tool", "file": path.name, "install": "rpm"}


@needs_rpm
@pytest.mark.parametrize("binary", [False, True], ids=["asc", "gpg"])
def test_an_rpm_signed_by_an_anchor_key_verifies(tmp_path, pki, rpm_keys, binary):
    package = spp_pki.build_rpm(tmp_path, key=rpm_keys[0])
    with rpm_anchors(tmp_path, pki, rpm_keys[0], binary=binary) as anchors:
        verdict = trust.verify_component(rpm_component(package), str(tmp_path), anchors)
    assert (verdict.ok, verdict.method) == (True, "rpm"), verdict
    assert "GPG key" in verdict.signer


@needs_rpm
def test_rpm_verdicts_unsigned_untrusted_tampered(tmp_path, pki, rpm_keys):
    unsigned = spp_pki.build_rpm(tmp_path, name="unsigned-tool")
    rogue = spp_pki.build_rpm(tmp_path, name="rogue-tool", key=rpm_keys[1])
    tampered = spp_pki.build_rpm(tmp_path, name="tampered-tool", key=rpm_keys[0])
    data = bytearray(tampered.read_bytes())
    data[-20] ^= 0xFF
    tampered.write_bytes(bytes(data))
    with rpm_anchors(tmp_path, pki, rpm_keys[0]) as anchors:
        reasons = [trust.verify_component(rpm_component(p), str(tmp_path), anchors).reason for p in (unsigned, rogue, tampered)]
    assert reasons == ["not signed", "signer not trusted", "signature invalid"]


@needs_rpm
def test_an_rpm_is_never_checked_against_the_system_keyring(tmp_path, pki, rpm_keys, anchors):
    """Anchors without any GPG key: a signed RPM is not trusted (nothing else is consulted)."""
    package = spp_pki.build_rpm(tmp_path, key=rpm_keys[0])
    verdict = trust.verify_component(rpm_component(package), str(tmp_path), anchors)
    assert verdict.reason == "signer not trusted" and "no GPG key" in verdict.detail


def test_a_file_that_is_not_an_rpm_is_not_verified(tmp_path, pki, rpm_keys):
    (tmp_path / "junk.rpm").write_bytes(b"not an rpm at all")
    with rpm_anchors(tmp_path, pki, rpm_keys[0]) as anchors:
        verdict = trust.verify_component(rpm_component(tmp_path / "junk.rpm"), str(tmp_path), anchors)
    assert verdict.ok is False and verdict.reason in ("signature format not recognised", "signature invalid")


# -- Authenticode (osslsigncode signs a real PE file: pip's own Windows launcher)

def _pip_launcher():
    try:
        import pip
    except ImportError:
        return None
    path = Path(pip.__file__).parent / "_vendor" / "distlib" / "t64.exe"
    return path if path.is_file() else None


PE = _pip_launcher()
needs_osslsigncode = pytest.mark.skipif(not shutil.which("osslsigncode") or PE is None,
                                        reason="osslsigncode (bindep.txt) and a PE file (pip's distlib t64.exe) are needed")


def exe_component(path: Path) -> dict:
    return {"name": "cp000002", "file": path.name, "install": "smart_component"}


@needs_osslsigncode
def test_authenticode_by_the_lab_signer_verifies_and_others_do_not(tmp_path, pki, anchors):
    good = spp_pki.sign_authenticode(PE, pki.signer, tmp_path / "cp000002.exe")
    verdict = trust.verify_component(exe_component(good), str(tmp_path), anchors)
    assert (verdict.ok, verdict.method) == (True, "authenticode"), verdict
    rogue = spp_pki.sign_authenticode(PE, pki.untrusted_signer, tmp_path / "cp000003.exe")
    assert trust.verify_component(exe_component(rogue), str(tmp_path), anchors).reason == "signer not trusted"
    shutil.copy(PE, tmp_path / "cp000004.exe")
    assert trust.verify_component(exe_component(tmp_path / "cp000004.exe"), str(tmp_path), anchors).reason == "not signed"
    data = bytearray(good.read_bytes())
    data[1024] ^= 0xFF
    (tmp_path / "cp000005.exe").write_bytes(bytes(data))
    assert trust.verify_component(exe_component(tmp_path / "cp000005.exe"), str(tmp_path), anchors).reason == "signature invalid"


@needs_rpm
def test_many_rpms_verified_in_parallel_share_one_throwaway_rpmdb(tmp_path, pki, rpm_keys):
    packages = [spp_pki.build_rpm(tmp_path, name=f"tool{n}", key=rpm_keys[0]) for n in range(6)]
    with rpm_anchors(tmp_path, pki, rpm_keys[0]) as anchors:
        checked, _manifest = trust.check_repository(str(tmp_path), [dict(rpm_component(p), name=p.name) for p in packages], anchors, "required")
    assert [c["signature_verdict"]["ok"] for c in checked] == [True] * 6, [c["signature_verdict"] for c in checked]


# -- the import's hash and the signature check in one read (hash_and_verify)


def sha256(path: Path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(params=[True, False], ids=["asn1crypto", "openssl-parse"])
def parser(request, monkeypatch):
    """Both ways of reading a signature's messageDigest: in process (asn1crypto), and openssl's print."""
    if request.param and not trust.HAS_ASN1CRYPTO:
        pytest.skip("asn1crypto is not installed")
    monkeypatch.setattr(trust, "HAS_ASN1CRYPTO", request.param)
    return request.param


def test_hash_and_verify_gives_each_file_its_sha256_and_keeps_only_valid_verdicts(pki, anchors, repo, small_parts, parser):
    single = repo / "cp000001.exe"
    spp_pki.sign_file(single, pki.signer)
    big = repo / "cp000002.exe"
    big.write_bytes(os.urandom(3 * small_parts + 7))
    parts = spp_pki.sign_parts(big, pki.signer, part_size=small_parts)
    unsigned = repo / "cp000003.exe"
    unsigned.write_bytes(os.urandom(100))
    foreign = repo / "cp000004.exe"
    foreign.write_bytes(os.urandom(200))
    spp_pki.sign_file(foreign, pki.untrusted_signer)
    jobs = [(str(single), [str(repo / "cp000001.compsig")]), (str(big), [str(p) for p in parts]), (str(unsigned), []),
            (str(foreign), [str(repo / "cp000004.compsig")])]
    hashes = trust.hash_and_verify(jobs, anchors, workers=2)
    assert hashes == {str(p): sha256(p) for p in (single, big, unsigned, foreign)}
    # The two valid signatures were checked on the way; the untrusted one is left to check_repository.
    assert len(anchors.verdicts) == 2 and all(v.ok for v in anchors.verdicts.values())
    components = [component(), component(name="big", file="cp000002.exe", signature=[p.name for p in parts]),
                  component(name="foreign", file="cp000004.exe", signature="cp000004.compsig")]
    checked = {c["name"]: c for c in trust.check_repository(str(repo), components, anchors, "required")[0]}
    assert checked["nic"]["signature_verdict"]["ok"] and checked["big"]["signature_verdict"]["ok"]
    assert checked["foreign"]["not_deployable"] == "signer not trusted"


def test_a_file_changed_after_hash_and_verify_is_checked_again_and_refused(pki, anchors, repo, parser):
    path = repo / "cp000001.exe"
    spp_pki.sign_file(path, pki.signer)
    trust.hash_and_verify([(str(path), [str(repo / "cp000001.compsig")])], anchors)
    assert len(anchors.verdicts) == 1
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))  # same size; a new mtime
    verdict = trust.verify_component(component(), str(repo), anchors)
    assert not verdict.ok and verdict.reason == "signature invalid"


def test_a_tampered_file_is_hashed_as_it_is_and_not_trusted(pki, anchors, repo, parser):
    path = repo / "cp000001.exe"
    spp_pki.sign_file(path, pki.signer)
    path.write_bytes(os.urandom(4096))
    hashes = trust.hash_and_verify([(str(path), [str(repo / "cp000001.compsig")])], anchors)
    assert hashes[str(path)] == sha256(path) and anchors.verdicts == {}


def test_the_signed_digest_is_read_alike_by_both_parsers(pki, repo):
    path = repo / "cp000001.exe"
    signature = spp_pki.sign_file(path, pki.signer)
    assert trust._parse_cms_openssl(str(signature)) == ("", sha256(path))
    if trust.HAS_ASN1CRYPTO:
        assert trust._parse_cms_inline(str(signature)) == sha256(path)
        (repo / "junk.compsig").write_bytes(b"\x30\x03\x02\x01")
        assert trust._parse_cms_inline(str(repo / "junk.compsig")) is None  # openssl then names the problem
