# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The delivery strategy is chosen once per session; auto falls back to push on the first 504."""
from __future__ import annotations

import pytest

from ansible_collections.fleet.firmware.plugins.action import deploy as deploy_mod
from ansible_collections.fleet.firmware.plugins.plugin_utils import agent_client
from ansible_collections.fleet.firmware.plugins.plugin_utils.deploy import delivery
from ansible_collections.fleet.firmware.plugins.plugin_utils.deploy.session import Session


class Client:
    def __init__(self, fetch_status=None):
        self.fetch_status, self.calls = fetch_status, []

    def fetch(self, sha, urls, token, run_ca=True):
        self.calls.append(("fetch", sha))
        if self.fetch_status:
            raise agent_client.AgentClientError("cannot reach", self.fetch_status)

    def push(self, path, sha):
        self.calls.append(("push", sha))


class Engine:
    urls = ["https://198.18.0.1:63002", "https://[fd00::1]:63002"]

    def register_component(self, path, sha, node_id=None):
        return sha


def session(tmp_path, client, unreachable=False):
    s = Session("lin01", "t1", str(tmp_path))
    s.client, s.engine_unreachable = client, unreachable
    return s


TODO = [{"name": "a", "path": "/a", "sha256": "1" * 64, "file": "a"}, {"name": "b", "path": "/b", "sha256": "2" * 64, "file": "b"}]
ARGS = {"delivery": "auto", "repository_url": None}


def test_auto_pulls_and_pushes_from_the_first_component_the_node_cannot_fetch(tmp_path):
    s = session(tmp_path, Client(fetch_status=504))
    delivery.deliver_all(s, delivery.choose(ARGS, s, Engine(), "tok", ["198.18.0.1"]), Engine(), TODO)
    assert s.client.calls == [("fetch", "1" * 64), ("push", "1" * 64), ("push", "2" * 64)] and s.delivery == "push"


def test_auto_pushes_at_once_when_the_launcher_found_the_engine_unreachable(tmp_path):
    s = session(tmp_path, Client(), unreachable=True)
    delivery.deliver_all(s, delivery.choose(ARGS, s, Engine(), "tok", []), Engine(), TODO)
    assert [c[0] for c in s.client.calls] == ["push", "push"] and s.delivery == "push"


def test_pull_fails_clearly_and_does_not_push(tmp_path):
    s = session(tmp_path, Client(fetch_status=504))
    with pytest.raises(deploy_mod.DeployError, match="pull delivery of a failed"):
        delivery.deliver_all(s, delivery.choose(dict(ARGS, delivery="pull"), s, Engine(), "tok", []), Engine(), TODO)
    assert s.client.calls == [("fetch", "1" * 64)]


def test_the_engine_urls_facing_the_node_come_first():
    assert delivery.engine_urls(Engine(), ["fd00::1"])[0] == "https://[fd00::1]:63002"


def test_a_delivery_that_cannot_fit_in_the_staging_folder_fails_before_any_download():
    started = {"free_bytes": 1000, "staged_path": "/var/tmp/x"}
    with pytest.raises(deploy_mod.DeployError, match=r"No space left on device in the staging folder /var/tmp/x \(3000 bytes needed"):
        deploy_mod.ActionModule._check_space(started, [{"size": 1000}, {"size": 2000}])
    deploy_mod.ActionModule._check_space(started, [{"size": 1000}])
