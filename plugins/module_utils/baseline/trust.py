# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Signatures of a repository and its components, checked against trust anchors, failing closed.

Runs on the controller only (the repository module and the deploy action). All cryptography is
done by the standard tools, never here: ``openssl cms``/``openssl ts`` (detached CMS ``.compsig``
files, ``manifest.yml.sig``, RFC 3161 timestamps), ``rpmkeys`` (an RPM's header signature, with a
throw-away rpmdb holding only the anchors' keys) and ``osslsigncode`` (Authenticode of a
``cp*.exe``). No secret is ever put on a command line.

* ``load_anchors(folder)`` -> ``Anchors`` (raises ``TrustError`` naming the folder or file).
* ``verify_component(component, root, anchors)`` -> ``Verdict``.
* ``verify_manifest(root, anchors)`` -> ``Verdict``; ``sign_manifest(root, cert, key, passphrase_file)``.
* ``check_repository(root, components, anchors, policy)`` -> the components with their verdicts
  and ``deployable``/``not_deployable`` set by the policy (``required``, ``warn``, ``off``).

Fail closed: a verdict is ``ok`` only when a tool said, in so many words, that a signature made by
a signer chained to an anchor verifies over exactly the bytes that will be deployed. Any error
(unparsable file, tool missing, tool crash, timeout, unexpected output) is a failed verdict with
its reason. (The lesson of fwupd's CVE-2020-10759: at least one valid signature, and a
verification that errors is a failure.)

The reasons are HP SUM's: ``not signed``, ``signature invalid``, ``signature file missing``,
``signer not trusted``, ``signer expired``, ``signature format not recognised``.
"""
import atexit
import calendar
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

from ansible_collections.fleet.firmware.plugins.module_utils import manifest as manifest_mod

try:
    from asn1crypto import cms as asn1_cms  # an ASN.1 parser (requirements.txt): optional, saves a process
    HAS_ASN1CRYPTO = True
except ImportError:  # pragma: no cover - openssl parses instead
    asn1_cms = None
    HAS_ASN1CRYPTO = False

NOT_SIGNED = "not signed"
INVALID = "signature invalid"
MISSING = "signature file missing"
NOT_TRUSTED = "signer not trusted"
EXPIRED = "signer expired"
UNRECOGNISED = "signature format not recognised"
REASONS = (NOT_SIGNED, INVALID, MISSING, NOT_TRUSTED, EXPIRED, UNRECOGNISED)
POLICIES = ("required", "warn", "off")
MANIFEST_SIGNATURE_SUFFIX = ".sig"
# iLO and iLOrest move at most 32 MiB per transfer: a larger component is signed per 33 554 432-byte
# chunk, part N (from 1) over bytes [(N-1)*PART_SIZE, N*PART_SIZE) (spp-format.md section 8).
PART_SIZE = 32 * 1024 * 1024
PART_RE = re.compile(r"_part(\d+)\.compsig\Z", re.IGNORECASE)
# Extended key usages a component signer may carry (no EKU extension at all = any use, RFC 5280).
SIGNING_USAGES = ("Code Signing", "Any Extended Key Usage")
TIMESTAMP_SUFFIX = ".tsr"
TOOL_TIMEOUT = 900
CERT_SUFFIXES = (".pem", ".crt", ".cer", ".der")
GPG_SUFFIXES = (".asc", ".gpg")
PEM_CERT_RE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


class TrustError(Exception):
    """Trust anchors or a signing request that cannot be used; the message names the folder or file."""


class Verdict(object):
    """The outcome of one signature check.

    ``ok``: a valid signature by a trusted signer; ``reason``: empty when ok, else one of REASONS;
    ``signer``: the signer's subject when known; ``method``: ``cms``, ``rpm``, ``authenticode`` or
    ``manifest`` (trusted through the signed manifest); ``time_basis``: ``timestamp`` when the signer's
    validity was judged at the time of a trusted RFC 3161 timestamp, else ``verification``;
    ``detail``: what the tool said (for the operator; never a secret).
    """

    __slots__ = ("ok", "reason", "signer", "method", "time_basis", "detail")

    def __init__(self, ok, reason="", signer="", method="cms", time_basis="verification", detail=""):
        # type: (bool, str, str, str, str, str) -> None
        self.ok = bool(ok) and not reason
        self.reason = reason if reason or ok else INVALID
        self.signer = signer
        self.method = method
        self.time_basis = time_basis
        self.detail = detail

    def as_dict(self):
        # type: () -> dict
        return dict((key, getattr(self, key)) for key in self.__slots__)

    def __repr__(self):
        return "Verdict(%s)" % ", ".join("%s=%r" % item for item in sorted(self.as_dict().items()))


def fail(reason, method="cms", detail="", signer="", time_basis="verification"):
    # type: (str, str, str, str, str) -> Verdict
    return Verdict(False, reason=reason, signer=signer, method=method, time_basis=time_basis, detail=detail)


# --------------------------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------------------------


def _run(argv, stdin=None, env=None):
    # type: (list, bytes, dict) -> tuple
    """(returncode, stdout, stderr) of a tool; a missing tool or a timeout is returncode -1."""
    try:
        proc = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=TOOL_TIMEOUT, env=env, check=False)
    except OSError as exc:
        return -1, "", "%s: %s" % (argv[0], exc.strerror or exc)
    except subprocess.TimeoutExpired:
        return -1, "", "%s did not answer within %d s" % (argv[0], TOOL_TIMEOUT)
    return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


def openssl():
    # type: () -> str
    return os.environ.get("FLEET_OPENSSL") or "openssl"


_OPENSSL_ERROR_RE = re.compile(r"^[0-9A-F]+:error:[0-9A-F]+:[^:]*:[^:]*:([^:]*):[^:]*:\d+:(.*)\Z")


def _plain(line):
    # type: (str) -> str
    """An OpenSSL error line without its thread id, codes and source location."""
    found = _OPENSSL_ERROR_RE.match(line)
    if not found:
        return line
    reason, extra = found.group(1).strip(), found.group(2).strip()
    return extra if extra else reason


def _last_line(text):
    # type: (str) -> str
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return _plain(lines[-1])[:500] if lines else ""


# --------------------------------------------------------------------------------------------
# Anchors
# --------------------------------------------------------------------------------------------


class Anchors(object):
    """The trust anchors of a folder: ``cafile`` (every certificate, PEM, in a private temporary
    folder) and ``gpg_keys`` (ASCII-armoured public keys for RPM). ``close()`` removes the copy."""

    def __init__(self, folder, certificates, gpg_keys, workdir):
        # type: (str, list, list, str) -> None
        self.folder = folder
        self.certificates = certificates
        self.gpg_keys = gpg_keys
        self.workdir = workdir
        self.cafile = os.path.join(workdir, "anchors.pem")
        self._rpmdb = None  # type: str
        self._lock = threading.Lock()  # components are verified in parallel threads
        # (file, signature files) -> Verdict, for this run only: hash_and_verify checks a
        # signature while it hashes the file for the import, check_repository then reuses it.
        self.verdicts = {}  # type: dict
        # certificate PEM -> (subject, problem): every component of an SPP has the same signer.
        self.signer_facts = {}  # type: dict

    def close(self):
        # type: () -> None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def rpmdb(self):
        # type: () -> str
        """A temporary rpmdb holding only the anchors' GPG keys (built once). Raises TrustError."""
        with self._lock:
            return self._build_rpmdb()

    def _build_rpmdb(self):
        # type: () -> str
        if self._rpmdb is None:
            dbpath = os.path.join(self.workdir, "rpmdb")
            os.mkdir(dbpath, 0o700)
            for key in self.gpg_keys:
                rc, _out, err = _run(["rpmkeys", "--dbpath", dbpath, "--import", key])
                if rc != 0:
                    raise TrustError("trust anchor %s: rpmkeys cannot import it: %s" % (key, _last_line(err) or "rc %d" % rc))
            self._rpmdb = dbpath
        return self._rpmdb


