# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Import an HPE Service Pack for ProLiant (SPP) and additional-package folders as manifest components.

Controller side (the repository module's backend). Python 3.6+ style like the rest of
module_utils; needs ``defusedxml`` (requirements.txt) because a ``cp*.xml`` is untrusted input.

* ``import_folders(spp, additional=(), workers=None)`` -> ``Imported(components, skipped, hashes)``.
  Raises ``SppError`` (every problem, each naming the file and the XML element) and then nothing
  may be written.

References: ``spp-format.md`` of the project's research notes (cited below as "ref. section N").
The mapping, field by field, is documented in docs/repository.md ("From an SPP").

Rules a reader needs to know:

* The identity of a component is the ``cp*.xml`` file name without ``.xml`` (``cp037722``); the
  same identity for the same OS is the same component. Every version found in the folders is
  kept. The newest version is named after the identity (``cp037722``); each older one is named
  ``<identity>-<version>[-<revision>]`` (``cp037722-1.10-B``) and carries ``superseded_by``, so the
  plan skips it unless a policy names it. The same identity on two OSes gets ``-linux``/``-windows``.
* The same identity, version and revision in two folders is one component when the files are
  identical (the first folder, in the order given, is its ``source``), and an error naming both
  files when they differ.
* ``file`` and ``signature`` are relative to the component's ``source`` (the folder as given,
  made absolute), so that a read-only SPP (a mounted ISO) need not hold the manifest.
"""
import datetime
import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from functools import cmp_to_key
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

try:
    from defusedxml import ElementTree as SafeET
    from defusedxml import DefusedXmlException
    HAS_DEFUSEDXML = True
except ImportError:  # the module reports missing_required_lib("defusedxml")
    SafeET = None
    DefusedXmlException = Exception
    HAS_DEFUSEDXML = False

from xml.etree.ElementTree import ParseError

from ansible_collections.fleet.firmware.plugins.module_utils import versions

# Ref. section 1.1 (SPP 2017.07.0 and later) and 1.2 (before): where the deliverables are.
# A current SPP may still carry a legacy hp/swpackages (ref. 1.1, P26): packages/ wins.
PACKAGE_DIRS = ("packages", "hp/swpackages")
CP_XML_RE = re.compile(r"^(cp\d+)\.xml\Z", re.IGNORECASE)
# A component without its own timeout may run as long as the deploy lets the node's installs run
# (plugins/modules/deploy.py, option timeout, default 3600 s). An imported timeout is never
# shorter: a flash killed halfway can brick the device.
MIN_TIMEOUT = 3600
# The timeout is this multiple of the summed InstallDurationSec (ref. section 3): HPE's durations
# are estimates for an idle server.
DURATION_MULTIPLE = 4
BMC_ONLY = "only a BMC can flash it (in-band deployment impossible)"
# Ref. section 2 table (version@type_of_change, SPPCmdlets mapping).
CRITICALITY = {"0": "optional", "1": "recommended", "2": "critical"}
# Ref. section 12 (.fwpkg) and 8 (raw images iLO flashes): files no in-band installer applies.
BMC_EXTENSIONS = (".fwpkg", ".bin", ".hpb", ".fup", ".pup", ".flash")
LINUX_OS_RE = re.compile(r"linux|red ?hat|rhel|suse|sles|ubuntu|debian|centos|rocky|alma", re.IGNORECASE)
WINDOWS_OS_RE = re.compile(r"windows", re.IGNORECASE)
VMWARE_OS_RE = re.compile(r"vmware|esxi|vsphere", re.IGNORECASE)
# Ref. section 2 table: system-ROM versions are "<version>_<MM-DD-YYYY>".
ROM_VERSION_RE = re.compile(r"^(\d+(?:\.\d+)*)_(\d{1,2})-(\d{1,2})-(\d{4})\Z")
ROM_DETECT_FORMAT = "{bios_version} v{bios_release} ({bios_date})"
# firmware-ilo5-3.07-1.1.x86_64.rpm (ref. section 9.1 RPM names): name, version-release, arch.
RPM_NAME_RE = re.compile(r"^(?P<name>.+)-(?P<version>[^-]+)-(?P<release>[^-]+)\.(?P<arch>[A-Za-z0-9_]+)\.rpm\Z")
ROM_FAMILY_RE = re.compile(r"^[A-Za-z0-9]{1,16}\Z")
_NAME_BAD_RE = re.compile(r"[^A-Za-z0-9._+-]+")
_CHUNK = 4 * 1024 * 1024

Problem = NamedTuple("Problem", [("file", str), ("element", str), ("message", str)])
Imported = NamedTuple("Imported", [("components", List[Dict[str, Any]]), ("skipped", List[Dict[str, Any]]),
                                   ("hashes", Dict[str, str])])


class SppError(ValueError):
    """The folders cannot be imported; ``problems`` holds every fault (file, element, message)."""

    def __init__(self, problems):
        # type: (Sequence[Problem]) -> None
        self.problems = list(problems)
        super(SppError, self).__init__("; ".join(format_problem(p) for p in self.problems))


def format_problem(problem):
    # type: (Problem) -> str
    where = "%s, element %s" % (problem.file, problem.element) if problem.element else problem.file
    return "%s: %s" % (where, problem.message)


# --------------------------------------------------------------------------------------------
# Folders and files
# --------------------------------------------------------------------------------------------


def package_dir(folder, required):
    # type: (str, bool) -> str
    """The deliverables' folder relative to ``folder``: ``packages``, ``hp/swpackages`` or, for an
    additional-package folder that holds its cp*.xml at the top, ``""``."""
    for relative in PACKAGE_DIRS:
        if os.path.isdir(os.path.join(folder, *relative.split("/"))):
            return relative
    if required:
        raise SppError([Problem(folder, "", "not an SPP folder: it has neither packages/ nor hp/swpackages/")])
    return ""


def inside(root, relative):
    # type: (str, str) -> Tuple[Optional[str], str]
    """(absolute path, "") for a name inside ``root``; (None, why) for names that escape it
    (absolute, ``..``, a symbolic link leading out): the manifest's own rule."""
    if not relative or relative.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", relative):
        return None, "%r is not a file name relative to the folder" % relative
    parts = re.split(r"[/\\]", relative)
    if ".." in parts:
        return None, "%r escapes the folder (..)" % relative
    real_root = os.path.realpath(root)
    path = os.path.realpath(os.path.join(real_root, *parts))
    if os.path.commonpath([real_root, path]) != real_root:
        return None, "%r escapes the folder (a link to %s)" % (relative, path)
    return path, ""


