# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One sslyze scan of a TLS listener, reduced to what issue 18 asks of it."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from sslyze import (
    CertificateInfoExtraArgument, ClientAuthenticationCredentials, ScanCommand, ScanCommandsExtraArguments, Scanner,
    ServerNetworkConfiguration, ServerNetworkLocation, ServerScanRequest, ServerScanStatusEnum,
)

PROTOCOLS = {
    "SSLv2": ScanCommand.SSL_2_0_CIPHER_SUITES, "SSLv3": ScanCommand.SSL_3_0_CIPHER_SUITES,
    "TLSv1.0": ScanCommand.TLS_1_0_CIPHER_SUITES, "TLSv1.1": ScanCommand.TLS_1_1_CIPHER_SUITES,
    "TLSv1.2": ScanCommand.TLS_1_2_CIPHER_SUITES, "TLSv1.3": ScanCommand.TLS_1_3_CIPHER_SUITES,
}
# Weak: no forward secrecy (a static RSA key exchange), no AEAD (CBC, RC4, NULL), export, anonymous,
# DES/3DES, MD5 or SHA-1 MACs. TLS 1.3 suites are all AEAD with forward secrecy.
STRONG_TLS12 = re.compile(r"^TLS_(ECDHE|DHE)_(RSA|ECDSA)_WITH_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256)\Z")


@dataclasses.dataclass
class Scan:
    connected: bool
    error: str
    protocols: dict  # protocol -> accepted cipher suite names
    chain_to_ca: bool
    subject_names: list
    client_auth: str = ""  # sslyze's verdict: DISABLED, OPTIONAL or REQUIRED


def scan(address: str, port: int, ca: str, server_name: str, client_cert: str | None = None, client_key: str | None = None) -> Scan:
    credentials = ClientAuthenticationCredentials(certificate_chain_path=Path(client_cert), key_path=Path(client_key)) if client_cert else None
    request = ServerScanRequest(
        server_location=ServerNetworkLocation(hostname=server_name, port=port, ip_address=address),
        network_configuration=ServerNetworkConfiguration(tls_server_name_indication=server_name, tls_client_auth_credentials=credentials,
                                                         network_timeout=30, network_max_retries=3),
        scan_commands={*PROTOCOLS.values(), ScanCommand.CERTIFICATE_INFO},
        scan_commands_extra_arguments=ScanCommandsExtraArguments(certificate_info=CertificateInfoExtraArgument(custom_ca_file=Path(ca))),
    )
    scanner = Scanner(concurrent_server_scans_limit=1, per_server_concurrent_connections_limit=2)
    scanner.queue_scans([request])
    result = next(iter(scanner.get_results()))
    if result.scan_status != ServerScanStatusEnum.COMPLETED:
        return Scan(False, str(result.connectivity_error_trace or result.connectivity_status), {}, False, [], "")
    protocols = {}
    for name, command in PROTOCOLS.items():
        attempt = getattr(result.scan_result, command.value)
        assert attempt.status.name == "COMPLETED", (name, attempt.error_reason, attempt.error_trace)
        protocols[name] = [s.cipher_suite.name for s in attempt.result.accepted_cipher_suites]
    info = result.scan_result.certificate_info
    assert info.status.name == "COMPLETED", (info.error_reason, info.error_trace)
    deployment = info.result.certificate_deployments[0]
    custom = [v for v in deployment.path_validation_results if "Custom" in v.trust_store.name or v.trust_store.path == Path(ca)]
    names = [str(n.value) for ext in deployment.received_certificate_chain[0].extensions if ext.oid.dotted_string == "2.5.29.17"
             for n in ext.value]
    return Scan(True, "", protocols, bool(custom) and all(v.was_validation_successful for v in custom), names,
                result.connectivity_result.client_auth_requirement.name)


def weak_suites(result: Scan) -> list[str]:
    return [s for s in result.protocols.get("TLSv1.2", []) if not STRONG_TLS12.match(s)]
