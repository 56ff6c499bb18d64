# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The repository manifest: a folder of component files plus ``manifest.yml``.

Used on the controller (the repository module, the deploy action). Python 3.6+, standard library
only, except that reading and writing YAML needs PyYAML, which comes with ansible-core on the
controller (nodes never parse the manifest: they receive the components as JSON).

* ``validate(data, root)`` -> every ``Problem`` (component, field, message); never stops at the first.
* ``load_components(path)`` -> the validated components in dependency order (raises ManifestError).
* ``refresh(root, data)`` -> the manifest with hashes and sizes brought up to date, hand-written
  fields kept, stubs for files no component names yet, and the list of what changed.

The format is documented in docs/repository.md. Format 2 adds the fields an imported SPP
component needs (``source``, ``identity``, ``revision``, ``release_date``, ``criticality``,
``devices``, ``deployable``/``not_deployable``, ``superseded_by``, ``prerequisites``; a list of
``signature`` parts); format 1 manifests load unchanged but may not use them.

A component with ``source`` has its ``file`` and ``signature`` relative to that folder (absolute,
or relative to the repository folder), not to the repository folder: an SPP on a read-only ISO
stays where it is, and the manifest lives elsewhere. The escape checks apply to that root.
"""
import datetime
import os
import re
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from ansible_collections.fleet.firmware.plugins.module_utils import detect as detect_mod
from ansible_collections.fleet.firmware.plugins.module_utils import filehash
from ansible_collections.fleet.firmware.plugins.module_utils import installers, returncodes, versions

FORMAT = 2
FORMATS = (1, 2)
MANIFEST_NAME = "manifest.yml"
TOP_KEYS = ("format", "description", "components")
REQUIRED_KEYS = ("name", "version", "file", "sha256", "size", "kind", "os", "detect", "install")
# A component that is not deployable is never planned for install: it needs no installer or detection.
NOT_REQUIRED_WHEN_NOT_DEPLOYABLE = ("detect", "install")
OPTIONAL_KEYS_1 = ("description", "applies_to", "args", "timeout", "reboot", "requires", "signature", "returncodes", "environment")
OPTIONAL_KEYS_2 = ("source", "identity", "revision", "release_date", "criticality", "devices", "deployable", "not_deployable",
                   "superseded_by", "prerequisites")
OPTIONAL_KEYS = OPTIONAL_KEYS_1 + OPTIONAL_KEYS_2
# The order keys are written in (hand-written keys this list does not know are refused anyway).
KEY_ORDER = ("name", "identity", "description", "version", "revision", "release_date", "criticality", "kind", "os",
             "source", "file", "sha256", "size", "signature", "deployable", "not_deployable", "superseded_by", "applies_to",
             "devices", "detect", "install", "args", "environment", "returncodes", "timeout", "reboot", "requires",
             "prerequisites")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")
KINDS = ("firmware", "driver", "software")
OSES = ("linux", "windows")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}\Z")
SHA256_RE = re.compile(r"^[0-9a-f]{64}\Z")
# Files in the folder that are never components of their own.
NOT_COMPONENTS_RE = re.compile(r"(^|/)\.|\.(sig|compsig|asc|sha256|md|txt)\Z|(^|/)README[^/]*\Z", re.IGNORECASE)
# What a new file's extension tells about it: (install, os, kind); None = a human must say.
BY_EXTENSION = (
    (".scexe", ("smart_component", "linux", "firmware")),
    (".rpm", ("rpm", "linux", None)),
    (".deb", ("deb", "linux", None)),
    (".cab", ("fwupd", "linux", "firmware")),
    (".msi", ("msi", "windows", None)),
    (".ps1", ("script", "windows", None)),
    (".cmd", ("script", "windows", None)),
    (".bat", ("script", "windows", None)),
    (".sh", ("script", "linux", None)),
)

Problem = NamedTuple("Problem", [("component", str), ("field", str), ("message", str)])


class ManifestError(ValueError):
    """A manifest that cannot be used; ``problems`` holds every fault found."""

    def __init__(self, problems):
        # type: (Sequence[Problem]) -> None
        self.problems = list(problems)
        super(ManifestError, self).__init__("; ".join(format_problem(p) for p in self.problems))


def format_problem(problem):
    # type: (Problem) -> str
    if problem.component:
        return "component %r, field %s: %s" % (problem.component, problem.field, problem.message)
    return "manifest, field %s: %s" % (problem.field, problem.message)


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def sha256_of(path):
    # type: (str) -> str
    return filehash.sha256_of(path)  # one file-hashing function for manifest, agent and engine


def resolve_file(root, relative):
    # type: (str, Any) -> Tuple[Optional[str], str]
    """(absolute path, "") for a file name inside ``root``, or (None, why not).

    Refuses absolute names, ``..`` anywhere, and symbolic links that lead out of the folder.
    """
    if not isinstance(relative, str) or not relative.strip():
        return None, "must be a file name relative to the repository folder"
    if relative.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", relative):
        return None, "%r is absolute: file names are relative to the repository folder" % relative
    parts = re.split(r"[/\\]", relative)
    if ".." in parts:
        return None, "%r escapes the repository folder (..)" % relative
    real_root = os.path.realpath(root)
    path = os.path.realpath(os.path.join(real_root, *parts))
    if os.path.commonpath([real_root, path]) != real_root:
        return None, "%r escapes the repository folder (a link to %s)" % (relative, path)
    return path, ""


def component_root(root, component):
    # type: (str, Any) -> str
    """The folder a component's ``file`` and ``signature`` are relative to: its ``source``
    (absolute, or relative to the repository folder) when it has one, else the repository folder."""
    source = component.get("source") if isinstance(component, Mapping) else None
    if isinstance(source, str) and source.strip():
        return os.path.normpath(os.path.join(root, source))
    return root


def signature_files(component):
    # type: (Mapping[str, Any]) -> List[Any]
    """The signature file names of a component: one detached file, or every ``_partN`` part."""
    signature = component.get("signature")
    if signature in (None, "", []):
        return []
    return list(signature) if isinstance(signature, list) else [signature]


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _version_scheme(component):
    # type: (Mapping[str, Any]) -> Tuple[str, ...]
    """The schemes the component's version is compared with (detect decides)."""
    spec = component.get("detect")
    if not isinstance(spec, Mapping):
        return ("auto",)
    if spec.get("method") == "package":
        manager = spec.get("manager", "auto")
        return ("dpkg", "rpm") if manager == "auto" else (manager,)
    return (spec.get("scheme", "auto"),)


