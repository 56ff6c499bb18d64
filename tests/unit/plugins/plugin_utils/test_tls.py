# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The run's PKI: a real CA and certificates, checked with a real TLS handshake on loopback."""
from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import stat
import threading

import pytest
from cryptography import x509

from ansible_collections.fleet.firmware.plugins.plugin_utils import tls


def _load(path):
    with open(path, "rb") as handle:
        return x509.load_pem_x509_certificate(handle.read())


def test_ca_and_server_certificate_with_ipv4_and_ipv6_sans_and_private_keys(tmp_path):
    run = str(tmp_path)
    fp = tls.create_ca(run, "r1")
    assert tls.create_ca(run, "r1") == fp  # kept, not replaced
    cert, key = tls.issue(run, "engine", "server", ["198.18.3.1", "fd00:f1ee:7ab:3::1", "controller.example"])
    sans = _load(cert).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.IPAddress)) == {ipaddress.ip_address("198.18.3.1"), ipaddress.ip_address("fd00:f1ee:7ab:3::1")}
    assert sans.get_values_for_type(x509.DNSName) == ["controller.example"]
    for path in (key, os.path.join(run, "tls", "ca.key")):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.join(run, "tls")).st_mode) == 0o700
    assert len(fp) == 64 and fp == tls.fingerprint(os.path.join(run, "tls", "ca.pem"))


def test_after_the_run_the_ca_key_is_gone_and_nothing_more_can_be_issued(tmp_path):
    run = str(tmp_path)
    tls.create_ca(run, "r1")
    assert tls.destroy_ca_key(run)
    assert not os.path.exists(os.path.join(run, "tls", "ca.key"))
    assert not tls.destroy_ca_key(run)
    with pytest.raises(tls.TLSError, match="CA is gone"):
        tls.issue(run, "late", "client")


@pytest.mark.parametrize("name, role, sans, match", [
    ("engine", "server", [], "SAN"),
    ("../evil", "client", [], "invalid certificate name"),
    ("x", "admin", [], "role"),
    ("x", "server", ["bad name"], "invalid certificate name"),
])
def test_bad_requests_for_certificates_are_refused(tmp_path, name, role, sans, match):
    tls.create_ca(str(tmp_path), "r1")
    with pytest.raises(tls.TLSError, match=match):
        tls.issue(str(tmp_path), name, role, sans)


def _handshake(server_ctx, client_ctx, server_hostname="127.0.0.1"):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        errors = []

        def serve():
            conn = listener.accept()[0]
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls_conn:
                    tls_conn.sendall(b"ok")
            except OSError as exc:
                errors.append(exc)

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with socket.create_connection(("127.0.0.1", port)) as raw:
                with client_ctx.wrap_socket(raw, server_hostname=server_hostname) as conn:
                    return conn.recv(2)
        finally:
            thread.join(5)


def test_a_client_pinning_the_run_ca_completes_a_handshake_with_the_engine_cert(tmp_path):
    run = str(tmp_path)
    fp = tls.create_ca(run, "r1")
    cert, key = tls.issue(run, "engine", "server", ["127.0.0.1"])
    client = tls.pinned_client_context(os.path.join(run, "tls", "ca.pem"), fp)
    assert _handshake(tls.server_context(cert, key), client) == b"ok"


def test_another_runs_ca_is_refused_by_fingerprint_and_by_the_handshake(tmp_path):
    one, two = str(tmp_path / "one"), str(tmp_path / "two")
    fp_one = tls.create_ca(one, "one")
    tls.create_ca(two, "two")
    with pytest.raises(tls.TLSError, match="fingerprint mismatch"):
        tls.pinned_client_context(os.path.join(two, "tls", "ca.pem"), fp_one)
    cert, key = tls.issue(two, "engine", "server", ["127.0.0.1"])
    client = tls.pinned_client_context(os.path.join(one, "tls", "ca.pem"), fp_one)
    # The client refuses the other run's certificate: a verification failure, not any error.
    with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer certificate"):
        _handshake(tls.server_context(cert, key), client)


def test_agent_certificates_have_the_right_usages(tmp_path):
    run = str(tmp_path)
    tls.create_ca(run, "r1")
    agent = tls.issue_agent(run, "lin01", ["198.18.3.11"])
    usage = x509.oid.ExtendedKeyUsageOID
    assert usage.SERVER_AUTH in _load(agent["server_cert"]).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert usage.CLIENT_AUTH in _load(agent["client_cert"]).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert stat.S_IMODE(os.stat(agent["client_key"]).st_mode) == 0o600