def sha256_of(path):
    # type: (str) -> str
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_files(paths, workers=None):
    # type: (Sequence[str], Optional[int]) -> Dict[str, str]
    """SHA-256 of every path, in parallel (hashlib releases the GIL on large buffers)."""
    unique = sorted(set(paths))
    count = workers or min(4, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, count)) as pool:
        return dict(zip(unique, pool.map(sha256_of, unique)))


# --------------------------------------------------------------------------------------------
# cp*.xml (ref. section 3; shapes shared with meta.xml, ref. section 2)
# --------------------------------------------------------------------------------------------


def parse_xml(path):
    # type: (str) -> Any
    """The root element; an SppError naming the file for malformed XML and for DTD tricks."""
    try:
        return SafeET.parse(path).getroot()
    except ParseError as exc:
        line, column = getattr(exc, "position", (0, 0))
        raise SppError([Problem(path, "line %d column %d" % (line, column), "not well-formed XML: %s" % exc)])
    except OSError as exc:
        raise SppError([Problem(path, "", "cannot read: %s" % (exc.strerror or exc))])
    except DefusedXmlException as exc:
        # EntitiesForbidden, ExternalReferenceForbidden, DTDForbidden: never expanded, never fetched.
        raise SppError([Problem(path, _defused_element(exc), "refused: %s (entity expansion and external references are never followed)" % exc)])


def _defused_element(exc):
    # type: (Exception) -> str
    name = getattr(exc, "name", None)
    if name:
        return "<!ENTITY %s>" % name
    return "<!DOCTYPE>"


def _text(element):
    # type: (Any) -> str
    return " ".join("".join(element.itertext()).split()) if element is not None else ""


def english(parent, child):
    # type: (Any, str) -> str
    """The English ``<child>_xlate lang="en"`` of ``parent/child`` (ref. section 2: localized
    elements carry their language plus en); else the first translation; else the element's text."""
    element = parent.find(child)
    if element is None:
        return ""
    translations = element.findall(child + "_xlate")
    for translation in translations:
        if translation.get("lang") == "en":
            return _text(translation)
    if translations:
        return _text(translations[0])
    return _text(element)


