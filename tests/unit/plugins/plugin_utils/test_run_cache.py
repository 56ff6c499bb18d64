# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Controller work once per run: component hashes, the play's addresses and the agent build."""
from __future__ import annotations

import hashlib
import os

import pytest

from ansible_collections.fleet.firmware.plugins.plugin_utils import agent_build, run_cache


def component(tmp_path, name: str, data: bytes) -> dict:
    path = tmp_path / f"{name}.bin"
    path.write_bytes(data)
    return {"name": name, "file": path.name, "path": str(path), "sha256": hashlib.sha256(data).hexdigest()}


def test_each_file_is_hashed_once_per_run_while_its_identity_holds(tmp_path):
    run_dir = str(tmp_path / "run")
    components = [component(tmp_path, "a", b"a" * 1000), component(tmp_path, "b", b"b")]
    assert run_cache.verify_digests(run_dir, components) == 2
    assert run_cache.verify_digests(run_dir, components) == 0  # the next 49 workers read the cache
    assert oct(os.stat(os.path.join(run_dir, run_cache.DIGESTS)).st_mode & 0o777) == "0o600"


def test_a_file_changed_after_it_was_hashed_is_hashed_again_and_refused(tmp_path):
    run_dir = str(tmp_path / "run")
    first = component(tmp_path, "a", b"same size")
    run_cache.verify_digests(run_dir, [first])
    with open(first["path"], "r+b") as handle:  # same size, new content: a new mtime/ctime
        handle.write(b"SAME")
    os.utime(first["path"], ns=(1, 1))
    with pytest.raises(run_cache.DigestMismatch, match=r"'a', field sha256: hash mismatch for a\.bin"):
        run_cache.verify_digests(run_dir, [first])


def test_the_play_addresses_are_computed_once_per_play(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"addresses": ["192.0.2.1"], "controller": ["192.0.2.254"]}

    run_dir = str(tmp_path / "run")
    for _worker in range(3):
        assert run_cache.play_addresses(run_dir, ["lin01", "lin02"], compute)["controller"] == ["192.0.2.254"]
    assert len(calls) == 1
    run_cache.play_addresses(run_dir, ["lin03"], compute)  # another play: its own hosts
    assert len(calls) == 2


def test_a_failed_validation_removes_a_folder_of_only_cache_and_keeps_a_run(tmp_path):
    run_dir = str(tmp_path / "run")
    run_cache.verify_digests(run_dir, [component(tmp_path, "a", b"a")])
    run_cache.play_addresses(run_dir, ["lin01"], lambda: {"addresses": []})
    assert run_cache.discard_if_only_cache(run_dir) and not os.path.exists(run_dir)
    run_cache.verify_digests(run_dir, [component(tmp_path, "a", b"a")])
    (tmp_path / "run" / "agent.lock").write_text("")  # a run is underway: its CA, engine, ledgers
    assert not run_cache.discard_if_only_cache(run_dir) and os.path.isdir(run_dir)


def test_a_worker_whose_folder_is_removed_under_it_neither_fails_nor_makes_it_again(tmp_path):
    """Worker A's validation fails and removes the folder while worker B holds its lock and writes
    (CI saw B fail with ENOENT on its .tmp file): B's result stands, only its saving is lost."""
    run_dir = str(tmp_path / "run")
    calls = []

    def compute_while_a_discards():
        calls.append(1)
        assert run_cache.discard_if_only_cache(run_dir)
        return {"addresses": ["192.0.2.1"]}

    assert run_cache.play_addresses(run_dir, ["lin01"], compute_while_a_discards) == {"addresses": ["192.0.2.1"]}
    assert not os.path.exists(run_dir)
    with run_cache.locked(run_dir, "x"):  # the next worker makes the folder again to lock in it
        assert os.path.isdir(run_dir)


def test_the_agent_is_built_once_and_rebuilt_when_a_source_changes(tmp_path, monkeypatch):
    builds = []
    real = agent_build.build_bytes
    monkeypatch.setattr(agent_build, "build_bytes", lambda root=None: builds.append(1) or real(root))
    first = agent_build.build(str(tmp_path))
    assert agent_build.build(str(tmp_path)) == first and len(builds) == 1
    assert hashlib.sha256(open(first[0], "rb").read()).hexdigest() == first[1]
    monkeypatch.setattr(agent_build, "sources_key", lambda root=None: "another")
    assert agent_build.build(str(tmp_path)) == first and len(builds) == 2
