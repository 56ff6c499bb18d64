# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a lab node *is*: its SMBIOS (DMI) values and the firmware inventory its BMC reports.

Pure functions, used by ``fleetlab.py`` (which writes them into each node) and unit-tested
without root. Every node has a hardware profile (``--hardware NODE=PROFILE``, default
``dl380-gen10``); the profile gives the DMI values HPE servers of that ROM family show in
``/sys/class/dmi/id`` and the devices of the BMC's Redfish firmware inventory.

The firmware inventory is modelled on a real iLO 5 answer to
``GET /redfish/v1/UpdateService/FirmwareInventory/?$expand=.`` (a DL380 Gen10, U30): the same
item names, ``Description``, ``Oem.Hpe.DeviceClass``, ``Oem.Hpe.DeviceContext`` and
``Oem.Hpe.Targets`` (PCI devices ``a6b1a447-382a-5a4f-VVVV-DDDDSSSSssss``, the platform
``00000000-0000-0000-0000-0000000002xx`` plus a per-family id, power supplies ``0302b505-...``).
Versions are per node: a profile's default, overridden with ``firmware={item id: version}``.
"""
from __future__ import annotations

import copy
import json
import uuid
from pathlib import Path

DEFAULT_HARDWARE = "dl380-gen10"
# ROM family, model, the platform target ids of the System ROM item, the ROM version and date.
# U30/U32/U54 and their models: HPE's own component descriptions (reference spp-format.md 6.3).
PROFILES: dict[str, dict] = {
    "dl380-gen10": {"family": "U30", "product_name": "ProLiant DL380 Gen10", "platform": "0205", "family_target": "000001553330",
                    "bios_release": "2.90", "bios_date": "07/20/2023", "bmc": "iLO 5", "bmc_version": "2.96 Aug 17 2023"},
    "dl360-gen10": {"family": "U32", "product_name": "ProLiant DL360 Gen10", "platform": "0206", "family_target": "000001553332",
                    "bios_release": "2.80", "bios_date": "01/12/2023", "bmc": "iLO 5", "bmc_version": "2.78 Apr 28 2023"},
    "dl385-gen10": {"family": "A40", "product_name": "ProLiant DL385 Gen10", "platform": "0210", "family_target": "000001413430",
                    "bios_release": "3.10", "bios_date": "06/02/2023", "bmc": "iLO 5", "bmc_version": "2.96 Aug 17 2023"},
    "dl380-gen11": {"family": "U54", "product_name": "ProLiant DL380 Gen11", "platform": "0235", "family_target": "000001553534",
                    "bios_release": "1.46", "bios_date": "09/26/2023", "bmc": "iLO 6", "bmc_version": "1.55 Oct 05 2023"},
}

# Device firmware every profile has (the items of the real sample that are not platform-specific).
# id: (Name, Description, DeviceClass, DeviceContext, [targets], default version, Updateable, DeviceInstance)
DEVICES = {
    "6": ("NVMe Backplane Firmware", "NVMeBackplane", "3653aa90-7089-453a-899c-792827a50d67", "System Board",
          ["00000000-0000-0000-0000-0000000002xx", "00000000-0000-0000-0000-000049535320"], "1.24", True, None),
    "7": ("Power Supply Firmware", "PowerSupplies", "6bb86077-0275-4614-aae1-86618e8b1c27", "Bay 1",
          ["0302b505-0002-0000-0000-0cf38db966ea"], "2.00", True, None),
    "8": ("Power Supply Firmware", "PowerSupplies", "6bb86077-0275-4614-aae1-86618e8b1c27", "Bay 2",
          ["0302b505-0002-0000-0000-0cf38db966ea"], "2.00", True, None),
    "15": ("HPE Eth 10/25Gb 2p 640FLR-SFP28 Adptr", "15b31015159000d3", None, "Embedded ALOM",
           ["a6b1a447-382a-5a4f-15b3-1015159000d3"], "14.32.1010", False, "PciRoot(0x2)/Pci(0x0,0x0)/Pci(0x0,0x0)"),
    "16": ("HPE Smart Array E208i-a SR Gen10", "9005028f103c0654", None, "Embedded RAID",
           ["a6b1a447-382a-5a4f-9005-028f103c0654"], "6.22", True, "PciRoot(0x0)/Pci(0x2,0x0)/Pci(0x0,0x0)"),
}
INVENTORY_PATH = "/redfish/v1/UpdateService/FirmwareInventory/"
HPE_ODATA = {"@odata.context": "/redfish/v1/$metadata#HpeiLOSoftwareInventory.HpeiLOSoftwareInventory",
             "@odata.type": "#HpeiLOSoftwareInventory.v2_1_0.HpeiLOSoftwareInventory"}


class HardwareError(ValueError):
    """A hardware profile or firmware override the lab does not know; the message names it."""


def profile(name: str) -> dict:
    if name not in PROFILES:
        raise HardwareError(f"unknown hardware profile {name!r} (known: {', '.join(sorted(PROFILES))})")
    return PROFILES[name]


def dmi_values(hardware: str, node_name: str, index: int) -> dict[str, str]:
    """The files of the node's /sys/class/dmi/id (HPE writes the ROM family into bios_version)."""
    prof = profile(hardware)
    return {
        "sys_vendor": "HPE",
        "board_vendor": "HPE",
        "chassis_vendor": "HPE",
        "bios_vendor": "HPE",
        "product_name": prof["product_name"],
        "product_family": "ProLiant",
        "bios_version": prof["family"],
        "bios_release": prof["bios_release"],
        "bios_date": prof["bios_date"],
        "product_serial": f"CZJLAB{index:04d}",
        "product_uuid": str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{node_name}.fleet-lab")),
    }


