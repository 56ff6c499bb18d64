# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Realistic HPE SPP folders for tests and benchmarks, in the real schema.

The cp*.xml files follow the real cp037722.xml (../shared/reference/spp-samples/, the project's
research notes spp-format.md sections 2, 3, 6 and 7): root ``cpq_package``, ``filename``,
``divisions``, ``operating_systems/operating_system@key`` + ``operating_system_xlate`` (no lang),
``products/product@rom``, ``name/name_xlate@lang``, ``version@value,@revision,@type_of_change``,
``release_date@year..@second``, ``description/description_xlate`` (CDATA), ``category@key`` +
``category_xlate``, ``type@id``, ``payload/Devices/Device`` (``DeviceName``, ``FirmwareImages``
with ``FileName``, ``InstallDurationSec``, ``ResetRequired``, ``DirectFlashOk``, ``UefiFlashable``
as the strings True/False; ``Target``; ``Version``).

    import spp_gen
    spp = spp_gen.write_spp(tmp / "spp")                  # 45 components, packages/ + manifest/
    hotfix = spp_gen.write_hotfix(tmp / "hotfix", spp)     # supersedes two of them, adds one
    old = spp_gen.write_spp(tmp / "old", layout="hp")      # hp/swpackages + hp_manifest

Component files are random bytes (``sizes``: a function index -> bytes). ``sign``: a function
that signs one component file beside it, e.g. ``signer(spp_pki.shared_lab_pki().signer)``: real
detached CMS ``.compsig`` files by openssl (``_partN.compsig`` above 32 MiB); ``.fwpkg`` files
carry their signature inside (spp-format.md section 8) and get none.

Command line (the benchmark uses it too):
    python tests/lab/spp_gen.py OUT --count 800 --min-size 1MiB --max-size 64MiB [--pki PKI_DIR]
    python tests/lab/spp_gen.py OUT --lab --state-dir DIR --hotfix HOTFIX --pki PKI_DIR   # make demo-spp