def _notes(root, child):
    # type: (Any, str) -> str
    """Free-text notes (ref. section 2: ``*_xlate@lang`` -> ``*_xlate_part``), English only."""
    element = root.find(child)
    if element is None:
        return ""
    for translation in element.findall(child + "_xlate"):
        if translation.get("lang") in (None, "en"):
            parts = translation.findall(child + "_xlate_part")
            return " ".join(_text(part) for part in parts) if parts else _text(translation)
    return ""


def _release_date(root, path):
    # type: (Any, str) -> Tuple[Optional[str], List[Problem]]
    element = root.find("release_date")
    if element is None:
        return None, []
    try:
        date = datetime.date(int(element.get("year")), int(element.get("month")), int(element.get("day")))
    except (TypeError, ValueError):
        return None, [Problem(path, "release_date", "year/month/day %r/%r/%r is not a date"
                              % (element.get("year"), element.get("month"), element.get("day")))]
    return date.isoformat(), []


def _devices(root):
    # type: (Any) -> Tuple[List[Dict[str, Any]], int, Optional[bool], List[str]]
    """(devices, summed InstallDurationSec, reset required (None: not said), UpdatableBy values)
    from ``payload/Devices/Device`` (ref. section 3 table; booleans are the strings True/False)."""
    devices = []  # type: List[Dict[str, Any]]
    duration, reset = 0, None  # type: int, Optional[bool]
    for device in root.findall("payload/Devices/Device"):
        targets = [_text(t) for t in device.findall("Target") if _text(t)]
        devices.append({"name": _text(device.find("DeviceName")) or "device %d" % (len(devices) + 1), "targets": targets})
        for image in device.findall("FirmwareImages"):
            seconds = _text(image.find("InstallDurationSec"))
            if seconds.isdigit():
                duration += int(seconds)
            flag = _text(image.find("ResetRequired")).lower()
            if flag in ("true", "false"):
                reset = bool(reset) or flag == "true"
    # UpdatableBy in cp*.xml is unconfirmed (ref. section 3); payload.json has it (ref. 5.1).
    updatable_by = [_text(e) for e in root.findall("payload/UpdatableBy") + root.findall("payload/Devices/Device/UpdatableBy") if _text(e)]
    return devices, duration, reset, updatable_by


def read_cp_xml(path):
    # type: (str) -> Dict[str, Any]
    """The facts of one cp*.xml the mapping needs, or an SppError naming the file and element."""
    root = parse_xml(path)
    problems = []  # type: List[Problem]
    if root.tag != "cpq_package":
        problems.append(Problem(path, root.tag, "the root element must be cpq_package (a Smart Component's metadata)"))
    filename = _text(root.find("filename"))
    if not filename:
        problems.append(Problem(path, "filename", "missing or empty: the file this component delivers"))
    version = root.find("version")
    value = version.get("value", "").strip() if version is not None else ""
    if not value:
        problems.append(Problem(path, "version@value", "missing or empty"))
    release_date, date_problems = _release_date(root, path)
    problems.extend(date_problems)
    if problems:
        raise SppError(problems)
    devices, duration, reset, updatable_by = _devices(root)
    category = root.find("category")
    type_element = root.find("type")
    return {
        "xml": path,
        "identity": CP_XML_RE.match(os.path.basename(path)).group(1).lower(),
        "filename": filename,
        "display_name": english(root, "name"),
        "description": english(root, "description"),
        "version": value,
        "revision": version.get("revision", "").strip(),
        "criticality": CRITICALITY.get(version.get("type_of_change", "").strip()),
        "release_date": release_date,
        "operating_systems": [_text(os_el.find("operating_system_xlate")) or os_el.get("key", "")
                              for os_el in root.findall("operating_systems/operating_system")],
        "roms": [p.get("rom", "").strip() for p in root.findall("products/product") if p.get("rom", "").strip()],
        "category": english(root, "category"),
        "category_key": category.get("key", "") if category is not None else "",
        "type_id": type_element.get("id", "") if type_element is not None else "",
        "devices": devices,
        "duration": duration,
        "reset": reset,
        "updatable_by": updatable_by,
        "prerequisites": _notes(root, "prerequisite_notes"),
    }


# --------------------------------------------------------------------------------------------
# Mapping one cp*.xml to a component (ref. section 6, "importer mapping")
# --------------------------------------------------------------------------------------------


