# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plan's site policy (issue 19 item 3): approved hashes, denied versions, required intermediate
versions and a minimum criticality, with real version files read by detect."""
from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.fleet.firmware.plugins.module_utils import plan

GOOD = "a" * 64
OTHER = "b" * 64


def ilo(tmp_path: Path, installed, name="ilo5", version="2.10", **extra):
    path = tmp_path / "ilo.version"
    if installed is not None:
        path.write_text(installed + "\n")
    return dict({"name": name, "kind": "firmware", "os": "linux", "version": version, "sha256": GOOD, "reboot": "none",
                 "detect": {"method": "file", "path": str(path)}}, **extra)


def test_only_approved_hashes_install(tmp_path):
    [entry] = plan.plan([ilo(tmp_path, "1.0")], {"approved_hashes": [GOOD.upper()]})
    assert entry["action"] == "upgrade" and "policy" not in entry
    [entry] = plan.plan([ilo(tmp_path, "1.0")], {"approved_hashes": [OTHER]})
    assert entry["action"] == "skip" and entry["policy"] == "approved_hashes"
    assert "not approved by the site policy: its sha256 aaaaaaaaaaaaaaaa is not in approved_hashes" in entry["reason"]
    # No list: no allow-list.
    [entry] = plan.plan([ilo(tmp_path, "1.0")], {"approved_hashes": []})
    assert entry["action"] == "upgrade"


def test_a_denied_version_is_never_installed_and_the_plan_says_so(tmp_path):
    denied = {"denied_versions": [{"name": "ilo5", "version": "2.10", "reason": "bricks DL380 Gen10 (advisory a00123)"}]}
    for policy in (denied, dict(denied, force=True), dict(denied, rewrite=True)):
        [entry] = plan.plan([ilo(tmp_path, "1.0")], policy)
        assert entry["action"] == "skip" and entry["policy"] == "denied_versions", policy
        assert entry["reason"] == "version 2.10 is denied by the site policy, never installed: bricks DL380 Gen10 (advisory a00123)"
    [entry] = plan.plan([ilo(tmp_path, "1.0")], {"denied_versions": [{"name": "ilo5", "version": "2.11"}]})
    assert entry["action"] == "upgrade"
    [entry] = plan.plan([ilo(tmp_path, "1.0")], {"denied_versions": [{"name": "other", "version": "2.10"}]})
    assert entry["action"] == "upgrade"


@pytest.mark.parametrize("rating, minimum, action", [
    ("optional", "recommended", "skip"), ("recommended", "recommended", "upgrade"), ("critical", "recommended", "upgrade"),
    ("recommended", "critical", "skip"), ("optional", "optional", "upgrade"), (None, "critical", "upgrade"),
])
def test_min_criticality(tmp_path, rating, minimum, action):
    extra = {"criticality": rating} if rating else {}
    [entry] = plan.plan([ilo(tmp_path, "1.0", **extra)], {"min_criticality": minimum})
    assert entry["action"] == action
    if action == "skip":
        assert entry["policy"] == "min_criticality" and f"criticality {rating} is below the site's min_criticality {minimum}" in entry["reason"]


def repository(tmp_path, installed, step_reboot="none"):
    """iLO 5 2.10, the older 1.40 kept as ilo5-1.40 (an SPP import's shape) and a NIC after them."""
    nic = ilo(tmp_path, None, name="nic", version="3.0")
    nic["detect"] = {"method": "file", "path": str(tmp_path / "nic.version")}
    return [ilo(tmp_path, installed), nic,
            ilo(tmp_path, installed, name="ilo5-1.40", version="1.40", superseded_by="ilo5", reboot=step_reboot)]


RULE = {"required_versions": [{"name": "ilo5", "version": "1.40"}]}


def test_an_older_node_gets_the_intermediate_version_first(tmp_path):
    entries = plan.plan(repository(tmp_path, "1.20"), RULE)
    assert [(e["name"], e["action"]) for e in entries] == [("ilo5-1.40", "upgrade"), ("ilo5", "upgrade"), ("nic", "install")]
    first, then = entries[0], entries[1]
    assert first["policy"] == then["policy"] == "required_versions"
    assert first["reason"] == "required intermediate version before 2.10: installed 1.20 is older than 1.40"
    assert then["reason"] == "installed 1.20 is older than 2.10, after the required intermediate version 1.40"
    # The target depends on the step: a failed step omits it (on_failed_dependency).
    assert "ilo5-1.40" in then["requires"]


def test_an_intermediate_needing_a_reboot_makes_the_target_wait(tmp_path):
    entries = plan.plan(repository(tmp_path, "1.20", step_reboot="required"), RULE)
    assert [(e["name"], e["action"]) for e in entries] == [("ilo5-1.40", "upgrade"), ("ilo5", "skip"), ("nic", "install")]
    assert entries[1]["reason"] == ("waits for 1.40 to be activated (it may need a reboot: reboot required); "
                                    "2.10 installs in the next run, after the reboot")


@pytest.mark.parametrize("installed", ["1.40", "1.50", None])
def test_a_node_at_or_past_the_step_or_without_it_goes_straight_to_the_target(tmp_path, installed):
    entries = plan.plan(repository(tmp_path, installed), RULE)
    assert [(e["name"], e["action"]) for e in entries][:2] == [("ilo5", "install" if installed is None else "upgrade"), ("nic", "install")]
    assert entries[2]["name"] == "ilo5-1.40" and entries[2]["action"] == "skip"


def test_a_missing_or_refused_intermediate_holds_the_target_back(tmp_path):
    entries = plan.plan(repository(tmp_path, "1.20"), {"required_versions": [{"name": "ilo5", "version": "1.30"}]})
    assert entries[0]["action"] == "skip" and entries[0]["reason"] == (
        "needs 1.30 first (the node has 1.20; required_versions), which is not in the repository")
    policy = dict(RULE, denied_versions=[{"name": "ilo5", "version": "1.40"}])
    entries = plan.plan(repository(tmp_path, "1.20"), policy)
    assert entries[0]["name"] == "ilo5" and entries[0]["action"] == "skip"
    assert "needs 1.40 first (the node has 1.20), which the site policy refuses: version 1.40 is denied" in entries[0]["reason"]


@pytest.mark.parametrize("policy, text", [
    ({"approved_hashes": ["xyz"]}, "'xyz' is not a SHA-256 hex digest"),
    ({"approved_hashes": "a" * 64}, "must be a list of SHA-256 hex digests"),
    ({"denied_versions": [{"name": "ilo5"}]}, "denied_versions: {'name': 'ilo5'} needs a name and a version"),
    ({"required_versions": ["ilo5=1.40"]}, "required_versions: 'ilo5=1.40' needs a name and a version"),
    ({"min_criticality": "urgent"}, "min_criticality='urgent' is not one of optional, recommended, critical"),
])
def test_bad_policy_is_refused_naming_the_value(tmp_path, policy, text):
    with pytest.raises(ValueError, match=None) as caught:
        plan.plan([ilo(tmp_path, "1.0")], policy)
    assert text in str(caught.value)


def test_the_controller_applies_the_site_policy_to_a_plan_made_without_it(tmp_path):
    components = repository(tmp_path, "1.20") + [ilo(tmp_path, "1.0", name="opt", criticality="optional")]
    node_plan = plan.plan(components)  # what a node without the site policy answers (a Windows agent)
    policy = dict(RULE, min_criticality="recommended")
    enforced = plan.apply_site_policy(node_plan, components, policy)

    def shape(entries):
        return [(e["name"], e["action"], e["reason"], e.get("policy"), e.get("requires")) for e in entries]

    # The same decisions as a node's plan with the policy (the node skips before detection, so
    # the entries differ in what was detected only).
    assert shape(enforced) == shape(plan.plan(components, policy))
    assert [(e["name"], e["action"]) for e in enforced] == [
        ("ilo5-1.40", "upgrade"), ("ilo5", "upgrade"), ("nic", "install"), ("opt", "skip")]
    # Once is enough: applying it again changes nothing.
    assert plan.apply_site_policy(enforced, components, policy) == enforced
