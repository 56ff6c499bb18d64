# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""An imported SPP deployed end to end, for real: fleet.firmware.repository imports a generated
SPP plus a hotfix folder (tests/lab/spp_gen.py, real CMS signatures by the lab CA), and
fleet.firmware.deploy installs it on a dual-stack node of ROM family U30 and an IPv6-only node of
family U32 (each node's own DMI values, its own sushy BMC for the device firmware).

Only the signed components that apply install: each node's own system ROM, the Smart Array
firmware where the BMC reports an older one, the hotfix's newer tool (not the SPP's superseded
one); never the Windows component, the BMC-only .fwpkg or the VMware-only one, each of which the
results list with its reason. A second run is a no-op; check mode changes nothing. A component
whose file was swapped after the import (its hash edited in the manifest too) is refused before
anything reaches a node, with its name and reason, and nothing of the run is left on the nodes.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

import fleetlab
import labhardware
import spp_gen
import spp_pki
from conftest import STANDARD_LAB, LabHandle
from deploy_helpers import agent_processes, lab_trust, left_behind
from firewall_helpers import module_args, reset_firewall, snapshot
from test_repository_spp import playbook

pytestmark = pytest.mark.lab

HARDWARE = {"lin01": "dl380-gen10", "v6n01": "dl360-gen10", "lin02": "dl385-gen10"}
NODES = ("lin01", "v6n01")
ROM_U30, ROM_U32, SMART_ARRAY, TOOL, WINDOWS_TOOL, ILO, VMWARE = ("cp046001", "cp046002", "cp046003", "cp046004", "cp046005",
                                                                  "cp046006", "cp046007")
BMC_ARGS = {"redfish_address": "{{ fleet_lab_bmc_address }}", "redfish_username": "{{ fleet_lab_bmc_user }}",
            "redfish_password": "{{ fleet_lab_bmc_password }}", "redfish_ca_path": "{{ fleet_lab_bmc_ca }}", "redfish_timeout": 10}


@pytest.fixture(scope="module")
def lab(lab_session):
    """The standard lab, its nodes of three ROM families (the next module's `up` puts the default back)."""
    lab_session.up(fleetlab.plan_nodes(**STANDARD_LAB, hardware=HARDWARE))
    handle = LabHandle(lab_session)
    yield handle
    for name in HARDWARE:
        node = handle.node(name)
        lab_session.set_dmi(node, **labhardware.dmi_values(node.hardware, node.name, node.index))
        lab_session.set_firmware(node)


def state_dir(lab) -> str:
    return str(lab.lab.home / "spp-node")


@pytest.fixture
def fresh(lab):
    """No lab Smart Component installed yet, the BMCs' own firmware versions, empty firewalls."""
    before = {}
    for name in NODES:
        reset_firewall(lab, name)
        lab.lab.set_firmware(lab.node(name))
        before[name] = snapshot(lab, name)
    lab.node_run(NODES[0], ["rm", "-rf", state_dir(lab)])  # the lab home is shared by the nodes
    return before


@pytest.fixture
def imported(lab, tmp_path) -> Path:
    """A signed lab SPP and its hotfix folder, imported by fleet.firmware.repository into ``repo``."""
    sign = spp_gen.signer(spp_pki.shared_lab_pki().signer)
    contents = spp_gen.smart_component(state_dir(lab))
    base = spp_gen.write_spp(tmp_path / "spp", specs=spp_gen.lab_specs(), sign=sign, contents=contents)
    spp_gen.write_hotfix(tmp_path / "hotfix", base, specs=spp_gen.lab_hotfix_specs(), sign=sign, contents=contents)
    repo = tmp_path / "repo"
    repo.mkdir()
    result = playbook(tmp_path, {"path": str(repo), "spp": str(tmp_path / "spp"), "additional": [str(tmp_path / "hotfix")],
                                 "signatures": "required"})
    assert result.get("changed") and not result.get("failed"), result
    by_name = {c["name"]: c for c in result["components"]}
    assert by_name[ILO]["deployable"] is False and "only a BMC can flash it" in by_name[ILO]["not_deployable"]
    assert all(c["deployable"] for name, c in by_name.items() if name != ILO), result["components"]
    assert [s["identity"] for s in result["not_imported"]] == [VMWARE]
    return repo


