# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The small Python API of the firewall backends (the module, the node agent, the engine).

    spec = build_spec("run-42", ["62286/tcp"], sources=["198.18.2.1"], lease=600)
    result = open_ports(spec)              # dict: changed, backend, tool, rules, lease_expires, diff
    result = close_tag("run-42")           # removes exactly that tag's objects (and its lease)
    result = close_tag("*")                # sweep: every object this collection ever made
    backend = detect_backend()             # firewalld > ufw > nftables > iptables

All of it raises ``FirewallError`` (message names the bad value) and is all-or-nothing.
Python 3.6+, standard library only.
"""
import datetime
import time
from typing import Dict, List, Optional

from ansible_collections.fleet.firmware.plugins.module_utils.firewall import lease, state
from ansible_collections.fleet.firmware.plugins.module_utils.firewall.common import (
    SWEEP, Backend, FirewallError, OpenSpec, build_spec, validate_tag,
)
from ansible_collections.fleet.firmware.plugins.module_utils.firewall.firewalld import FirewalldBackend
from ansible_collections.fleet.firmware.plugins.module_utils.firewall.iptables import IptablesBackend, present_variants
from ansible_collections.fleet.firmware.plugins.module_utils.firewall.nftables import NftablesBackend
from ansible_collections.fleet.firmware.plugins.module_utils.firewall.ufw import UfwBackend

LINUX_BACKENDS = ("iptables", "nftables", "firewalld", "ufw")
BACKENDS = ("auto",) + LINUX_BACKENDS + ("windows",)

__all__ = ["BACKENDS", "FirewallError", "build_spec", "close_tag", "detect_backend", "make_backend", "open_ports"]


def make_backend(name: str, options: Optional[Dict[str, object]] = None) -> Backend:
    options = options or {}
    if name == "iptables":
        return IptablesBackend(options.get("variant"))  # type: ignore[arg-type]
    if name == "nftables":
        return NftablesBackend()
    if name == "firewalld":
        return FirewalldBackend()
    if name == "ufw":
        return UfwBackend()
    if name == "windows":
        raise FirewallError("backend 'windows' runs only on Windows nodes (the firewall.ps1 twin of this module)")
    raise FirewallError("backend %r is unknown: use one of %s" % (name, ", ".join(BACKENDS)))


def detect_backend() -> Backend:
    """firewalld if running, else ufw if active, else nftables if it has a ruleset and no
    iptables-nft tables, else iptables (legacy when legacy tables exist, else the system's)."""
    firewalld = FirewalldBackend()
    if firewalld.running():
        return firewalld
    ufw = UfwBackend()
    if ufw.active():
        return ufw
    nft = NftablesBackend()
    if nft.available():
        items = nft.ruleset()
        tables = [(i["table"]["family"], i["table"]["name"]) for i in items if "table" in i]
        users = [t for t in tables if not t[1].startswith("fleet_firmware_")]
        if users and not any(nft.is_iptables_nft(items, f, n) for f, n in users):
            return nft
    if present_variants():
        return IptablesBackend()
    if nft.available():
        return nft
    raise FirewallError("no firewall tool found: none of firewall-cmd, ufw, nft, iptables is installed")


def _utc(epoch: Optional[float]) -> Optional[str]:
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _report(backend: Backend, result, lease_expires: Optional[float], added: bool) -> Dict[str, object]:
    return {
        "changed": result.changed,
        "backend": backend.name,
        "tool": result.tool,
        "rules": result.added if added else result.removed,
        "rules_removed": result.removed if added else [],
        "lease_expires": _utc(lease_expires),
        "diff": {"before": "".join(l + "\n" for l in result.before), "after": "".join(l + "\n" for l in result.after)},
        "warnings": result.warnings,
    }


def _require_running(backend: Backend) -> None:
    """A daemon firewall that is installed but not running would take rules and enforce none."""
    if isinstance(backend, FirewalldBackend) and not backend.running():
        raise FirewallError("backend 'firewalld' is installed but not running here (firewall-cmd --state): nothing to open ports in")
    if isinstance(backend, UfwBackend) and not backend.active():
        raise FirewallError("backend 'ufw' is installed but not active here (ufw status): its rules would not take effect")


def open_ports(spec: OpenSpec, backend: str = "auto", check_mode: bool = False) -> Dict[str, object]:
    """Open ``spec`` (idempotent: the same spec again changes nothing and renews the lease).

    The lease starts *before* the rules are added: if this process dies half-way, the
    watchdog still closes whatever got opened.
    """
    chosen = detect_backend() if backend == "auto" else make_backend(backend)
    if not chosen.available():
        raise FirewallError("backend %r needs the command %r, which was not found on this host" % (chosen.name, chosen.tool))
    _require_running(chosen)
    if check_mode:
        result = chosen.open(spec, check_mode=True)
        return _report(chosen, result, time.time() + spec.lease if spec.lease else None, True)
    with state.lock():
        had_lease = lease.expires(spec.tag) is not None
        until = lease.start(spec.tag, chosen.name, chosen.options(), spec.lease) if spec.lease else None
        try:
            result = chosen.open(spec)
        except Exception:
            if spec.lease and not had_lease:
                lease.cancel(spec.tag)
            raise
        if not spec.lease:
            lease.cancel(spec.tag)
    return _report(chosen, result, until, True)


def sweep_backends() -> List[Backend]:
    """Every backend that may hold objects of ours here (a close with ``auto`` visits each)."""
    found = [IptablesBackend(v) for v in present_variants()]  # type: List[Backend]
    for candidate in (NftablesBackend(), FirewalldBackend(), UfwBackend()):
        if isinstance(candidate, FirewalldBackend):
            usable = candidate.running()
        elif isinstance(candidate, UfwBackend):
            usable = candidate.active()
        else:
            usable = candidate.available()
        if usable:
            found.append(candidate)
    return found


def close_tag(tag: str, backend: str = "auto", check_mode: bool = False) -> Dict[str, object]:
    """Remove exactly the objects of ``tag`` (``*``: all of ours) and its lease."""
    tag = validate_tag(tag, allow_sweep=True)
    backends = sweep_backends() if backend == "auto" else [make_backend(backend)]
    if not backends:
        raise FirewallError("no firewall tool found: none of firewall-cmd, ufw, nft, iptables is installed")
    with state.lock():
        merged = None
        for one in backends:
            result = one.close(tag, check_mode=check_mode)
            if merged is None:
                merged = result
            else:
                merged.before += result.before
                merged.removed += result.removed
                merged.changed = merged.changed or result.changed
        tags = state.tags("lease-") if tag == SWEEP else [tag]
        if not check_mode:
            for one in tags:
                lease.cancel(one)
    report = _report(backends[0], merged, None, False)
    report["backend"] = ", ".join(b.name + ("" if not getattr(b, "variant", "") else "-" + getattr(b, "variant")) for b in backends)
    return report