def _check_version(name, component):
    # type: (str, Mapping[str, Any]) -> List[Problem]
    if component.get("deployable") is False:
        return []  # never compared: the plan skips it before detection
    spec = component.get("detect")
    if isinstance(spec, Mapping) and spec.get("method") == "component":
        return []  # never compared: the Smart Component decides (its "not needed" return code)
    schemes = [s for s in _version_scheme(component) if s in versions.SCHEMES]
    reasons = [versions.check(component["version"], scheme) for scheme in schemes]
    if schemes and all(reasons):
        return [Problem(name, "version", "cannot be compared: %s" % reasons[0])]
    return []


def _check_keys(name, component, fmt=FORMAT):
    # type: (str, Mapping[str, Any], Any) -> List[Problem]
    problems = []
    known = set(REQUIRED_KEYS) | set(OPTIONAL_KEYS)
    for key in sorted((str(k) for k in component if k not in known)):
        problems.append(Problem(name, key, "unknown key (known: %s)" % ", ".join(KEY_ORDER)))
    if fmt == 1:
        for key in (k for k in OPTIONAL_KEYS_2 if k in component):
            problems.append(Problem(name, key, "a format 2 field: set format: 2 at the top of the manifest"))
    not_deployable = component.get("deployable") is False
    for key in REQUIRED_KEYS:
        if not_deployable and key in NOT_REQUIRED_WHEN_NOT_DEPLOYABLE:
            continue
        if component.get(key) in (None, "", [], {}):
            problems.append(Problem(name, key, "required"))
    return problems


def _is_text(value):
    # type: (Any) -> bool
    return isinstance(value, str) and bool(value.strip())


