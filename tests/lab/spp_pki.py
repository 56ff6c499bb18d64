# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A test PKI for signed repositories: CAs, code-signing signers and real CMS signatures.

Everything is made by standard tools: keys and certificates by the ``cryptography`` package,
signatures by the ``openssl`` command line (``openssl cms -sign``, detached, DER: the form the
collection's trust module verifies for ``.compsig`` files and for ``manifest.yml.sig``).
No secret is ever put on a command line: keys are 0600 files, passphrases are read by openssl
from a 0600 file (``-passin file:``).

Typical use (tests, ``tests/lab/spp_gen.py``, ``tests/lab/sample_repo.py``)::

    pki = make_lab_pki(tmp_path / "pki")          # trusted CA + signer, untrusted CA + signer, expired signer
    sign_file(repo / "cp000001.exe", pki.signer)  # writes repo/cp000001.compsig
    sign_parts(repo / "big.exe", pki.signer)      # big_part1.compsig, big_part2.compsig, ...
    truncate_signature(repo / "cp000001.compsig") # a damaged signature, for the negative tests
    sign_manifest(repo, pki.signer)               # repo/manifest.yml.sig
    anchors = pki.anchors                         # a folder holding only the trusted CA's certificate

Every function is pure in the sense that it depends only on its arguments and writes only
where it is told to (no global state, no network).

    python3 tests/lab/spp_pki.py OUT_DIR     # writes a lab PKI into OUT_DIR and prints its layout
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# iLO (and iLOrest) move at most 32 MiB per transfer; a larger component comes with one
# `<base>_part<N>.compsig` per 33 554 432-byte chunk, N from 1 (spp-format.md section 8).
PART_SIZE = 32 * 1024 * 1024
OPENSSL = os.environ.get("FLEET_OPENSSL", "openssl")
_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class Identity:
    """A certificate and its private key, both as files. ``passphrase_file`` when the key is encrypted."""

    name: str
    cert: Path
    key: Path
    passphrase_file: Path | None = None


@dataclass(frozen=True)
class LabPki:
    """The identities a signature test needs, and the anchors folder that trusts only ``ca``."""

    folder: Path
    ca: Identity
    signer: Identity
    untrusted_ca: Identity
    untrusted_signer: Identity
    expired_signer: Identity
    tsa: Identity
    anchors: Path


def _write_private(path: Path, data: bytes) -> Path:
    """Write ``data`` into a new file readable by its owner only (0600 from the first byte)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    return path


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _save_key(key: rsa.RSAPrivateKey, path: Path, passphrase: str | None) -> tuple[Path, Path | None]:
    encryption = (serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
                  else serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    _write_private(path, pem)
    pass_file = _write_private(path.with_suffix(".pass"), passphrase.encode() + b"\n") if passphrase else None
    return path, pass_file


def _load_key(identity: Identity) -> rsa.RSAPrivateKey:
    password = identity.passphrase_file.read_bytes().strip() if identity.passphrase_file else None
    return serialization.load_pem_private_key(identity.key.read_bytes(), password=password)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fleet.firmware lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(not_before: dt.datetime | None, not_after: dt.datetime | None) -> tuple[dt.datetime, dt.datetime]:
    now = dt.datetime.now(dt.timezone.utc)
    return (not_before or now - _DAY), (not_after or now + 3650 * _DAY)


def make_ca(folder: Path, name: str, not_before: dt.datetime | None = None,
            not_after: dt.datetime | None = None) -> Identity:
    """A self-signed CA certificate ``<folder>/<name>.crt`` and its key ``<name>.key`` (0600)."""
    folder = Path(folder)
    key = _new_key()
    start, end = _validity(not_before, not_after)
    cert = (x509.CertificateBuilder()
            .subject_name(_name(name)).issuer_name(_name(name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    key_path = _save_key(key, folder / f"{name}.key", None)[0]
    cert_path = folder / f"{name}.crt"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Identity(name, cert_path, key_path)


def make_signer(folder: Path, ca: Identity, name: str, not_before: dt.datetime | None = None,
                not_after: dt.datetime | None = None, usage: x509.ObjectIdentifier | None = ExtendedKeyUsageOID.CODE_SIGNING,
                passphrase: str | None = None) -> Identity:
    """A leaf certificate issued by ``ca`` for ``usage`` (code signing by default; None = no EKU extension).

    ``not_before``/``not_after`` in the past make an expired signer. ``passphrase`` encrypts the key
    and writes the passphrase into ``<name>.pass`` (0600) for openssl's ``-passin file:``.
    """
    folder = Path(folder)
    key = _new_key()
    ca_key = _load_key(ca)
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    start, end = _validity(not_before, not_after)
    builder = (x509.CertificateBuilder()
               .subject_name(_name(name)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(end)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False))
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=usage == ExtendedKeyUsageOID.TIME_STAMPING)
    cert = builder.sign(ca_key, hashes.SHA256())
    key_path, pass_file = _save_key(key, folder / f"{name}.key", passphrase)
    cert_path = folder / f"{name}.crt"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Identity(name, cert_path, key_path, pass_file)


def make_lab_pki(folder: Path) -> LabPki:
    """The full test PKI in ``folder`` (created 0700): see :class:`LabPki`.

    ``anchors`` is ``<folder>/anchors`` and holds only the trusted CA's certificate, which is what a
    user would point the collection's ``trust`` option at.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    now = dt.datetime.now(dt.timezone.utc)
    # The CAs go back far enough for the expired signer's whole validity to lie inside theirs.
    ca = make_ca(folder, "lab-ca", not_before=now - 1000 * _DAY)
    untrusted_ca = make_ca(folder, "untrusted-ca", not_before=now - 1000 * _DAY)
    anchors = folder / "anchors"
    anchors.mkdir(exist_ok=True)
    (anchors / "lab-ca.crt").write_bytes(ca.cert.read_bytes())
    return LabPki(
        folder=folder, ca=ca, untrusted_ca=untrusted_ca, anchors=anchors,
        signer=make_signer(folder, ca, "lab-signer"),
        untrusted_signer=make_signer(folder, untrusted_ca, "untrusted-signer"),
        expired_signer=make_signer(folder, ca, "expired-signer", not_before=now - 400 * _DAY, not_after=now - 30 * _DAY),
        tsa=make_signer(folder, ca, "lab-tsa", usage=ExtendedKeyUsageOID.TIME_STAMPING),
    )


_SHARED: dict[str, LabPki] = {}


def shared_lab_pki() -> LabPki:
    """One lab PKI per process, made on first use in a private temporary folder removed at exit:
    what the test helpers sign their repositories with (``shared_lab_pki().anchors`` is the
    ``trust`` folder every deploy of such a repository passes)."""
    if "pki" not in _SHARED:
        import atexit
        import tempfile
        folder = Path(tempfile.mkdtemp(prefix="fleet-lab-pki-"))
        atexit.register(shutil.rmtree, folder, True)
        _SHARED["pki"] = make_lab_pki(folder)
    return _SHARED["pki"]


def _openssl(*args: str | os.PathLike, stdin: bytes | None = None) -> bytes:
    result = subprocess.run([OPENSSL, *map(str, args)], input=stdin, capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def sign_bytes(data: bytes, signer: Identity, out: Path) -> Path:
    """Sign ``data`` (the content is read from stdin, never stored) into ``out``: detached CMS, DER, SHA-256."""
    args = ["cms", "-sign", "-binary", "-md", "sha256", "-signer", signer.cert, "-inkey", signer.key,
            "-outform", "DER", "-out", out]
    if signer.passphrase_file:
        args += ["-passin", f"file:{signer.passphrase_file}"]
    out.parent.mkdir(parents=True, exist_ok=True)
    _openssl(*args, stdin=data)
    return out


def signature_path(component_file: Path) -> Path:
    """Where a component's single signature goes: ``cp000001.exe`` -> ``cp000001.compsig``."""
    component_file = Path(component_file)
    return component_file.with_name(component_file.stem + ".compsig")


def sign_file(path: Path, signer: Identity, out: Path | None = None) -> Path:
    """A detached CMS signature (DER) of the file ``path``; by default ``<stem>.compsig`` beside it."""
    path = Path(path)
    return sign_bytes(path.read_bytes(), signer, Path(out) if out else signature_path(path))


def part_paths(path: Path, count: int) -> list[Path]:
    """``<stem>_part1.compsig`` ... ``<stem>_part<count>.compsig`` beside ``path``."""
    path = Path(path)
    return [path.with_name(f"{path.stem}_part{n}.compsig") for n in range(1, count + 1)]


def sign_parts(path: Path, signer: Identity, part_size: int = PART_SIZE) -> list[Path]:
    """One detached signature per ``part_size`` chunk of ``path`` (the ``_partN.compsig`` set).

    Part N (from 1) signs bytes ``[(N-1)*part_size, N*part_size)`` of the file, as iLOrest splits
    a component for upload; the trust module reads the parts the same way with 32 MiB chunks.
    """
    path = Path(path)
    size = path.stat().st_size
    count = max(1, -(-size // part_size))
    outs = part_paths(path, count)
    with path.open("rb") as handle:
        for out in outs:
            sign_bytes(handle.read(part_size), signer, out)
    return outs


def truncate_signature(sig: Path, out: Path | None = None, keep: float = 0.5) -> Path:
    """A copy of ``sig`` cut to ``keep`` of its length (in place when ``out`` is None): unparsable DER."""
    sig = Path(sig)
    data = sig.read_bytes()
    target = Path(out) if out else sig
    target.write_bytes(data[: max(1, int(len(data) * keep))])
    return target


def sign_manifest(root: Path, signer: Identity, manifest: str = "manifest.yml") -> Path:
    """``<root>/manifest.yml.sig``: the detached CMS signature of the manifest file's bytes."""
    root = Path(root)
    return sign_file(root / manifest, signer, root / f"{manifest}.sig")


def timestamp_signature(sig: Path, tsa: Identity, out: Path | None = None) -> Path:
    """An RFC 3161 timestamp token (DER) over the signature file's bytes, made by ``openssl ts``.

    Written to ``<sig>.tsr`` by default (the sidecar form the trust module reads). ``openssl ts``
    stamps the current time, so a test can stamp a signature but not back-date it.
    """
    sig = Path(sig)
    out = Path(out) if out else sig.with_name(sig.name + ".tsr")
    query = _openssl("ts", "-query", "-data", sig, "-sha256", "-cert")
    config = _tsa_config(tsa, tsa.cert.parent)
    reply = out.with_name(out.name + ".reply")
    try:
        _openssl("ts", "-reply", "-config", config, "-queryfile", "/dev/stdin", "-token_out", "-out", reply, stdin=query)
        reply.replace(out)
    finally:
        config.unlink(missing_ok=True)
        reply.unlink(missing_ok=True)
    return out


@dataclass(frozen=True)
class GpgKey:
    """A GPG signing key without a passphrase in its own GNUPGHOME (0700), and its armoured public key."""

    home: Path
    uid: str
    public: Path


def make_gpg_key(folder: Path, name: str = "lab-rpm-signer") -> GpgKey:
    """A new RSA GPG key (``gpg --quick-gen-key``) in ``<folder>/<name>.gnupg``; ``<name>.asc`` is its public key."""
    folder = Path(folder)
    home = folder / f"{name}.gnupg"
    home.mkdir(parents=True, mode=0o700, exist_ok=True)
    uid = f"{name} <{name}@lab.invalid>"
    env = dict(os.environ, GNUPGHOME=str(home))
    subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", uid, "rsa2048", "sign", "never"],
                   env=env, capture_output=True, check=True)
    public = folder / f"{name}.asc"
    public.write_bytes(subprocess.run(["gpg", "--batch", "--armor", "--export", uid], env=env, capture_output=True, check=True).stdout)
    return GpgKey(home, uid, public)


def build_rpm(folder: Path, name: str = "fleet-lab-tool", version: str = "1.0", key: GpgKey | None = None) -> Path:
    """A minimal noarch RPM built by ``rpmbuild`` (no files), header-signed by ``rpmsign`` with ``key`` when given."""
    folder = Path(folder)
    top = folder / f".rpmbuild-{name}-{version}"
    (top / "SPECS").mkdir(parents=True, exist_ok=True)
    spec = top / "SPECS" / f"{name}.spec"
    spec.write_text(f"Name: {name}\nVersion: {version}\nRelease: 1\nSummary: lab package\nLicense: GPL-3.0-or-later\n"
                    "BuildArch: noarch\n%description\nA package of the fleet.firmware lab.\n%files\n")
    subprocess.run(["rpmbuild", "--define", f"_topdir {top}", "-bb", str(spec)], capture_output=True, check=True)
    built = next((top / "RPMS" / "noarch").glob("*.rpm"))
    target = folder / built.name
    built.replace(target)
    if key is not None:
        subprocess.run(["rpmsign", "--define", f"_gpg_name {key.uid}", "--define", f"_gpg_path {key.home}", "--define", f"__gpg {shutil.which('gpg') or 'gpg'}",
                        "--define", "_gpg_sign_cmd_extra_args --batch --pinentry-mode loopback",
                        "--addsign", str(target)], stdin=subprocess.DEVNULL, capture_output=True, check=True,
                       env=dict(os.environ, GNUPGHOME=str(key.home)))
    return target


def sign_authenticode(exe: Path, signer: Identity, out: Path) -> Path:
    """An Authenticode-signed copy of the PE file ``exe``, by ``osslsigncode sign`` (SHA-256)."""
    args = ["osslsigncode", "sign", "-h", "sha256", "-certs", str(signer.cert), "-key", str(signer.key), "-in", str(exe), "-out", str(out)]
    if signer.passphrase_file:
        args += ["-readpass", str(signer.passphrase_file)]
    if Path(out).exists():
        Path(out).unlink()
    subprocess.run(args, capture_output=True, check=True)
    return Path(out)


def _tsa_config(tsa: Identity, folder: Path) -> Path:
    """A throwaway ``openssl ts`` configuration naming the TSA's certificate and key (files, not secrets)."""
    serial = folder / ".tsa-serial"
    if not serial.exists():
        serial.write_text("01\n")
    config = folder / ".tsa.cnf"
    config.write_text(
        "[ tsa ]\ndefault_tsa = lab_tsa\n[ lab_tsa ]\n"
        f"serial = {serial}\nsigner_cert = {tsa.cert}\nsigner_key = {tsa.key}\n"
        "signer_digest = sha256\ndefault_policy = 1.3.6.1.4.1.4146.2.3\n"
        "digests = sha256, sha384, sha512\naccuracy = secs:1\nordering = no\ntsa_name = no\n"
        "ess_cert_id_chain = no\ness_cert_id_alg = sha256\ncerts = " f"{tsa.cert}\n")
    return config


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    pki = make_lab_pki(args.folder)
    for field in ("ca", "signer", "untrusted_ca", "untrusted_signer", "expired_signer", "tsa"):
        ident = getattr(pki, field)
        print(f"{field}: {ident.cert} (key {ident.key})")
    print(f"anchors: {pki.anchors}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
