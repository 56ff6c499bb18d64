# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-node hardware of the lab (DMI values, the BMC's firmware inventory): pure functions, no root."""
from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest
import yaml

import fleetlab
import labhardware

PASSWORDS = {"smb_password": "s", "become_password": "b", "root_password": "r", "bmc_password": "m0ck"}


def test_every_node_gets_the_default_hardware_unless_told():
    nodes = fleetlab.plan_nodes(hardware={"lin02": "dl360-gen10", "v6n01": "dl380-gen11"})
    assert {n.name: n.hardware for n in nodes} == {"lin01": "dl380-gen10", "lin02": "dl360-gen10", "v6n01": "dl380-gen11", "win01": "dl380-gen10"}
    # The default plan is unchanged (existing labs are not rebuilt for nothing).
    assert fleetlab.plan_nodes() == fleetlab.plan_nodes(hardware={})


@pytest.mark.parametrize("hardware, message", [
    ({"lin09": "dl380-gen10"}, "--hardware names no node of this lab: lin09"),
    ({"lin01": "dl999"}, "--hardware lin01=dl999: unknown hardware profile 'dl999'"),
])
def test_bad_hardware_is_refused_naming_it(hardware, message):
    with pytest.raises(fleetlab.LabError, match=message):
        fleetlab.plan_nodes(hardware=hardware)


def test_hardware_option_parses_node_profile_pairs():
    assert fleetlab.parse_hardware(["lin01=dl360-gen10", "v6n01=dl385-gen10"]) == {"lin01": "dl360-gen10", "v6n01": "dl385-gen10"}
    with pytest.raises(fleetlab.LabError, match="--hardware takes NODE=PROFILE, got 'lin01'"):
        fleetlab.parse_hardware(["lin01"])
    args = fleetlab.parse_args(["up", "--hardware", "lin01=dl360-gen10"])
    assert args.hardware == ["lin01=dl360-gen10"]


@pytest.mark.parametrize("hardware, family, model", [
    ("dl380-gen10", "U30", "ProLiant DL380 Gen10"), ("dl360-gen10", "U32", "ProLiant DL360 Gen10"),
    ("dl385-gen10", "A40", "ProLiant DL385 Gen10"), ("dl380-gen11", "U54", "ProLiant DL380 Gen11"),
])
def test_dmi_values_are_those_of_an_hpe_server_of_that_rom_family(hardware, family, model):
    dmi = labhardware.dmi_values(hardware, "lin01", 1)
    assert (dmi["sys_vendor"], dmi["bios_vendor"], dmi["bios_version"], dmi["product_name"]) == ("HPE", "HPE", family, model)
    assert labhardware.rom_version(dmi).startswith(f"{family} v")


def test_the_system_rom_item_of_the_bmc_matches_the_dmi_values():
    dmi = labhardware.dmi_values("dl360-gen10", "lin01", 1)
    rom = [i for i in labhardware.firmware_items("dl360-gen10", dmi) if i["Name"] == "System ROM"][0]
    assert rom["Version"] == "U32 v2.80 (01/12/2023)"
    # The family id in the platform targets is the family in ASCII, as on a real iLO ("U30" = 553330).
    assert rom["Oem"]["Hpe"]["Targets"][1].endswith("553332")


def test_firmware_versions_are_per_node_and_an_unknown_item_is_named():
    dmi = labhardware.dmi_values("dl380-gen10", "lin01", 1)
    items = {i["Id"]: i for i in labhardware.firmware_items("dl380-gen10", dmi, {"16": "5.61"})}
    assert items["16"]["Version"] == "5.61" and items["16"]["Oem"]["Hpe"]["Targets"] == ["a6b1a447-382a-5a4f-9005-028f103c0654"]
    assert items["16"]["Oem"]["Hpe"]["DeviceContext"] == "Embedded RAID"
    assert "Targets" not in items["12"]["Oem"]["Hpe"]  # like the real redundant ROM item
    with pytest.raises(labhardware.HardwareError, match="no firmware item with id 99"):
        labhardware.firmware_items("dl380-gen10", dmi, {"99": "1.0"})


def test_mockup_serves_the_expanded_collection_and_the_members(tmp_path: Path):
    dmi = labhardware.dmi_values("dl380-gen10", "lin01", 1)
    items = labhardware.firmware_items("dl380-gen10", dmi)
    labhardware.write_mockup(tmp_path, labhardware.mockup_files(items))
    root = tmp_path / "UpdateService" / "FirmwareInventory"
    expanded = json.loads((tmp_path / "UpdateService" / "FirmwareInventory?$expand=." / "index.json").read_text())
    assert expanded == json.loads((root / "?$expand=." / "index.json").read_text())
    assert [m["Id"] for m in expanded["Members"]] == [i["Id"] for i in items]
    plain = json.loads((root / "index.json").read_text())
    assert plain["Members"][0] == {"@odata.id": "/redfish/v1/UpdateService/FirmwareInventory/1/"}
    assert json.loads((root / "16" / "index.json").read_text())["Version"] == "6.22"
    # A BMC that does not expand: the expanded folders go, the members stay.
    labhardware.write_mockup(tmp_path, labhardware.mockup_files(items, expand=False))
    assert not (root / "?$expand=." / "index.json").exists() and (root / "16" / "index.json").exists()


def test_bmc_addresses_are_lab_addresses_unique_per_node_and_in_the_inventory(tmp_path: Path):
    nodes = fleetlab.plan_nodes(linux=60, ipv6_only=60, ipv4_only=40, windows=40)
    bmc = [n.bmc_address for n in nodes]
    assert len(set(bmc)) == len(bmc)
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network("198.18.0.0/15") for a in bmc)
    assert not set(bmc) & {a for n in nodes for a in n.addresses}
    data = yaml.safe_load("---\n" + fleetlab.to_yaml(fleetlab.inventory_data(nodes[:2], tmp_path, PASSWORDS)))
    host = data["all"]["children"]["linux"]["hosts"]["lin01"]
    assert (host["fleet_lab_hardware"], host["fleet_lab_rom_family"]) == ("dl380-gen10", "U30")
    assert host["fleet_lab_bmc_address"] == f"https://{nodes[0].bmc_address}"
    common = data["all"]["vars"]
    assert (common["fleet_lab_bmc_user"], common["fleet_lab_bmc_password"]) == ("fleetbmc", "m0ck")
    assert common["fleet_lab_bmc_ca"] == str(tmp_path / "bmc" / "ca.pem")


def test_dmi_mounts_overlay_sys_class_and_bind_the_node_folder(tmp_path: Path):
    commands = fleetlab.dmi_mounts(tmp_path / "n", tmp_path / "n" / "dmi")
    assert commands[-1] == f"mount --bind {tmp_path / 'n' / 'dmi'} /sys/class/dmi/id"
    assert any(c.startswith("mount -t overlay") and c.endswith(" /sys/class") for c in commands)


def test_a_lab_without_bmcs_has_no_bmc_address_in_its_inventory(tmp_path: Path):
    nodes = fleetlab.plan_nodes(linux=1, ipv6_only=0, windows=0, bmc=False)
    assert not nodes[0].bmc and fleetlab.parse_args(["up", "--no-bmc"]).no_bmc
    data = yaml.safe_load("---\n" + fleetlab.to_yaml(fleetlab.inventory_data(nodes, tmp_path, PASSWORDS)))
    assert data["all"]["children"]["linux"]["hosts"]["lin01"]["fleet_lab_bmc_address"] is None
