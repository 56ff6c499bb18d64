# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The preflight's logic: which ports a node's path needs, what each blocked port breaks, and
the one table and JSON report of a run.

Note that this plugin util is **PRIVATE** to the collection. Controller-only code.

The words (steps, consequences, severities) live in ``module_utils/ports.py`` beside the
ports; this module only applies them. Used by the ``fleet.firmware.preflight`` action (one node)
and the ``fleet.firmware.preflight_report`` action (the run's table and JSON).
"""
from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import socket
import typing as t

from ansible_collections.fleet.firmware.plugins.module_utils import ports as fleet_ports
from ansible_collections.fleet.firmware.plugins.module_utils import probe as fleet_probe
from ansible_collections.fleet.firmware.plugins.module_utils import route as netroute

# Connection plugins and the path and port they imply when the inventory says nothing.
_WINDOWS_CONNECTIONS = ("winrm", "psrp", "ansible.builtin.winrm", "ansible.builtin.psrp", "ansible.windows.psrp")
_SSH_CONNECTIONS = ("ssh", "paramiko", "paramiko_ssh", "ansible.builtin.ssh", "ansible.builtin.paramiko_ssh", "ansible.netcommon.libssh")
NOT_CHECKED = "not checked"
# Column order of the table: the ports' roles in the order ports.py lists them.
_ROLE_RANK = {role: rank for rank, role in enumerate(["ssh", fleet_ports.CONNECTION_ROLE, *fleet_ports.ROLES])}


class PreflightError(ValueError):
    """Bad preflight input; the message names the bad value."""


@dataclasses.dataclass
class PortPlan:
    """One port the preflight checks for a node."""

    label: str  # "22/tcp"
    role: str  # a key of ports.ROLES, or ports.CONNECTION_ROLE
    direction: str  # ports.TO_NODE or ports.FROM_NODE
    connection: bool = False  # the Ansible connection runs over this port too


# --------------------------------------------------------------------------------------------
# Which ports
# --------------------------------------------------------------------------------------------


def default_path(connection: str, shell_family: str = "") -> str:
    """The path of a node whose inventory sets no ``fleet_path``: Windows for WinRM/PSRP or a
    PowerShell shell, else Linux."""
    if connection in _WINDOWS_CONNECTIONS or shell_family == "powershell":
        return "windows"
    return "linux"


def connection_port(connection: str, port: t.Any, scheme: str | None = None) -> int | None:
    """The TCP port the Ansible connection uses (None for local and unknown connections)."""
    if port not in (None, ""):
        return check_port("connection port", port)
    if connection in _SSH_CONNECTIONS:
        return fleet_ports.SSH_PORT
    if connection in _WINDOWS_CONNECTIONS:
        return fleet_ports.WINRM_HTTP_PORT if scheme == "http" else fleet_ports.WINRM_HTTPS_PORT
    return None


def check_port(name: str, value: t.Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise PreflightError(f"bad {name} {value!r}: a port is a number from 1 to 65535")
    return value


def plan_ports(path: str, agent_port: int, engine_port: int, conn_port: int | None) -> list[PortPlan]:
    """The ports of a node's path (controller -> node), its connection port, then the engine
    port (node -> controller)."""
    if path not in fleet_ports.PATHS:
        raise PreflightError(f"bad path {path!r}: use one of {', '.join(fleet_ports.PATHS)}")
    plans = []
    for role in fleet_ports.PATH_ROLES[path]:
        label = f"{agent_port}/tcp" if role == "agent" else fleet_ports.default_label(role)
        if role == "ssh" and conn_port is not None:
            label = f"{conn_port}/tcp"  # SSH on another port is still the SSH step
        plans.append(PortPlan(label, role, fleet_ports.TO_NODE))
    if conn_port is not None:
        label = f"{conn_port}/tcp"
        same = [p for p in plans if p.label == label]
        for plan in same:
            plan.connection = True
        if not same:
            plans.insert(0, PortPlan(label, fleet_ports.CONNECTION_ROLE, fleet_ports.TO_NODE, connection=True))
    plans.append(PortPlan(f"{engine_port}/tcp", "engine", fleet_ports.FROM_NODE))
    return plans


# --------------------------------------------------------------------------------------------
# Addresses
# --------------------------------------------------------------------------------------------


def resolve_addresses(terms: t.Sequence[str]) -> list[tuple[str, str]]:
    """Host names or literals -> unique [(family, address)] in resolver order."""
    out: list[tuple[str, str]] = []
    for term in terms:
        try:
            resolved = fleet_probe.resolve(str(term))
        except fleet_probe.ProbeError as exc:
            raise PreflightError(str(exc)) from None
        for family, _sockaddr, text in resolved:
            entry = ("ipv6" if family == socket.AF_INET6 else "ipv4", text)
            if entry not in out:
                out.append(entry)
    return out


def route_source(address: str) -> str | None:
    """The controller's own address on the route to ``address`` (the kernel's choice of source,
    with a link-local source's interface); None when there is no route."""
    try:
        return netroute.route_source(address, with_scope=True)
    except OSError:
        return None


def controller_addresses(node_addresses: list[tuple[str, str]], configured: t.Sequence[str]) -> dict[str, str | None]:
    """The controller address a node should use, per family of the node's addresses: the first
    configured address of that family, else the source of the controller's route to the node."""
    wanted = dict.fromkeys(family for family, _address in node_addresses)
    given = resolve_addresses(configured) if configured else []
    out: dict[str, str | None] = {}
    for family in wanted:
        mine = [address for fam, address in given if fam == family]
        if mine:
            out[family] = mine[0]
            continue
        out[family] = next((s for s in (route_source(a) for f, a in node_addresses if f == family) if s), None)
    return out


def family_of(address: str) -> str:
    return "ipv6" if ipaddress.ip_address(address.partition("%")[0]).version == 6 else "ipv4"


# --------------------------------------------------------------------------------------------
# What breaks
# --------------------------------------------------------------------------------------------


def _usable(role: str, state: str | None) -> bool:
    return state in fleet_ports.usable_states(role)


def port_problem(plan: PortPlan, state: str, usable_roles: set[str], delivery: str) -> dict | None:
    """The problem of one port in one state, or None when the port does its job.

    ``usable_roles``: the roles of this node and family whose ports are usable (for fallbacks).
    """
    if plan.connection and state != "open":
        role = fleet_ports.CONNECTION_ROLE
    else:
        role = plan.role
    if _usable(role, state):
        return None
    impact = fleet_ports.IMPACTS[role]
    severity = impact["severity"]
    text = impact["breaks"]
    fallback = impact.get("fallback", ())
    if fallback and usable_roles.intersection(fallback):
        severity = impact.get("fallback_severity", severity)
        text += "; " + impact["with_fallback"]
    elif fallback and impact.get("without_fallback"):
        text += "; " + impact["without_fallback"]
    if role == "engine" and delivery in ("push", "url"):
        severity = impact["without_engine_severity"]
        text = f"pull delivery impossible; delivery is {delivery}, which does not need it"
    if state == NOT_CHECKED:
        severity = fleet_ports.INFO
    where = " from node" if plan.direction == fleet_ports.FROM_NODE else ""
    return {"port": plan.label, "role": role, "direction": plan.direction, "state": state, "severity": severity,
            "message": f"{plan.label}{where} {state}: {text}"}


def evaluate(plans: list[PortPlan], rows: list[dict], delivery: str) -> list[dict]:
    """Every problem of a node, per row (address), most severe first within each row."""
    rank = {fleet_ports.BLOCKING: 0, fleet_ports.WARNING: 1, fleet_ports.INFO: 2}
    problems = []
    for row in rows:
        usable = {p.role for p in plans if _usable(p.role, row["ports"].get(p.label, {}).get("state"))}
        found = []
        for plan in plans:
            entry = row["ports"].get(plan.label)
            if entry is None:
                continue
            problem = port_problem(plan, entry["state"], usable, delivery)
            if problem:
                problem.update(family=row["family"], address=row["address"])
                found.append(problem)
        problems.extend(sorted(found, key=lambda p: rank[p["severity"]]))
    return problems


def settle(problems: list[dict], rows: list[dict]) -> list[str]:
    """The reasons the node fails, and the severities that hold for the node as a whole.

    A blocking problem fails the node only when it holds on every address of the node: a client
    uses the address that answers. On some addresses only, it becomes a warning (changed in
    place) that says so.
    """
    every = {row["address"] for row in rows}
    where: dict[tuple[str, str], set] = {}
    for problem in problems:
        if problem["severity"] == fleet_ports.BLOCKING:
            where.setdefault((problem["port"], problem["direction"]), set()).add(problem["address"])
    reasons: dict[str, list[str]] = {}
    for problem in problems:
        if problem["severity"] != fleet_ports.BLOCKING:
            continue
        if where[(problem["port"], problem["direction"])] != every:
            problem["severity"] = fleet_ports.WARNING
            problem["message"] += "; the node's other address works"
            continue
        reasons.setdefault(problem["message"], []).append(f"{problem['family']} {problem['address']}")
    if len(rows) == 1:
        return list(reasons)
    return [f"{message} ({', '.join(where_)})" for message, where_ in reasons.items()]


# --------------------------------------------------------------------------------------------
# The run's report
# --------------------------------------------------------------------------------------------


_REPORTED = ("path", "connection", "engine_port", "controller", "listener", "rows", "problems", "blocking")


def build_report(results: dict[str, t.Any]) -> dict:
    """The run's report from each host's preflight result (``register``-ed)."""
    hosts = []
    for name, result in results.items():
        result = result if isinstance(result, dict) else {}
        if "rows" not in result:
            # The preflight task itself failed (bad input, unexpected error): say so.
            hosts.append({"node": name, "path": None, "ok": False, "rows": [], "problems": [],
                          "blocking": [str(result.get("msg") or "no preflight result for this host")]})
            continue
        kept = {key: result.get(key) for key in _REPORTED}
        hosts.append({"node": name, **kept, "ok": not result.get("blocking")})
    failed = [h["node"] for h in hosts if not h["ok"]]
    return {
        "generated_at": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat(),
        "summary": {"nodes": len(hosts), "ok": len(hosts) - len(failed), "failed": len(failed), "failed_nodes": failed},
        "hosts": hosts,
    }


def _columns(report: dict) -> list[tuple[str, str]]:
    """(label, direction) columns: every port any node was checked on, ordered by role."""
    seen: dict[tuple[str, str], int] = {}
    for host in report["hosts"]:
        for row in host["rows"]:
            for label, entry in row["ports"].items():
                key = (label, entry["direction"])
                rank = _ROLE_RANK.get(entry["role"], len(_ROLE_RANK))
                seen[key] = min(rank, seen.get(key, rank))
    return sorted(seen, key=lambda key: (key[1] == fleet_ports.FROM_NODE, seen[key], int(key[0].split("/")[0])))


def render_table(report: dict) -> list[str]:
    """The run's table: one line per node and address family, then what each problem breaks."""
    columns = _columns(report)
    header = ["node", "family", "address"] + [label if d == fleet_ports.TO_NODE else f"{label} from node" for label, d in columns] + ["result"]
    lines: list[list[str]] = []
    for host in report["hosts"]:
        if not host["rows"]:
            lines.append([host["node"], "-", "-"] + ["-"] * len(columns) + ["FAILED"])
        for row in host["rows"]:
            cells = [host["node"], row["family"], row["address"]]
            for label, direction in columns:
                entry = row["ports"].get(label)
                cells.append(entry["state"] if entry and entry["direction"] == direction else "-")
            cells.append("ok" if host["ok"] else "FAILED")
            lines.append(cells)
    widths = [max(len(r[i]) for r in [header] + lines) for i in range(len(header))]
    out = ["  ".join(cell.ljust(width) for cell, width in zip(r, widths)).rstrip() for r in [header] + lines]
    notes = []
    for host in report["hosts"]:
        for reason in host["blocking"] if not host["rows"] else ():
            notes.append(f"{host['node']}: FAILED: {reason}")
        for problem in host["problems"]:
            mark = "FAILS" if problem["severity"] == fleet_ports.BLOCKING else problem["severity"]
            notes.append(f"{host['node']} {problem['family']}: {problem['message']} [{mark}]")
    notes.extend(_listener_notes(report))
    summary = report["summary"]
    tail = f"{summary['nodes']} node(s): {summary['ok']} ok, {summary['failed']} failed"
    if summary["failed_nodes"]:
        tail += f" ({', '.join(summary['failed_nodes'])})"
    return out + ([""] + notes if notes else []) + ["", tail]


def _listener_notes(report: dict) -> list[str]:
    """Controller-side findings: another program on the engine port, an address not ours."""
    notes: dict[str, None] = {}
    for host in report["hosts"]:
        for status in (host.get("listener") or {}).values():
            if status.get("listener") in ("other", "failed"):
                notes[f"controller: {status['detail']} [warning]"] = None
    return list(notes)