def rom_version(dmi: dict[str, str]) -> str:
    """HPE's display form of the running ROM, as iLO shows it: ``U30 v2.90 (07/20/2023)``."""
    return f"{dmi['bios_version']} v{dmi['bios_release']} ({dmi['bios_date']})"


def _item(item_id: str, name: str, description: str, version: str, device_class: str | None, context: str,
          targets: list[str] | None, updateable: bool = True, instance: str | None = None) -> dict:
    hpe = dict(HPE_ODATA)
    hpe["DeviceClass"] = device_class
    hpe["DeviceContext"] = context
    if instance:
        hpe["DeviceInstance"] = instance
    if targets is not None:
        hpe["Targets"] = list(targets)
    return {
        "@odata.context": "/redfish/v1/$metadata#SoftwareInventory.SoftwareInventory",
        "@odata.id": f"{INVENTORY_PATH}{item_id}/",
        "@odata.type": "#SoftwareInventory.v1_2_0.SoftwareInventory",
        "Description": description,
        "Id": item_id,
        "Name": name,
        "Oem": {"Hpe": hpe},
        "Status": {"Health": "OK", "State": "Enabled"},
        "Updateable": updateable,
        "Version": version,
    }


def firmware_items(hardware: str, dmi: dict[str, str], firmware: dict[str, str] | None = None) -> list[dict]:
    """The members of the node's firmware inventory; ``firmware`` overrides versions by item id."""
    prof = profile(hardware)
    overrides = dict(firmware or {})
    platform = f"00000000-0000-0000-0000-000000000{prof['platform'][-3:]}"
    platform_targets = [platform, f"00000000-0000-0000-0000-{prof['family_target']}"]
    items = [
        _item("1", prof["bmc"], "SystemBMC", prof["bmc_version"], "2f317b9d-c9e3-4d76-bff6-b9d0d085a952", "System Board",
              ["4764a662-b342-4fc7-9ce9-258c5d99e815", "c0bcf2b9-1141-49af-aab8-c73791f0349c"]),
        _item("2", "System ROM", "SystemRomActive", rom_version(dmi), "aa148d2e-6e09-453e-bc6f-63baa5f5ccc4", "System Board", platform_targets),
        _item("3", "Intelligent Platform Abstraction Data", "PlatformDefinitionTable", "16.5.0 Build 53",
              "b8f46d06-85db-465c-94fb-d106e61378ed", "System Board", platform_targets),
        _item("4", "System Programmable Logic Device", "SystemProgrammableLogicDevice", "0x31",
              "b1ad439a-9dd1-41c1-a496-2da9313f1f07", "System Board", [platform]),
    ]
    for item_id, (name, description, device_class, context, targets, version, updateable, instance) in DEVICES.items():
        targets = [platform if target.endswith("2xx") else target for target in targets]
        items.append(_item(item_id, name, description, version, device_class, context, targets, updateable, instance))
    # The real inventory has items without targets (the redundant ROM): they never match a component.
    items.append(_item("12", "Redundant System ROM", "SystemRomBackup", rom_version(dict(dmi, bios_release="2.76", bios_date="02/09/2023")),
                       None, "System Board", None))
    known = {item["Id"] for item in items}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise HardwareError(f"no firmware item with id {', '.join(unknown)} (ids: {', '.join(sorted(known, key=int))})")
    for item in items:
        if item["Id"] in overrides:
            item["Version"] = str(overrides[item["Id"]])
    return items


