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
* ``redfish``: the BMC's Redfish firmware inventory (``UpdateService/FirmwareInventory``, asked
  for with ``$expand=.``, else member by member), reached with the separate ``redfish`` settings
  (never part of the spec). Matching rule, HPE's correlation without the DeviceClass step (a
  manifest's devices carry no class): an inventory item matches when one of its target
  identifiers (``Oem.Hpe.Targets``, compared without regard to case) is one of the spec's
  ``targets``, and, when the spec has ``name``, its ``Name`` matches that regex (use it where
  items share targets, e.g. HPE's System ROM and IPA data both list the platform ids). The
  version is the item's ``Version`` (or what ``regex`` picks from it). When several items match
  (a power supply in two bays, one GPU model in four slots) the installed version is the lowest
  of them: the component updates them all, one older device is enough to need it; items whose
  versions cannot be ordered give ``error``. No matching item is ``absent``; an unreachable BMC,
  refused credentials or an answer that is not a Redfish collection is ``error``, never ``absent``.
* ``component``: nothing on the node can tell; the Smart Component decides for itself when it
  runs (its "not needed" return code). ``detect()`` returns the state ``deferred``; the plan
  turns that into ``install`` with the reason ``the component decides (its "not needed" return code)``.

``detect()`` returns ``{"state": "present"|"absent"|"error"|"deferred", "version": str or None,
"scheme": "auto"|"dpkg"|"rpm", "method": str, "reason": str, "source": str}`` (``source`` says
where the answer came from; ``redfish`` adds ``devices``, the matching items). ``error`` means the
method could not tell (that is never reported as "absent").

BMC settings (``redfish``): ``address`` (the iLO's host-interface address, a host name, an IP
literal or an ``https://host:port`` URL), ``username`` and ``password`` (HTTP Basic, sent only
to that address, never after a redirect), ``validate_certs`` (default true), ``ca_path`` (a PEM
bundle for the BMC's certificate), ``timeout``. The password never appears in a result.
"""
import base64
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
from typing import Any, Dict, List, Mapping, Optional, Tuple

from urllib.error import HTTPError, URLError
from urllib.parse import urljoin, urlsplit
from urllib.request import HTTPHandler, HTTPSHandler, ProxyHandler, Request, build_opener

from ansible_collections.fleet.firmware.plugins.module_utils import versions

PRESENT, ABSENT, ERROR, DEFERRED = "present", "absent", "error", "deferred"
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
# The BMC's connection options, one declaration for the inventory module and the deploy action.
REDFISH_OPTIONS = {
    "redfish_address": {"type": "str"},
    "redfish_username": {"type": "str"},
    "redfish_password": {"type": "str", "no_log": True},
    "redfish_validate_certs": {"type": "bool", "default": True},
    "redfish_ca_path": {"type": "path"},
    "redfish_timeout": {"type": "float", "default": 30.0},
}
WINDOWS_ONLY = ("registry",)
LINUX_ONLY = ("package", "fwupd")
DMI_ROOT = "/sys/class/dmi/id"
_DMI_FIELD_RE = re.compile(r"^[a-z0-9_]+\Z")
_FORMAT_FIELD_RE = re.compile(r"{([^{}]*)}")
READ_LIMIT = 65536
DEFAULT_TIMEOUT = 30.0
# Where each method's answer comes from (a plan entry says which source was used).
SOURCES = {"command": "the output of a command", "file": "a file on the node", "package": "the package manager",
           "registry": "the Windows registry", "dmi": "SMBIOS (DMI) of the node", "fwupd": "fwupd",
           "redfish": "the BMC's Redfish firmware inventory", "component": "the Smart Component itself"}
REDFISH_INVENTORY = "/redfish/v1/UpdateService/FirmwareInventory"
REDFISH_SETTINGS = ("address", "username", "password", "validate_certs", "ca_path", "timeout", "origin")
REDFISH_READ_LIMIT = 32 * 1024 * 1024
MASK = "********"


def _result(state, method, version=None, reason="", scheme="auto", source=None):
    # type: (str, str, Optional[str], str, str, Optional[str]) -> Dict[str, Any]
    return {"state": state, "version": version, "scheme": scheme, "method": method, "reason": reason,
            "source": source if source is not None else SOURCES.get(method, "")}


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
    if method == "redfish":
        problems.extend(_redfish_problems(spec))
    if method == "registry" and not (spec.get("display_name") or (spec.get("key") and spec.get("value"))):
        problems.append(("detect.key", "registry needs key and value, or display_name"))
    if spec.get("scheme", "auto") not in ("auto", "dpkg", "rpm"):
        problems.append(("detect.scheme", "%r is not one of auto, dpkg, rpm" % (spec.get("scheme"),)))
    return problems


def _redfish_problems(spec):
    # type: (Mapping[str, Any]) -> List[Tuple[str, str]]
    problems = []  # type: List[Tuple[str, str]]
    targets = spec.get("targets")
    if targets not in (None, "", []) and (not isinstance(targets, list) or not all(isinstance(t, str) and t.strip() for t in targets)):
        problems.append(("detect.targets", "must be a list of target identifiers (strings), got %r" % (targets,)))
    if "name" in spec:
        try:
            re.compile(str(spec["name"]))
        except re.error as exc:
            problems.append(("detect.name", "not a valid regular expression: %s" % exc))
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
    if rc == 1 and ("is not installed" in output or not output.strip()):
        return _result(ABSENT, "package", reason="package %s is not installed (rpm)" % name, scheme="rpm", source="the rpm database")
    lines = output.strip().splitlines()
    if rc != 0 or not lines:
        return _result(ERROR, "package", reason="rpm -q %s returned %s: %s" % (name, rc, output.strip()[-200:]), scheme="rpm",
                       source="the rpm database")
    # Several installed versions (kernel-style multi-version packages): the newest counts.
    return _result(PRESENT, "package", _newest(lines, "rpm"), scheme="rpm", source="the rpm database")


def _newest(candidates, scheme):
    # type: (List[str], str) -> str
    best = candidates[0].strip()
    for candidate in candidates[1:]:
        if versions.compare(candidate.strip(), best, scheme).order == 1:
            best = candidate.strip()
    return best


def _dpkg_answer(name, rc, output):
    # type: (str, int, str) -> Dict[str, Any]
    # dpkg-query returns 1 for an unknown package; a removed package keeps a line with another status.
    installed = [line.split(" ", 1)[1] for line in output.splitlines() if line.startswith("installed ")]
    if installed:
        return _result(PRESENT, "package", installed[0].strip(), scheme="dpkg", source="the dpkg database")
    if rc in (0, 1):
        return _result(ABSENT, "package", reason="package %s is not installed (dpkg)" % name, scheme="dpkg", source="the dpkg database")
    return _result(ERROR, "package", reason="dpkg-query returned %d: %s" % (rc, output.strip()[-200:]), scheme="dpkg",
                   source="the dpkg database")


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


# --------------------------------------------------------------------------------------------
# redfish: the BMC's firmware inventory
# --------------------------------------------------------------------------------------------


class RedfishError(Exception):
    """The BMC could not be asked (unreachable, refused, not Redfish); the message says why."""


class RedfishHTTPError(RedfishError):
    """The BMC answered with an HTTP error status (``code``)."""

    def __init__(self, message, code):
        # type: (str, int) -> None
        super(RedfishHTTPError, self).__init__(message)
        self.code = code


def mask(text, settings):
    # type: (str, Optional[Mapping[str, Any]]) -> str
    """``text`` with the BMC password replaced (an error text may quote what it was given)."""
    password = (settings or {}).get("password")
    return text.replace(str(password), MASK) if password else text


def redfish_settings_problems(settings):
    # type: (Any) -> List[str]
    """What is wrong with BMC settings (names the key, never the password's value)."""
    if not isinstance(settings, Mapping):
        return ["redfish settings must be a mapping (address, username, password, validate_certs, ca_path, timeout)"]
    problems = ["unknown BMC setting %r (known: %s)" % (key, ", ".join(REDFISH_SETTINGS))
                for key in sorted(set(settings) - set(REDFISH_SETTINGS), key=str)]
    if not settings.get("address"):
        problems.append("no BMC address: give redfish_address (the iLO's host-interface address)")
    else:
        try:
            redfish_base_url(str(settings["address"]))
        except ValueError as exc:
            problems.append(str(exc))
    if settings.get("password") and not settings.get("username"):
        problems.append("a BMC password without a username (redfish_username)")
    if settings.get("ca_path") and not os.path.isfile(str(settings["ca_path"])):
        problems.append("the BMC CA file %s does not exist" % settings["ca_path"])
    try:
        if float(settings.get("timeout") or DEFAULT_TIMEOUT) <= 0:
            problems.append("the BMC timeout must be more than 0 s, got %r" % settings.get("timeout"))
    except (TypeError, ValueError):
        problems.append("the BMC timeout must be a number of seconds, got %r" % (settings.get("timeout"),))
    return problems


def redfish_base_url(address):
    # type: (str) -> str
    """``https://<address>`` for a host or an IP literal (IPv6 in brackets); a URL stays as given."""
    address = address.strip()
    if "@" in address:
        # Not echoed: what stands before the @ may be a password.
        raise ValueError("the BMC address holds credentials (user@ or user:password@): give them as redfish_username and redfish_password")
    if "://" in address:
        parts = urlsplit(address)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.path.strip("/") or parts.query:
            raise ValueError("BMC address %r: a URL must be https://host[:port] (or http:// in a lab), without a path" % address)
        return "%s://%s" % (parts.scheme, parts.netloc)
    if not address or "/" in address or " " in address:
        raise ValueError("BMC address %r is not a host name or an IP address" % address)
    base = "https://[%s]" % address if address.count(":") > 1 and not address.startswith("[") else "https://" + address
    try:
        parts = urlsplit(base)
        parts.port  # pylint: disable=pointless-statement  # raises ValueError for a bad port
    except ValueError as exc:
        raise ValueError("BMC address %r is not a host name or an IP address: %s" % (address, exc))
    if not parts.hostname:
        raise ValueError("BMC address %r names no host" % address)
    return base


def _ssl_context(settings):
    # type: (Mapping[str, Any]) -> ssl.SSLContext
    if settings.get("validate_certs", True) in (False, "false", "no", 0):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=settings.get("ca_path") or None)


class RedfishClient(object):
    """GET requests to one BMC: JSON answers, Basic authentication, no proxy, bounded reads."""

    def __init__(self, settings):
        # type: (Mapping[str, Any]) -> None
        self.settings = settings
        self.base = redfish_base_url(str(settings["address"]))
        self.timeout = float(settings.get("timeout") or DEFAULT_TIMEOUT)
        # No proxy from the environment: the BMC is on the host interface, and the credentials
        # go to it alone.
        self.opener = build_opener(ProxyHandler({}), HTTPHandler(), HTTPSHandler(context=_ssl_context(settings)))

    def get(self, path):
        # type: (str) -> Any
        url = urljoin(self.base + "/", path)
        if urlsplit(url).netloc != urlsplit(self.base).netloc:
            raise RedfishError("the BMC pointed to %s, outside %s: not followed" % (url, self.base))
        request = Request(url, headers={"Accept": "application/json", "OData-Version": "4.0"})
        if self.settings.get("username"):
            token = "%s:%s" % (self.settings["username"], self.settings.get("password") or "")
            # Unredirected: a redirect to elsewhere never carries the credentials.
            request.add_unredirected_header("Authorization", "Basic " + base64.b64encode(token.encode("utf-8")).decode("ascii"))
        try:
            response = self.opener.open(request, timeout=self.timeout)
            try:
                body = response.read(REDFISH_READ_LIMIT + 1)
            finally:
                response.close()
        except HTTPError as exc:
            raise self._http_error(url, exc)
        except (socket.timeout, TimeoutError):
            raise RedfishError("the BMC at %s gave no answer in %g s" % (self.base, self.timeout))
        except ssl.SSLError as exc:
            raise self._tls_error(exc)
        except URLError as exc:
            if isinstance(exc.reason, ssl.SSLError):
                raise self._tls_error(exc.reason)
            raise RedfishError("cannot reach the BMC at %s: %s" % (self.base, exc.reason))
        except (OSError, ValueError) as exc:
            raise RedfishError("cannot reach the BMC at %s: %s" % (self.base, exc))
        if len(body) > REDFISH_READ_LIMIT:
            raise RedfishError("the BMC's answer to %s is larger than %d bytes" % (url, REDFISH_READ_LIMIT))
        try:
            return json.loads(body.decode("utf-8"))
        except ValueError as exc:
            raise RedfishError("the BMC's answer to %s is not JSON (%s): %r" % (url, exc, body[:80]))

    def _tls_error(self, exc):
        # type: (ssl.SSLError) -> RedfishError
        return RedfishError("TLS with the BMC at %s failed: %s (redfish_ca_path names the CA that signed its certificate)" % (self.base, exc))

    def _http_error(self, url, exc):
        # type: (str, HTTPError) -> RedfishError
        exc.close()
        if exc.code in (401, 403):
            who = "user %s" % self.settings["username"] if self.settings.get("username") else "no credentials (redfish_username)"
            return RedfishHTTPError("the BMC at %s refused %s (HTTP %d)" % (self.base, who, exc.code), exc.code)
        return RedfishHTTPError("the BMC answered %s with HTTP %d %s" % (url, exc.code, exc.reason), exc.code)


def _members(document, what):
    # type: (Any, str) -> List[Any]
    if not isinstance(document, dict) or not isinstance(document.get("Members"), list):
        raise RedfishError("%s is not a Redfish collection (no Members list)" % what)
    return document["Members"]


def fetch_firmware_inventory(settings):
    # type: (Mapping[str, Any]) -> List[Dict[str, Any]]
    """The items of the BMC's firmware inventory. One request with ``$expand=.`` (iLO 5 and
    later expand); a BMC that refuses the query or returns bare links is asked member by member."""
    client = RedfishClient(settings)
    collection = REDFISH_INVENTORY + "/"
    try:
        members = _members(client.get(collection + "?$expand=."), collection + "?$expand=.")
    except RedfishHTTPError as exc:
        if exc.code not in (400, 404, 405, 501):
            raise
        # A BMC that does not know $expand says so with 400/404/405/501: ask for the plain collection.
        members = _members(client.get(collection), collection)
    items = []
    for member in members:
        if isinstance(member, dict) and set(member) - {"@odata.id"}:
            items.append(member)
        elif isinstance(member, dict) and isinstance(member.get("@odata.id"), str):
            item = client.get(member["@odata.id"])
            if not isinstance(item, dict):
                raise RedfishError("%s is not a Redfish resource" % member["@odata.id"])
            items.append(item)
        else:
            raise RedfishError("%s has a member that is not a link or a resource: %r" % (collection, member)[:300])
    return items


class RedfishSource(object):
    """The firmware inventory for one plan: asked at most once, the answer (or the error) kept
    for every component. ``items`` comes from the controller when it asked the BMC itself."""

    def __init__(self, settings=None, items=None, origin="node", error=None):
        # type: (Optional[Mapping[str, Any]], Optional[List[Dict[str, Any]]], str, Optional[str]) -> None
        self.settings = dict(settings or {})
        self.origin = "controller" if items is not None or error else self.settings.get("origin") or origin
        self.items = items
        self.error = mask(error, self.settings) if error else None  # type: Optional[str]
        self.queries = 0

    @property
    def label(self):
        # type: () -> str
        try:
            where = redfish_base_url(str(self.settings["address"])) if self.settings.get("address") else "the BMC"
        except ValueError:
            where = "the BMC"
        return "%s of %s (asked from the %s)" % (SOURCES["redfish"], where, self.origin)

    def inventory(self):
        # type: () -> Tuple[Optional[List[Dict[str, Any]]], str]
        if self.items is not None or self.error is not None:
            return self.items, self.error or ""
        problems = redfish_settings_problems(self.settings) if self.settings else [
            "no BMC settings: give redfish_address (the iLO's host-interface address) and its credentials"]
        if problems:
            self.error = mask("; ".join(problems), self.settings)
            return None, self.error
        self.queries += 1
        try:
            self.items = fetch_firmware_inventory(self.settings)
        except RedfishError as exc:
            self.error = mask(str(exc), self.settings)
        return self.items, self.error or ""


def _item_targets(item):
    # type: (Mapping[str, Any]) -> List[str]
    hpe = ((item.get("Oem") or {}).get("Hpe") or {}) if isinstance(item.get("Oem"), dict) else {}
    targets = hpe.get("Targets") if isinstance(hpe, dict) else None
    return [str(target).lower() for target in targets] if isinstance(targets, list) else []


def _device(item):
    # type: (Mapping[str, Any]) -> Dict[str, Any]
    hpe = (item.get("Oem") or {}).get("Hpe") or {} if isinstance(item.get("Oem"), dict) else {}
    return {"id": item.get("Id"), "name": item.get("Name"), "context": hpe.get("DeviceContext") if isinstance(hpe, dict) else None,
            "version": item.get("Version")}


def match_firmware(spec, items, source=""):
    # type: (Mapping[str, Any], List[Mapping[str, Any]], str) -> Dict[str, Any]
    """The detection result of a ``redfish`` spec against inventory items (rule: module docstring)."""
    scheme = spec.get("scheme", "auto")
    wanted = set(str(target).lower() for target in spec["targets"])
    matching = [item for item in items if isinstance(item, Mapping) and wanted & set(_item_targets(item))]
    if spec.get("name"):
        matching = [item for item in matching if re.search(str(spec["name"]), str(item.get("Name") or ""))]
    if not matching:
        named = " named like %r" % spec["name"] if spec.get("name") else ""
        return _result(ABSENT, "redfish", reason="no firmware item%s with targets %s (of %d items in the inventory)"
                       % (named, ", ".join(sorted(wanted)), len(items)), scheme=scheme, source=source)
    found = []
    for item in matching:
        device = _device(item)
        version, why = pick(str(item.get("Version") or ""), spec.get("regex"), "the version of %s (%s)" % (device["name"], device["context"]))
        if version is None:
            return dict(_result(ERROR, "redfish", reason=why, scheme=scheme, source=source), devices=[_device(i) for i in matching])
        found.append((version, device))
    lowest = found[0][0]
    for version, _device_found in found[1:]:
        order = versions.compare(version, lowest, scheme)
        if order.order is None:
            listed = "; ".join("%s (%s): %s" % (d["name"], d["context"], v) for v, d in found)
            return dict(_result(ERROR, "redfish", reason="the matching items' versions cannot be ordered (%s): %s; narrow the match with name"
                                % (order.reason, listed), scheme=scheme, source=source), devices=[d for _v, d in found])
        if order.order < 0:
            lowest = version
    reason = "" if len(found) == 1 else "the lowest of %d matching items" % len(found)
    return dict(_result(PRESENT, "redfish", lowest, reason=reason, scheme=scheme, source=source), devices=[d for _v, d in found])


def _detect_redfish(spec, redfish):
    # type: (Mapping[str, Any], Any) -> Dict[str, Any]
    source = redfish if isinstance(redfish, RedfishSource) else RedfishSource(redfish)
    items, error = source.inventory()
    if items is None:
        return _result(ERROR, "redfish", reason="cannot read the BMC's firmware inventory: %s" % error,
                       scheme=spec.get("scheme", "auto"), source=source.label)
    return match_firmware(spec, items, source.label)


def detect(spec, os_name="linux", timeout=DEFAULT_TIMEOUT, redfish=None):
    # type: (Mapping[str, Any], str, float, Any) -> Dict[str, Any]
    """The installed version per ``spec`` (see the module docstring). Never raises for node problems.

    ``redfish``: BMC settings (a mapping) or a ``RedfishSource`` shared by the components of a plan."""
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
    if method == "redfish":
        return _detect_redfish(spec, redfish)
    if method == "component":
        return _result(DEFERRED, "component", reason="nothing on the node can tell; the component decides when it runs")
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
