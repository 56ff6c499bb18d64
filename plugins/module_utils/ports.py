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