"""
from __future__ import annotations

import argparse
import math
import os
import random
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Optional
from xml.sax.saxutils import escape

KIB, MIB = 1024, 1024 * 1024
RHEL8, RHEL9, SLES15 = ("4420", "Red Hat Enterprise Linux 8 Server"), ("11640", "Red Hat Enterprise Linux 9 Server"), \
    ("4425", "SUSE Linux Enterprise Server 15")
WIN2019, WIN2022 = ("", "Microsoft Windows Server 2019"), ("", "Microsoft Windows Server 2022")
ESXI8 = ("11032", "VMware ESXi 8.0")
LINUX_OSES, WINDOWS_OSES = (RHEL8, RHEL9, SLES15), (WIN2019, WIN2022)
# ROM families and their servers (spp-format.md section 6.3).
ROM_FAMILIES = {"U30": "DL380 Gen10", "U32": "DL360 Gen10", "A40": "DL385 Gen10 Plus", "U46": "DL360 Gen10 Plus",
                "U54": "DL380 Gen11"}
CATEGORIES = {
    "rom": ("1200212", "BIOS - System ROM"),
    "nic_fw": ("2900095", "Firmware - Network"),
    "storage_fw": ("2900090", "Firmware - Storage Controller"),
    "drive_fw": ("2900092", "Firmware - Storage Disk"),
    "system_fw": ("2900080", "Firmware - System"),
    "lom_fw": ("2900082", "Firmware - Lights-Out Management"),
    "power_fw": ("2900084", "Firmware - Power Management"),
    "nic_drv": ("11300095", "Driver - Network"),
    "storage_drv": ("11300090", "Driver - Storage Controller"),
    "chipset_drv": ("11300080", "Driver - Chipset"),
    "mgmt_sw": ("21300070", "Software - System Management"),
    "storage_sw": ("21300090", "Software - Storage Controller"),
}


@dataclass
class Device:
    name: str
    targets: list[str]
    version: str
    duration: int = 120
    reset: bool = False
    image: str = "image.bin"


@dataclass
class Spec:
    """One Smart Component."""
    number: int
    filename: str
    title: str
    category: str
    type_id: str
    version: str
    oses: tuple
    revision: str = ""
    type_of_change: int = 1
    roms: tuple = ()
    devices: list[Device] = field(default_factory=list)
    date: tuple = (2023, 10, 27)
    expect: dict = field(default_factory=dict)

    @property
    def identity(self) -> str:
        return "cp%06d" % self.number


Contents = Callable[["Spec"], Optional[bytes]]


def pci_target(vendor: str, device: str, subvendor: str, subdevice: str) -> str:
    """The PCI-device target GUID shape seen in iLO inventories (spp-format.md section 10.1)."""
    return "a6b1a447-382a-5a4f-%s-%s%s%s" % (vendor, device, subvendor, subdevice)


def drive_target(model: str) -> str:
    """Drive target GUID: the model in ASCII after the 0x..2340a5 prefix (spp-format.md 10.1)."""
    raw = ("%-12s" % model[:12]).encode("ascii").hex()
    return "562340a5-%s-%s-%s-%s" % (raw[0:4], raw[4:8], raw[8:12], raw[12:24])


def catalogue() -> list[Spec]:
    """The 45 components of a generated SPP: every family the importer maps."""
    specs: list[Spec] = []
    number = 45000

    def add(**kwargs) -> Spec:
        nonlocal number
        number += 7
        spec = Spec(number=number, **kwargs)
        specs.append(spec)
        return spec

    # System ROMs, one per family and OS (Linux RPM, Windows cp*.exe).
    for index, (family, server) in enumerate(ROM_FAMILIES.items()):
        version = "2.%d_%02d-%02d-2023" % (80 + index * 2, 3 + index, 10 + index)
        stamp = version.replace("-", "_")
        add(filename="hp-firmware-system-%s-%s-1.1.x86_64.rpm" % (family.lower(), stamp),
            title="Online ROM Flash Component for Linux - HPE ProLiant %s (%s) Servers" % (server, family), category="rom",
            type_id="smartcomponent-linux-uefi-system", version=version, oses=LINUX_OSES, roms=(family,), type_of_change=2,
            devices=[Device("System ROM", ["00000000-0000-0000-0000-000000000205"], version, 600, True, "%s.signed.flash" % family)])
        add(filename="cp%06d.exe" % (number + 7), title="Online ROM Flash Component for Windows x64 - HPE ProLiant %s (%s) Servers"
            % (server, family), category="rom", type_id="smartcomponent-windows-uefi-system", version=version, oses=WINDOWS_OSES,
            roms=(family,), devices=[Device("System ROM", ["00000000-0000-0000-0000-000000000205"], version, 600, True)])
    gen10 = ("U30", "U32", "A40", "U46")
    # Multi-device NIC firmware (several PCI targets each).
    nics = [("Intel E810", "8086", "1593", "1590", "00a1"), ("Broadcom BCM57414", "14e4", "16d7", "1590", "020e")]
    for title, vendor, dev, sub, subdev in nics:
        devices = [Device("%s port %s" % (title, p), [pci_target(vendor, dev, sub, "%04x" % (int(subdev, 16) + i))], "22.46.3048", 300)
                   for i, p in enumerate(("A", "B", "C"))]
        add(filename="cp%06d.scexe" % (number + 7), title="HPE %s Firmware for Linux" % title, category="nic_fw",
            type_id="smartcomponent-linux-firmware-nic", version="22.46.3048", oses=LINUX_OSES, roms=gen10, devices=devices)
        add(filename="cp%06d.exe" % (number + 7), title="HPE %s Firmware for Windows Server x64" % title, category="nic_fw",
            type_id="smartcomponent-windows-firmware-nic", version="22.46.3048", oses=WINDOWS_OSES, roms=gen10, devices=devices)
    # Smart Array firmware as an RPM with targets (detected through Redfish, not the RPM database).
    sa = [Device("HPE Smart Array P408i-a SR Gen10", [pci_target("9005", "028f", "103c", "0601")], "6.22", 900, True),
          Device("HPE Smart Array E208i-a SR Gen10", [pci_target("9005", "028f", "103c", "0654")], "6.22", 900, True)]
    add(filename="firmware-smartarray-ea3138d8e8-6.22-1.1.x86_64.rpm", title="Online ROM Flash Component for Linux (x64) - HPE Smart Array Gen10 Controllers",
        category="storage_fw", type_id="smartcomponent-linux-firmware-array", version="6.22", oses=LINUX_OSES, roms=gen10, devices=sa)
    add(filename="cp%06d.exe" % (number + 7), title="Online ROM Flash Component for Windows (x64) - HPE Smart Array Gen10 Controllers",
        category="storage_fw", type_id="smartcomponent-windows-firmware-array", version="6.22", oses=WINDOWS_OSES, roms=gen10, devices=sa,
        revision="A")
    # Drive firmware, two models in one payload each.
    for models, version in ((("VO000960KXNXD", "VO001920KXNXF"), "HPD4"), (("MO003200KXAVU", "MO006400KXAVV"), "HPD2")):
        devices = [Device(model, [drive_target(model)], version, 180) for model in models]
        add(filename="cp%06d.scexe" % (number + 7), title="Online Firmware Flash for Linux - %s Drives" % "/".join(models),
            category="drive_fw", type_id="smartcomponent-linux-firmware-hdd", version=version, oses=LINUX_OSES, roms=gen10, devices=devices)
        add(filename="cp%06d.exe" % (number + 7), title="Online Firmware Flash for Windows - %s Drives" % "/".join(models),
            category="drive_fw", type_id="smartcomponent-windows-firmware-hdd", version=version, oses=WINDOWS_OSES, roms=gen10, devices=devices)
    # NVMe backplane PIC firmware, modelled on the real cp037722.xml (no category, ServerOptions).
    backplane = [Device("NVMe Backplane PIC", ["00000000-0000-0000-0000-000049535320"], "1.20", 120, False, "ISS_NVMe_BP_PIC_flashV1B20_signed.hex")]
    add(filename="cp%06d.exe" % (number + 7), title="Online Flash Component for Windows x64 - Gen10 NVMe Backplane PIC Firmware",
        category="", type_id="", version="1.20", revision="D", type_of_change=0, oses=WINDOWS_OSES, roms=("I41", "U34", "U30", "U32"),
        devices=backplane, date=(2018, 10, 27))
    add(filename="cp%06d.scexe" % (number + 7), title="Online Flash Component for Linux - Gen10 NVMe Backplane PIC Firmware",
        category="", type_id="", version="1.20", revision="D", type_of_change=0, oses=LINUX_OSES, roms=("I41", "U34", "U30", "U32"),
        devices=backplane, date=(2018, 10, 27))
    # Innovation Engine / SPS firmware without targets: the component decides.
    add(filename="cp%06d.scexe" % (number + 7), title="Online Flash Component for Linux - Innovation Engine Firmware",
        category="system_fw", type_id="smartcomponent-linux-firmware-ie", version="0.2.2.2", oses=LINUX_OSES, roms=gen10)
    # BMC-only packages (.fwpkg): listed, not deployable in-band.
    add(filename="ilo5_296.fwpkg", title="Online Firmware for HPE Integrated Lights-Out 5", category="lom_fw",
        type_id="smartcomponent-linux-firmware-ilo", version="2.96", oses=(), roms=gen10,
        devices=[Device("iLO 5", ["00000000-0000-0000-0000-000000000204"], "2.96", 300)])
    add(filename="HPE_UBM4_1.24_F.fwpkg", title="Firmware Package - HPE UBM4 Backplane", category="system_fw",
        type_id="", version="1.24", revision="F", oses=LINUX_OSES + WINDOWS_OSES, roms=("U54",),
        devices=[Device("UBM4 backplane", ["9675b54e-1c96-44c3-a7a1-901504000000"], "1.24", 200)])
    add(filename="PowerPIC_1.0.9.fwpkg", title="Firmware Package - Power Management Controller", category="power_fw",
        type_id="", version="1.0.9", oses=(), roms=gen10,
        devices=[Device("Power Management Controller", ["00000000-0000-0000-0000-000000000208"], "1.0.9", 240)])
    # Drivers (Linux RPMs, Windows cp*.exe).
    for index, (what, cat) in enumerate((("hpe-nic-ixgbe", "nic_drv"), ("hpe-nic-bnxt", "nic_drv"), ("hpe-smartpqi", "storage_drv"),
                                        ("hpe-ilo-chif", "chipset_drv"))):
        version = "1.%d.%d" % (index + 2, 10 + index)
        add(filename="kmod-%s-%s-1.rhel8u8.x86_64.rpm" % (what, version), title="%s Driver for Red Hat Enterprise Linux 8" % what,
            category=cat, type_id="smartcomponent-linux-driver", version=version, oses=(RHEL8,))
        add(filename="cp%06d.exe" % (number + 7), title="%s Driver for Windows Server x64" % what, category=cat,
            type_id="smartcomponent-windows-driver", version="%s.0" % version, oses=WINDOWS_OSES)
    # Software (agents, tools).
    for index, (what, cat) in enumerate((("amsd", "mgmt_sw"), ("ssacli", "storage_sw"), ("ilorest", "mgmt_sw"), ("sut", "mgmt_sw"))):
        version = "%d.%d.0" % (3 + index, index)
        add(filename="%s-%s-1.rhel8.x86_64.rpm" % (what, version), title="HPE %s for Linux" % what, category=cat,
            type_id="smartcomponent-linux-software", version=version, oses=LINUX_OSES, type_of_change=0)
        add(filename="cp%06d.exe" % (number + 7), title="HPE %s for Windows Server x64" % what, category=cat,
            type_id="smartcomponent-windows-software", version=version, oses=WINDOWS_OSES, type_of_change=0)
    # VMware-only components, and one for an OS this collection does not know: listed as skipped.
    add(filename="cp%06d.zip" % (number + 7), title="HPE Smart Array Firmware for VMware ESXi", category="storage_fw",
        type_id="smartcomponent-linux-firmware-array", version="6.22", oses=(ESXI8,), roms=gen10, devices=sa)
    add(filename="cp%06d.zip" % (number + 7), title="HPE Agentless Management Service for VMware ESXi", category="mgmt_sw",
        type_id="smartcomponent-vmware-software", version="701.11.9.0", oses=(ESXI8,))
    add(filename="cp%06d.scexe" % (number + 7), title="Online Firmware Flash for FreeBSD", category="nic_fw",
        type_id="", version="1.0.0", oses=(("", "FreeBSD 14"),))
    return specs


# --------------------------------------------------------------------------------------------
# XML
# --------------------------------------------------------------------------------------------


def _xlate(element: str, text: str, cdata: bool = False) -> str:
    body = "<![CDATA[ %s ]]>" % text if cdata else escape(text)
    return "<%s>\n<%s_xlate lang=\"en\">%s</%s_xlate>\n</%s>" % (element, element, body, element, element)


def cp_xml(spec: Spec) -> str:
    """The cp*.xml of one component, in the real element order of cp037722.xml."""
    oses = "\n".join('<operating_system key="%s">\n<operating_system_xlate>%s</operating_system_xlate>\n</operating_system>'
                     % (escape(key), escape(text)) for key, text in spec.oses)
    products = "\n".join('<product rom="%s"/>' % rom for rom in spec.roms)
    year, month, day = spec.date
    parts = [
        '<cpq_package version="2.0.1.0">',
        "<filename>%s</filename>" % escape(spec.filename),
        '<divisions>\n<division key="6">\n<division_xlate lang="en">Server</division_xlate>\n</division>\n</divisions>',
        "<operating_systems>\n%s\n</operating_systems>" % oses if oses else "<operating_systems/>",
        "<products>\n%s\n</products>" % products if products else "<products/>",
        _xlate("name", spec.title),
        _xlate("manufacturer_name", "Hewlett Packard Enterprise"),
        '<version value="%s" revision="%s" type_of_change="%d"/>' % (escape(spec.version), escape(spec.revision), spec.type_of_change),
        '<release_date year="%d" month="%d" day="%d" hour="8" minute="48" second="40"/>' % (year, month, day),
        _xlate("description", "This component updates %s." % spec.title, cdata=True),
    ]
    if spec.category:
        key, text = CATEGORIES[spec.category]
        parts.append('<category key="%s">\n<category_xlate lang="en">%s</category_xlate>\n</category>' % (key, escape(text)))
    if spec.type_id:
        parts.append('<type id="%s"/>' % spec.type_id)
    if spec.devices:
        parts.append("<payload>\n<Devices>\n%s\n</Devices>\n</payload>" % "\n".join(_device(d) for d in spec.devices))
    parts.append("</cpq_package>")
    return "\n".join(parts) + "\n"


def _device(device: Device) -> str:
    targets = "\n".join("<Target>%s</Target>" % t for t in device.targets)
    return ("<Device>\n<DeviceName>%s</DeviceName>\n<FirmwareImages>\n<FileName>%s</FileName>\n"
            "<InstallDurationSec>%d</InstallDurationSec>\n<ResetRequired>%s</ResetRequired>\n<DirectFlashOk>False</DirectFlashOk>\n"
            "<UefiFlashable>False</UefiFlashable>\n</FirmwareImages>\n%s\n<Version>%s</Version>\n</Device>"
            % (escape(device.name), escape(device.image), device.duration, "True" if device.reset else "False", targets, escape(device.version)))


def meta_xml(specs: list[Spec]) -> str:
    """manifest/meta.xml (spp-format.md section 2): the bundle's catalogue; the importer reads cp*.xml."""
    rows = []
    for spec in specs:
        rows.append('<product id="%032x">\n<product_version>\n<id product="%032x" version="%032x" lucid_version="%s@%s"/>\n'
                    '<type id="%s"/>\n%s\n<version value="%s" revision="%s" type_of_change="%d"/>\n<filename>%s</filename>\n'
                    "</product_version>\n</product>"
                    % (spec.number, spec.number, spec.number * 7, spec.identity, escape(spec.version), spec.type_id or "smartcomponent",
                       _xlate("name", spec.title), escape(spec.version), escape(spec.revision), spec.type_of_change, escape(spec.filename)))
    return '<?xml version="1.0" encoding="UTF-8"?>\n<manifest schema_version="2.0.0.0">\n<meta lang="en">\n%s\n</meta>\n</manifest>\n' % "\n".join(rows)


