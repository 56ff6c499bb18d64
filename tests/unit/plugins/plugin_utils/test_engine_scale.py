# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The engine at fleet scale (found by benchmarks/fleet.py with 50 nodes): every fork calls the
control socket at once, and every node registers the same files."""
from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os

import pytest

from ansible_collections.fleet.firmware.plugins.plugin_utils import engine


@pytest.fixture
def running(tmp_path):
    eng = engine.Engine(str(tmp_path / "run"), engine.EngineSettings(address=["127.0.0.1"], port=0, tls=False)).start()
    yield eng
    eng.stop("test done")


def ping(run_dir: str) -> dict:
    with engine._connect_control(os.path.join(run_dir, engine.SOCKET_FILE)) as sock:  # pylint: disable=protected-access
        sock.sendall(b'{"op": "ping", "args": {}}\n')
        with sock.makefile("rb") as reader:
            return json.loads(reader.readline())


def test_two_hundred_forks_calling_at_once_all_get_an_answer(running):
    with concurrent.futures.ThreadPoolExecutor(max_workers=200) as pool:
        answers = list(pool.map(lambda _n: ping(running.run_dir), range(200)))
    assert all(a.get("ok") for a in answers), [a for a in answers if not a.get("ok")][:3]


def test_a_file_is_hashed_once_for_every_node_and_again_when_it_changes(running, tmp_path, monkeypatch):
    path = tmp_path / "component.bin"
    path.write_bytes(b"firmware" * 1000)
    hashed = []
    real_hash = engine.hash_file
    # Patched where the engine's registry looks it up (the engine is a package of rooms).
    monkeypatch.setattr(engine.registry, "hash_file", lambda p: hashed.append(p) or real_hash(p))
    expected = hashlib.sha256(path.read_bytes()).hexdigest()
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        digests = set(pool.map(lambda _n: running.register_component(str(path), expected), range(50)))
    assert digests == {expected} and len(hashed) == 1
    path.write_bytes(b"changed!" * 1000)
    with pytest.raises(engine.EngineError, match="expected " + expected):
        running.register_component(str(path), expected)
    assert len(hashed) == 2