def _check_devices(name, devices):
    # type: (str, Any) -> List[Problem]
    if not isinstance(devices, list):
        return [Problem(name, "devices", "must be a list of {name, targets}")]
    problems = []
    for index, device in enumerate(devices):
        label = "devices[%d]" % index
        if not isinstance(device, Mapping):
            problems.append(Problem(name, label, "must be a mapping with name and targets"))
            continue
        for key in sorted(str(k) for k in device if k not in ("name", "targets")):
            problems.append(Problem(name, "%s.%s" % (label, key), "unknown key (known: name, targets)"))
        if not _is_text(device.get("name")):
            problems.append(Problem(name, label + ".name", "must be a non-empty string"))
        targets = device.get("targets", [])
        if not isinstance(targets, list) or not all(_is_text(t) for t in targets):
            problems.append(Problem(name, label + ".targets", "must be a list of target identifiers (strings)"))
    return problems


def _check_format2(name, component):
    # type: (str, Mapping[str, Any]) -> List[Problem]
    """The fields format 2 adds (docs/repository.md, Component fields)."""
    problems = []
    for key in ("source", "identity", "revision", "criticality", "prerequisites", "superseded_by"):
        if key in component and not _is_text(component[key]):
            problems.append(Problem(name, key, "must be a non-empty string"))
    date = component.get("release_date")
    if date is not None and not (isinstance(date, str) and DATE_RE.match(date) and _valid_date(date)):
        problems.append(Problem(name, "release_date", "%r is not a date written YYYY-MM-DD (quote it in YAML)" % (date,)))
    if "devices" in component:
        problems.extend(_check_devices(name, component["devices"]))
    deployable = component.get("deployable", True)
    if not isinstance(deployable, bool):
        problems.append(Problem(name, "deployable", "must be true or false"))
    elif not deployable and not _is_text(component.get("not_deployable")):
        problems.append(Problem(name, "not_deployable", "required when deployable is false: the reason"))
    elif deployable and "not_deployable" in component:
        problems.append(Problem(name, "not_deployable", "only for a component with deployable: false"))
    return problems


def _valid_date(text):
    # type: (str) -> bool
    year, month, day = (int(part) for part in text.split("-"))
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return True


def _check_source(name, root, component):
    # type: (str, str, Mapping[str, Any]) -> List[Problem]
    if not _is_text(component.get("source")):
        return []
    folder = component_root(root, component)
    if not os.path.isdir(folder):
        return [Problem(name, "source", "%r is not a folder (file and signature are relative to it)" % component["source"])]
    return []


def _check_choices(name, component):
    # type: (str, Mapping[str, Any]) -> List[Problem]
    problems = []
    if component.get("kind") not in (None, "") and component["kind"] not in KINDS:
        problems.append(Problem(name, "kind", "%r is not one of %s" % (component["kind"], ", ".join(KINDS))))
    os_name = component.get("os")
    if os_name not in (None, "") and os_name not in OSES:
        problems.append(Problem(name, "os", "%r is not one of %s" % (os_name, ", ".join(OSES))))
    install = component.get("install")
    if install not in (None, "") and install not in installers.INSTALL_KINDS:
        problems.append(Problem(name, "install", "%r is not one of %s" % (install, ", ".join(installers.INSTALL_KINDS))))
    elif install and os_name in OSES and install not in installers.KINDS_BY_OS[os_name]:
        problems.append(Problem(name, "install", "%r does not exist on %s (there: %s)" % (install, os_name, ", ".join(installers.KINDS_BY_OS[os_name]))))
    reboot = component.get("reboot")
    if reboot is not None and reboot not in installers.REBOOT_POLICIES:
        problems.append(Problem(name, "reboot", "%r is not one of %s" % (reboot, ", ".join(installers.REBOOT_POLICIES))))
    return problems


