# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Engine pieces without a network: settings, Range parsing, process start times."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ansible_collections.fleet.firmware.plugins.plugin_utils import engine


@pytest.mark.parametrize("header, size, expected", [
    (None, 100, None),
    ("bytes=0-9", 100, (0, 9)),
    ("bytes=90-", 100, (90, 99)),
    ("bytes=-10", 100, (90, 99)),
    ("bytes=-1000", 100, (0, 99)),
    ("bytes=50-5000", 100, (50, 99)),
    ("bytes=0-1,5-6", 100, None),  # multi-range: the whole file (RFC 9110 allows ignoring)
    ("bytes=9-1", 100, None),
    ("items=0-1", 100, None),
    ("bytes=abc", 100, None),
    ("bytes=4294967296-", 5 * 2 ** 30, (4294967296, 5 * 2 ** 30 - 1)),  # beyond 4 GiB
])
def test_parse_range(header, size, expected):
    assert engine.parse_range(header, size) == expected


@pytest.mark.parametrize("header, size", [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=0-", 0)])
def test_unsatisfiable_ranges(header, size):
    with pytest.raises(ValueError):
        engine.parse_range(header, size)


def test_default_ports_follow_tls():
    assert engine.EngineSettings().validate().port == 63002
    assert engine.EngineSettings(tls=False).validate().port == 63001


@pytest.mark.parametrize("kwargs, match", [
    ({"address": ["not-an-ip"]}, "not-an-ip"),
    ({"port": 70000}, "70000"),
    ({"idle_timeout": 0}, "idle_timeout"),
    ({"max_connections": 0}, "max_connections"),
    ({"address": []}, "engine_address"),
])
def test_bad_settings_name_the_bad_value(kwargs, match):
    with pytest.raises(engine.EngineError, match=match):
        engine.EngineSettings(**kwargs).validate()


def test_unknown_settings_in_the_run_folder_are_refused():
    with pytest.raises(engine.EngineError, match="bogus"):
        engine.EngineSettings.from_json({"bogus": 1})


def test_open_firewall_gets_a_run_tag():
    settings = engine.EngineSettings(open_firewall=True, run_id="abc").validate()
    assert settings.firewall_tag == "fleet-engine-abc"


def test_process_start_time_tells_a_reused_pid_apart():
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as proc:
        start = engine.process_start_time(proc.pid)
        # Ticks since boot: the child started after this test's own process, and reads the same twice.
        assert start is not None and start > engine.process_start_time(os.getpid())
        assert engine.process_start_time(proc.pid) == start
        proc.kill()
        proc.wait()
    assert engine.process_start_time(proc.pid) is None


def test_hash_file(tmp_path):
    path = tmp_path / "c.bin"
    path.write_bytes(b"abc")
    digest, st = engine.hash_file(str(path))
    assert digest == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" and st.st_size == 3