def bundle_xml(specs: list[Spec], version: str) -> str:
    packages = "\n".join("<package>%s.xml</package>" % s.identity for s in specs)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<cpq_bundle>\n%s\n<version value="%s" revision="" type_of_change="1"/>\n'
            "<contents>\n%s\n</contents>\n</cpq_bundle>\n" % (_xlate("name", "Service Pack for ProLiant"), version, packages))


# --------------------------------------------------------------------------------------------
# Folders
# --------------------------------------------------------------------------------------------


@dataclass
class Folder:
    root: Path
    package_dir: Path
    specs: list[Spec]

    def spec(self, identity: str) -> Spec:
        return next(s for s in self.specs if s.identity == identity)


def small_sizes(index: int) -> int:
    return 512 + (index * 97) % 1536


def random_bytes(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size) if hasattr(rng, "randbytes") else bytes(rng.getrandbits(8) for _byte in range(size))


def write_file(path: Path, size: int, rng: Optional[random.Random]) -> None:
    """``size`` random bytes; big files from os.urandom in 4 MiB blocks (fast, never all in memory)."""
    with open(path, "wb") as handle:
        if rng is not None and size <= MIB:
            handle.write(random_bytes(rng, size))
            return
        left = size
        while left:
            block = min(left, 4 * MIB)
            handle.write(os.urandom(block))
            left -= block