def mockup_files(items: list[dict], expand: bool = True) -> dict[str, dict]:
    """The files of a Redfish mockup (path under the mockup folder -> JSON), in the layout
    sushy-static serves: ``/redfish/v1/<path>`` is ``<folder>/<path>/index.json``.

    sushy-static takes the query string as part of the path, so the expanded collection
    (``FirmwareInventory/?$expand=.``, with and without the slash) is a folder of its own. Without
    ``expand`` those folders are missing (a BMC that does not expand: clients follow the members).
    """
    collection = {
        "@odata.context": "/redfish/v1/$metadata#SoftwareInventoryCollection.SoftwareInventoryCollection",
        "@odata.id": INVENTORY_PATH,
        "@odata.type": "#SoftwareInventoryCollection.SoftwareInventoryCollection",
        "Description": "Firmware Inventory Collection",
        "Name": "Firmware Inventory Collection",
        "Members@odata.count": len(items),
    }
    files = {
        "index.json": {"@odata.id": "/redfish/v1/", "@odata.type": "#ServiceRoot.v1_5_0.ServiceRoot", "Id": "RootService",
                       "Name": "HPE RESTful Root Service", "RedfishVersion": "1.6.0", "Vendor": "HPE",
                       "UpdateService": {"@odata.id": "/redfish/v1/UpdateService/"}},
        "UpdateService/index.json": {"@odata.id": "/redfish/v1/UpdateService/", "@odata.type": "#UpdateService.v1_1_1.UpdateService",
                                     "Id": "UpdateService", "Name": "Update Service",
                                     "FirmwareInventory": {"@odata.id": INVENTORY_PATH}},
        "UpdateService/FirmwareInventory/index.json": dict(collection, Members=[{"@odata.id": item["@odata.id"]} for item in items]),
    }
    for item in items:
        files[f"UpdateService/FirmwareInventory/{item['Id']}/index.json"] = item
    if expand:
        expanded = dict(collection, Members=copy.deepcopy(items))
        files["UpdateService/FirmwareInventory?$expand=./index.json"] = expanded
        files["UpdateService/FirmwareInventory/?$expand=./index.json"] = expanded
    return files


def write_mockup(folder: Path, files: dict[str, dict]) -> None:
    """Write (or rewrite in place) a mockup; the server reads a file per request, so a change is
    seen at the next request. Each file is replaced atomically (no half-written JSON is served)."""
    for relative, data in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)
    stale = [p for p in folder.rglob("index.json") if str(p.relative_to(folder)) not in files]
    for path in stale:
        path.unlink()
