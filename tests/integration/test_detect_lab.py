# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Detection without hand-written rules, for real: fleet.firmware.inventory through Ansible on lab
nodes of different ROM families (each node's own /sys/class/dmi/id) that ask their own BMC (a
real Redfish server, sushy-static, on the node's host-interface address over HTTPS with the lab
CA) for the firmware inventory, on a dual-stack and an IPv6-only node.

The components are what an SPP import gives (INTERFACES.md, "Detection"): the system ROM by DMI
with HPE's version form, device firmware by Redfish target ids, an RPM-less driver by the package
manager, and a component that decides for itself.
"""
from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time

import pytest
import yaml

import fleetlab
import labhardware
import spp_pki
from conftest import STANDARD_LAB, LabHandle
from deploy_helpers import lab_trust

pytestmark = pytest.mark.lab

MODULE = "fleet.firmware.inventory"
# lin01: a DL380 Gen10 (U30); v6n01 (IPv6 only): a DL360 Gen10 (U32); lin02: a DL385 Gen10 (A40).
HARDWARE = {"lin01": "dl380-gen10", "v6n01": "dl360-gen10", "lin02": "dl385-gen10"}
ROM_FORMAT = "{bios_version} v{bios_release} ({bios_date})"
SMART_ARRAY = "a6b1a447-382a-5a4f-9005-028f103c0654"
NVME_BACKPLANE = "00000000-0000-0000-0000-000049535320"
POWER_SUPPLY = "0302b505-0002-0000-0000-0cf38db966ea"
E810 = "a6b1a447-382a-5a4f-8086-15938086000e"  # a NIC none of the lab's servers has

BASELINE = [
    {"name": "rom-u30", "version": "U30 v2.92 (11/03/2023)", "kind": "firmware", "os": "linux",
     "applies_to": {"bios_version": "^(U30)"}, "detect": {"method": "dmi", "format": ROM_FORMAT}},
    {"name": "rom-u32", "version": "v2.80 (01/12/2023)", "kind": "firmware", "os": "linux",
     "applies_to": {"bios_version": "^(U32)"}, "detect": {"method": "dmi", "format": ROM_FORMAT}},
    {"name": "smart-array", "version": "7.00", "kind": "firmware", "os": "linux",
     "detect": {"method": "redfish", "targets": [SMART_ARRAY]}},
    {"name": "nvme-backplane", "version": "1.24", "kind": "firmware", "os": "linux",
     "detect": {"method": "redfish", "targets": [NVME_BACKPLANE]}},
    {"name": "power-supply", "version": "2.10", "kind": "firmware", "os": "linux",
     "detect": {"method": "redfish", "targets": [POWER_SUPPLY]}},
    {"name": "e810-nic", "version": "4.20", "kind": "firmware", "os": "linux",
     "detect": {"method": "redfish", "targets": [E810]}},
    {"name": "drive-hpd4", "version": "HPD4", "kind": "firmware", "os": "linux", "detect": {"method": "component"}},
    {"name": "dpkg-tool", "version": "0.1", "kind": "software", "os": "linux", "detect": {"method": "package", "name": "dpkg"}},
]
BMC_ARGS = {"redfish_address": "{{ fleet_lab_bmc_address }}", "redfish_username": "{{ fleet_lab_bmc_user }}",
            "redfish_password": "{{ fleet_lab_bmc_password }}", "redfish_ca_path": "{{ fleet_lab_bmc_ca }}", "redfish_timeout": 10}


@pytest.fixture(scope="module")
def lab(lab_session):
    """The standard lab, its nodes of three ROM families (the next module's `up` puts the default back)."""
    lab_session.up(fleetlab.plan_nodes(**STANDARD_LAB, hardware=HARDWARE))
    handle = LabHandle(lab_session)
    yield handle
    for name in HARDWARE:  # the profiles' own versions again, whatever a test changed
        node = handle.node(name)
        lab_session.set_dmi(node, **labhardware.dmi_values(node.hardware, node.name, node.index))
        lab_session.set_firmware(node)


def bmc_args(**overrides) -> str:
    """The module's arguments (JSON for ``ansible -a``): the lab BMC's settings, then ``overrides``."""
    return json.dumps({"baseline": BASELINE, **BMC_ARGS, **overrides})


def inventory(lab, pattern, **overrides):
    results = lab.adhoc(pattern, MODULE, bmc_args(**overrides))
    for name, result in results.items():
        assert result.status == "SUCCESS", f"{name}: {result.data}"
    return {name: {e["name"]: e for e in result.data["inventory"]} for name, result in results.items()}


def test_each_node_sees_its_own_dmi_values(lab):
    families = {name: lab.node_run(name, ["cat", "/sys/class/dmi/id/bios_version"]).stdout.strip() for name in ("lin01", "lin02", "v6n01")}
    assert families == {"lin01": "U30", "lin02": "A40", "v6n01": "U32"}
    assert lab.node_run("v6n01", ["cat", "/sys/class/dmi/id/product_name"]).stdout.strip() == "ProLiant DL360 Gen10"


def test_rom_family_firmware_and_components_on_a_dual_stack_and_an_ipv6_only_node(lab):
    lab.lab.set_firmware(lab.node("v6n01"), {"16": "7.00"})  # v6n01's Smart Array is current already
    plans = inventory(lab, "lin01,v6n01")
    u30, u32 = plans["lin01"], plans["v6n01"]
    # The system ROM: the component of the other family does not apply; the own one compares.
    assert u30["rom-u32"]["action"] == "skip" and u30["rom-u32"]["reason"].startswith("does not apply to this node: DMI bios_version is 'U30'")
    assert (u30["rom-u30"]["action"], u30["rom-u30"]["installed"]) == ("upgrade", "U30 v2.90 (07/20/2023)")
    assert u30["rom-u30"]["source"] == "SMBIOS (DMI) of the node"
    assert u32["rom-u30"]["action"] == "skip" and "'U32'" in u32["rom-u30"]["reason"]
    assert (u32["rom-u32"]["action"], u32["rom-u32"]["reason"]) == ("skip", "already current (U32 v2.80 (01/12/2023))")
    # Device firmware from each node's own BMC, matched by target ids, versions per node.
    assert (u30["smart-array"]["action"], u30["smart-array"]["installed"]) == ("upgrade", "6.22")
    assert (u32["smart-array"]["action"], u32["smart-array"]["installed"]) == ("skip", "7.00")
    assert u30["smart-array"]["detection"]["devices"] == [
        {"id": "16", "name": "HPE Smart Array E208i-a SR Gen10", "context": "Embedded RAID", "version": "6.22"}]
    assert u30["smart-array"]["source"] == f"the BMC's Redfish firmware inventory of {lab.node('lin01').bmc_url} (asked from the node)"
    assert u32["smart-array"]["source"].endswith(f"of {lab.node('v6n01').bmc_url} (asked from the node)")
    for plan in (u30, u32):
        assert plan["nvme-backplane"]["action"] == "skip" and plan["nvme-backplane"]["reason"] == "already current (1.24)"
        assert plan["power-supply"]["action"] == "upgrade" and plan["power-supply"]["detection"]["reason"] == "the lowest of 2 matching items"
        assert plan["e810-nic"]["action"] == "install" and "no firmware item with targets " + E810 in plan["e810-nic"]["reason"]
        # Nothing on the node can tell: the component decides, said as exactly that.
        assert plan["drive-hpd4"]["action"] == "install"
        assert plan["drive-hpd4"]["reason"] == 'the component decides (its "not needed" return code)'
        assert plan["drive-hpd4"]["detection"]["method"] == "component"
        assert plan["dpkg-tool"]["source"] == "the dpkg database" and plan["dpkg-tool"]["action"] == "skip"


def test_one_older_power_supply_of_two_is_enough_for_an_upgrade_and_flashing_it_makes_it_current(lab):
    node = lab.node("lin02")
    lab.lab.set_firmware(node, {"7": "2.10", "8": "1.90"})
    supply = inventory(lab, "lin02")["lin02"]["power-supply"]
    assert (supply["action"], supply["installed"]) == ("upgrade", "1.90")
    assert [(d["context"], d["version"]) for d in supply["detection"]["devices"]] == [("Bay 1", "2.10"), ("Bay 2", "1.90")]
    lab.lab.set_firmware(node, {"7": "2.10", "8": "2.10"})
    assert inventory(lab, "lin02")["lin02"]["power-supply"]["action"] == "skip"


def test_a_bmc_that_does_not_expand_is_read_member_by_member(lab):
    node = lab.node("lin02")
    lab.lab.set_firmware(node, expand=False)
    plan = inventory(lab, "lin02")["lin02"]
    assert (plan["smart-array"]["action"], plan["smart-array"]["installed"]) == ("upgrade", "6.22")
    log = (lab.lab.home / "nodes" / "lin02" / "bmc.log").read_text()
    assert '"GET /redfish/v1/UpdateService/FirmwareInventory/?$expand=. HTTP/1.1" 404' in log
    assert '"GET /redfish/v1/UpdateService/FirmwareInventory/16/ HTTP/1.1" 200' in log
    lab.lab.set_firmware(node)


@pytest.mark.parametrize("node", ["lin01", "v6n01"])
def test_an_unreachable_bmc_is_an_error_and_nothing_is_planned_as_absent(lab, node):
    unreachable = "https://" + str(fleetlab.BMC_NET.network_address + 250)
    plan = inventory(lab, node, redfish_address=unreachable, redfish_timeout=3)[node]
    for name in ("smart-array", "nvme-backplane", "power-supply", "e810-nic"):
        assert plan[name]["detection"]["state"] == "error", plan[name]
        assert plan[name]["action"] == "skip" and f"cannot reach the BMC at {unreachable}" in plan[name]["reason"]
    # Detection that does not need the BMC goes on.
    assert plan["drive-hpd4"]["action"] == "install" and plan["dpkg-tool"]["detection"]["state"] == "present"


def test_the_node_checks_the_bmc_certificate(lab):
    plan = inventory(lab, "lin01", redfish_ca_path=None)["lin01"]
    assert plan["smart-array"]["detection"]["state"] == "error"
    assert "TLS with the BMC at" in plan["smart-array"]["reason"] and "CERTIFICATE_VERIFY_FAILED" in plan["smart-array"]["reason"]


@pytest.fixture
def controller_bmc(lab, tmp_path):
    """A BMC the controller reaches: sushy-static serving lin01's inventory on the controller's lab
    address (a management network the controller is on), with a lab-CA certificate for it."""
    home = lab.lab.home
    address = str(fleetlab.CONTROLLER_IPV4)
    key, csr, cert, ext = (tmp_path / n for n in ("bmc.key", "bmc.csr", "bmc.pem", "bmc.ext"))
    ext.write_text(f"subjectAltName=IP:{address}\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n"
                   "keyUsage=critical,digitalSignature\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-subj", f"/CN={address}", "-keyout", str(key), "-out", str(csr)], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(home / "bmc" / "ca.pem"), "-CAkey", str(home / "bmc" / "ca.key"),
                    "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(cert)], check=True, capture_output=True)
    with socket.socket() as probe:
        probe.bind((address, 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "sushy_tools.static.main", "-i", address, "-p", str(port),
                               "-m", str(home / "nodes" / "lin01" / "redfish"), "-c", str(cert), "-k", str(key)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _attempt in range(200):
            try:
                socket.create_connection((address, port), 1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"https://{address}:{port}"
    finally:
        server.terminate()
        server.wait(10)


def test_asked_from_the_controller_the_node_gets_the_inventory_without_the_credentials(lab, controller_bmc):
    ca = str(lab.lab.home / "bmc" / "ca.pem")
    results = lab.adhoc("lin01", MODULE, bmc_args(redfish_address=controller_bmc, redfish_from="controller", redfish_ca_path=ca), extra=["-v"])
    assert results["lin01"].status == "SUCCESS", results["lin01"].data
    plan = {e["name"]: e for e in results["lin01"].data["inventory"]}
    assert (plan["smart-array"]["action"], plan["smart-array"]["installed"]) == ("upgrade", "6.22")
    assert plan["smart-array"]["source"] == f"the BMC's Redfish firmware inventory of {controller_bmc} (asked from the controller)"
    assert lab.lab.passwords["bmc_password"] not in json.dumps(results["lin01"].data)


def test_asked_from_the_controller_an_unreachable_bmc_is_an_error_never_absent(lab):
    # A lab address with no machine behind it (never an address outside the lab).
    unreachable = "https://" + str(fleetlab.IPV4_NET.network_address + 250)
    plan = inventory(lab, "lin01", redfish_from="controller", redfish_address=unreachable, redfish_timeout=3)["lin01"]
    smart = plan["smart-array"]
    assert smart["detection"]["state"] == "error" and smart["action"] == "skip"
    assert f"the BMC at {unreachable}" in smart["reason"] and smart["source"].endswith("(asked from the controller)")


def test_the_bmc_password_is_in_no_result_and_no_output(lab):
    password = lab.lab.passwords["bmc_password"]
    assert password
    argv = bmc_args()
    results = lab.adhoc("lin01,v6n01", MODULE, argv, extra=["-v"])
    assert all(r.status == "SUCCESS" for r in results.values())
    assert password not in json.dumps({name: r.data for name, r in results.items()})
    wrong = lab.adhoc("lin01", MODULE, bmc_args(baseline=BASELINE[:3], redfish_address="https://bmc:pw@x"))
    assert wrong["lin01"].status == "FAILED" and "holds credentials" in wrong["lin01"].data["msg"]


def make_redfish_repo(lab, folder, node: str):
    """A repository with one device-firmware component detected by Redfish target id; its
    installer rewrites the node's BMC mockup (what flashing the Smart Array does to the real
    inventory), so the re-inventory after the install sees the new version."""
    folder.mkdir(parents=True, exist_ok=True)
    mockup = lab.lab.home / "nodes" / node / "redfish" / "UpdateService"
    script = folder / "smart-array-7.00.sh"
    script.write_text("#!/bin/sh\n"
                      f"grep -rl '\"Version\": \"6.22\"' {mockup} | xargs sed -i 's/\"Version\": \"6.22\"/\"Version\": \"7.00\"/'\n"
                      "echo flashed\n")
    script.chmod(0o755)
    entry = {"name": "smart-array", "version": "7.00", "kind": "firmware", "os": "linux", "file": script.name,
             "sha256": hashlib.sha256(script.read_bytes()).hexdigest(), "size": script.stat().st_size,
             "detect": {"method": "redfish", "targets": [SMART_ARRAY]}, "install": "script",
             "signature": spp_pki.sign_file(script, spp_pki.shared_lab_pki().signer).name}
    (folder / "manifest.yml").write_text(yaml.safe_dump({"format": 1, "components": [entry]}, sort_keys=False))
    return folder


@pytest.mark.parametrize("node", ["lin01", "v6n01"])
def test_deploy_plans_with_the_bmc_from_the_node_and_the_second_run_is_a_no_op(lab, tmp_path, node):
    lab.lab.set_firmware(lab.node(node))
    repo = make_redfish_repo(lab, tmp_path / "repo", node)
    tag = f"detect-{node}"
    args = {**BMC_ARGS, "repository": str(repo), "tag": tag, "run_dir": str(lab.lab.home / "runs" / tag), "lease": 30, "trust": lab_trust()}
    check = lab.adhoc(node, "fleet.firmware.deploy", json.dumps(args), extra=["--check"], timeout=300)[node]
    assert check.status == "CHANGED", check.data
    assert [(e["name"], e["action"], e["installed"]) for e in check.data["plan"]] == [("smart-array", "upgrade", "6.22")]
    first = lab.adhoc(node, "fleet.firmware.deploy", json.dumps(args), timeout=300)[node]
    assert first.status == "CHANGED", first.data
    row = {c["name"]: c for c in first.data["components"]}["smart-array"]
    assert (row["status"], row["before"], row["after"]) == ("installed", "6.22", "7.00"), row
    assert lab.lab.passwords["bmc_password"] not in json.dumps(first.data)
    second = lab.adhoc(node, "fleet.firmware.deploy", json.dumps({**args, "tag": tag + "-2", "run_dir": args["run_dir"] + "-2"}), timeout=300)[node]
    assert second.status == "SUCCESS", second.data
    again = {c["name"]: c for c in second.data["components"]}["smart-array"]
    assert (again["action"], again["message"]) == ("skip", "already current (7.00)"), again
    lab.lab.set_firmware(lab.node(node))
