# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""TLS scan with a real scanner (sslyze) of the run's engine and of a running agent in push
mode, over IPv4 and IPv6 (issue 18, proofs): TLS 1.2 or newer only, no weak cipher suite
(forward secrecy and AEAD only), the certificate chains to the run's CA, and the agent refuses
a client without the run's certificate."""
from __future__ import annotations

import os
import socket
import ssl

import pytest

import fleetlab
import tls_scan
from firewall_helpers import module_args

from ansible_collections.fleet.firmware.plugins.plugin_utils import agent_client, engine

pytestmark = pytest.mark.lab

TAG = "sec-tls"


def assert_strong(result: tls_scan.Scan, where: str) -> None:
    assert result.connected, f"{where}: {result.error}"
    assert not any(result.protocols[p] for p in ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1")), (where, result.protocols)
    assert result.protocols["TLSv1.2"] and result.protocols["TLSv1.3"], (where, result.protocols)
    assert tls_scan.weak_suites(result) == [], where
    assert result.chain_to_ca, f"{where}: the certificate does not chain to the run's CA"


@pytest.fixture(scope="module")
def run_engine(lab, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("tls-scan") / "run"
    addresses = [str(fleetlab.CONTROLLER_IPV4), str(fleetlab.CONTROLLER_IPV6)]
    eng = engine.Engine(str(run_dir), engine.EngineSettings(address=addresses, port=0, tls=True)).start()
    yield eng, addresses
    eng.stop("test over")


@pytest.mark.parametrize("family", [4, 6])
def test_the_engine_serves_tls12_and_13_with_strong_suites_only_and_chains_to_the_run_ca(run_engine, family):
    eng, addresses = run_engine
    address = addresses[0] if family == 4 else addresses[1]
    result = tls_scan.scan(address, eng.port, os.path.join(eng.run_dir, "tls", "ca.pem"), address)
    assert_strong(result, f"engine [{address}]:{eng.port}")
    assert address in result.subject_names
    assert result.client_auth == "DISABLED"  # the engine's clients prove themselves by token


@pytest.fixture(scope="module")
def agents(lab, tmp_path_factory):
    run_dir = str(lab.lab.home / "runs" / TAG)
    started = lab.adhoc("lin01,v6n01", "fleet.firmware.agent", module_args(tag=TAG, run_dir=run_dir, lease=300))
    assert all(r.status == "CHANGED" for r in started.values()), {n: r.data for n, r in started.items()}
    yield run_dir, started
    lab.adhoc("lin01,v6n01", "fleet.firmware.agent", module_args(tag=TAG, run_dir=run_dir, state="absent"))


@pytest.mark.parametrize("node", ["lin01", "v6n01"])  # lin01 over IPv4, the IPv6-only node over IPv6
def test_a_push_mode_agent_is_as_strong_and_refuses_a_client_without_the_run_certificate(lab, agents, node):
    run_dir, started = agents
    session = agent_client.load_session(run_dir, node)
    address, port = started[node].data["address"][0], session["port"]
    assert (":" in address) == (node == "v6n01")
    result = tls_scan.scan(address, port, session["ca_cert"], address, session["client_cert"], session["client_key"])
    assert_strong(result, f"agent {node} [{address}]:{port}")
    # Without the run's client certificate: the handshake fails and no byte of HTTP is served.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(session["ca_cert"])
    context.check_hostname = False
    with socket.create_connection((address, port), timeout=30) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            with context.wrap_socket(raw, server_hostname=node) as conn:
                conn.sendall(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n")
                assert conn.recv(1) == b"", "the agent answered a client without the run's certificate"
                raise ConnectionError("closed without an answer")
    # sslyze without credentials: it finds the client certificate REQUIRED (it then lists the
    # suites the server would negotiate up to its certificate request; no request is served).
    bare = tls_scan.scan(address, port, session["ca_cert"], address)
    assert bare.client_auth == "REQUIRED", bare
