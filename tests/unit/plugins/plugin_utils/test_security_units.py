# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 18 pieces without a lab: node ids unique per run, run_dir owner and mode, node text
made safe for the terminal, the engine's token scope in process."""
from __future__ import annotations

import os
import socket

import pytest

from ansible_collections.fleet.firmware.plugins.plugin_utils import engine, safe_text
from ansible_collections.fleet.firmware.plugins.plugin_utils.deploy.addresses import AddressError, check_run_dir, unique_node_id


@pytest.mark.parametrize("host, other", [("web 1", "web_1"), ("a" * 128 + "x", "a" * 128 + "y"), ("web/1", "web_1")])
def test_two_hosts_sharing_a_node_id_both_fail_naming_each_other(host, other):
    play = [host, other, "lin02"]
    for me, them in ((host, other), (other, host)):
        with pytest.raises(AddressError, match="map to the same node id") as exc:
            unique_node_id(me, play)
        assert repr(me) in str(exc.value) and repr(them) in str(exc.value)
    assert unique_node_id("lin02", play) == "lin02"  # the others go on


def test_a_run_dir_of_this_user_0700_is_accepted(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir(mode=0o700)
    assert check_run_dir(str(folder)) == str(folder)
    assert check_run_dir(str(tmp_path / "missing")) == str(tmp_path / "missing")


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702])
def test_a_group_or_world_writable_run_dir_is_refused(tmp_path, mode):
    folder = tmp_path / "run"
    folder.mkdir()
    os.chmod(folder, mode)
    with pytest.raises(AddressError, match=f"group- or world-writable \\(mode {mode:04o}\\)"):
        check_run_dir(str(folder))


def test_a_run_dir_owned_by_another_user_or_a_symlink_is_refused(tmp_path):
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    with pytest.raises(AddressError, match="not a directory"):
        check_run_dir(str(link))
    if os.getuid() == 0:
        folder = tmp_path / "theirs"
        folder.mkdir(mode=0o700)
        os.chown(folder, 4242, 4242)
        with pytest.raises(AddressError, match="owned by uid 4242"):
            check_run_dir(str(folder))


def test_node_text_loses_its_terminal_controls_but_keeps_its_content():
    hostile = "done\x1b[2J\x1b]0;owned\x07\r\u202eevil\x9b"
    shown = safe_text.printable(hostile)
    assert all(c not in shown for c in "\x1b\x07\r\u202e\x9b")
    assert shown == "done\\x1b[2J\\x1b]0;owned\\x07\\x0d\\u202eevil\\x9b"
    assert safe_text.clean({"msg": "a\x1bb", "components": [{"message": "\x00"}], "rc": 1}) == {
        "msg": "a\\x1bb", "components": [{"message": "\\x00"}], "rc": 1}
    assert safe_text.printable("line 1\n\tline 2") == "line 1\n\tline 2"


def _get(port: int, sha: str, token: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET /v1/components/{sha} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def test_a_token_fetches_only_what_was_granted_to_its_node_and_dies_with_the_session(tmp_path):
    mine, theirs = tmp_path / "mine.bin", tmp_path / "theirs.bin"
    mine.write_bytes(b"m" * 1000)
    theirs.write_bytes(b"t" * 1000)
    eng = engine.Engine(str(tmp_path / "run"), engine.EngineSettings(address=["127.0.0.1"], port=0, tls=False)).start()
    try:
        lin01, lin02 = eng.register_node("lin01"), eng.register_node("lin02")
        sha_mine = eng.register_component(str(mine), node_id="lin01")
        sha_theirs = eng.register_component(str(theirs), node_id="lin02")
        assert _get(eng.port, sha_mine, lin01).startswith(b"HTTP/1.1 200")
        refused = _get(eng.port, sha_theirs, lin01)
        assert refused.startswith(b"HTTP/1.1 404") and b"t" * 100 not in refused
        assert _get(eng.port, "0" * 64, lin01).split(b"\r\n", 1)[0] == refused.split(b"\r\n", 1)[0]
        assert eng.end_session("lin01") is True and eng.end_session("lin01") is False
        assert _get(eng.port, sha_mine, lin01).startswith(b"HTTP/1.1 401")
        assert _get(eng.port, sha_theirs, lin02).startswith(b"HTTP/1.1 200")
        with pytest.raises(engine.EngineError, match="no session for node 'lin01'"):
            eng.grant("lin01", sha_mine)
        assert eng.stats()["served"] == {sha_mine: 1000, sha_theirs: 1000}
    finally:
        eng.stop("test over")
