# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The run's own PKI: a CA per run, the engine's server certificate, agent certificates.

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time. Controller-only code (standard library plus ``cryptography``).

Layout under ``<run_dir>/tls/`` (folder 0700, keys 0600)::

    ca.pem  ca.key            the run's CA (ECDSA P-256, valid for the run's lifetime + slack)
    engine.pem  engine.key    the engine's server certificate; SANs = controller addresses
    agent-<node>-server.*     the agent's server certificate (its TLS port)
    agent-<node>-client.*     the controller's client certificate towards that agent

``ca.key`` is deleted when the run ends (``destroy_ca_key``): afterwards nothing can be
issued in the run's name. Agents do not trust a system store: they pin the CA by its
SHA-256 fingerprint (``fingerprint()``, the hash of the DER certificate).
"""
from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import ssl
import typing as t

from ansible_collections.fleet.firmware.plugins.module_utils.tls_policy import TLS12_CIPHERS

# ``cryptography`` is imported on first use, not with this module: a worker that only talks TLS
# (the agent client, the pinned contexts) never pays for the import; the engine issues the
# certificates of a deploy (issue 15), so deploy workers do not import it at all.
x509 = hashes = serialization = ec = ExtendedKeyUsageOID = NameOID = None  # type: t.Any
HAS_CRYPTOGRAPHY: t.Optional[bool] = None  # None: not tried yet


def _load_cryptography() -> bool:
    global x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID, HAS_CRYPTOGRAPHY  # pylint: disable=global-statement
    if HAS_CRYPTOGRAPHY is None:
        try:
            from cryptography import x509 as _x509
            from cryptography.hazmat.primitives import hashes as _hashes, serialization as _serialization
            from cryptography.hazmat.primitives.asymmetric import ec as _ec
            from cryptography.x509.oid import ExtendedKeyUsageOID as _eku, NameOID as _name
        except ImportError:  # reported by require_cryptography()
            HAS_CRYPTOGRAPHY = False
        else:
            x509, hashes, serialization, ec, ExtendedKeyUsageOID, NameOID = _x509, _hashes, _serialization, _ec, _eku, _name
            HAS_CRYPTOGRAPHY = True
    return bool(HAS_CRYPTOGRAPHY)


TLS_DIR = "tls"
# Short-lived on purpose: a run's certificates are worthless after the run.
DEFAULT_VALIDITY = datetime.timedelta(days=2)
CLOCK_SKEW = datetime.timedelta(minutes=10)
ROLES = ("server", "client")


class TLSError(Exception):
    """A certificate or key cannot be made or read; the message says which and why."""


def require_cryptography() -> None:
    if not _load_cryptography():
        raise TLSError("the Python package 'cryptography' is needed on the controller for the run's TLS (pip install cryptography)")


def tls_dir(run_dir: str) -> str:
    return os.path.join(run_dir, TLS_DIR)


def _write(path: str, data: bytes, mode: int) -> None:
    """Write atomically with ``mode`` from the first byte (never a moment world-readable)."""
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _new_key() -> "ec.EllipticCurvePrivateKey":
    # P-256: fast handshakes for hundreds of nodes, supported by every TLS stack we meet.
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _name(common_name: str):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fleet.firmware run"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])


def _san_entries(names: t.Iterable[str]) -> list:
    entries = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name.strip("[]"))))
        except ValueError:
            if not name or any(c.isspace() or c in "/\\" for c in name):
                raise TLSError(f"invalid certificate name {name!r}: an IP address or a DNS name") from None
            entries.append(x509.DNSName(name))
    return entries


def create_ca(run_dir: str, run_id: str, validity: datetime.timedelta = DEFAULT_VALIDITY) -> str:
    """Create the run's CA (once; an existing CA is kept) and return its fingerprint."""
    require_cryptography()
    folder = tls_dir(run_dir)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    cert_path = os.path.join(folder, "ca.pem")
    if os.path.exists(cert_path):
        return fingerprint(cert_path)
    key = _new_key()
    now = datetime.datetime.now(datetime.timezone.utc)
    name = _name(f"fleet.firmware run CA {run_id}")
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(os.path.join(folder, "ca.key"), _key_pem(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return fingerprint(cert_path)


def _load_ca(run_dir: str):
    folder = tls_dir(run_dir)
    try:
        with open(os.path.join(folder, "ca.pem"), "rb") as handle:
            cert = x509.load_pem_x509_certificate(handle.read())
        with open(os.path.join(folder, "ca.key"), "rb") as handle:
            key = serialization.load_pem_private_key(handle.read(), password=None)
    except FileNotFoundError as exc:
        raise TLSError(f"the run's CA is gone ({exc.filename}): the run has ended or was never set up") from None
    return cert, key


def issue(run_dir: str, name: str, role: str, sans: t.Sequence[str] = (),
          validity: datetime.timedelta = DEFAULT_VALIDITY) -> tuple[str, str]:
    """Issue a certificate signed by the run's CA; return ``(cert_path, key_path)``.

    ``name`` becomes the file stem and the common name; ``role`` is ``server`` (SANs
    required: the addresses or names clients connect to) or ``client``.
    """
    require_cryptography()
    if role not in ROLES:
        raise TLSError(f"invalid certificate role {role!r}: one of {', '.join(ROLES)}")
    if not name or not all(c.isalnum() or c in "._:-" for c in name) or name.startswith("."):
        raise TLSError(f"invalid certificate name {name!r}: letters, digits and . _ : - only")
    if role == "server" and not sans:
        raise TLSError(f"a server certificate needs at least one address or DNS name (SAN), none given for {name!r}")
    ca_cert, ca_key = _load_ca(run_dir)
    key = _new_key()
    now = datetime.datetime.now(datetime.timezone.utc)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if role == "server" else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW).not_valid_after(min(now + validity, _not_after(ca_cert)))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(_san_entries(sans)), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    folder = tls_dir(run_dir)
    cert_path, key_path = os.path.join(folder, f"{name}.pem"), os.path.join(folder, f"{name}.key")
    _write(key_path, _key_pem(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def issue_agent(run_dir: str, node_id: str, addresses: t.Sequence[str]) -> dict:
    """The two certificates of a node's agent session: its server cert and our client cert."""
    server = issue(run_dir, f"agent-{node_id}-server", "server", addresses)
    client = issue(run_dir, f"agent-{node_id}-client", "client")
    return {"server_cert": server[0], "server_key": server[1], "client_cert": client[0], "client_key": client[1],
            "ca_cert": os.path.join(tls_dir(run_dir), "ca.pem"), "ca_fingerprint": fingerprint(os.path.join(tls_dir(run_dir), "ca.pem"))}


def _not_after(cert) -> datetime.datetime:
    # not_valid_after_utc appeared in cryptography 42; requirements.txt allows 41.
    value = getattr(cert, "not_valid_after_utc", None)
    return value if value is not None else cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def fingerprint(cert_path: str) -> str:
    """SHA-256 of the certificate's DER form, lower-case hex (what agents pin)."""
    with open(cert_path, "rb") as handle:
        der = ssl.PEM_cert_to_DER_cert(handle.read().decode("ascii"))
    return hashlib.sha256(der).hexdigest()


def destroy_ca_key(run_dir: str) -> bool:
    """Delete the run's CA key (the run has ended). Returns True if a key was removed."""
    path = os.path.join(tls_dir(run_dir), "ca.key")
    try:
        size = os.path.getsize(path)
        # Overwrite first: a deleted key should not linger in a reused block of the file system.
        with open(path, "r+b") as handle:
            handle.write(b"\0" * size)
            handle.flush()
            os.fsync(handle.fileno())
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def server_context(cert_path: str, key_path: str) -> ssl.SSLContext:
    """A TLS 1.2+ server context with the given certificate."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)  # forward secrecy and AEAD only (issue 18, sslyze-tested)
    context.load_cert_chain(cert_path, key_path)
    return context


def pinned_client_context(ca_path: str, expected_fingerprint: str) -> ssl.SSLContext:
    """A client context that trusts only the run's CA, after checking the CA's fingerprint."""
    actual = fingerprint(ca_path)
    if actual != expected_fingerprint.lower().replace(":", ""):
        raise TLSError(f"CA fingerprint mismatch for {ca_path}: expected {expected_fingerprint}, found {actual}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(ca_path)
    return context