def write_folder(root: Path, specs: list[Spec], package_dir: str, sizes: Callable[[int], int] = small_sizes, seed: int = 0,
                 sign: Optional[Callable[[Path], object]] = None, extras: bool = True, contents: Optional[Contents] = None) -> Folder:
    """``contents``: a function spec -> the component file's bytes (a runnable Smart Component), or
    None for random bytes of ``sizes(index)``."""
    target = root / package_dir if package_dir else root
    target.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for index, spec in enumerate(specs):
        (target / ("%s.xml" % spec.identity)).write_text(cp_xml(spec), encoding="utf-8")
        body = contents(spec) if contents else None
        if body is None:
            write_file(target / spec.filename, sizes(index), rng)
        else:
            (target / spec.filename).write_bytes(body)
            (target / spec.filename).chmod(0o755)
        if sign and not spec.filename.lower().endswith(".fwpkg"):
            sign(target / spec.filename)
    if extras:
        help_dir = target / "assets/doc/help/en"
        help_dir.mkdir(parents=True, exist_ok=True)
        (help_dir / "v22484353.htm").write_text("<html><body>SUM Baseline Library screen</body></html>\n")
        (target / "smartupdate").write_text("#!/bin/sh\necho 'Smart Update Manager'\n")
    return Folder(root, target, specs)