def os_of_file(filename):
    # type: (str) -> Optional[str]
    """The OS a deliverable can only run on (ref. section 6 OS row, after P9), or None (.fwpkg: any)."""
    lower = filename.lower()
    if lower.endswith((".exe", ".msi")):
        return "windows"
    if lower.endswith((".scexe", ".rpm", ".deb")):
        return "linux"
    if lower.endswith(".zip"):
        return "vmware"
    return None


def classify_os(text):
    # type: (str) -> Optional[str]
    if VMWARE_OS_RE.search(text):
        return "vmware"
    if WINDOWS_OS_RE.search(text):
        return "windows"
    if LINUX_OS_RE.search(text):
        return "linux"
    return None


def choose_os(facts):
    # type: (Mapping[str, Any]) -> Tuple[Optional[str], str]
    """(linux|windows, "") or (None, why it is skipped). Never an error: a new SPP naming a new
    distribution still imports (its unknown OS strings are listed as skipped)."""
    listed = [(text, classify_os(text)) for text in facts["operating_systems"] if text]
    usable = [cls for _text_, cls in listed if cls in ("linux", "windows")]
    by_file = os_of_file(facts["filename"])
    if by_file == "vmware" or (listed and not usable):
        vmware = [text for text, cls in listed if cls == "vmware"]
        unknown = [text for text, cls in listed if cls is None]
        if vmware or by_file == "vmware":
            return None, "for VMware ESXi only (%s): nodes run Linux or Windows" % (", ".join(vmware) or facts["filename"])
        return None, "operating system(s) not recognised: %s (nodes run Linux or Windows)" % ", ".join(repr(t) for t in unknown)
    if by_file:
        return by_file, ""
    # An OS-independent file (.fwpkg): the first OS listed, else linux (empty lists occur, ref. section 6).
    return (usable[0] if usable else "linux"), ""


def install_kind(filename):
    # type: (str) -> Tuple[Optional[str], str]
    """(install kind, "") or (None, why it cannot be deployed in-band)."""
    lower = filename.lower()
    if lower.endswith(".scexe") or re.match(r"^cp\d+\.exe\Z", lower):
        return "smart_component", ""
    for extension, kind in ((".rpm", "rpm"), (".deb", "deb"), (".msi", "msi"), (".exe", "exe")):
        if lower.endswith(extension):
            return kind, ""
    if lower.endswith(BMC_EXTENSIONS):
        return None, BMC_ONLY
    return None, "no in-band installer for %s" % os.path.splitext(lower)[1]


def kind_of(facts):
    # type: (Mapping[str, Any]) -> str
    """firmware, driver or software: the category text first (ref. section 6 Kind row), then the
    type id token, then a firmware payload, then the name."""
    category = facts["category"].lower()
    if category.startswith("bios") or "firmware" in category:
        return "firmware"
    if category.startswith("driver"):
        return "driver"
    if category:
        return "software"
    type_id = facts["type_id"].lower()
    if "firmware" in type_id or "uefi" in type_id:
        return "firmware"
    if "driver" in type_id:
        return "driver"
    if any(device["targets"] for device in facts["devices"]) or facts["duration"]:
        return "firmware"
    name = facts["display_name"].lower()
    if "firmware" in name or "rom flash" in name:
        return "firmware"
    return "driver" if "driver" in name else "software"


def is_system_rom(facts):
    # type: (Mapping[str, Any]) -> bool
    """Category key 1200212 / "BIOS - System ROM" (ref. 6.2) or a ``*-uefi-system`` type id (ref. 7)."""
    return (facts["category_key"] == "1200212" or facts["category"].lower().startswith("bios")
            or facts["type_id"].lower().endswith("-uefi-system"))


def rom_families(facts):
    # type: (Mapping[str, Any]) -> List[str]
    seen = []  # type: List[str]
    for rom in facts["roms"]:
        if ROM_FAMILY_RE.match(rom) and rom.upper() not in seen:
            seen.append(rom.upper())
    return seen