def _certificate_pem(path):
    # type: (str) -> str
    """The PEM text of every certificate in a PEM or DER file (openssl reads it; we only split PEM blocks)."""
    with open(path, "rb") as handle:
        data = handle.read()
    text = data.decode("ascii", "replace")
    blocks = PEM_CERT_RE.findall(text)
    if blocks:
        for block in blocks:
            rc, _out, err = _run([openssl(), "x509", "-noout"], stdin=block.encode("ascii"))
            if rc != 0:
                raise TrustError("trust anchor %s: not a certificate openssl can read: %s" % (path, _last_line(err)))
        return "\n".join(blocks) + "\n"
    rc, out, err = _run([openssl(), "x509", "-inform", "DER", "-outform", "PEM"], stdin=data)
    if rc != 0:
        raise TrustError("trust anchor %s: not a PEM or DER certificate: %s" % (path, _last_line(err)))
    return out


def _armoured_key(path, workdir):
    # type: (str, str) -> str
    """An ASCII-armoured copy of a GPG public key (rpmkeys reads only armour); gpg converts a binary one."""
    with open(path, "rb") as handle:
        data = handle.read()
    if b"-----BEGIN PGP PUBLIC KEY BLOCK-----" in data:
        return path
    home = tempfile.mkdtemp(prefix="gnupg-", dir=workdir)
    env = dict(os.environ, GNUPGHOME=home)
    rc, _out, err = _run(["gpg", "--batch", "--quiet", "--import", path], env=env)
    if rc != 0:
        raise TrustError("trust anchor %s: not a GPG public key gpg can read: %s" % (path, _last_line(err)))
    rc, out, err = _run(["gpg", "--batch", "--armor", "--export"], env=env)
    if rc != 0 or "BEGIN PGP PUBLIC KEY BLOCK" not in out:
        raise TrustError("trust anchor %s: gpg cannot export it: %s" % (path, _last_line(err)))
    armoured = os.path.join(workdir, os.path.basename(path) + ".asc")
    with open(armoured, "w") as handle:
        handle.write(out)
    return armoured


