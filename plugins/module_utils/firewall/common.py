# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Validation, the opening spec and the backend contract shared by every firewall backend.

Runs on nodes: Python 3.6+, standard library only (no dataclasses, no ``from __future__``).
"""
import abc
import ipaddress
import os
import re
import subprocess
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from ansible_collections.fleet.firmware.plugins.module_utils.runtag import TAG_RE  # one pattern for every run tag

# Every object the collection writes carries this marker; a sweep matches on it alone.
MARKER = "fleet-firmware"
SWEEP = "*"
PROTOCOLS = ("tcp", "udp")
DIRECTIONS = ("in", "out")
PORT_RE = re.compile(r"^(?P<first>\d{1,5})(?:-(?P<last>\d{1,5}))?(?:/(?P<proto>[A-Za-z0-9]+))?$")
# Where firewall tools live even when the caller's PATH lacks the sbin folders (sudo, cron).
EXTRA_PATH = ("/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin")


class FirewallError(Exception):
    """A firewall operation failed or was refused; the message names the bad value or command."""


class Port(NamedTuple("Port", [("proto", str), ("first", int), ("last", int)])):
    """One port or port range of one protocol."""

    @property
    def text(self) -> str:
        """``62286`` or ``1000-2000`` (the form used in rule comments and firewalld/ufw)."""
        return str(self.first) if self.first == self.last else "%d-%d" % (self.first, self.last)


class OpenSpec(NamedTuple("OpenSpec", [
    ("tag", str), ("ports", Tuple[Port, ...]), ("direction", str), ("sources", Tuple[object, ...]), ("lease", int),
])):
    """A validated request: open ``ports`` for ``sources`` (empty = any) in ``direction``."""

    def sources_of(self, family: int) -> List[Optional[str]]:
        """The sources of one IP family as CIDR text; ``[None]`` (any) when no source was given.

        When only sources of the other family were given, this family gets no rule at all: an
        opening scoped to an IPv4 controller must not open IPv6 to everyone.
        """
        if not self.sources:
            return [None]
        return [str(net) for net in self.sources if net.version == family]


class Rule(NamedTuple("Rule", [("key", str), ("hook", str), ("family", int), ("proto", str), ("port", Port),
                               ("peer", Optional[str]), ("reply", bool)])):
    """One accept rule, independent of the backend.

    ``hook`` is ``in`` or ``out`` (the packet's direction at this node), ``peer`` the remote
    address (source of inbound, destination of outbound packets), ``reply`` marks the companion
    rule that lets the replies of an opened connection pass a DROP policy on the other hook.
    ``family`` is 4, 6, or 0 for a rule without an address (it fits both families).
    """


def validate_tag(tag: object, allow_sweep: bool = False) -> str:
    if allow_sweep and tag == SWEEP:
        return SWEEP
    if not isinstance(tag, str) or not TAG_RE.fullmatch(tag):
        extra = " (or '*' with state=closed to sweep)" if allow_sweep else ""
        raise FirewallError("tag %r is invalid: it must be 1 to 32 characters of a-z, 0-9 and '-'%s" % (tag, extra))
    return tag


def parse_port(value: object) -> Port:
    """``62286``, ``62286/tcp``, ``137/udp``, ``1000-2000/tcp`` (protocol tcp when left out)."""
    text = str(value).strip()
    match = PORT_RE.fullmatch(text)
    if not match or isinstance(value, bool):
        raise FirewallError("port %r is invalid: use PORT, PORT/PROTO or FROM-TO/PROTO, e.g. 62286/tcp or 1000-2000/udp" % (value,))
    proto = (match.group("proto") or "tcp").lower()
    if proto not in PROTOCOLS:
        raise FirewallError("protocol %r of port %r is not supported: use one of %s" % (match.group("proto"), text, ", ".join(PROTOCOLS)))
    first = int(match.group("first"))
    last = int(match.group("last") or first)
    for number in (first, last):
        if not 1 <= number <= 65535:
            raise FirewallError("port %r is out of range: port numbers go from 1 to 65535 (in %r)" % (number, text))
    if last < first:
        raise FirewallError("port range %r is reversed: the first port must not be above the last" % (text,))
    return Port(proto, first, last)


def parse_source(value: object):
    """An address or CIDR; host bits must be clear so the rule says exactly what was meant."""
    text = str(value).strip()
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise FirewallError("source %r is not an IP address or CIDR: %s" % (value, exc))
        raise FirewallError("source %r has host bits set: did you mean %s?" % (value, loose))


def build_spec(tag: object, ports: Sequence[object], direction: str = "in", sources: Sequence[object] = (), lease: object = 0) -> OpenSpec:
    """Validate everything before anything is touched (bad input never reaches a firewall)."""
    tag = validate_tag(tag)
    if direction not in DIRECTIONS:
        raise FirewallError("direction %r is invalid: use one of %s" % (direction, ", ".join(DIRECTIONS)))
    if not ports:
        raise FirewallError("ports is empty: state=open needs at least one port")
    if isinstance(lease, bool) or not isinstance(lease, int) or lease < 0:
        raise FirewallError("lease %r is invalid: give whole seconds, 0 for no lease" % (lease,))
    parsed = []
    for value in ports:
        port = parse_port(value)
        if port not in parsed:
            parsed.append(port)
    nets = []
    for value in sources or ():
        net = parse_source(value)
        if net not in nets:
            nets.append(net)
    return OpenSpec(tag, tuple(parsed), direction, tuple(nets), lease)


def rules_for(spec: OpenSpec) -> List[Rule]:
    """The accept rules of a spec: per port and peer, the opening itself plus its reply rule."""
    other = "out" if spec.direction == "in" else "in"
    rules = []
    for port in spec.ports:
        for family in (4, 6):
            for peer in spec.sources_of(family):
                if peer is None and family == 6:
                    continue  # one address-less rule serves both families
                fam = family if peer else 0
                name = "%s-%s-%s-%s" % (spec.direction, port.proto, port.text, peer or "any")
                rules.append(Rule(name, spec.direction, fam, port.proto, port, peer, False))
                rules.append(Rule("ret-" + name, other, fam, port.proto, port, peer, True))
    return rules


def comment_for(tag: str, rule: Rule) -> str:
    """``fleet-firmware:<tag>:<key>``: the tag for close and sweep, the key for idempotence."""
    return "%s:%s:%s" % (MARKER, tag, rule.key)


def comment_prefix(tag: str) -> str:
    """What every comment of ``tag`` starts with (every comment of ours for the sweep)."""
    return MARKER + ":" if tag == SWEEP else "%s:%s:" % (MARKER, tag)


def find_tool(name: str) -> Optional[str]:
    """The full path of a command, also looking in the sbin folders."""
    folders = os.environ.get("PATH", "").split(os.pathsep) + list(EXTRA_PATH)
    for folder in folders:
        candidate = os.path.join(folder, name)
        if folder and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def need_tool(name: str, backend: str) -> str:
    path = find_tool(name)
    if path is None:
        raise FirewallError("backend %r needs the command %r, which was not found (PATH and %s)" % (backend, name, ":".join(EXTRA_PATH)))
    return path


def run(argv: Sequence[str], stdin: Optional[str] = None, check: bool = True) -> Tuple[int, str, str]:
    """Run a command without a shell; ``stdin`` carries batches (never secrets in argv)."""
    proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, close_fds=True)
    out, err = proc.communicate(stdin)
    if check and proc.returncode != 0:
        raise FirewallError("command failed (rc=%d): %s: %s" % (proc.returncode, " ".join(argv), (err or out).strip()))
    return proc.returncode, out, err


def output(argv: Sequence[str], stdin: Optional[str] = None) -> str:
    """The standard output of a command that must succeed."""
    return run(argv, stdin=stdin)[1]


class Result(object):
    """What an operation did (or would do, in check mode)."""

    def __init__(self, backend: str, tool: str = "") -> None:
        self.backend = backend
        self.tool = tool
        self.changed = False
        self.added = []  # type: List[str]
        self.removed = []  # type: List[str]
        self.before = []  # type: List[str]
        self.after = []  # type: List[str]
        self.warnings = []  # type: List[str]

    def as_dict(self) -> Dict[str, object]:
        return {"backend": self.backend, "tool": self.tool, "changed": self.changed, "added": self.added,
                "removed": self.removed, "before": self.before, "after": self.after, "warnings": self.warnings}


class Backend(metaclass=abc.ABCMeta):
    """A firewall. Implementations must be all-or-nothing and touch only objects they tagged."""

    name = ""

    @abc.abstractmethod
    def available(self) -> bool:
        """Whether the tools are there (not whether the firewall is in use)."""

    @abc.abstractmethod
    def list_tag(self, tag: str) -> List[str]:
        """Our objects of ``tag`` (every object of ours for ``*``), as the firewall prints them."""

    @abc.abstractmethod
    def open(self, spec: OpenSpec, check_mode: bool = False) -> Result:
        """Make the rules of ``tag`` exactly those of ``spec``; nothing else changes."""

    @abc.abstractmethod
    def close(self, tag: str, check_mode: bool = False) -> Result:
        """Remove every object of ``tag`` (of ours for ``*``); nothing else changes."""

    def options(self) -> Dict[str, object]:
        """What a lease watchdog needs to build the same backend again."""
        return {}