def _check_values(name, component):
    # type: (str, Mapping[str, Any]) -> List[Problem]
    problems = []
    args = component.get("args")
    if args is not None and (not isinstance(args, list) or not all(isinstance(a, (str, int, float)) and not isinstance(a, bool) for a in args)):
        problems.append(Problem(name, "args", "must be a list of strings (an argv, never a shell string)"))
    elif args and component.get("install", "script") == "script" and installers.is_batch_file(component.get("file")):
        unsafe = installers.cmd_unsafe_arg(args)
        if unsafe is not None:
            problems.append(Problem(name, "args", unsafe))
    timeout = component.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        problems.append(Problem(name, "timeout", "must be a number of seconds above 0"))
    if component.get("returncodes") is not None:
        try:
            returncodes.parse_table(component["returncodes"])
        except ValueError as exc:
            problems.append(Problem(name, "returncodes", str(exc)))
    environment = component.get("environment")
    if environment is not None and (not isinstance(environment, Mapping) or not all(isinstance(k, str) for k in environment)):
        problems.append(Problem(name, "environment", "must be a mapping of variable name to value"))
    applies_to = component.get("applies_to")
    if applies_to is not None:
        problems.extend(Problem(name, field, message) for field, message in detect_mod.applies_to_problems(applies_to))
    sha = component.get("sha256")
    if sha not in (None, "") and not (isinstance(sha, str) and SHA256_RE.match(sha)):
        problems.append(Problem(name, "sha256", "must be 64 lower-case hexadecimal digits"))
    size = component.get("size")
    if size not in (None, "") and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        problems.append(Problem(name, "size", "must be a number of bytes"))
    if component.get("detect") not in (None, "", {}):
        problems.extend(_check_detect(name, component))
    if component.get("version") not in (None, ""):
        problems.extend(_check_version(name, component))
    return problems


def _check_detect(name, component):
    # type: (str, Mapping[str, Any]) -> List[Problem]
    spec = component["detect"]
    problems = [Problem(name, field, message) for field, message in detect_mod.spec_problems(spec)]
    method = spec.get("method") if isinstance(spec, Mapping) else None
    os_name = component.get("os")
    if not problems and os_name == "linux" and method in detect_mod.WINDOWS_ONLY:
        problems.append(Problem(name, "detect.method", "%s exists only on Windows nodes" % method))
    if not problems and os_name == "windows" and method in detect_mod.LINUX_ONLY:
        problems.append(Problem(name, "detect.method", "%s exists only on Linux nodes" % method))
    return problems


def _check_file(name, root, component, field, verify, known_hashes=None, relative=None):
    # type: (str, str, Mapping[str, Any], str, bool, Optional[Mapping[str, str]], Any) -> List[Problem]
    """``file`` or a ``signature`` file: inside the folder, present, and (for ``file``) the right
    size and hash. ``known_hashes`` (absolute path -> sha256) spares hashing a file again that
    this run has just hashed (an import)."""
    relative = component.get(field) if relative is None else relative
    path, why = resolve_file(root, relative)
    if path is None:
        return [Problem(name, field, why)]
    if not os.path.isfile(path):
        # HP SUM's words for a signature that is named but absent (docs/repository.md, Signatures).
        missing = "signature file missing: " if field == "signature" else ""
        return [Problem(name, field, "%s%r does not exist in %s" % (missing, relative, root))]
    if field != "file":
        return []
    problems = []
    size = os.path.getsize(path)
    if isinstance(component.get("size"), int) and component["size"] != size:
        problems.append(Problem(name, "size", "%d in the manifest, %d on disk (%s)" % (component["size"], size, component[field])))
    if verify and isinstance(component.get("sha256"), str) and SHA256_RE.match(component["sha256"]):
        actual = (known_hashes or {}).get(path) or sha256_of(path)
        if actual != component["sha256"]:
            problems.append(Problem(name, "sha256", "hash mismatch for %s: manifest %s, file %s" % (component[field], component["sha256"], actual)))
    return problems


def _check_requires(name, component, names):
    # type: (str, Mapping[str, Any], Sequence[str]) -> List[Problem]
    requires = component.get("requires")
    if requires is None:
        return []
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        return [Problem(name, "requires", "must be a list of component names")]
    problems = []
    for required in requires:
        if required == name:
            problems.append(Problem(name, "requires", "requires itself"))
        elif required not in names:
            problems.append(Problem(name, "requires", "%r is not a component of this manifest" % required))
    return problems