def version_of(facts, families, rpm):
    # type: (Mapping[str, Any], Sequence[str], Optional[Any]) -> str
    """The version compared with what detection reports on the node.

    * System ROM ``2.92_11-03-2023`` -> ``U30 v2.92 (11/03/2023)``: the form DMI gives with
      ROM_DETECT_FORMAT (versions.py then checks the family and the date too). Several
      families: ``v2.92 (11/03/2023)`` (applies_to picks the family).
    * An RPM: its file name's version-release, which is what ``rpm -q`` reports.
    * Anything else: ``version@value``; the revision letter is kept apart in ``revision``.
    """
    value = facts["version"]
    match = ROM_VERSION_RE.match(value)
    if is_system_rom(facts) and match:
        number, month, day, year = match.groups()
        prefix = "%s " % families[0] if len(families) == 1 else ""
        return "%sv%s (%02d/%02d/%s)" % (prefix, number, int(month), int(day), year)
    if rpm is not None:
        return "%s-%s" % (rpm.group("version"), rpm.group("release"))
    return value


def detect_of(facts, kind, rpm, version):
    # type: (Mapping[str, Any], str, Optional[Any], str) -> Dict[str, Any]
    """System ROM -> dmi; device firmware with target ids -> redfish; an RPM -> package;
    else the Smart Component decides (docs/repository.md, INTERFACES)."""
    if is_system_rom(facts):
        return {"method": "dmi", "format": ROM_DETECT_FORMAT}
    if versions.check(version, "rpm" if rpm is not None else "auto"):
        # A version no comparison can order (drive firmware "HPD4"): no detection could say
        # older or newer, so the Smart Component decides, never a guess.
        return {"method": "component"}
    targets = [t for device in facts["devices"] for t in device["targets"]]
    if kind == "firmware" and targets:
        return {"method": "redfish", "targets": sorted(set(targets), key=targets.index)}
    if rpm is not None:
        # Ref. section 9.1: the RPM database says a firmware RPM was installed, not flashed; only
        # RPMs without target ids get here.
        return {"method": "package", "name": rpm.group("name"), "manager": "rpm"}
    return {"method": "component"}


def description_of(facts):
    # type: (Mapping[str, Any]) -> str
    parts = [text for text in (facts["display_name"], facts["description"]) if text]
    return ": ".join(parts) if parts else facts["identity"]


def map_component(facts, source, relative, sha256, size, signature):
    # type: (Mapping[str, Any], str, str, str, int, Any) -> Tuple[Optional[Dict[str, Any]], str]
    """(component, "") or (None, why it is skipped). The name is set later (naming rule)."""
    os_name, skipped = choose_os(facts)
    if os_name is None:
        return None, skipped
    kind = kind_of(facts)
    families = rom_families(facts)
    rpm = RPM_NAME_RE.match(os.path.basename(facts["filename"])) if facts["filename"].lower().endswith(".rpm") else None
    install, not_deployable = install_kind(facts["filename"])
    if install and facts["updatable_by"] and all(u.lower() == "bmc" for u in facts["updatable_by"]):
        install, not_deployable = None, BMC_ONLY
    component = {"identity": facts["identity"], "description": description_of(facts),
                 "version": version_of(facts, families, rpm), "kind": kind, "os": os_name,
                 "source": source, "file": relative, "sha256": sha256, "size": size}  # type: Dict[str, Any]
    optional = (("revision", facts["revision"]), ("release_date", facts["release_date"]),
                ("criticality", facts["criticality"]), ("signature", signature),
                ("prerequisites", facts["prerequisites"]))
    component.update((key, value) for key, value in optional if value)
    if not install:
        component.update(deployable=False, not_deployable=not_deployable)
    if families:
        # bios_version on HPE holds the ROM family (INTERFACES: applies_to for ROM families).
        component["applies_to"] = {"bios_version": "^(%s)" % "|".join(re.escape(f) for f in families)}
    if facts["devices"]:
        component["devices"] = [dict(device) for device in facts["devices"]]
    component["detect"] = detect_of(facts, kind, rpm, component["version"])
    if install:
        component["install"] = install
    if facts["duration"]:
        component["timeout"] = max(MIN_TIMEOUT, DURATION_MULTIPLE * facts["duration"])
    if facts["reset"] is not None:
        component["reboot"] = "required" if facts["reset"] else "if_rc"
    return component, ""


# --------------------------------------------------------------------------------------------
# Folders -> components
# --------------------------------------------------------------------------------------------


PART_RE = re.compile(r"^(?P<stem>.+)_part(?P<number>\d+)\.compsig\Z", re.IGNORECASE)