def write_spp(root: Path, layout: str = "current", specs: Optional[list[Spec]] = None, sizes: Callable[[int], int] = small_sizes,
              seed: int = 0, sign: Optional[Callable[[Path], object]] = None, version: str = "2023.10.00.00",
              contents: Optional[Contents] = None) -> Folder:
    """An SPP: ``current`` = packages/ + manifest/ (SPP 2017.07.0 and later), ``hp`` = hp/swpackages
    + hp_manifest/ (before), spp-format.md section 1."""
    specs = catalogue() if specs is None else specs
    package_dir, manifest_dir = ("packages", "manifest") if layout == "current" else ("hp/swpackages", "hp_manifest")
    folder = write_folder(Path(root), specs, package_dir, sizes, seed, sign, contents=contents)
    manifest = Path(root) / manifest_dir
    manifest.mkdir(parents=True, exist_ok=True)
    (manifest / "meta.xml").write_text(meta_xml(specs), encoding="utf-8")
    (folder.package_dir / "bp008651.xml").write_text(bundle_xml(specs, version), encoding="utf-8")
    (Path(root) / "launch_sum.sh").write_text("#!/bin/sh\nexec packages/smartupdate \"$@\"\n")
    return folder


def signer(identity) -> Callable[[Path], object]:
    """A ``sign`` function for write_spp/write_hotfix: trust's PKI helper (tests/lab/spp_pki.py)."""
    import spp_pki

    def sign(path: Path) -> object:
        if path.stat().st_size > spp_pki.PART_SIZE:
            return spp_pki.sign_parts(path, identity)
        return spp_pki.sign_file(path, identity)
    return sign