def find_cycles(components):
    # type: (Sequence[Mapping[str, Any]]) -> List[List[str]]
    """Every dependency cycle once, as a path that ends where it starts (a -> b -> a).

    A depth-first search with an explicit stack: a chain of requires may be far deeper than
    Python's recursion limit (a 10,000-component manifest).
    """
    # Only what validate() accepts is a node: a name that is text, requires that are a list (any
    # other shape is reported there, and must not stop this search with a TypeError).
    graph = {c["name"]: [r for r in c.get("requires") or [] if isinstance(r, str)] if isinstance(c.get("requires"), list) else []
             for c in components if isinstance(c, Mapping) and isinstance(c.get("name"), str)}
    state = {}  # type: Dict[Any, int]  # 1 on the path, 2 done
    cycles = []  # type: List[List[str]]
    seen = set()
    for start in graph:
        if state.get(start) is not None:
            continue
        path = [start]  # type: List[Any]
        stack = [iter(graph[start])]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                state[path.pop()] = 2
                continue
            if nxt not in graph or nxt == path[-1]:
                continue
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    cycles.append([str(n) for n in cycle])
            elif state.get(nxt) is None:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(graph[nxt]))
    return cycles


def validate(data, root, verify=True, known_hashes=None):
    # type: (Any, str, bool, Optional[Mapping[str, str]]) -> List[Problem]
    """Every problem of a manifest (already parsed) whose files live in ``root`` (or in a
    component's ``source``)."""
    if not isinstance(data, Mapping):
        return [Problem("", "components", "the manifest must be a mapping with a components list")]
    problems = [Problem("", str(key), "unknown top-level key (known: %s)" % ", ".join(TOP_KEYS)) for key in data if key not in TOP_KEYS]
    fmt = data.get("format", 1)
    if isinstance(fmt, bool) or fmt not in FORMATS:
        problems.append(Problem("", "format", "%r is not a format this collection reads (%s)" % (fmt, ", ".join(str(f) for f in FORMATS))))
    components = data.get("components")
    if not isinstance(components, list):
        return problems + [Problem("", "components", "must be a list of components")]
    names = []  # type: List[str]
    for index, component in enumerate(components):
        label = "#%d" % (index + 1)
        if not isinstance(component, Mapping):
            problems.append(Problem(label, "", "a component is a mapping of fields"))
            continue
        name = component.get("name")
        if isinstance(name, str) and NAME_RE.match(name):
            label = name
            if name in names:
                problems.append(Problem(name, "name", "a second component has this name"))
            names.append(name)
        elif name not in (None, ""):
            problems.append(Problem(label, "name", "%r: letters, digits, . _ + - (up to 128), starting with a letter or digit" % (name,)))
        problems.extend(_component_problems(label, component, root, verify, fmt, known_hashes))
    for component in components:
        if isinstance(component, Mapping):
            problems.extend(_check_requires(str(component.get("name")), component, names))
            problems.extend(_check_superseded(str(component.get("name")), component, names))
    for cycle in find_cycles([c for c in components if isinstance(c, Mapping)]):
        problems.append(Problem(cycle[0], "requires", "dependency cycle: %s" % " -> ".join(cycle)))
    return problems


def _check_superseded(name, component, names):
    # type: (str, Mapping[str, Any], Sequence[str]) -> List[Problem]
    newer = component.get("superseded_by")
    if not _is_text(newer):
        return []
    if newer == name:
        return [Problem(name, "superseded_by", "names the component itself")]
    if newer not in names:
        return [Problem(name, "superseded_by", "%r is not a component of this manifest" % newer)]
    return []


def _component_problems(label, component, root, verify, fmt=FORMAT, known_hashes=None):
    # type: (str, Mapping[str, Any], str, bool, Any, Optional[Mapping[str, str]]) -> List[Problem]
    problems = (_check_keys(label, component, fmt) + _check_choices(label, component) + _check_values(label, component)
                + _check_format2(label, component))
    source_problems = _check_source(label, root, component)
    if source_problems:
        return problems + source_problems
    home = component_root(root, component)
    if component.get("file") not in (None, ""):
        problems.extend(_check_file(label, home, component, "file", verify, known_hashes))
    signature = component.get("signature")
    if isinstance(signature, list):
        if not signature or not all(_is_text(part) for part in signature):
            problems.append(Problem(label, "signature", "a list of signature parts must hold file names"))
            return problems
    elif signature not in (None, "") and not isinstance(signature, str):
        problems.append(Problem(label, "signature", "must be a file name or a list of file names (_partN parts)"))
        return problems
    for part in signature_files(component):
        problems.extend(_check_file(label, home, component, "signature", verify, relative=part))
    return problems


