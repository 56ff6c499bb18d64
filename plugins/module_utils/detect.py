# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""How a node finds the installed version of a component (the manifest's ``detect``).

Runs on nodes (the inventory module and the agent) and on the controller (manifest checks):
Python 3.6+, standard library only. Reads only: nothing here changes the node.

Methods (``detect: {method: ..., ...}``):

* ``command``: run ``command`` (an argv list, never a shell string) and take the version from
  its output with ``regex`` (group ``version`` or group 1). ``absent_rc`` lists the return codes
  that mean "not installed"; a missing program is "not installed" too.
* ``file``: read ``path``; the version is the first line, or what ``regex`` picks. A missing file
  is "not installed".
* ``package``: the version of package ``name`` from ``manager`` (``dpkg``, ``rpm`` or ``auto``:
  whichever the node has). Compared with that package manager's own rules.
* ``dmi``: SMBIOS values from ``/sys/class/dmi/id`` (``field``, e.g. ``bios_version``) or several
  of them put together with ``format`` (``"{bios_version} v{bios_release} ({bios_date})"`` gives
  HPE's ``U30 v2.90 (07/20/2023)``).
* ``fwupd``: the version fwupd reports for ``device`` (device id, GUID or name).
* ``registry``: Windows only, done by the PowerShell twin (``FleetInventory.psm1``): ``key`` +
  ``value``, or ``display_name`` (a regex over the uninstall entries' display names).

``detect()`` returns ``{"state": "present"|"absent"|"error", "version": str or None,
"scheme": "auto"|"dpkg"|"rpm", "method": str, "reason": str}``. ``error`` means the method could
not tell (that is never reported as "absent").
"""
import json
import os
import re
import shutil
import signal
import subprocess
from typing import Any, Dict, List, Mapping, Optional, Tuple

PRESENT, ABSENT, ERROR = "present", "absent", "error"
METHODS = ("command", "file", "package", "registry", "dmi", "fwupd", "redfish", "component")
# Keys each method takes (besides ``method`` and the common ``regex`` and ``scheme``).
METHOD_KEYS = {
    "command": {"required": ("command",), "optional": ("regex", "absent_rc", "scheme", "timeout")},
    "file": {"required": ("path",), "optional": ("regex", "scheme", "version_info")},
    "package": {"required": ("name",), "optional": ("manager",)},
    "registry": {"required": (), "optional": ("key", "value", "display_name", "regex", "scheme")},
    "dmi": {"required": (), "optional": ("field", "format", "regex", "scheme")},
    "fwupd": {"required": ("device",), "optional": ("regex", "scheme")},
    # The BMC's Redfish firmware inventory, matched by the component's target identifiers.
    "redfish": {"required": ("targets",), "optional": ("name", "regex", "scheme")},
    # Nothing on the node can tell: the Smart Component decides (its "not needed" return code).
    "component": {"required": (), "optional": ()},
}
PACKAGE_MANAGERS = ("auto", "dpkg", "rpm")
WINDOWS_ONLY = ("registry",)
LINUX_ONLY = ("package", "fwupd")
DMI_ROOT = "/sys/class/dmi/id"
_DMI_FIELD_RE = re.compile(r"^[a-z0-9_]+$")
_FORMAT_FIELD_RE = re.compile(r"{([^{}]*)}")
READ_LIMIT = 65536
DEFAULT_TIMEOUT = 30.0


def _result(state, method, version=None, reason="", scheme="auto"):
    # type: (str, str, Optional[str], str, str) -> Dict[str, Any]
    return {"state": state, "version": version, "scheme": scheme, "method": method, "reason": reason}


# --------------------------------------------------------------------------------------------
# Spec checks (used by the manifest on the controller, and before detecting)
# --------------------------------------------------------------------------------------------


def spec_problems(spec):
    # type: (Any) -> List[Tuple[str, str]]
    """(field, problem) for every fault of a ``detect`` spec; the field is ``detect.<key>``."""
    if not isinstance(spec, Mapping):
        return [("detect", "must be a mapping with a method (%s)" % ", ".join(METHODS))]
    method = spec.get("method")
    if method not in METHODS:
        return [("detect.method", "%r is not one of %s" % (method, ", ".join(METHODS)))]
    keys = METHOD_KEYS[method]
    problems = []  # type: List[Tuple[str, str]]
    for key in keys["required"]:
        if spec.get(key) in (None, "", []):
            problems.append(("detect." + key, "required for method %s" % method))
    for key in sorted(set(spec) - set(keys["required"]) - set(keys["optional"]) - {"method"}, key=str):
        problems.append(("detect." + str(key), "unknown key for method %s (known: %s)"
                         % (method, ", ".join(keys["required"] + keys["optional"]))))
    problems.extend(_value_problems(method, spec))
    return problems


def _value_problems(method, spec):
    # type: (str, Mapping[str, Any]) -> List[Tuple[str, str]]
    problems = []  # type: List[Tuple[str, str]]
    if "regex" in spec:
        try:
            re.compile(str(spec["regex"]))
        except re.error as exc:
            problems.append(("detect.regex", "not a valid regular expression: %s" % exc))
    if method == "command" and "command" in spec:
        command = spec["command"]
        if not isinstance(command, list) or not command or not all(isinstance(arg, str) for arg in command):
            problems.append(("detect.command", "must be a non-empty list of strings (an argv, never a shell string)"))
    if method == "package" and spec.get("manager", "auto") not in PACKAGE_MANAGERS:
        problems.append(("detect.manager", "%r is not one of %s" % (spec.get("manager"), ", ".join(PACKAGE_MANAGERS))))
    if method == "dmi":
        problems.extend(_dmi_problems(spec))
    if method == "registry" and not (spec.get("display_name") or (spec.get("key") and spec.get("value"))):
        problems.append(("detect.key", "registry needs key and value, or display_name"))
    if spec.get("scheme", "auto") not in ("auto", "dpkg", "rpm"):
        problems.append(("detect.scheme", "%r is not one of auto, dpkg, rpm" % (spec.get("scheme"),)))
    return problems


def _dmi_problems(spec):
    # type: (Mapping[str, Any]) -> List[Tuple[str, str]]
    if bool(spec.get("field")) == bool(spec.get("format")):
        return [("detect.field", "dmi needs exactly one of field or format")]
    fields = [spec["field"]] if spec.get("field") else _FORMAT_FIELD_RE.findall(str(spec["format"]))
    if not fields:
        return [("detect.format", "names no field (write fields as {bios_version})")]
    bad = [field for field in fields if not _DMI_FIELD_RE.match(str(field))]
    if bad:
        return [("detect.field" if spec.get("field") else "detect.format", "bad DMI field name(s) %s (a file name of %s)" % (bad, DMI_ROOT))]
    return []


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def pick(text, regex, what):
    # type: (str, Optional[str], str) -> Tuple[Optional[str], str]
    """(version, reason): the regex's ``version`` group or group 1 (or the whole match); without a
    regex, the first non-empty line."""
    if not regex:
        for line in text.splitlines():
            if line.strip():
                return line.strip(), ""
        return None, "%s is empty" % what
    match = re.search(regex, text, re.MULTILINE)
    if not match:
        return None, "%s does not match %r" % (what, regex)
    if "version" in match.groupdict():
        value = match.group("version")
    elif match.re.groups:
        value = match.group(1)
    else:
        value = match.group(0)
    if value is None or not value.strip():
        return None, "%s: the regex %r matched an empty version" % (what, regex)
    return value.strip(), ""


def run(argv, timeout=DEFAULT_TIMEOUT):
    # type: (List[str], float) -> Tuple[Optional[int], str]
    """(rc, stdout+stderr) of an argv in its own session; rc None on timeout (the group is killed).
    Raises OSError when the program cannot start."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, env=dict(os.environ, LC_ALL="C"))
    try:
        out = proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        return None, ""
    return proc.returncode, out[:READ_LIMIT * 4].decode("utf-8", "replace")


# --------------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------------


def _detect_command(spec, timeout):
    # type: (Mapping[str, Any], float) -> Dict[str, Any]
    argv = [str(arg) for arg in spec["command"]]
    scheme = spec.get("scheme", "auto")
    try:
        rc, output = run(argv, float(spec.get("timeout") or timeout))
    except OSError as exc:
        if isinstance(exc, FileNotFoundError):
            return _result(ABSENT, "command", reason="%s is not installed (%s)" % (argv[0], exc.strerror), scheme=scheme)
        return _result(ERROR, "command", reason="cannot run %s: %s" % (argv[0], exc), scheme=scheme)
    if rc is None:
        return _result(ERROR, "command", reason="%s gave no answer in %g s" % (argv[0], float(spec.get("timeout") or timeout)), scheme=scheme)
    if rc in (spec.get("absent_rc") or []):
        return _result(ABSENT, "command", reason="%s returned %d, which means not installed" % (argv[0], rc), scheme=scheme)
    if rc != 0:
        return _result(ERROR, "command", reason="%s returned %d: %s" % (argv[0], rc, output.strip()[-200:]), scheme=scheme)
    version, reason = pick(output, spec.get("regex"), "the output of %s" % argv[0])
    if version is None:
        return _result(ERROR, "command", reason=reason, scheme=scheme)
    return _result(PRESENT, "command", version, scheme=scheme)


def _detect_file(spec):
    # type: (Mapping[str, Any]) -> Dict[str, Any]
    path = str(spec["path"])
    scheme = spec.get("scheme", "auto")
    if spec.get("version_info"):
        return _result(ERROR, "file", reason="version_info (a program's file version) exists only on Windows", scheme=scheme)
    try:
        with open(path, "rb") as handle:
            text = handle.read(READ_LIMIT).decode("utf-8", "replace")
    except FileNotFoundError:
        return _result(ABSENT, "file", reason="%s does not exist" % path, scheme=scheme)
    except OSError as exc:
        return _result(ERROR, "file", reason="cannot read %s: %s" % (path, exc.strerror or exc), scheme=scheme)
    version, reason = pick(text, spec.get("regex"), path)
    if version is None:
        return _result(ERROR, "file", reason=reason, scheme=scheme)
    return _result(PRESENT, "file", version, scheme=scheme)


def _package_manager(wanted):
    # type: (str) -> Optional[str]
    if wanted != "auto":
        return wanted
    for manager, program in (("dpkg", "dpkg-query"), ("rpm", "rpm")):
        if shutil.which(program):
            return manager
    return None


def _detect_package(spec, timeout):
    # type: (Mapping[str, Any], float) -> Dict[str, Any]
    name = str(spec["name"])
    manager = _package_manager(spec.get("manager", "auto"))
    if manager is None:
        return _result(ERROR, "package", reason="neither dpkg nor rpm is on this node")
    if manager == "dpkg":
        argv = ["dpkg-query", "-W", "-f", "${db:Status-Status} ${Version}\\n", name]
    else:
        argv = ["rpm", "-q", "--qf", "%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\n", name]
    try:
        rc, output = run(argv, timeout)
    except OSError as exc:
        return _result(ERROR, "package", reason="cannot run %s: %s" % (argv[0], exc), scheme=manager)
    if rc is None:
        return _result(ERROR, "package", reason="%s gave no answer in %g s" % (argv[0], timeout), scheme=manager)
    if manager == "dpkg":
        return _dpkg_answer(name, rc, output)
    if rc != 0:
        return _result(ABSENT, "package", reason="package %s is not installed (rpm)" % name, scheme="rpm")
    return _result(PRESENT, "package", output.strip().splitlines()[-1], scheme="rpm")


def _dpkg_answer(name, rc, output):
    # type: (str, int, str) -> Dict[str, Any]
    # dpkg-query returns 1 for an unknown package; a removed package keeps a line with another status.
    installed = [line.split(" ", 1)[1] for line in output.splitlines() if line.startswith("installed ")]
    if installed:
        return _result(PRESENT, "package", installed[0].strip(), scheme="dpkg")
    if rc in (0, 1):
        return _result(ABSENT, "package", reason="package %s is not installed (dpkg)" % name, scheme="dpkg")
    return _result(ERROR, "package", reason="dpkg-query returned %d: %s" % (rc, output.strip()[-200:]), scheme="dpkg")


def _read_dmi(field, root):
    # type: (str, str) -> str
    with open(os.path.join(root, field), "rb") as handle:
        return handle.read(4096).decode("utf-8", "replace").strip()


def _detect_dmi(spec, root=DMI_ROOT):
    # type: (Mapping[str, Any], str) -> Dict[str, Any]
    scheme = spec.get("scheme", "auto")
    template = "{%s}" % spec["field"] if spec.get("field") else str(spec["format"])
    values = {}  # type: Dict[str, str]
    for field in _FORMAT_FIELD_RE.findall(template):
        try:
            values[field] = _read_dmi(field, root)
        except OSError as exc:
            return _result(ERROR, "dmi", reason="cannot read DMI %s (%s): %s" % (field, os.path.join(root, field), exc.strerror or exc),
                           scheme=scheme)
        if not values[field]:
            return _result(ERROR, "dmi", reason="DMI %s is empty" % field, scheme=scheme)
    text = _FORMAT_FIELD_RE.sub(lambda match: values[match.group(1)], template)
    version, reason = pick(text, spec.get("regex"), "DMI value %r" % text)
    if version is None:
        return _result(ERROR, "dmi", reason=reason, scheme=scheme)
    return _result(PRESENT, "dmi", version, scheme=scheme)


def _fwupd_devices(timeout):
    # type: (float) -> Tuple[Optional[List[Dict[str, Any]]], str]
    try:
        rc, output = run(["fwupdmgr", "get-devices", "--json"], timeout)
    except OSError as exc:
        return None, "cannot run fwupdmgr: %s" % exc
    if rc is None:
        return None, "fwupdmgr gave no answer in %g s" % timeout
    try:
        devices = json.loads(output[output.find("{"):]).get("Devices", [])
    except ValueError:
        return None, "fwupdmgr get-devices --json returned %s and no JSON: %s" % (rc, output.strip()[-200:])
    return devices, ""


def _detect_fwupd(spec, timeout):
    # type: (Mapping[str, Any], float) -> Dict[str, Any]
    scheme = spec.get("scheme", "auto")
    devices, reason = _fwupd_devices(timeout)
    if devices is None:
        return _result(ERROR, "fwupd", reason=reason, scheme=scheme)
    wanted = str(spec["device"])
    for device in devices:
        names = [device.get("DeviceId"), device.get("Name")] + list(device.get("Guid") or [])
        if wanted in names:
            version, reason = pick(str(device.get("Version") or ""), spec.get("regex"), "fwupd version of %s" % wanted)
            if version is None:
                return _result(ERROR, "fwupd", reason=reason, scheme=scheme)
            return _result(PRESENT, "fwupd", version, scheme=scheme)
    return _result(ABSENT, "fwupd", reason="fwupd knows no device %r" % wanted, scheme=scheme)


def detect(spec, os_name="linux", timeout=DEFAULT_TIMEOUT):
    # type: (Mapping[str, Any], str, float) -> Dict[str, Any]
    """The installed version per ``spec`` (see the module docstring). Never raises for node problems."""
    problems = spec_problems(spec)
    method = spec.get("method", "?") if isinstance(spec, Mapping) else "?"
    if problems:
        return _result(ERROR, str(method), reason="; ".join("%s: %s" % problem for problem in problems))
    if os_name != "windows" and method in WINDOWS_ONLY:
        return _result(ERROR, method, reason="detect method %s exists only on Windows nodes" % method)
    if os_name == "windows" and method in LINUX_ONLY:
        return _result(ERROR, method, reason="detect method %s exists only on Linux nodes" % method)
    if method == "command":
        return _detect_command(spec, timeout)
    if method == "file":
        return _detect_file(spec)
    if method == "package":
        return _detect_package(spec, timeout)
    if method == "dmi":
        return _detect_dmi(spec)
    if method == "fwupd":
        return _detect_fwupd(spec, timeout)
    return _result(ERROR, method, reason="detect method %s runs in the PowerShell twin" % method)  # registry, on Windows


# --------------------------------------------------------------------------------------------
# applies_to: does a component concern this node at all
# --------------------------------------------------------------------------------------------


def applies_to_problems(applies_to):
    # type: (Any) -> List[Tuple[str, str]]
    """(field, problem) for a component's ``applies_to``: DMI field -> regex, or a list of exact values."""
    if not isinstance(applies_to, Mapping):
        return [("applies_to", "must be a mapping of DMI field (product_name, sys_vendor, bios_vendor...) to a regex or a list of values")]
    problems = []  # type: List[Tuple[str, str]]
    for field, wanted in applies_to.items():
        label = "applies_to.%s" % field
        if not _DMI_FIELD_RE.match(str(field)):
            problems.append((label, "not a DMI field name (a file name of %s, e.g. product_name)" % DMI_ROOT))
        elif isinstance(wanted, list):
            if not wanted or not all(isinstance(value, str) for value in wanted):
                problems.append((label, "a list of values must hold strings"))
        elif isinstance(wanted, str):
            try:
                re.compile(wanted)
            except re.error as exc:
                problems.append((label, "not a valid regular expression: %s" % exc))
        else:
            problems.append((label, "must be a regular expression or a list of exact values"))
    return problems


def applies(applies_to, root=DMI_ROOT):
    # type: (Optional[Mapping[str, Any]], str) -> Tuple[bool, str]
    """(True, "") when every field of ``applies_to`` matches this node; else (False, why).

    A field that cannot be read does not match: a component is never installed on a machine
    it cannot be shown to fit.
    """
    for field, wanted in sorted((applies_to or {}).items()):
        try:
            value = _read_dmi(str(field), root)
        except OSError as exc:
            return False, "cannot read DMI %s: %s" % (field, exc.strerror or exc)
        if isinstance(wanted, list):
            if value not in wanted:
                return False, "DMI %s is %r, not one of %s" % (field, value, wanted)
        elif not re.search(str(wanted), value):
            return False, "DMI %s is %r, which does not match %r" % (field, value, wanted)
    return True, ""