def load_anchors(folder):
    # type: (str) -> Anchors
    """Every certificate (``*.pem``, ``*.crt``, ``*.cer``, ``*.der``) and GPG key (``*.asc``, ``*.gpg``)
    of ``folder``. Raises TrustError naming the folder when it is missing or holds no anchor, and
    naming the file when one cannot be read (a broken anchor is never skipped silently)."""
    if not folder or not os.path.isdir(folder):
        raise TrustError("trust: %s is not a folder of trust anchors" % folder)
    workdir = tempfile.mkdtemp(prefix="fleet-trust-")
    atexit.register(shutil.rmtree, workdir, True)
    try:
        certificates, pem, keys = [], [], []
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if name.startswith(".") or not os.path.isfile(path):
                continue
            lower = name.lower()
            if lower.endswith(CERT_SUFFIXES):
                pem.append(_certificate_pem(path))
                certificates.append(path)
            elif lower.endswith(GPG_SUFFIXES):
                keys.append(_armoured_key(path, workdir))
        if not certificates and not keys:
            raise TrustError("trust: %s holds no trust anchor (certificates *.pem/*.crt/*.cer/*.der, GPG keys *.asc/*.gpg)"
                             % folder)
        anchors = Anchors(folder, certificates, keys, workdir)
        fd = os.open(anchors.cafile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("".join(pem))
        return anchors
    except Exception:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


# --------------------------------------------------------------------------------------------
# CMS (.compsig, manifest.yml.sig)
# --------------------------------------------------------------------------------------------

# What openssl cms -verify says -> our reason. Checked in order; anything else is INVALID.
_CMS_ERRORS = (
    (re.compile(r"certificate has expired|certificate is not yet valid", re.I), EXPIRED),
    (re.compile(r"unable to get (local )?issuer certificate|self.signed certificate|signer certificate not found|"
                r"certificate signature failure|unsupported certificate purpose|invalid CA certificate|"
                r"certificate revoked|unable to verify the first certificate|path length constraint", re.I), NOT_TRUSTED),
    (re.compile(r"content verify error|verification failure|digest failure|signature failure", re.I), INVALID),
    (re.compile(r"Error reading S/?MIME|asn1|wrong content type|not enough data|header too long|"
                r"type not signed data|no content type|decode error|unsupported content type", re.I), UNRECOGNISED),
)


def _cms_reason(stderr):
    # type: (str) -> str
    for pattern, reason in _CMS_ERRORS:
        if pattern.search(stderr):
            return reason
    return INVALID


def _parse_cms(signature):
    # type: (str) -> tuple
    """(problem, digest): problem is "" when ``signature`` is a detached CMS SignedData in DER that
    openssl can read, else what openssl said. digest: the SHA-256 every signer signed as the
    content's ``messageDigest`` (hex); None when a signer used another digest or has no signed
    attributes. Only a signature that then verifies makes it the content's hash (openssl compared
    it with the content's own digest).

    Parsed in this process by asn1crypto when it is installed (a parser only: the verification is
    openssl's); anything it does not find well-formed and detached goes to openssl, whose words
    then name the problem. Saves one openssl process per signature (an SPP has hundreds)."""
    found = _parse_cms_inline(signature)
    if found is not None:
        return "", found or None
    return _parse_cms_openssl(signature)


def _parse_cms_inline(signature):
    # type: (str) -> str
    """The signers' one SHA-256 messageDigest (hex), "" when there is none such, or None when
    asn1crypto is missing or the file is not a well-formed, detached CMS SignedData."""
    if not HAS_ASN1CRYPTO:
        return None
    try:
        with open(signature, "rb") as handle:
            info = asn1_cms.ContentInfo.load(handle.read(), strict=True)
        if info["content_type"].native != "signed_data":
            return None
        signed = info["content"]
        if signed["encap_content_info"]["content"].native is not None or not len(signed["signer_infos"]):
            return None
        digests = set()
        for signer in signed["signer_infos"]:
            attributes = signer["signed_attrs"]
            values = [a["values"] for a in attributes if a["type"].native == "message_digest"] if attributes.native else []
            if signer["digest_algorithm"]["algorithm"].native != "sha256" or len(values) != 1 or len(values[0]) != 1:
                return ""
            digests.add(values[0][0].native.hex())
        digest = digests.pop() if len(digests) == 1 else ""
        return digest if len(digest) == 64 else ""
    except Exception:  # pylint: disable=broad-except
        return None  # whatever asn1crypto makes of it, openssl has the word


def _parse_cms_openssl(signature):
    # type: (str) -> tuple
    """_parse_cms by ``openssl cms -cmsout -print``."""
    rc, out, err = _run([openssl(), "cms", "-cmsout", "-inform", "DER", "-in", signature, "-print", "-noout"])
    if rc != 0:
        return _last_line(err) or "openssl cannot read it (rc %d)" % rc, None
    if "contentType: pkcs7-signedData" not in out or "signerInfos:" not in out:
        return "not a CMS SignedData structure", None
    if "eContent: <ABSENT>" not in out:
        return "the signed content is embedded (a detached signature is expected)", None
    return "", _signed_digest(out.split("signerInfos:", 1)[1])


_DIGEST_ALGORITHM_RE = re.compile(r"^\s*digestAlgorithm:\s*\n\s*algorithm:\s*(\S+)", re.M)
_MESSAGE_DIGEST_RE = re.compile(r"object: messageDigest \(1\.2\.840\.113549\.1\.9\.4\)\s*\n\s*set:\s*\n\s*OCTET STRING:\s*\n"
                                r"((?:\s*[0-9a-f]{4} - .*\n?)+)")
_DUMP_LINE_RE = re.compile(r"^\s*[0-9a-f]{4} - ((?:[0-9a-f]{2}[ -])*[0-9a-f]{2})", re.M)


def _signed_digest(signer_infos):
    # type: (str) -> str
    """The one SHA-256 messageDigest of every signer in openssl's print of ``signerInfos`` (hex), or None."""
    algorithms = _DIGEST_ALGORITHM_RE.findall(signer_infos)
    dumps = _MESSAGE_DIGEST_RE.findall(signer_infos)
    if not algorithms or len(dumps) != len(algorithms) or any(a != "sha256" for a in algorithms):
        return None
    digests = set()
    for dump in dumps:
        digest = "".join(re.sub(r"[ -]", "", hexes) for hexes in _DUMP_LINE_RE.findall(dump))
        if not re.match(r"^[0-9a-f]{64}\Z", digest):
            return None
        digests.add(digest)
    return digests.pop() if len(digests) == 1 else None


def _signer_facts(pem_file, cache=None):
    # type: (str, dict) -> tuple
    """(subjects, problem): the signers' subjects; problem when a signer is not a code-signing certificate.
    ``cache``: certificate PEM -> (subject, problem), filled here (openssl reads each certificate once)."""
    try:
        with open(pem_file, "r") as handle:
            blocks = PEM_CERT_RE.findall(handle.read())
    except OSError:
        blocks = []
    if not blocks:
        return [], "openssl named no signer certificate"
    cache = {} if cache is None else cache
    subjects = []
    for block in blocks:
        if block not in cache:
            cache[block] = _certificate_facts(block)
        subject, problem = cache[block]
        subjects.append(subject)
        if problem:
            return subjects, problem
    return subjects, ""


def _certificate_facts(block):
    # type: (str) -> tuple
    """(subject, problem) of one signer certificate (PEM), by openssl x509."""
    rc, out, err = _run([openssl(), "x509", "-noout", "-subject", "-nameopt", "RFC2253", "-ext", "extendedKeyUsage"],
                        stdin=block.encode("ascii"))
    if rc != 0:
        return "", "cannot read the signer certificate: %s" % _last_line(err)
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    subject = lines[0][len("subject="):].strip() if lines and lines[0].startswith("subject=") else ""
    usage_lines = [line for line in lines[1:] if not line.startswith("X509v3 Extended Key Usage")]
    if usage_lines:
        usages = [u.strip() for u in ",".join(usage_lines).split(",") if u.strip()]
        if not any(u in SIGNING_USAGES for u in usages):
            return subject, "signer %s is not a code-signing certificate (extended key usage: %s)" % (subject, ", ".join(usages))
    return subject, ""


def _cms_verify(signature, content, anchors, stdin=None, at_time=None, found=None):
    # type: (str, str, Anchors, bytes, int, dict) -> Verdict
    """One detached CMS signature over ``content`` (a path, or ``/dev/stdin`` with ``stdin``).
    ``found``: gets ``digest``, the content's SHA-256 the signature vouches for, when it verifies."""
    basis = "timestamp" if at_time is not None else "verification"
    problem, digest = _parse_cms(signature)
    if problem:
        return fail(UNRECOGNISED, detail=problem, time_basis=basis)
    fd, signers = tempfile.mkstemp(prefix="signer-", suffix=".pem", dir=anchors.workdir)
    os.close(fd)
    try:
        # -purpose any: OpenSSL 3.0 has no code-signing purpose (its default, smimesign, wants
        # e-mail protection); the chain to an anchor is checked here and the code-signing EKU
        # by _signer_facts. -no-CApath/-no-CAstore: only the user's anchors, never the system's.
        argv = [openssl(), "cms", "-verify", "-binary", "-inform", "DER", "-in", signature, "-content", content,
                "-CAfile", anchors.cafile, "-no-CApath", "-no-CAstore", "-purpose", "any", "-signer", signers,
                "-out", os.devnull]
        if at_time is not None:
            argv += ["-attime", str(at_time)]
        rc, _out, err = _run(argv, stdin=stdin)
        if rc != 0:
            return fail(_cms_reason(err) if rc > 0 else INVALID, detail=_last_line(err), time_basis=basis)
        if "Verification successful" not in err:
            return fail(INVALID, detail="openssl did not confirm the verification", time_basis=basis)
        subjects, problem = _signer_facts(signers, anchors.signer_facts)
        if problem:
            return fail(NOT_TRUSTED, detail=problem, signer="; ".join(subjects), time_basis=basis)
        if found is not None and digest:
            found["digest"] = digest
        return Verdict(True, signer="; ".join(subjects), method="cms", time_basis=basis)
    finally:
        os.unlink(signers)


def _timestamp_time(signature, anchors):
    # type: (str, Anchors) -> tuple
    """(epoch seconds or None, problem) of the RFC 3161 token ``<signature>.tsr`` over the signature's
    bytes: None and "" when there is none; a token that does not verify against the anchors is a problem."""
    token = signature + TIMESTAMP_SUFFIX
    if not os.path.isfile(token):
        return None, ""
    rc, out, err = _run([openssl(), "ts", "-verify", "-in", token, "-token_in", "-data", signature, "-CAfile", anchors.cafile])
    if rc != 0 or "Verification: OK" not in out:
        return None, "timestamp %s does not verify: %s" % (os.path.basename(token), _last_line(err) or _last_line(out))
    rc, out, err = _run([openssl(), "ts", "-reply", "-in", token, "-token_in", "-text"])
    found = re.search(r"^Time stamp:\s*(.+?)\s*$", out, re.M) if rc == 0 else None
    if not found:
        return None, "timestamp %s has no readable time: %s" % (os.path.basename(token), _last_line(err))
    stamp = re.sub(r"\.\d+", "", found.group(1)).replace(" GMT", "")
    try:
        return calendar.timegm(time.strptime(" ".join(stamp.split()), "%b %d %H:%M:%S %Y")), ""
    except ValueError:
        return None, "timestamp %s: unreadable time %r" % (os.path.basename(token), found.group(1))


def verify_signature(signature, content, anchors, stdin=None, found=None):
    # type: (str, str, Anchors, bytes, dict) -> Verdict
    """A detached CMS signature file over ``content``, judged at its trusted timestamp when it has one."""
    at_time, problem = _timestamp_time(signature, anchors)
    if problem:
        return fail(INVALID, detail=problem, time_basis="timestamp")
    return _cms_verify(signature, content, anchors, stdin=stdin, at_time=at_time, found=found)


def _signature_files(component):
    # type: (dict) -> list
    value = component.get("signature")
    if value in (None, "", []):
        return []
    return [value] if isinstance(value, str) else list(value)


def _ordered_parts(names):
    # type: (list) -> tuple
    """(names in part order, problem): ``_partN`` names must be 1..N, each once."""
    numbers = [PART_RE.search(name) for name in names]
    if not all(numbers):
        return names, ""
    by_number = sorted(zip((int(n.group(1)) for n in numbers), names))
    if [n for n, _name in by_number] != list(range(1, len(names) + 1)):
        return names, "the parts are numbered %s, not 1 to %d" % ([n for n, _name in by_number], len(names))
    return [name for _n, name in by_number], ""


def _verify_parts(path, names, root, anchors, whole=None):
    # type: (str, list, str, Anchors, object) -> Verdict
    """Every ``_partN.compsig`` must verify over its 32 MiB chunk, and the parts must cover the whole file."""
    names, problem = _ordered_parts(names)
    if problem:
        return fail(INVALID, detail=problem)
    return _verify_part_files(path, [(name, manifest_mod.resolve_file(root, name)[0]) for name in names], anchors, whole)


def _verify_part_files(path, parts, anchors, whole=None):
    # type: (str, list, Anchors, object) -> Verdict
    """``parts``: (name, signature path) in part order. ``whole``: a hashlib object that gets every
    byte of the file on the way (the import's SHA-256, read once with the verification)."""
    expected = max(1, -(-os.path.getsize(path) // PART_SIZE))
    if len(parts) != expected:
        return fail(INVALID, detail="%d signature parts for a file of %d chunks of %d bytes" % (len(parts), expected, PART_SIZE))
    verdicts = []
    with open(path, "rb") as handle:
        for name, signature in parts:
            chunk = handle.read(PART_SIZE)
            if whole is not None:
                whole.update(chunk)
            verdict = verify_signature(signature, "/dev/stdin", anchors, stdin=chunk)
            if not verdict.ok:
                verdict.detail = "%s: %s" % (name, verdict.detail)
                return verdict
            verdicts.append(verdict)
        if handle.read(1):
            return fail(INVALID, detail="the file grew while its parts were verified: the parts do not cover it")
    first = verdicts[0]
    basis = "timestamp" if all(v.time_basis == "timestamp" for v in verdicts) else "verification"
    return Verdict(True, signer=first.signer, method="cms", time_basis=basis)


def _verify_cms_component(component, path, root, anchors):
    # type: (dict, str, str, Anchors) -> Verdict
    names = _signature_files(component)
    for name in names:
        signature, why = manifest_mod.resolve_file(root, name)
        if signature is None:
            return fail(MISSING, detail=why)
        if not os.path.isfile(signature):
            return fail(MISSING, detail="%s is not in the repository" % name)
    if len(names) == 1 and not PART_RE.search(names[0]):
        verdict = verify_signature(manifest_mod.resolve_file(root, names[0])[0], path, anchors)
        if not verdict.ok:
            verdict.detail = "%s: %s" % (names[0], verdict.detail)
        return verdict
    return _verify_parts(path, names, root, anchors)


# --------------------------------------------------------------------------------------------
# RPM header signatures, Authenticode
# --------------------------------------------------------------------------------------------


def _is_rpm(component):
    # type: (dict) -> bool
    return component.get("install") == "rpm" or str(component.get("file", "")).lower().endswith(".rpm")


def _is_windows_exe(component):
    # type: (dict) -> bool
    return str(component.get("file", "")).lower().endswith(".exe")


def verify_rpm(path, anchors):
    # type: (str, Anchors) -> Verdict
    """The RPM's own header signature, against a temporary rpmdb holding only the anchors' GPG keys."""
    if not anchors.gpg_keys:
        return fail(NOT_TRUSTED, method="rpm", detail="the trust folder %s holds no GPG key for RPM signatures" % anchors.folder)
    try:
        dbpath = anchors.rpmdb()
    except TrustError as exc:
        return fail(NOT_TRUSTED, method="rpm", detail=str(exc))
    rc, out, err = _run(["rpmkeys", "--dbpath", dbpath, "--checksig", "--verbose", path])
    text = out + err
    if rc == -1:
        return fail(INVALID, method="rpm", detail=_last_line(err))
    if re.search(r"signature.*NOKEY|MISSING KEYS", text, re.I):
        return fail(NOT_TRUSTED, method="rpm", detail=_last_line(text))
    if re.search(r"BAD|NOT OK", text):
        return fail(INVALID, method="rpm", detail=_last_line(text))
    signed = [line.strip() for line in text.splitlines() if re.search(r"Header V\d \S+ Signature, key ID \S+: OK", line)]
    if rc != 0:
        return fail(UNRECOGNISED if re.search(r"not an rpm package|read failed", text, re.I) else INVALID,
                    method="rpm", detail=_last_line(text))
    if not signed:
        return fail(NOT_SIGNED, method="rpm", detail="rpmkeys found no header signature")
    key = re.search(r"key ID (\S+):", signed[0])
    return Verdict(True, signer="GPG key %s" % key.group(1) if key else "", method="rpm")


def verify_authenticode(path, anchors):
    # type: (str, Anchors) -> Verdict
    """Authenticode of a Windows executable, by osslsigncode against the anchors only."""
    rc, out, err = _run(["osslsigncode", "verify", "-in", path, "-CAfile", anchors.cafile, "-TSA-CAfile", anchors.cafile])
    text = out + "\n" + err
    if rc == -1:
        return fail(INVALID, method="authenticode", detail=_last_line(err))
    if rc != 0 and re.search(r"No signature found|Unrecognized file type|Corrupt PE file|not a PE|"
                             r"unsupported input file type|Unable to extract existing signature", text, re.I):
        reason = NOT_SIGNED if re.search(r"No signature found", text, re.I) else UNRECOGNISED
        return fail(reason, method="authenticode", detail=_last_line(text))
    signer = re.search(r"Subject:\s*(.+)", text)
    basis = "timestamp" if re.search(r"Timestamp verification: ok", text, re.I) else "verification"
    if rc == 0 and re.search(r"Signature verification: ok", text, re.I) and not re.search(r"verification: failed", text, re.I):
        return Verdict(True, signer=signer.group(1).strip() if signer else "", method="authenticode", time_basis=basis)
    if re.search(r"certificate has expired|not yet valid", text, re.I):
        reason = EXPIRED
    elif re.search(r"unable to get local issuer|self.signed|unable to get issuer|Signature verification: ok", text, re.I):
        reason = NOT_TRUSTED
    else:
        reason = INVALID
    return fail(reason, method="authenticode", detail=_failed_line(text), time_basis=basis)


def _failed_line(text):
    # type: (str) -> str
    for line in text.splitlines():
        if re.search(r"error|fail", line, re.I):
            return line.strip()[:500]
    return _last_line(text)


# --------------------------------------------------------------------------------------------
# Components and manifests
# --------------------------------------------------------------------------------------------


def verify_component(component, root, anchors):
    # type: (dict, str, Anchors) -> Verdict
    """The component's own signature: its ``.compsig`` (or ``_partN`` set) when it names one, else an
    RPM's header signature, else Authenticode for a ``.exe``; anything else is ``not signed``."""
    try:
        root = manifest_mod.component_root(root, component)  # an imported component's files are relative to its source
        path, why = manifest_mod.resolve_file(root, component.get("file"))
        if path is None or not os.path.isfile(path):
            return fail(INVALID, detail="the component file is not there: %s" % (why or component.get("file")))
        if _signature_files(component):
            cached = _cached_verdict(anchors, path, [manifest_mod.resolve_file(root, name)[0] for name in _signature_files(component)])
            return cached or _verify_cms_component(component, path, root, anchors)
        if _is_rpm(component):
            return verify_rpm(path, anchors)
        if _is_windows_exe(component):
            return verify_authenticode(path, anchors)
        return fail(NOT_SIGNED, detail="no signature field, and the file carries no signature the collection can check")
    except (OSError, ValueError, TrustError) as exc:
        # Fail closed: whatever broke, the component is not verified.
        return fail(INVALID, detail="verification failed: %s" % exc)


# --------------------------------------------------------------------------------------------
# The import's hashing and the signature check in one read of each file
# --------------------------------------------------------------------------------------------


def _file_key(path):
    # type: (str) -> tuple
    real = os.path.realpath(path)
    info = os.stat(real)
    return real, info.st_size, info.st_mtime_ns


def _cached_verdict(anchors, path, signatures):
    # type: (Anchors, str, list) -> Verdict
    """A copy of the valid verdict hash_and_verify found for exactly these files, unchanged since; else None."""
    if not anchors.verdicts or None in signatures:
        return None
    try:
        found = anchors.verdicts.get((_file_key(path),) + tuple(_file_key(s) for s in signatures))
    except OSError:
        return None
    return Verdict(**found.as_dict()) if found is not None else None


def _hash_verifying(path, signatures, anchors):
    # type: (str, list, Anchors) -> str
    """The file's SHA-256, read once: by openssl verifying its detached signature (the digest the
    signature vouches for), or, for a ``_partN`` set, by us while the parts are piped to openssl.
    A valid verdict is kept in ``anchors.verdicts`` (check_repository then does not read the file
    again); any other outcome is left for check_repository to find and report, and the file is
    hashed on its own."""
    try:
        key = (_file_key(path),) + tuple(_file_key(s) for s in signatures)
        found, whole = {}, None
        if len(signatures) == 1 and not PART_RE.search(signatures[0]):
            verdict = verify_signature(signatures[0], path, anchors, found=found)
        else:
            names, problem = _ordered_parts(signatures)
            whole = hashlib.sha256()
            verdict = fail(INVALID, detail=problem) if problem else _verify_part_files(path, [(n, n) for n in names], anchors, whole)
            found["digest"] = whole.hexdigest() if verdict.ok else None
        if verdict.ok and found.get("digest"):
            anchors.verdicts[key] = verdict
            return found["digest"]
    except (OSError, ValueError, TrustError):
        pass  # fail closed: nothing cached; check_repository verifies again and says why
    return manifest_mod.sha256_of(path)


def hash_and_verify(jobs, anchors, workers=None):
    # type: (list, Anchors, int) -> dict
    """{path: SHA-256} of every ``(path, signature paths)`` job, for spp.import_folders: each file is
    read once for both its hash and its signature check (see _hash_verifying), in parallel."""
    from concurrent.futures import ThreadPoolExecutor
    unique = sorted(dict(((p, tuple(s)) for p, s in jobs)).items())
    count = max(1, workers or min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=count) as pool:
        digests = pool.map(lambda job: _hash_verifying(job[0], list(job[1]), anchors) if job[1] else manifest_mod.sha256_of(job[0]),
                           unique)
        return dict(zip((p for p, _s in unique), digests))


def manifest_signature_path(root, manifest_name=manifest_mod.MANIFEST_NAME):
    # type: (str, str) -> str
    return os.path.join(root, manifest_name + MANIFEST_SIGNATURE_SUFFIX)


def verify_manifest(root, anchors, manifest_name=manifest_mod.MANIFEST_NAME):
    # type: (str, Anchors, str) -> Verdict
    """``manifest.yml.sig`` over ``manifest.yml``: ``not signed`` when there is no signature file."""
    signature = manifest_signature_path(root, manifest_name)
    if not os.path.exists(signature):
        return fail(NOT_SIGNED, detail="no %s" % os.path.basename(signature))
    try:
        verdict = verify_signature(signature, os.path.join(root, manifest_name), anchors)
    except (OSError, ValueError) as exc:
        return fail(INVALID, detail="verification failed: %s" % exc)
    if not verdict.ok:
        verdict.detail = "%s: %s" % (os.path.basename(signature), verdict.detail)
    return verdict


def sign_manifest(root, cert, key, passphrase_file=None, manifest_name=manifest_mod.MANIFEST_NAME):
    # type: (str, str, str, str, str) -> str
    """Write ``manifest.yml.sig`` (detached CMS, DER, SHA-256) by ``openssl cms -sign``; the key's
    passphrase, if any, is read by openssl from ``passphrase_file`` (0600), never from argv.
    Written beside the manifest atomically. Returns its path; raises TrustError."""
    for label, value in (("sign_cert", cert), ("sign_key", key)):
        if not value or not os.path.isfile(value):
            raise TrustError("%s: %s is not a file" % (label, value))
    signature = manifest_signature_path(root, manifest_name)
    fd, temp = tempfile.mkstemp(prefix=".manifest-sig-", dir=root)
    os.close(fd)
    try:
        argv = [openssl(), "cms", "-sign", "-binary", "-md", "sha256", "-in", os.path.join(root, manifest_name),
                "-signer", cert, "-inkey", key, "-outform", "DER", "-out", temp]
        if passphrase_file:
            argv += ["-passin", "file:%s" % passphrase_file]
        rc, _out, err = _run(argv)
        if rc != 0:
            raise TrustError("cannot sign %s with %s: %s" % (manifest_name, cert, _last_line(err) or "rc %d" % rc))
        os.chmod(temp, 0o644)
        os.rename(temp, signature)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return signature


# --------------------------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------------------------


def policy_warning(policy):
    # type: (str) -> str
    """The warning printed in every run whose policy is not ``required`` ("" for required)."""
    if policy == "off":
        return ("signatures=off: component and manifest signatures are NOT checked; whoever can write the "
                "repository runs code as root/SYSTEM on every node")
    if policy == "warn":
        return "signatures=warn: components whose signature does not verify are still deployed"
    return ""


def check_policy(policy, trust):
    # type: (str, str) -> None
    """Raises TrustError for an unknown policy, or ``required`` without ``trust``."""
    if policy not in POLICIES:
        raise TrustError("signatures: %r is not one of %s" % (policy, ", ".join(POLICIES)))
    if policy == "required" and not trust:
        raise TrustError("trust: signatures=required needs trust, the folder of trust anchors (or set signatures "
                         "to warn or off, which prints a warning in every run)")


def _verify_all(components, root, anchors):
    # type: (list, str, Anchors) -> list
    """Every component's verdict, in order. The tools run in parallel (one thread per CPU waits on
    one subprocess each): verification reads every file once more, and that is I/O and openssl's
    work, not Python's."""
    workers = max(1, min(len(components), os.cpu_count() or 1))
    if workers == 1:
        return [verify_component(component, root, anchors) for component in components]
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda component: verify_component(component, root, anchors), components))


def check_repository(root, components, anchors, policy, manifest_name=manifest_mod.MANIFEST_NAME):
    # type: (str, list, Anchors, str, str) -> tuple
    """(components, manifest verdict or None): copies of ``components``, each with ``signature_verdict``
    and, under ``required``, ``deployable: False`` and ``not_deployable`` for those without a valid
    signature.

    A component is trusted by its own valid signature, or through a valid signed manifest (whose
    sha256 the manifest validation has already checked against the file). A signature that is there
    but fails always makes the component not trusted, even under a signed manifest: a broken
    signature is a warning sign, never something to be outvoted.
    """
    if policy == "off":
        return [dict(c) for c in components], None
    manifest_verdict = verify_manifest(root, anchors, manifest_name)
    result = []
    for component, verdict in zip(components, _verify_all(components, root, anchors)):
        entry = dict(component)
        if not verdict.ok and verdict.reason == NOT_SIGNED and manifest_verdict.ok:
            verdict = Verdict(True, signer=manifest_verdict.signer, method="manifest", time_basis=manifest_verdict.time_basis,
                              detail="trusted through the signed manifest")
        elif not verdict.ok and manifest_verdict.reason not in (NOT_SIGNED, ""):
            verdict.detail = "%s (and the manifest signature fails: %s)" % (verdict.detail, manifest_verdict.reason)
        entry["signature_verdict"] = verdict.as_dict()
        if not verdict.ok and policy == "required" and entry.get("deployable", True):
            entry["deployable"] = False
            entry["not_deployable"] = verdict.reason
        result.append(entry)
    return result, manifest_verdict


def untrusted(components):
    # type: (list) -> list
    """``name: reason (detail)`` of every component whose signature verdict failed."""
    lines = []
    for component in components:
        verdict = component.get("signature_verdict")
        if verdict and not verdict["ok"]:
            detail = (" (%s)" % verdict["detail"]) if verdict.get("detail") else ""
            lines.append("%s: %s%s" % (component.get("name"), verdict["reason"], detail))
    return lines


def selected(components, only):
    # type: (list, list) -> list
    """The components a run may install: those named in ``only`` (all when empty) and everything they
    require, transitively; never one already marked not deployable (the plan skips those)."""
    by_name = dict((c.get("name"), c) for c in components)
    wanted = set(only or by_name)
    todo = list(wanted)
    while todo:
        for required in (by_name.get(todo.pop()) or {}).get("requires") or []:
            if required not in wanted:
                wanted.add(required)
                todo.append(required)
    return [c for c in components if c.get("name") in wanted and c.get("deployable", True) is not False]


def load_trusted_components(path, trust=None, policy="required", verify=True, only=None):
    # type: (str, str, str, bool, list) -> tuple
    """For the deploy action: (components, warnings). The manifest's validated components, checked
    by ``policy``; raises TrustError naming every component that is not trusted under ``required``
    among those the run may install (``only`` and their requirements; see ``selected``), before
    anything reaches a node, and ManifestError for a manifest that does not validate."""
    check_policy(policy, trust)
    components = manifest_mod.load_components(path, verify=verify)
    manifest_path = os.path.join(path, manifest_mod.MANIFEST_NAME) if os.path.isdir(path) else path
    root = os.path.dirname(os.path.abspath(manifest_path))
    warnings = [policy_warning(policy)] if policy != "required" else []
    if policy == "off" and not trust:
        return components, warnings
    anchors = load_anchors(trust)
    try:
        checked, manifest_verdict = check_repository(root, components, anchors, policy, os.path.basename(manifest_path))
    finally:
        anchors.close()
    if manifest_verdict is not None and not manifest_verdict.ok and manifest_verdict.reason != NOT_SIGNED:
        message = "the manifest signature of %s fails: %s (%s)" % (manifest_path, manifest_verdict.reason, manifest_verdict.detail)
        if policy == "required":
            raise TrustError(message)
        warnings.append(message)
    # Which components the run may install is decided on the manifest as written (check_repository
    # has since marked the unverified ones not deployable).
    may_install = set(c.get("name") for c in selected(components, only))
    bad = untrusted([c for c in checked if c.get("name") in may_install] if policy == "required" else checked)
    if bad and policy == "required":
        raise TrustError("not deployable (signatures=required, trust=%s): %s" % (trust, "; ".join(bad)))
    warnings.extend("signature not verified, deployed anyway (signatures=%s): %s" % (policy, line) for line in bad)
    return checked, warnings


# --------------------------------------------------------------------------------------------
# The repository module's guard: a signed manifest is never silently re-approved
# --------------------------------------------------------------------------------------------


def changed_files(root, data, reapprove=()):
    # type: (str, dict, tuple) -> tuple
    """(problems, reapproved): components whose file's sha256 or size no longer matches the manifest,
    as error messages naming the component, except those named in ``reapprove``, which are listed
    in ``reapproved`` (the refresh then takes their new hash)."""
    problems, reapproved = [], []
    for component in (data or {}).get("components") or []:
        if not isinstance(component, dict):
            continue
        path = manifest_mod.resolve_file(manifest_mod.component_root(root, component), component.get("file"))[0]
        if path is None or not os.path.isfile(path) or component.get("sha256") is None:
            continue  # validation names missing files and unhashed stubs
        digest = manifest_mod.sha256_of(path)
        if digest == component.get("sha256") and os.path.getsize(path) == component.get("size"):
            continue
        name = component.get("name")
        if name in reapprove:
            reapproved.append(name)
            continue
        problems.append("component %r: %s changed since the manifest was signed (sha256 in the manifest %s, of the file %s); "
                        "it is not re-approved silently: name it in reapprove to accept the new file"
                        % (name, component.get("file"), component.get("sha256"), digest))
    return problems, reapproved


def unknown_names(data, names):
    # type: (dict, list) -> list
    known = set(c.get("name") for c in (data or {}).get("components") or [] if isinstance(c, dict))
    return sorted(set(names) - known)


def passphrase_file(passphrase, folder=None):
    # type: (str, str) -> str
    """A new 0600 file holding ``passphrase`` for openssl's ``-passin file:`` (the caller removes it)."""
    fd, path = tempfile.mkstemp(prefix=".sign-pass-", dir=folder)
    with os.fdopen(fd, "w") as handle:
        handle.write(passphrase + "\n")
    return path