def hotfix_specs(base: Folder) -> list[Spec]:
    """Two components of the base superseded (the same identity, newer versions) and one new."""
    nic = next(s for s in base.specs if s.filename.endswith(".scexe") and s.category == "nic_fw" and s.devices)
    rom = next(s for s in base.specs if s.category == "rom" and s.filename.endswith(".exe"))
    newer_rom = rom.version.split("_")[0]
    major, minor = newer_rom.split(".")
    rom_version = "%s.%02d_11-30-2023" % (major, int(minor) + 4)
    devices = [replace(d, version="22.55.1000") for d in nic.devices]
    return [replace(nic, version="22.55.1000", devices=devices, type_of_change=2, date=(2023, 12, 1)),
            replace(rom, version=rom_version, devices=[replace(d, version=rom_version) for d in rom.devices], date=(2023, 12, 1)),
            Spec(number=49999, filename="cp049999.scexe", title="HPE Hotfix Tool for Linux", category="mgmt_sw",
                 type_id="smartcomponent-linux-software", version="1.0.1", oses=LINUX_OSES, date=(2023, 12, 2))]


def write_hotfix(root: Path, base: Folder, sizes: Callable[[int], int] = small_sizes, seed: int = 1,
                 sign: Optional[Callable[[Path], object]] = None, package_dir: str = "", specs: Optional[list[Spec]] = None,
                 contents: Optional[Contents] = None) -> Folder:
    """An additional-package folder (flat, as hotfix downloads are, unless ``package_dir``);
    ``specs`` default: hotfix_specs(base)."""
    return write_folder(Path(root), hotfix_specs(base) if specs is None else specs, package_dir, sizes, seed, sign, extras=False,
                        contents=contents)


# --------------------------------------------------------------------------------------------
# A deployable SPP for the lab: Smart Components that run (tests/integration/test_spp_deploy.py)
# --------------------------------------------------------------------------------------------