def dependency_order(components):
    # type: (Sequence[Mapping[str, Any]]) -> List[Mapping[str, Any]]
    """Components with every ``requires`` before its dependents, otherwise in manifest order.

    The manifest must be free of cycles (validate first). Iterative, like ``find_cycles``.
    """
    by_name = {c["name"]: c for c in components}
    done = set()  # type: set
    ordered = []  # type: List[Mapping[str, Any]]
    for component in components:
        if component["name"] in done:
            continue
        trail = [component["name"]]  # type: List[str]
        on_trail = {component["name"]}
        stack = [iter(component.get("requires") or [])]
        while stack:
            required = next(stack[-1], None)
            if required is None:
                stack.pop()
                name = trail.pop()
                on_trail.discard(name)
                done.add(name)
                ordered.append(by_name[name])
                continue
            if required not in by_name or required in done:
                continue
            if required in on_trail:
                raise ManifestError([Problem(required, "requires", "dependency cycle: %s" % " -> ".join(trail[trail.index(required):] + [required]))])
            trail.append(required)
            on_trail.add(required)
            stack.append(iter(by_name[required].get("requires") or []))
    return ordered


# --------------------------------------------------------------------------------------------
# YAML (controller only)
# --------------------------------------------------------------------------------------------


def _yaml():
    # type: () -> Any
    import yaml  # PyYAML: on the controller it comes with ansible-core
    return yaml


def parse_text(text, source="manifest"):
    # type: (str, str) -> Any
    yaml = _yaml()
    try:
        # libyaml's safe loader when PyYAML has it: the same documents, about seven times faster
        # for an SPP's hundreds of components.
        data = yaml.load(text, Loader=yaml.CSafeLoader) if hasattr(yaml, "CSafeLoader") else yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError([Problem("", "", "%s is not valid YAML: %s" % (source, exc))])
    return {"format": FORMAT, "components": []} if data is None else data


def read(path):
    # type: (str) -> Any
    with open(path, "r", encoding="utf-8") as handle:
        return parse_text(handle.read(), path)


def dump(data):
    # type: (Mapping[str, Any]) -> str
    """The manifest as YAML, fields in KEY_ORDER (the same data always gives the same text)."""
    ordered = {key: data[key] for key in TOP_KEYS if key in data}
    ordered["components"] = [_ordered_component(c) for c in data.get("components") or []]
    header = "# fleet.firmware repository manifest (docs/repository.md). Refresh: fleet.firmware.repository\n"
    yaml = _yaml()
    # libyaml's safe dumper when there: the same text as PyYAML's own, about five times faster.
    return header + yaml.dump(ordered, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False,
                              default_flow_style=False, allow_unicode=True, width=160)


def _ordered_component(component):
    # type: (Any) -> Any
    if not isinstance(component, Mapping):
        return component
    ordered = {key: component[key] for key in KEY_ORDER if key in component}
    ordered.update((key, value) for key, value in component.items() if key not in ordered)
    return ordered


def load_components(path, verify=True):
    # type: (str, bool) -> List[Dict[str, Any]]
    """The validated components of the manifest at ``path`` (a file, or a folder holding
    manifest.yml), in dependency order, each with ``path`` (the file's absolute path on the
    controller; not a manifest key). Raises ManifestError with every problem."""
    manifest_path = os.path.join(path, MANIFEST_NAME) if os.path.isdir(path) else path
    root = os.path.dirname(os.path.abspath(manifest_path))
    try:
        data = read(manifest_path)
    except OSError as exc:
        raise ManifestError([Problem("", "", "cannot read %s: %s" % (manifest_path, exc.strerror or exc))])
    problems = validate(data, root, verify=verify)
    if problems:
        raise ManifestError(problems)
    return ordered_components(root, data)


def ordered_components(root, data):
    # type: (str, Mapping[str, Any]) -> List[Dict[str, Any]]
    """The components of a validated manifest in dependency order, defaults filled in
    (``requires: []``, ``reboot: if_rc``), each with ``path`` (absolute, on the controller)."""
    result = []
    for component in dependency_order(data["components"]):
        entry = dict(component)
        entry.setdefault("requires", [])
        entry.setdefault("reboot", "if_rc")
        entry["path"] = resolve_file(component_root(root, component), component["file"])[0]
        result.append(entry)
    return result