def installed(lab, identity: str, node: str = NODES[0]) -> str | None:
    """What the lab Smart Component ``identity`` recorded on ``node`` (None: it never ran there)."""
    hostname = lab.node_run(node, ["cat", "/proc/sys/kernel/hostname"]).stdout.strip()
    proc = lab.node_run(node, ["cat", f"{state_dir(lab)}/{hostname}/{identity}.version"], check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def nothing_installed(lab) -> bool:
    return all(installed(lab, c, node) is None for c in (ROM_U30, ROM_U32, SMART_ARRAY, TOOL) for node in NODES)


def deploy(lab, repo: Path, tag: str, extra: list[str] | None = None):
    args = dict(repository=str(repo), tag=tag, run_dir=str(lab.lab.home / "runs" / tag), lease=60, trust=lab_trust(), **BMC_ARGS)
    return lab.adhoc(",".join(NODES), "fleet.firmware.deploy", module_args(**args), extra=extra, timeout=600)


def summary(result) -> list:
    return [(c["name"], c["action"], c.get("status"), c.get("message")) for c in result.data.get("components") or []]


def by_name(result) -> dict:
    return {c["name"]: c for c in result.data["components"]}


def test_an_imported_spp_installs_only_its_signed_applicable_components(lab, fresh, imported):
    # Check mode first: a plan, nothing installed.
    planned = deploy(lab, imported, "spp-check", extra=["--check"])
    for name in NODES:
        assert planned[name].status in ("SUCCESS", "CHANGED"), planned[name].data
    assert nothing_installed(lab)

    results = deploy(lab, imported, "spp-run")
    for name in NODES:
        assert results[name].status == "CHANGED", (results[name].data.get("msg"), summary(results[name]))
        left = left_behind(lab, name, "spp-run", fresh[name])
        assert left == [] and not agent_processes(lab, name), left
    lin01, v6n01 = by_name(results["lin01"]), by_name(results["v6n01"])
    # Each node's own ROM family (DMI): U30 on lin01, U32 on v6n01; never the other's.
    assert lin01[ROM_U30]["status"] == "installed" and lin01[ROM_U32]["action"] == "skip"
    assert v6n01[ROM_U32]["status"] == "installed" and v6n01[ROM_U30]["action"] == "skip"
    assert "does not apply to this node" in lin01[ROM_U32]["message"]
    # The hotfix's newer tool installs; the SPP's superseded 1.0.0 does not.
    assert installed(lab, TOOL) == installed(lab, TOOL, "v6n01") == "1.0.1"
    assert lin01[TOOL]["status"] == "installed" and lin01[TOOL + "-1.0.0"]["action"] == "skip"
    # Never on a Linux node: the Windows component, the BMC-only package; each says why.
    assert lin01[WINDOWS_TOOL]["action"] == "skip" and "for windows nodes" in lin01[WINDOWS_TOOL]["message"]
    assert lin01[ILO]["action"] == "skip" and "only a BMC can flash it" in lin01[ILO]["message"]
    assert VMWARE not in lin01
    # Each says so in not_deployable (the report's "why not deployable"); what installs has none.
    assert lin01[ILO]["not_deployable"] == "not deployable: only a BMC can flash it (in-band deployment impossible)"
    assert lin01[WINDOWS_TOOL]["not_deployable"] == "for windows nodes, this node runs linux"
    assert lin01[ROM_U32]["not_deployable"].startswith("does not apply to this node: DMI bios_version is 'U30'")
    assert lin01[TOOL + "-1.0.0"]["not_deployable"].startswith("superseded by %s" % TOOL)
    assert lin01[ROM_U30]["not_deployable"] is None and lin01[TOOL]["not_deployable"] is None
    assert planned["lin01"].data["components"] and by_name(planned["lin01"])[ILO]["not_deployable"] == lin01[ILO]["not_deployable"]
    assert (installed(lab, ROM_U30), installed(lab, ROM_U32)) == ("2.92_11-03-2023", None)
    assert (installed(lab, ROM_U30, "v6n01"), installed(lab, ROM_U32, "v6n01")) == (None, "2.82_02-10-2023")

    # The second run: every Smart Component says "not needed" or is skipped; nothing changes.
    again = deploy(lab, imported, "spp-again")
    for name in NODES:
        assert again[name].status in ("SUCCESS", "CHANGED"), again[name].data
        assert all(c["action"] == "skip" or c["message"].endswith("-> not needed: the installed version is current")
                   for c in again[name].data["components"]), \
            summary(again[name])


def test_a_swapped_component_of_an_imported_spp_is_refused_before_anything_reaches_a_node(lab, fresh, imported, tmp_path):
    manifest = yaml.safe_load((imported / "manifest.yml").read_text())
    entry = next(c for c in manifest["components"] if c["name"] == TOOL)
    swapped = Path(entry["source"]) / entry["file"]
    swapped.write_text("#!/bin/sh\necho owned\nexit 0\n")
    entry["sha256"], entry["size"] = hashlib.sha256(swapped.read_bytes()).hexdigest(), swapped.stat().st_size
    (imported / "manifest.yml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    for extra in (["--check"], None):
        results = deploy(lab, imported, "spp-swapped", extra=extra)
        for name in NODES:
            assert results[name].status == "FAILED", results[name].data
            msg = results[name].data["msg"]
            assert f"{TOOL}: signature invalid" in msg and ROM_U30 not in msg, msg
            assert left_behind(lab, name, "spp-swapped", fresh[name]) == []
    assert nothing_installed(lab)
    assert not (lab.lab.home / "runs" / "spp-swapped").exists()
