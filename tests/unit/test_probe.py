# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Input rules and the NetBIOS codec of plugins/module_utils/probe.py (no network: the lab tests
cover the probes themselves)."""
from __future__ import annotations

import struct

import pytest

from ansible_collections.fleet.firmware.plugins.module_utils import ports as fleet_ports
from ansible_collections.fleet.firmware.plugins.module_utils import probe


@pytest.mark.parametrize("spec, label", [(22, "22/tcp"), ("22", "22/tcp"), ("137/udp", "137/udp"), ("445/TCP", "445/tcp"), (65535, "65535/tcp")])
def test_port_specs(spec, label):
    assert probe.parse_port(spec) == label


@pytest.mark.parametrize("spec, named", [(0, "0"), (70000, "70000"), ("abc", "'abc'"), ("22/sctp", "'22/sctp'"), (True, "True"), (None, "None"), ("", "''")])
def test_bad_port_specs_name_the_value(spec, named):
    with pytest.raises(probe.ProbeError, match="bad port") as err:
        probe.parse_port(spec)
    assert named in str(err.value)


def test_ports_are_deduplicated_in_order_and_never_empty():
    assert probe.parse_ports([22, "22/tcp", "137/udp", 22]) == ["22/tcp", "137/udp"]
    with pytest.raises(probe.ProbeError, match="no ports"):
        probe.parse_ports([])


@pytest.mark.parametrize(
    "term, host, literal",
    [
        ("198.18.0.1", "198.18.0.1", "198.18.0.1"),
        ("fd00::1", "fd00::1", "fd00::1"),
        ("[fd00::1]", "fd00::1", "fd00::1"),
        ("fe80::1%eth0", "fe80::1%eth0", "fe80::1%eth0"),
        ("[fe80::1%25eth0]", "fe80::1%eth0", "fe80::1%eth0"),
        ("node1.example.com", "node1.example.com", None),
    ],
)
def test_host_terms(term, host, literal):
    assert probe.split_host(term) == (host, literal)


@pytest.mark.parametrize("term", ["", "  ", "[198.18.0.1]", "198.18.0.1:22", "[fd00::1", "198.18.0.1%eth0", "fe80::1%", "a b", 42, None])
def test_bad_host_terms_name_the_term(term):
    with pytest.raises(probe.ProbeError) as err:
        probe.split_host(term)
    assert repr(term) in str(err.value)


BAD_OPTIONS = [(0, "auto", "strict", "timeout"), ("x", "auto", "strict", "timeout"), (1, "ipv5", "strict", "ipv5"), (1, "auto", "loud", "loud")]


@pytest.mark.parametrize("timeout, family, errors, named", BAD_OPTIONS)
def test_bad_options(timeout, family, errors, named):
    with pytest.raises(probe.ProbeError, match=named):
        probe.check_options(timeout, family, errors)


def test_check_refuses_everything_before_probing(monkeypatch):
    started = []
    monkeypatch.setattr(probe, "run_probes", lambda probes, timeout: started.extend(probes))
    for hosts, ports in (([], [22]), (["198.18.0.1"], [22, "22/sctp"]), (["198.18.0.1", "bad host"], [22])):
        with pytest.raises(probe.ProbeError):
            probe.check(hosts, ports)
    assert not started


def test_netbios_status_request_is_rfc1002_nbstat_for_the_wildcard():
    packet = probe.netbios_status_request(0x1234)
    assert packet[:12] == struct.pack(">HHHHHH", 0x1234, 0, 1, 0, 0, 0)
    assert packet[12] == 0x20 and packet[13:45] == b"CK" + b"AA" * 15 and packet[45] == 0
    assert packet[46:] == b"\x00\x21\x00\x01"


def test_netbios_reply_is_matched_by_transaction_id():
    names = [b"WIN01          \x00", b"FLEETLAB       \x00"]
    body = bytes([len(names)]) + b"".join(n + b"\x04\x00" for n in names) + b"\0" * 46
    reply = struct.pack(">HHHHHH", 0x4242, 0x8400, 0, 1, 0, 0) + b"\x20" + b"CK" + b"AA" * 15 + b"\0" + b"\x00\x21\x00\x01" + b"\0\0\0\0"
    reply += struct.pack(">H", len(body)) + body
    assert probe.netbios_names(reply, 0x4242) == ["FLEETLAB", "WIN01"]
    assert probe.netbios_names(reply, 0x4243) is None
    assert probe.netbios_names(b"short", 0x4242) is None


def test_path_ports_come_from_one_place():
    assert fleet_ports.path_ports("linux") == ["22/tcp", "62286/tcp"]
    assert fleet_ports.path_ports("windows", agent_port=7000) == ["445/tcp", "139/tcp", "137/udp", "138/udp", "5985/tcp", "5986/tcp", "7000/tcp"]
    with pytest.raises(ValueError, match="'solaris'"):
        fleet_ports.path_ports("solaris")
    assert fleet_ports.role_of("63002/tcp") == "engine"
    assert fleet_ports.role_of("2222/tcp", {"ssh": "2222/tcp"}) == "ssh"