# --------------------------------------------------------------------------------------------
# Building and refreshing
# --------------------------------------------------------------------------------------------


def folder_files(root, manifest_name=MANIFEST_NAME):
    # type: (str, str) -> List[str]
    """Relative names (with /) of the regular files of the folder that may be components."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            relative = os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")
            if relative == manifest_name or NOT_COMPONENTS_RE.search(relative):
                continue
            if resolve_file(root, relative)[0] is None or not os.path.isfile(os.path.join(folder, name)):
                continue
            found.append(relative)
    return found


def stub_for(relative, taken):
    # type: (str, Sequence[str]) -> Dict[str, Any]
    """A new component for a file no component names: what its name tells; the rest is left for a person."""
    base = os.path.basename(relative)
    stem = re.sub(r"[^A-Za-z0-9._+-]", "-", os.path.splitext(base)[0]).lstrip("._+-") or "component"
    name, number = stem[:120], 2
    while name in taken:
        name, number = "%s-%d" % (stem[:116], number), number + 1
    install, os_name, kind = None, None, None
    lower = base.lower()
    for extension, guess in BY_EXTENSION:
        if lower.endswith(extension):
            install, os_name, kind = guess
    if lower.endswith(".exe"):
        # HPE Smart Components for Windows are named cpNNNNNN.exe.
        install, os_name, kind = ("smart_component", "windows", None) if re.match(r"^cp\d+\.exe\Z", lower) else ("exe", "windows", None)
    return {"name": name, "version": None, "kind": kind, "os": os_name, "file": relative, "sha256": None, "size": None,
            "detect": None, "install": install}


def refresh(root, data, manifest_name=MANIFEST_NAME, add_new=True, remove_missing=False):
    # type: (str, Any, str, bool, bool) -> Tuple[Dict[str, Any], List[str]]
    """(new manifest, changes). Hashes and sizes follow the files; every other field stays as
    written; files no component names get a stub (``add_new``); components whose file is gone
    stay (validation reports them) unless ``remove_missing``."""
    data = dict(data) if isinstance(data, Mapping) else {}
    components = [dict(c) if isinstance(c, Mapping) else c for c in (data.get("components") or [])]
    changes = []  # type: List[str]
    kept = []
    for component in components:
        if not isinstance(component, dict):
            kept.append(component)
            continue
        path = resolve_file(component_root(root, component), component.get("file"))[0]
        if path is None or not os.path.isfile(path):
            if remove_missing and path is not None:
                changes.append("removed %s: %s is gone" % (component.get("name"), component.get("file")))
                continue
            kept.append(component)
            continue
        changes.extend(_update_hash(component, path))
        kept.append(component)
    if add_new:
        named = {c.get("file") for c in kept if isinstance(c, dict)}
        named.update(part for c in kept if isinstance(c, dict) for part in signature_files(c) if isinstance(part, str))
        taken = [c.get("name") for c in kept if isinstance(c, dict)]
        for relative in folder_files(root, manifest_name):
            if relative in named:
                continue
            stub = stub_for(relative, taken)
            changes.extend(_update_hash(stub, os.path.join(root, relative)))
            changes.append("added %s for %s (fill in the fields left empty)" % (stub["name"], relative))
            taken.append(stub["name"])
            kept.append(stub)
    data["format"] = data.get("format", FORMAT)
    data["components"] = kept
    return data, [c for c in changes if not c.startswith("hashed ")]


def _update_hash(component, path):
    # type: (Dict[str, Any], str) -> List[str]
    size = os.path.getsize(path)
    digest = sha256_of(path)
    changes = []
    if component.get("sha256") != digest:
        changes.append("%s %s: sha256 %s" % ("hashed" if component.get("sha256") is None else "updated", component.get("name"), digest))
        component["sha256"] = digest
    if component.get("size") != size:
        changes.append("%s %s: size %d" % ("hashed" if component.get("size") is None else "updated", component.get("name"), size))
        component["size"] = size
    return changes