LAB_SMART_ARRAY = pci_target("9005", "028f", "103c", "0654")  # the lab BMCs' Smart Array E208i-a (labhardware)


def lab_specs() -> list[Spec]:
    """A small SPP for deploying to lab nodes: Linux ``.scexe`` Smart Components that run (two
    system ROMs of different families, Smart Array firmware detected through the BMC, a tool that
    decides for itself), and what must never reach a Linux node (a Windows ``cp*.exe``, a
    BMC-only ``.fwpkg``, a VMware-only component)."""
    linux = "smartcomponent-linux-firmware-system"
    return [
        Spec(number=46001, filename="cp046001.scexe", title="Online ROM Flash Component for Linux - HPE ProLiant DL380 Gen10 (U30) Servers",
             category="rom", type_id=linux, version="2.92_11-03-2023", oses=LINUX_OSES, roms=("U30",),
             devices=[Device("System ROM", ["00000000-0000-0000-0000-000000000205"], "2.92_11-03-2023", 60, False)]),
        Spec(number=46002, filename="cp046002.scexe", title="Online ROM Flash Component for Linux - HPE ProLiant DL360 Gen10 (U32) Servers",
             category="rom", type_id=linux, version="2.82_02-10-2023", oses=LINUX_OSES, roms=("U32",),
             devices=[Device("System ROM", ["00000000-0000-0000-0000-000000000205"], "2.82_02-10-2023", 60, False)]),
        Spec(number=46003, filename="cp046003.scexe", title="Online ROM Flash Component for Linux (x64) - HPE Smart Array E208i-a SR Gen10",
             category="storage_fw", type_id="smartcomponent-linux-firmware-array", version="7.00", oses=LINUX_OSES,
             roms=("U30", "U32", "A40"), devices=[Device("HPE Smart Array E208i-a SR Gen10", [LAB_SMART_ARRAY], "7.00", 90, False)]),
        Spec(number=46004, filename="cp046004.scexe", title="HPE Lab Tool for Linux", category="mgmt_sw",
             type_id="smartcomponent-linux-software", version="1.0.0", oses=LINUX_OSES),
        Spec(number=46005, filename="cp046005.exe", title="HPE Lab Tool for Windows Server x64", category="mgmt_sw",
             type_id="smartcomponent-windows-software", version="1.0.0", oses=WINDOWS_OSES),
        Spec(number=46006, filename="ilo5_296.fwpkg", title="Online Firmware for HPE Integrated Lights-Out 5", category="lom_fw",
             type_id="smartcomponent-linux-firmware-ilo", version="2.96", oses=(), roms=("U30", "U32", "A40"),
             devices=[Device("iLO 5", ["00000000-0000-0000-0000-000000000204"], "2.96", 300)]),
        Spec(number=46007, filename="cp046007.zip", title="HPE Agentless Management Service for VMware ESXi", category="mgmt_sw",
             type_id="smartcomponent-vmware-software", version="701.11.9.0", oses=(ESXI8,)),
    ]


def lab_hotfix_specs() -> list[Spec]:
    """The hotfix folder over lab_specs(): the Linux tool superseded (1.0.0 -> 1.0.1)."""
    tool = next(s for s in lab_specs() if s.number == 46004)
    return [replace(tool, version="1.0.1", type_of_change=2, date=(2023, 12, 1))]


def smart_component(state_dir: str) -> Contents:
    """``contents`` for write_spp: each Linux ``.scexe`` becomes a shell script that behaves like a
    Smart Component (Linux return codes: 0 installed, 2 not needed) and records its version in
    ``state_dir/<node's hostname>/<cpNNNNNN>.version`` on the node; every other file stays random bytes."""
    def body(spec: Spec) -> Optional[bytes]:
        if not spec.filename.endswith(".scexe"):
            return None
        lines = ["#!/bin/sh", "# %s %s (a lab Smart Component)" % (spec.identity, spec.version),
                 "dir='%s'/\"$(cat /proc/sys/kernel/hostname)\"" % state_dir,
                 "state=\"$dir/%s.version\"" % spec.identity,
                 "if [ \"$(cat \"$state\" 2>/dev/null)\" = '%s' ]; then echo '%s %s: not needed'; exit 2; fi" % (
                     spec.version, spec.identity, spec.version),
                 "mkdir -p \"$dir\" && echo '%s' > \"$state\" && echo '%s %s: installed' && exit 0" % (
                     spec.version, spec.identity, spec.version),
                 "exit 3", ""]
        return "\n".join(lines).encode("ascii")
    return body


