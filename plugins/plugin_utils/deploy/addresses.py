# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Node ids, name resolution, the controller's address facing a node, the run folder and its lock.

Note that this plugin util is **PRIVATE** to the collection. It can have breaking changes at
any time. (The agent action re-exports these under their old names.)
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import stat
import typing as t


class AddressError(Exception):
    """A node address that cannot be resolved or reached; the message names it."""


def default_run_dir(tag: str) -> str:
    return os.path.join(os.path.expanduser("~"), ".ansible", "fleet-firmware", "runs", tag)


def node_id_of(hostname: str) -> str:
    """A name usable in certificate file names (letters, digits, . _ : -)."""
    cleaned = re.sub(r"[^A-Za-z0-9._:-]", "_", hostname).lstrip(".")
    return cleaned[:128] or "node"


def check_run_dir(path: str) -> str:
    """``path`` as a run folder: refused when it exists and is not a directory of this user's, or is
    group- or world-writable (another local user could plant certificates, ledgers or state
    there). A folder that does not exist yet is made 0700 by whoever writes first."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return path
    if not stat.S_ISDIR(st.st_mode):
        raise AddressError(f"run_dir {path!r} is not a directory (a symbolic link or a file is not accepted)")
    if st.st_uid != os.getuid():
        raise AddressError(f"run_dir {path!r} is owned by uid {st.st_uid}, not by this user (uid {os.getuid()}): refused")
    if st.st_mode & 0o022:
        raise AddressError(f"run_dir {path!r} is group- or world-writable (mode {stat.S_IMODE(st.st_mode):04o}): refused; "
                           "chmod go-w it or give another run_dir")
    return path


def unique_node_id(hostname: str, play_hosts: t.Iterable[str]) -> str:
    """``hostname``'s node id, refused when another host of the play maps to the same one (``web 1``
    and ``web_1``, or a shared 128-character prefix): they would share certificates, session and
    ledger. Each of them fails on its own task, naming the others; the rest of the play goes on."""
    node = node_id_of(hostname)
    others = sorted({str(h) for h in play_hosts if str(h) != hostname and node_id_of(str(h)) == node})
    if others:
        raise AddressError(f"inventory host {hostname!r} and {', '.join(repr(o) for o in others)} map to the same node id "
                           f"{node[:40]!r}{'...' if len(node) > 40 else ''} (node ids keep letters, digits and . _ : -, at most 128): "
                           "they would share certificates, session and ledger; rename one of them")
    return node


def resolve(host: str) -> list[str]:
    """Every address of ``host`` (A and AAAA), in resolver order, without duplicates."""
    literal = host.strip("[]")
    try:
        infos = socket.getaddrinfo(literal, None, 0, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise AddressError(f"cannot resolve the node's address {host!r}: {exc}") from None
    found: list[str] = []
    for info in infos:
        address = info[4][0]
        if address not in found:
            found.append(address)
    return found


def facing_address(node_address: str) -> str:
    """The controller's own address on the route to ``node_address`` (a UDP connect sends nothing)."""
    family = socket.AF_INET6 if ":" in node_address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((node_address, 9))
        except OSError as exc:
            raise AddressError(f"no route from the controller to the node address {node_address}: {exc}") from None
        return probe.getsockname()[0]


@contextlib.contextmanager
def run_lock(run_dir: str) -> t.Iterator[None]:
    """One fork at a time creates the run's CA."""
    os.makedirs(run_dir, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(run_dir, "agent.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
