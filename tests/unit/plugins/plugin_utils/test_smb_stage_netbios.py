# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""smb_stage on port 139: the NetBIOS session request (RFC 1002) before SMB, on a real socket.

Samba answers SMB on 139 even without a session request (the lab test over 139 would pass
without one); Windows does not. This test checks the request's bytes and the handling of the
answers with a loopback listener that plays the session service.
"""
from __future__ import annotations

import socket
import struct
import threading

import pytest

from ansible_collections.fleet.firmware.plugins.plugin_utils import smb_stage


def test_netbios_name_encoding_matches_rfc1001():
    # RFC 1001 14.1: "FRED" padded with spaces, each nibble + 'A'.
    encoded = smb_stage.netbios_name("FRED", 0x20)
    assert encoded[0] == 32 and encoded[-1] == 0
    assert encoded[1:-1] == b"EGFCEFEECACACACACACACACACACACACA"


def test_session_request_packet_layout():
    packet = smb_stage.netbios_session_request()
    kind, flags, length = struct.unpack(">BBH", packet[:4])
    assert (kind, flags, length) == (0x81, 0, 68) and len(packet) == 72
    assert packet[4:38] == smb_stage.netbios_name("*SMBSERVER", 0x20)


def serve_once(answer: bytes):
    """A listener that records the first 72 bytes it gets and answers ``answer``."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    got = {}

    def run():
        conn = server.accept()[0]
        with conn:
            data = b""
            while len(data) < 72:
                chunk = conn.recv(72 - len(data))
                if not chunk:
                    break
                data += chunk
            got["request"] = data
            conn.sendall(answer)
        server.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return server.getsockname()[1], got, thread


def test_a_positive_session_response_lets_smb_follow():
    port, got, thread = serve_once(b"\x82\x00\x00\x00")
    transport = smb_stage.NetbiosSessionTcp("127.0.0.1", port, timeout=5)
    transport.connect()
    try:
        assert transport.connected
    finally:
        transport.close()
        thread.join(5)
    assert got["request"] == smb_stage.netbios_session_request()


@pytest.mark.parametrize("answer, message", [
    (b"\x83\x00\x00\x01\x80", "not listening on the called name"),
    (b"\x83\x00\x00\x01\x82", "called name not present"),
    (b"\x84\x00\x00\x06\xc6\x33\x64\x01\x00\x8b", "answer type 0x84"),
])
def test_a_refused_session_names_the_cause(answer, message):
    port, got, thread = serve_once(answer)
    transport = smb_stage.NetbiosSessionTcp("127.0.0.1", port, timeout=5)
    with pytest.raises(ValueError, match=message):
        transport.connect()
    thread.join(5)
    assert not transport.connected


def test_the_port_decides_the_transport():
    assert isinstance(smb_stage._transport_for("h", 139), smb_stage.NetbiosSessionTcp)
    plain = smb_stage._transport_for("h", 445)
    assert isinstance(plain, smb_stage.Tcp) and not isinstance(plain, smb_stage.NetbiosSessionTcp)
    # The rebinding found smbprotocol's transport name (else 139 would be refused outright).
    assert smb_stage._CONNECT_WITH_NETBIOS is not None
    assert smb_stage._CONNECT_WITH_NETBIOS.__globals__["Tcp"] is smb_stage._transport_for
    # ... and smbprotocol itself is untouched.
    from smbprotocol import connection
    assert connection.Tcp is smb_stage.Tcp


def test_the_password_is_not_in_the_repr():
    target = smb_stage.SmbTarget("win01", "Administrator", "hunter2")
    assert "hunter2" not in repr(target) and "hunter2" not in str(target)