def signature_index(names):
    # type: (Sequence[str]) -> Tuple[Dict[str, str], Dict[str, List[Tuple[int, str]]]]
    """(single signatures by lower-case stem, ``_partN`` parts by lower-case stem) of a folder's
    names, built once per folder (an SPP holds hundreds of .compsig files)."""
    single, parts = {}, {}  # type: Dict[str, str], Dict[str, List[Tuple[int, str]]]
    for name in names:
        lower = name.lower()
        if not lower.endswith(".compsig"):
            continue
        match = PART_RE.match(name)
        if match:
            parts.setdefault(match.group("stem").lower(), []).append((int(match.group("number")), name))
        else:
            single[lower[:-len(".compsig")]] = name
    return single, parts


def signatures_for(filename, index):
    # type: (str, Tuple[Dict[str, str], Dict[str, List[Tuple[int, str]]]]) -> Any
    """``<stem>.compsig`` (a string) or the ``<stem>_partN.compsig`` parts in order (a list),
    matched case-insensitively (ref. section 8: iLOrest looks for the base name + .compsig)."""
    stem = os.path.splitext(filename)[0].lower()
    single, parts = index
    if stem in single:
        return single[stem]
    return [name for _number, name in sorted(parts.get(stem, []))] or None


def scan_folder(folder, required):
    # type: (str, bool) -> Tuple[str, List[Dict[str, Any]], List[Problem]]
    """(package dir, facts of every cp*.xml, problems). Each fact gains ``relative`` (the
    deliverable relative to ``folder``), ``path``, ``signature``; reading only."""
    where = package_dir(folder, required)
    directory = os.path.join(folder, *where.split("/")) if where else folder
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise SppError([Problem(directory, "", "cannot read the folder: %s" % (exc.strerror or exc))])
    found, problems = [], []  # type: List[Dict[str, Any]], List[Problem]
    index = signature_index(names)
    for name in names:
        if not CP_XML_RE.match(name) or not os.path.isfile(os.path.join(directory, name)):
            continue
        xml_path = os.path.join(directory, name)
        try:
            facts = read_cp_xml(xml_path)
        except SppError as exc:
            problems.extend(exc.problems)
            continue
        if re.search(r"[/\\]", facts["filename"]) or facts["filename"] in (".", ".."):
            # Ref. section 3 and 6 (File names): the deliverable sits beside its cp*.xml.
            problems.append(Problem(xml_path, "filename", "%r is a path: it must name a file beside the cp*.xml" % facts["filename"]))
            continue
        relative = "/".join(p for p in (where, facts["filename"]) if p)
        path, why = inside(folder, relative)
        if path is None:
            problems.append(Problem(xml_path, "filename", why))
            continue
        if not os.path.isfile(path):
            problems.append(Problem(xml_path, "filename", "names %s, which is not in %s" % (facts["filename"], directory)))
            continue
        signature = signatures_for(facts["filename"], index)
        if isinstance(signature, list):
            signature = ["/".join(p for p in (where, s) if p) for s in signature]
        elif signature:
            signature = "/".join(p for p in (where, signature) if p)
        facts.update(relative=relative, path=path, signature=signature)
        found.append(facts)
    if required and not found and not problems:
        problems.append(Problem(directory, "", "holds no cp*.xml (Smart Component metadata)"))
    return where, found, problems


def _compare(a, b):
    # type: (Mapping[str, Any], Mapping[str, Any]) -> int
    """Older first: the version (versions.py), then the revision letter, then the layer order
    (a later folder wins when the versions cannot be compared)."""
    scheme = "rpm" if a["component"]["detect"].get("manager") == "rpm" else "auto"
    order = versions.compare(a["component"]["version"], b["component"]["version"], scheme).order
    if order:
        return order
    ra, rb = a["component"].get("revision", ""), b["component"].get("revision", "")
    if order == 0 and ra != rb:
        return -1 if (len(ra), ra) < (len(rb), rb) else 1
    return -1 if a["layer"] < b["layer"] else (1 if a["layer"] > b["layer"] else 0)


def _safe(text):
    # type: (str) -> str
    return _NAME_BAD_RE.sub("_", text).strip("._+-") or "x"


