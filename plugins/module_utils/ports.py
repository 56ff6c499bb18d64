# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's network ports, defined once: numbers, what each is for, and what breaks
when one is blocked.

Runs on nodes and on the controller: Python 3.6+, standard library only.

Every other piece (the reachable_ports lookup, the reach module, the preflight, later the
agent, the engine and the firewall openings) takes its defaults from here, so a port is
changed in one place. Ports are written as ``"<number>/<proto>"`` labels.
"""
from typing import Dict, List, Optional

SSH_PORT = 22
SMB_PORT = 445
NETBIOS_SESSION_PORT = 139
NETBIOS_NAME_PORT = 137
NETBIOS_DATAGRAM_PORT = 138
WINRM_HTTP_PORT = 5985
WINRM_HTTPS_PORT = 5986
# The node agent's mutual-TLS port (controller -> node), opened only for the run.
AGENT_PORT = 62286
# The controller's per-run engine (node -> controller): TLS, and the plain HTTP variant.
ENGINE_PORT = 63002
ENGINE_PLAIN_PORT = 63001

PATHS = ("linux", "windows")

# Role -> (default label, direction, the step that needs it). Roles, not numbers, carry the
# meaning: a user who moves SSH to 2222 still gets "SSH" messages for 2222/tcp.
ROLES = {
    "ssh": ("%d/tcp" % SSH_PORT, "controller -> Linux node", "SSH: stage the agent, start it, inventory, clean up"),
    "smb": ("%d/tcp" % SMB_PORT, "controller -> Windows node", "SMB: admin$ staging of the agent"),
    "netbios_session": ("%d/tcp" % NETBIOS_SESSION_PORT, "controller -> Windows node", "NetBIOS session: SMB over NetBIOS (fallback for 445)"),
    "netbios_name": ("%d/udp" % NETBIOS_NAME_PORT, "controller -> Windows node", "NetBIOS name service: NetBIOS name lookups"),
    "netbios_datagram": ("%d/udp" % NETBIOS_DATAGRAM_PORT, "controller -> Windows node", "NetBIOS datagram service: browsing"),
    "winrm_http": ("%d/tcp" % WINRM_HTTP_PORT, "controller -> Windows node", "WinRM over HTTP: start the agent, fallback staging"),
    "winrm_https": ("%d/tcp" % WINRM_HTTPS_PORT, "controller -> Windows node", "WinRM over HTTPS (preferred): start the agent, fallback staging"),
    "agent": ("%d/tcp" % AGENT_PORT, "controller -> node", "agent over mutual TLS: job, lease, cancel, push delivery"),
    "engine": ("%d/tcp" % ENGINE_PORT, "node -> controller", "engine over TLS: pull delivery of components and status reports"),
}

# Which roles a path's controller -> node check covers, in display order.
PATH_ROLES = {
    "linux": ("ssh", "agent"),
    "windows": ("smb", "netbios_session", "netbios_name", "netbios_datagram", "winrm_http", "winrm_https", "agent"),
}


def default_label(role):
    # type: (str) -> str
    """The default ``port/proto`` label of a role (``ssh`` -> ``22/tcp``)."""
    return ROLES[role][0]


def path_ports(path, agent_port=AGENT_PORT):
    # type: (str, int) -> List[str]
    """The controller -> node ports of a path (``linux`` or ``windows``) as labels."""
    if path not in PATH_ROLES:
        raise ValueError("unknown path %r: use one of %s" % (path, ", ".join(PATHS)))
    labels = []
    for role in PATH_ROLES[path]:
        labels.append("%d/tcp" % agent_port if role == "agent" else default_label(role))
    return labels


def role_of(label, overrides=None):
    # type: (str, Optional[Dict[str, str]]) -> Optional[str]
    """The role a ``port/proto`` label plays, with ``overrides`` (role -> label) applied first."""
    for role, value in (overrides or {}).items():
        if value == label:
            return role
    for role, spec in ROLES.items():
        if spec[0] == label and role not in (overrides or {}):
            return role
    return None


# --------------------------------------------------------------------------------------------
# What breaks when a port is blocked: the preflight's words, kept beside the ports.
# --------------------------------------------------------------------------------------------

# The Ansible connection's own port, when the path's ports do not already hold it (a Windows
# node reached over SSH, or a Linux node whose SSH is not the ssh role's port).
CONNECTION_ROLE = "connection"
CONNECTION_STEP = "the Ansible connection: every task on the node"

# Severity of a blocked port: "blocking" fails the node in the preflight, "warning" is reported,
# "info" is shown for completeness.
BLOCKING, WARNING, INFO = "blocking", "warning", "info"

# Per role:
#   breaks        what fails when the port is blocked (the text after "<port> <state>: ")
#   severity      without a usable fallback
#   fallback      roles whose usable port gives the step another way; then ...
#   with_fallback     ... this text is added and the severity drops to fallback_severity
#   without_fallback  added when no fallback is usable
#   usable        states that mean the port does its job (TCP: open; UDP: also open|filtered,
#                 which a silent listener gives; the agent: also closed, because no agent
#                 listens before a run and a refusal proves the path is clear)
IMPACTS = {
    "ssh": {
        "breaks": "SSH staging, start, inventory and cleanup will fail",
        "severity": BLOCKING,
    },
    CONNECTION_ROLE: {
        "breaks": "Ansible cannot connect to the node; nothing can run there",
        "severity": BLOCKING,
    },
    "smb": {
        "breaks": "admin$ staging will fail",
        "severity": BLOCKING,
        "fallback": ("winrm_https", "winrm_http"),
        "with_fallback": "WinRM fallback possible",
        "without_fallback": "no fallback: WinRM is blocked too",
        "fallback_severity": WARNING,
    },
    "netbios_session": {
        "breaks": "SMB over NetBIOS unavailable",
        "severity": WARNING,
        "fallback": ("smb",),
        "with_fallback": "not needed while direct SMB answers",
        "fallback_severity": INFO,
    },
    "netbios_name": {
        "breaks": "NetBIOS name lookups fail; address the node by IP address or DNS name",
        "severity": INFO,
        "usable": ("open", "open|filtered"),
    },
    "netbios_datagram": {
        "breaks": "NetBIOS browsing unavailable; the deployment does not need it",
        "severity": INFO,
        "usable": ("open", "open|filtered"),
    },
    "winrm_https": {
        "breaks": "WinRM over HTTPS unavailable",
        "severity": WARNING,
        "fallback": ("winrm_http",),
        "with_fallback": "WinRM over HTTP possible (message encryption only)",
        "without_fallback": "no WinRM: no fallback when admin$ staging fails",
        "fallback_severity": INFO,
    },
    "winrm_http": {
        "breaks": "WinRM over HTTP unavailable",
        "severity": WARNING,
        "fallback": ("winrm_https",),
        "with_fallback": "HTTPS is preferred anyway",
        "without_fallback": "no WinRM: no fallback when admin$ staging fails",
        "fallback_severity": INFO,
    },
    "agent": {
        "breaks": "agent channel blocked (lease, cancel, push delivery), unless only the node's own firewall drops it: the run opens that one",
        "severity": WARNING,
        "usable": ("open", "closed"),
    },
    "engine": {
        "breaks": "pull delivery impossible, use push or url",
        "severity": BLOCKING,
        # Push (over the agent's port) and url (an existing repository server) do not need
        # the node to reach the engine: with those, a blocked engine port is only a warning.
        "without_engine_severity": WARNING,
    },
}

# Direction words of the preflight's messages ("63002/tcp from node filtered: ...").
TO_NODE, FROM_NODE = "controller -> node", "node -> controller"
DELIVERIES = ("auto", "pull", "push", "url")


def usable_states(role):
    # type: (str) -> tuple
    """The states in which a role's port does its job."""
    impact = IMPACTS.get(role, {})
    return tuple(impact.get("usable", ("open",)))