def bench_specs(count: int) -> list[Spec]:
    """``count`` components: the catalogue repeated under new identities (the VMware and
    unknown-OS ones included, so the ratio of skipped components stays realistic)."""
    base = catalogue()
    specs = []
    for index in range(count):
        spec = base[index % len(base)]
        number = 100000 + index
        filename = spec.filename
        if filename.startswith("cp"):
            filename = "cp%06d%s" % (number, os.path.splitext(filename)[1])
        else:
            stem, ext = os.path.splitext(filename)
            filename = "%s-b%d%s" % (stem.replace(".x86_64", ""), index, ext) if not ext == ".rpm" else \
                filename.replace("-1.", "-%d." % (index + 1), 1)
        specs.append(replace(spec, number=number, filename=filename))
    return specs


def log_uniform_sizes(count: int, low: int, high: int, total: Optional[int] = None, seed: int = 7) -> list[int]:
    """Sizes between ``low`` and ``high``, log-uniform (many small components, a few large ones, like
    a real SPP), scaled to ``total`` bytes when given."""
    rng = random.Random(seed)
    sizes = [int(math.exp(rng.uniform(math.log(low), math.log(high)))) for _index in range(count)]
    if total:
        factor = total / float(sum(sizes))
        sizes = [max(low, min(high, int(s * factor))) for s in sizes]
    return sizes


def parse_size(text: str) -> int:
    units = {"kib": KIB, "mib": MIB, "gib": 1024 * MIB, "k": KIB, "m": MIB, "g": 1024 * MIB, "": 1}
    lower = text.strip().lower()
    number = lower.rstrip("kmgib")
    return int(float(number) * units[lower[len(number):]])


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--count", type=int, default=len(catalogue()))
    parser.add_argument("--min-size", type=parse_size, default=512)
    parser.add_argument("--max-size", type=parse_size, default=2 * KIB)
    parser.add_argument("--total-size", type=parse_size, default=None)
    parser.add_argument("--layout", choices=("current", "hp"), default="current")
    parser.add_argument("--hotfix", type=Path, default=None, help="also write an additional-package folder here")
    parser.add_argument("--lab", action="store_true", help="the small deployable SPP of lab_specs() (make demo-spp): its "
                        "Linux .scexe files are Smart Components that run on lab nodes (needs --state-dir)")
    parser.add_argument("--state-dir", help="with --lab: the folder on the nodes where the Smart Components record their versions")
    parser.add_argument("--pki", type=Path, default=None, help="sign every component with a new lab PKI written here "
                        "(PKI/anchors is the trust folder)")
    args = parser.parse_args(argv)
    if args.lab and not args.state_dir:
        parser.error("--lab needs --state-dir")
    sign = None
    if args.pki:
        import spp_pki
        sign = signer(spp_pki.make_lab_pki(args.pki).signer)
    if args.lab:
        contents = smart_component(args.state_dir)
        folder = write_spp(args.out, args.layout, lab_specs(), sign=sign, contents=contents)
        if args.hotfix:
            write_hotfix(args.hotfix, folder, sign=sign, specs=lab_hotfix_specs(), contents=contents)
        signed = ", signed; trust anchors: %s" % (args.pki / "anchors") if args.pki else ""
        print("%s: %d lab components%s" % (args.out, len(folder.specs), signed))
        return 0
    specs = bench_specs(args.count) if args.count != len(catalogue()) else catalogue()
    sizes = log_uniform_sizes(len(specs), args.min_size, args.max_size, args.total_size)
    folder = write_spp(args.out, args.layout, specs, sizes=lambda i: sizes[i], sign=sign)
    if args.hotfix:
        write_hotfix(args.hotfix, folder, sign=sign)
    print("%s: %d components, %d bytes" % (args.out, len(specs), sum(sizes)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