def name_versions(entries):
    # type: (List[Dict[str, Any]]) -> List[Dict[str, Any]]
    """Names per the naming rule (module docstring), newest first within each identity."""
    by_key = {}  # type: Dict[Tuple[str, str], List[Dict[str, Any]]]
    for entry in entries:
        component = entry["component"]
        by_key.setdefault((component["identity"], component["os"]), []).append(entry)
    oses = {}  # type: Dict[str, set]
    for identity, os_name in by_key:
        oses.setdefault(identity, set()).add(os_name)
    result = []
    for (identity, os_name) in sorted(by_key):
        base = identity if len(oses[identity]) == 1 else "%s-%s" % (identity, os_name)
        group = sorted(by_key[(identity, os_name)], key=cmp_to_key(_compare), reverse=True)
        newest = group[0]["component"]
        newest["name"] = base
        result.append(newest)
        for entry in group[1:]:
            component = entry["component"]
            suffix = _safe(component["version"]) + ("-" + _safe(component["revision"]) if component.get("revision") else "")
            component["name"] = ("%s-%s" % (base, suffix))[:128]
            component["superseded_by"] = base
            result.append(component)
    return result


def _merge_duplicates(entries):
    # type: (List[Dict[str, Any]]) -> Tuple[List[Dict[str, Any]], List[Problem]]
    """One entry per identity + OS + version + revision; identical files collapse to the first
    folder's; different bytes are an error naming both files."""
    kept, problems = {}, []  # type: Dict[Tuple[str, ...], Dict[str, Any]], List[Problem]
    for entry in entries:
        c = entry["component"]
        key = (c["identity"], c["os"], c["version"], c.get("revision", ""))
        first = kept.get(key)
        if first is None:
            kept[key] = entry
        elif first["component"]["sha256"] != c["sha256"]:
            problems.append(Problem(entry["xml"], "version", "%s version %s%s is also in %s, with different contents: %s (sha256 %s) and %s (sha256 %s)"
                                    % (c["identity"], c["version"], "(%s)" % c["revision"] if c.get("revision") else "",
                                       first["component"]["source"], first["path"], first["component"]["sha256"],
                                       entry["path"], c["sha256"])))
    return list(kept.values()), problems


def _signature_paths(folder, signature):
    # type: (str, Any) -> List[str]
    """The absolute paths of a component's ``.compsig`` file(s) (``signature``: relative to ``folder``)."""
    names = [signature] if isinstance(signature, str) else list(signature or [])
    return [os.path.join(folder, *name.split("/")) for name in names]


def import_folders(spp, additional=(), workers=None, hasher=None):
    # type: (str, Sequence[str], Optional[int], Optional[Callable[..., Dict[str, str]]]) -> Imported
    """Every component of the SPP folder and the additional folders layered over it (in order).

    Only reads. Raises SppError with every problem; the caller then writes nothing.
    ``hasher(jobs, workers)``: {path: SHA-256} of ``(path, [signature paths])`` jobs, instead of
    hash_files (trust.hash_and_verify: the signature check reads each file once with the hash).
    """
    if not HAS_DEFUSEDXML:
        raise SppError([Problem(spp, "", "the Python package defusedxml is required (requirements.txt)")])
    folders = [os.path.abspath(spp)] + [os.path.abspath(f) for f in additional]
    problems, scanned = [], []  # type: List[Problem], List[Tuple[int, str, Dict[str, Any]]]
    for layer, folder in enumerate(folders):
        if not os.path.isdir(folder):
            problems.append(Problem(folder, "", "is not a folder"))
            continue
        try:
            _where, found, folder_problems = scan_folder(folder, required=layer == 0)
        except SppError as exc:
            problems.extend(exc.problems)
            continue
        problems.extend(folder_problems)
        scanned.extend((layer, folder, facts) for facts in found)
    if problems:
        raise SppError(problems)
    if hasher is None:
        hashes = hash_files([facts["path"] for _l, _f, facts in scanned], workers)
    else:
        hashes = hasher([(facts["path"], _signature_paths(folder, facts["signature"])) for _l, folder, facts in scanned], workers)
    entries, skipped = [], []  # type: List[Dict[str, Any]], List[Dict[str, Any]]
    for layer, folder, facts in scanned:
        component, why = map_component(facts, folder, facts["relative"], hashes[facts["path"]],
                                       os.path.getsize(facts["path"]), facts["signature"])
        if component is None:
            skipped.append({"identity": facts["identity"], "file": facts["relative"], "source": folder,
                            "version": facts["version"], "reason": why})
            continue
        entries.append({"layer": layer, "xml": facts["xml"], "path": facts["path"], "component": component})
    entries, problems = _merge_duplicates(entries)
    if problems:
        raise SppError(problems)
    return Imported(name_versions(entries), skipped, hashes)
