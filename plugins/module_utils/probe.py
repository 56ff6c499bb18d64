# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Port reachability probes, shared by the reachable_ports lookup (controller -> node) and the
reach module (node -> controller).

Runs on nodes and on the controller: Python 3.6+, standard library only (no dataclasses, no
``from __future__ import annotations``).

Every probe of one call runs at once in a single-threaded event loop (``selectors``): a call
with many filtered ports takes about one timeout, not one timeout per port.

States:

* ``open``: TCP connect accepted; UDP answered (NetBIOS 137 node-status reply, or any datagram).
* ``closed``: TCP refused (RST); UDP answered by an ICMP port-unreachable.
* ``filtered``: TCP timeout, or unreachable (ICMP host/admin-prohibited, no route).
* ``open|filtered``: UDP without any answer: a listener that stays silent and a firewall that
  drops look the same from outside.
"""
import errno
import ipaddress
import os
import random
import re
import selectors
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Tuple

PROTOCOLS = ("tcp", "udp")
FAMILIES = ("auto", "ipv4", "ipv6")
ERRORS = ("strict", "warn", "ignore")
OPEN, CLOSED, FILTERED, OPEN_FILTERED, UNRESOLVED = "open", "closed", "filtered", "open|filtered", "unresolved"
# For "which address would a client use": a client tries addresses in resolver order and keeps
# the first that answers.
_ANSWERED = (OPEN,)
_PORT_RE = re.compile(r"^(\d{1,5})(?:/([A-Za-z0-9]+))?\Z")
_NAME_RE = re.compile(r"^(?=.{1,253}\Z)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?\Z")
_FAMILY_NAME = {socket.AF_INET: "ipv4", socket.AF_INET6: "ipv6"}
_FAMILY_OF = {"auto": socket.AF_UNSPEC, "ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}
# File descriptors kept free for the rest of the process (Ansible's own pipes, logs).
_FD_RESERVE = 64
NETBIOS_NAME_PORT = 137


class ProbeError(ValueError):
    """Bad input: the message names the bad value."""


# --------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------


def parse_port(spec):
    # type: (Any) -> str
    """``22``, ``"22"``, ``"22/tcp"``, ``"137/udp"`` -> ``"port/proto"``; anything else raises ProbeError."""
    if isinstance(spec, bool):
        raise ProbeError("bad port %r: a port is a number from 1 to 65535, optionally with /tcp or /udp" % (spec,))
    if isinstance(spec, int):
        port, proto = spec, "tcp"
    elif isinstance(spec, str):
        match = _PORT_RE.match(spec.strip())
        if not match:
            raise ProbeError("bad port %r: write it as PORT or PORT/PROTO, for example 22 or 137/udp" % (spec,))
        port, proto = int(match.group(1)), (match.group(2) or "tcp").lower()
        if proto not in PROTOCOLS:
            raise ProbeError("bad port %r: protocol %r is not supported, use tcp or udp" % (spec, match.group(2)))
    else:
        raise ProbeError("bad port %r: a port is a number or a PORT/PROTO string, not a %s" % (spec, type(spec).__name__))
    if not 1 <= port <= 65535:
        raise ProbeError("bad port %r: %d is out of range, a port is a number from 1 to 65535" % (spec, port))
    return "%d/%s" % (port, proto)


def parse_ports(specs):
    # type: (Any) -> List[str]
    """A list of port specs -> unique ``port/proto`` labels, in the order given."""
    if isinstance(specs, (str, int)):
        specs = [specs]
    if not specs:
        raise ProbeError("no ports given: name at least one port, for example 22/tcp")
    labels = []  # type: List[str]
    for spec in specs:
        label = parse_port(spec)
        if label not in labels:
            labels.append(label)
    return labels


def split_host(term):
    # type: (Any) -> Tuple[str, Optional[str]]
    """A host term -> (host, literal address or None). Brackets around IPv6 are dropped; a
    link-local literal keeps its zone (``fe80::1%eth0``)."""
    if not isinstance(term, str) or not term.strip():
        raise ProbeError("bad host %r: a host is a name, an IPv4 address or an IPv6 address" % (term,))
    host = term.strip()
    if host.startswith("[") or host.endswith("]"):
        if not (host.startswith("[") and host.endswith("]")):
            raise ProbeError("bad host %r: unbalanced brackets (write [fd00::1] or fd00::1, without a port)" % (term,))
        host = host[1:-1]
        if ":" not in host:
            raise ProbeError("bad host %r: brackets are only for IPv6 addresses" % (term,))
    # RFC 6874 writes the zone as %25 inside URLs; the socket API wants a bare %.
    host = host.replace("%25", "%")
    address, sep, zone = host.partition("%")
    if sep and not zone:
        raise ProbeError("bad host %r: empty zone id after %%" % (term,))
    try:
        literal = ipaddress.ip_address(address)
    except ValueError:
        literal = None
    if literal is not None:
        if zone and literal.version != 6:
            raise ProbeError("bad host %r: only IPv6 addresses take a zone id" % (term,))
        if zone and not re.match(r"^[A-Za-z0-9_.@-]{1,15}\Z", zone):
            raise ProbeError("bad host %r: bad zone id %r" % (term, zone))
        return host, host
    if ":" in host:
        raise ProbeError("bad host %r: not an IPv6 address, and a host term takes no port (give ports in the ports option)" % (term,))
    if not _NAME_RE.match(host):
        raise ProbeError("bad host %r: not a valid host name or address" % (term,))
    return host, None


def check_options(timeout, family, errors):
    # type: (Any, str, str) -> float
    """Validate the common options; returns the timeout as a float."""
    if family not in FAMILIES:
        raise ProbeError("bad family %r: use one of %s" % (family, ", ".join(FAMILIES)))
    if errors not in ERRORS:
        raise ProbeError("bad errors %r: use one of %s" % (errors, ", ".join(ERRORS)))
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        raise ProbeError("bad timeout %r: a number of seconds > 0" % (timeout,))
    if isinstance(timeout, bool) or not 0 < value <= 3600:
        raise ProbeError("bad timeout %r: a number of seconds > 0 and <= 3600" % (timeout,))
    return value


# --------------------------------------------------------------------------------------------
# Resolution
# --------------------------------------------------------------------------------------------


def _getaddrinfo(host, family):
    # type: (str, str) -> List[Tuple[int, Any]]
    infos = socket.getaddrinfo(host, None, _FAMILY_OF[family], socket.SOCK_STREAM)
    seen = []  # type: List[Tuple[int, Any]]
    for fam, _type, _proto, _canon, sockaddr in infos:
        if fam in _FAMILY_NAME and all(sockaddr != s for _f, s in seen):
            seen.append((fam, sockaddr))
    return seen


def resolve(term, family="auto"):
    # type: (str, str) -> List[Tuple[int, Any, str]]
    """A host term -> [(family, sockaddr without port, address text)] in the resolver's order
    (RFC 6724: the order a client tries them). Raises ProbeError naming the term."""
    host, literal = split_host(term)
    try:
        infos = _getaddrinfo(host, family)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        if literal is not None and family != "auto":
            raise ProbeError("host %r is not an %s address (family=%s)" % (term, family.replace("ip", "IP"), family))
        raise ProbeError("cannot resolve host %r: %s" % (term, getattr(exc, "strerror", None) or exc))
    if not infos:
        raise ProbeError("host %r has no %s address" % (term, family))
    resolved = []
    for fam, sockaddr in infos:
        text = sockaddr[0]
        if fam == socket.AF_INET6 and sockaddr[3] and literal is not None and "%" in literal:
            text = literal
        resolved.append((fam, sockaddr, text))
    return resolved


def resolve_all(terms, family):
    # type: (List[str], str) -> Tuple[Dict[str, List[Tuple[int, Any, str]]], Dict[str, str]]
    """Resolve every term at once (names in threads: getaddrinfo blocks). Returns (addresses by
    term, error by term)."""
    found = {}  # type: Dict[str, List[Tuple[int, Any, str]]]
    failed = {}  # type: Dict[str, str]
    unique = list(dict.fromkeys(terms))
    workers = max(1, min(32, len(unique)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [(term, pool.submit(resolve, term, family)) for term in unique]
    for term, future in futures:
        try:
            found[term] = future.result()
        except ProbeError as exc:
            failed[term] = str(exc)
    return found, failed


# --------------------------------------------------------------------------------------------
# NetBIOS node status (RFC 1002 4.2.17): the one UDP port whose service we can make answer
# --------------------------------------------------------------------------------------------


def netbios_status_request(transaction_id):
    # type: (int) -> bytes
    """A NetBIOS NBSTAT query for the wildcard name ``*``: every NetBIOS node answers it."""
    name = b"*" + b"\0" * 15
    encoded = bytes(bytearray(c for b in bytearray(name) for c in (0x41 + (b >> 4), 0x41 + (b & 0x0F))))
    header = struct.pack(">HHHHHH", transaction_id, 0x0000, 1, 0, 0, 0)
    return header + b"\x20" + encoded + b"\x00" + struct.pack(">HH", 0x0021, 0x0001)


def netbios_names(reply, transaction_id):
    # type: (bytes, int) -> Optional[List[str]]
    """The names of a node-status reply to ``transaction_id``, or None if it is not one."""
    if len(reply) < 57 or struct.unpack(">H", reply[:2])[0] != transaction_id or not reply[2] & 0x80:
        return None
    offset = 12 + 34 + 4 + 4 + 2  # header, name, type+class, TTL, RDLENGTH
    try:
        count = bytearray(reply)[offset]
        names = []
        for index in range(count):
            start = offset + 1 + index * 18
            raw = reply[start:start + 15]
            if len(raw) < 15:
                break
            names.append(raw.decode("ascii", "replace").rstrip())
    except IndexError:
        return []
    return sorted(set(n for n in names if n))


# --------------------------------------------------------------------------------------------
# The probes
# --------------------------------------------------------------------------------------------


class Probe(object):
    """One (address, port, protocol) check and, when done, its outcome."""

    __slots__ = ("family", "sockaddr", "address", "port", "proto", "sock", "started", "state", "latency_ms", "error", "txid", "info")

    def __init__(self, family, sockaddr, address, port, proto):
        # type: (int, Any, str, int, str) -> None
        self.family, self.sockaddr, self.address, self.port, self.proto = family, sockaddr, address, port, proto
        self.sock = None  # type: Optional[socket.socket]
        self.started = 0.0
        self.state = None  # type: Optional[str]
        self.latency_ms = None  # type: Optional[float]
        self.error = None  # type: Optional[str]
        self.txid = 0
        self.info = None  # type: Optional[Dict[str, Any]]

    @property
    def label(self):
        # type: () -> str
        return "%d/%s" % (self.port, self.proto)

    def target(self):
        # type: () -> Any
        return (self.sockaddr[0], self.port) + tuple(self.sockaddr[2:])

    def finish(self, state, error=None, answered=True):
        # type: (str, Optional[str], bool) -> None
        self.state, self.error = state, error
        if answered:
            self.latency_ms = round((time.monotonic() - self.started) * 1000.0, 3)

    def result(self):
        # type: () -> Dict[str, Any]
        out = {"address": self.address, "family": _FAMILY_NAME[self.family], "state": self.state, "latency_ms": self.latency_ms}
        if self.error:
            out["error"] = self.error
        if self.info:
            out.update(self.info)
        return out


def _oserror_text(code):
    # type: (int) -> str
    return "%s (%s)" % (os.strerror(code), errno.errorcode.get(code, code))


def _classify(code):
    # type: (int) -> str
    """A socket error number -> state. Refused is an answer (closed); the rest is filtered."""
    return CLOSED if code == errno.ECONNREFUSED else FILTERED


def _start(probe, selector):
    # type: (Probe, selectors.BaseSelector) -> None
    """Open the probe's socket and send its first packet; registers it unless already finished."""
    probe.started = time.monotonic()
    kind = socket.SOCK_STREAM if probe.proto == "tcp" else socket.SOCK_DGRAM
    try:
        sock = socket.socket(probe.family, kind)
    except OSError as exc:
        probe.finish(FILTERED, "cannot open a socket: %s" % exc, answered=False)
        return
    sock.setblocking(False)
    probe.sock = sock
    try:
        if probe.proto == "tcp":
            code = sock.connect_ex(probe.target())
            if code not in (0, errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
                _close(probe, selector)
                probe.finish(_classify(code), _oserror_text(code))
                return
            selector.register(sock, selectors.EVENT_WRITE, probe)
        else:
            # A connected UDP socket receives the ICMP port-unreachable as ECONNREFUSED.
            sock.connect(probe.target())
            if probe.port == NETBIOS_NAME_PORT:
                probe.txid = random.randint(1, 0xFFFF)
                sock.send(netbios_status_request(probe.txid))
            else:
                sock.send(b"")
            selector.register(sock, selectors.EVENT_READ, probe)
    except OSError as exc:
        _close(probe, selector)
        code = exc.errno or 0
        probe.finish(_classify(code), _oserror_text(code))


def _close(probe, selector):
    # type: (Probe, selectors.BaseSelector) -> None
    if probe.sock is not None:
        try:
            selector.unregister(probe.sock)
        except (KeyError, ValueError):
            pass
        probe.sock.close()
        probe.sock = None


def _on_event(probe, selector):
    # type: (Probe, selectors.BaseSelector) -> None
    sock = probe.sock
    if sock is None:
        return
    if probe.proto == "tcp":
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        _close(probe, selector)
        probe.finish(OPEN if code == 0 else _classify(code), None if code == 0 else _oserror_text(code))
        return
    try:
        data = sock.recv(4096)
    except (BlockingIOError, InterruptedError):
        return
    except OSError as exc:
        _close(probe, selector)
        probe.finish(_classify(exc.errno or 0), _oserror_text(exc.errno or 0))
        return
    if probe.port == NETBIOS_NAME_PORT:
        names = netbios_names(data, probe.txid)
        if names is None:
            return  # not our answer: keep waiting
        probe.info = {"netbios_names": names}
    _close(probe, selector)
    probe.finish(OPEN)


def _fd_budget(wanted):
    # type: (int) -> int
    """How many sockets may be open at once: raise the soft file limit if the hard one allows,
    and keep a reserve for the rest of the process."""
    try:
        import resource  # POSIX only: absent on Windows controllers, which Ansible does not support anyway

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = wanted + _FD_RESERVE
        if soft != resource.RLIM_INFINITY and soft < target and (hard == resource.RLIM_INFINITY or hard > soft):
            new = target if hard == resource.RLIM_INFINITY else min(target, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        if soft == resource.RLIM_INFINITY:
            return wanted
        return max(1, min(wanted, soft - _FD_RESERVE))
    except (ImportError, ValueError, OSError):
        return max(1, min(wanted, 512))


def run_probes(probes, timeout):
    # type: (List[Probe], float) -> List[Probe]
    """Run every probe concurrently; each gets ``timeout`` seconds from its own start."""
    selector = selectors.DefaultSelector()
    waiting = list(reversed(probes))
    limit = _fd_budget(len(probes))
    active = []  # type: List[Probe]
    try:
        while waiting or active:
            while waiting and len(active) < limit:
                probe = waiting.pop()
                _start(probe, selector)
                if probe.state is None:
                    active.append(probe)
            now = time.monotonic()
            wait = max(0.0, min(p.started + timeout for p in active) - now) if active else 0.0
            for key, _events in selector.select(wait) if active else ():
                _on_event(key.data, selector)
            now = time.monotonic()
            for probe in active:
                if probe.state is None and now - probe.started >= timeout:
                    _close(probe, selector)
                    probe.finish(FILTERED if probe.proto == "tcp" else OPEN_FILTERED, "no answer within %gs" % timeout, answered=False)
            active = [p for p in active if p.state is None]
    finally:
        for probe in active:
            _close(probe, selector)
        selector.close()
    return probes


# --------------------------------------------------------------------------------------------
# The whole check: hosts x ports
# --------------------------------------------------------------------------------------------


def _summary(label, probes):
    # type: (str, List[Probe]) -> Dict[str, Any]
    """One port of one host: the state at the address a client would use (the first address in
    resolver order that answers open, else the first address), plus every address's result."""
    chosen = next((p for p in probes if p.state in _ANSWERED), probes[0])
    entry = chosen.result()
    entry["addresses"] = [p.result() for p in probes]
    return entry


def _unresolved(labels, error):
    # type: (List[str], str) -> Dict[str, Any]
    return dict((label, {"state": UNRESOLVED, "address": None, "family": None, "latency_ms": None, "error": error, "addresses": []}) for label in labels)


def check(hosts, ports, timeout=1.0, family="auto", errors="strict"):
    # type: (Any, Any, Any, str, str) -> Tuple[List[Dict[str, Any]], List[str]]
    """Probe every port of every host at once.

    Returns (one dict per host, in the order given, keyed by ``port/proto``; warnings). Bad
    input raises ProbeError before any packet is sent; so does an unresolvable host with
    ``errors=strict``. With ``warn`` or ``ignore``, such a host's ports are ``unresolved``.
    """
    seconds = check_options(timeout, family, errors)
    labels = parse_ports(ports)
    if isinstance(hosts, str):
        hosts = [hosts]
    if not hosts:
        raise ProbeError("no hosts given: name at least one host to probe")
    for term in hosts:
        split_host(term)
    found, failed = resolve_all(list(hosts), family)
    if failed and errors == "strict":
        raise ProbeError("; ".join(failed[t] for t in hosts if t in failed))
    plan = {}  # type: Dict[Tuple[str, str], List[Probe]]
    probes = []  # type: List[Probe]
    for term, addresses in found.items():
        for label in labels:
            port, proto = label.split("/")
            plan[(term, label)] = [Probe(fam, sockaddr, text, int(port), proto) for fam, sockaddr, text in addresses]
            probes.extend(plan[(term, label)])
    run_probes(probes, seconds)
    results = []
    for term in hosts:
        if term in failed:
            results.append(_unresolved(labels, failed[term]))
        else:
            results.append(dict((label, _summary(label, plan[(term, label)])) for label in labels))
    warnings = [failed[t] for t in dict.fromkeys(hosts) if t in failed] if errors == "warn" else []
    return results, warnings
