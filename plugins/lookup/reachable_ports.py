# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
name: reachable_ports
author: fleet.firmware developers (@fleet-firmware)
short_description: Which ports of a node answer, seen from the controller
version_added: 0.1.0
description:
  - Probes TCP and UDP ports of one or more hosts from the controller, all at once, and says per
    port whether it is V(open), V(closed), V(filtered) or V(open|filtered).
  - "TCP: a connect. Accepted = V(open), refused (RST) = V(closed), no answer within O(timeout) or
    unreachable (ICMP host/admin-prohibited, no route) = V(filtered)."
  - "UDP V(137): a real NetBIOS node-status query; V(open) when the node answers (the answer's
    NetBIOS names are returned). Other UDP ports: an empty datagram; V(closed) when an ICMP
    port-unreachable comes back, else V(open|filtered) (a silent listener and a firewall that
    drops look the same)."
  - A name is resolved to all its A and AAAA addresses (as O(family) allows); every address is
    probed, and the port's top-level result is the address a client would use, that is the first
    address in resolver order that is V(open), else the first address.
  - Every probe of one call runs concurrently, so a call takes about one O(timeout) however many
    hosts and ports are filtered.
  - The same probe runs on the nodes as the M(fleet.firmware.reach) module (for the return
    direction).
options:
  _terms:
    description:
      - Hosts to probe. A name, an IPv4 address, an IPv6 address with or without brackets
        (V(fd00::1), V([fd00::1])), or a link-local IPv6 address with its zone (V(fe80::1%eth0)).
      - No port in the term; ports go in O(ports).
    type: list
    elements: str
    required: true
  ports:
    description:
      - Ports to probe, each a number (TCP) or V(PORT/PROTO) with V(tcp) or V(udp), for example
        V(22), V(445/tcp), V(137/udp).
      - Default, by O(path). V(linux) is V(22/tcp) and the agent port V(62286/tcp). V(windows) is
        V(445/tcp), V(139/tcp), V(137/udp), V(138/udp), V(5985/tcp), V(5986/tcp) and the agent
        port V(62286/tcp).
    type: list
    elements: raw
  path:
    description:
      - The node's deployment path; picks the default O(ports).
    type: str
    choices: [linux, windows]
    default: linux
  agent_port:
    description:
      - The agent's TCP port, added to the default O(ports) of the O(path).
    type: int
    default: 62286
  on_unresolved:
    description:
      - What an unresolvable host does. V(strict) fails the lookup (nothing is probed).
      - V(warn) and V(ignore) give that host's ports the state V(unresolved) with the resolver's
        error, V(warn) also prints a warning; the other hosts are probed.
      - Bad ports, bad options and malformed host terms always fail the lookup.
      - This is the per-host form of the usual C(errors) keyword. Ansible itself consumes
        C(errors=) for every lookup (with C(errors=warn) or C(errors=ignore) a failed lookup returns
        nothing at all, for every host), so it never reaches the plugin.
    type: str
    choices: [strict, warn, ignore]
    default: strict
    vars:
      - name: fleet_reachable_ports_on_unresolved
extends_documentation_fragment:
  - fleet.firmware.probe
notes:
  - Probes go only to the addresses the terms resolve to. A name is resolved with the
    controller's resolver (C(/etc/hosts), DNS).
  - UDP V(138) (NetBIOS datagram) has no query a node answers; it shows V(open|filtered) unless
    refused.
seealso:
  - module: fleet.firmware.reach
  - ref: fleet.firmware.preflight playbook <ansible_collections.fleet.firmware.docsite.ports>
    description: The preflight playbook, and every port of the collection (C(docs/ports.md)).
"""

EXAMPLES = r"""
- name: Check a Linux node's SSH and agent ports
  ansible.builtin.debug:
    msg: "{{ lookup('fleet.firmware.reachable_ports', '198.18.0.11') }}"

- name: Is SSH open on every address of a name?
  ansible.builtin.assert:
    that:
      - ports['22/tcp'].state == 'open'
  vars:
    ports: "{{ lookup('fleet.firmware.reachable_ports', 'node1.example.com', ports=['22/tcp'], timeout=2) }}"

- name: The Windows path, over IPv6 only, several hosts in one call
  ansible.builtin.set_fact:
    win_ports: "{{ query('fleet.firmware.reachable_ports', 'win1.example.com', '[fd00::20]', path='windows', family='ipv6') }}"

- name: A link-local address with its zone, unresolvable names only warn
  ansible.builtin.debug:
    msg: "{{ query('fleet.firmware.reachable_ports', 'fe80::1%eth0', 'old-node.example.com', ports=[22, '137/udp'], on_unresolved='warn') }}"
"""

RETURN = r"""
_value:
  description:
    - One dictionary per host term, in the order of the terms, keyed by V(PORT/PROTO) (V(22/tcp)).
    - Each port has the result at the address a client would use, plus every address's result.
  type: list
  elements: dict
  contains:
    state:
      description: V(open), V(closed), V(filtered), V(open|filtered), or V(unresolved) (O(on_unresolved=warn) or O(on_unresolved=ignore)).
      type: str
      sample: open
    address:
      description: The address tried (the one a client would use); null when unresolved.
      type: str
      sample: 198.18.0.11
    family:
      description: V(ipv4) or V(ipv6).
      type: str
      sample: ipv4
    latency_ms:
      description: Milliseconds until the answer (open, refused, ICMP error); null without an answer.
      type: float
      sample: 0.214
    error:
      description: Why the port is not open (refused, unreachable, no answer, resolver error). Absent when open.
      type: str
      sample: "no answer within 1s"
    netbios_names:
      description: For V(137/udp) when answered, the NetBIOS names the node registered.
      type: list
      elements: str
      sample: [FLEETLAB, WIN01]
    addresses:
      description: Every address's result (C(address), C(family), C(state), C(latency_ms), C(error)), in resolver order.
      type: list
      elements: dict
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase
from ansible.utils.display import Display

from ansible_collections.fleet.firmware.plugins.module_utils import ports as fleet_ports
from ansible_collections.fleet.firmware.plugins.module_utils.probe import ProbeError, check

display = Display()


class LookupModule(LookupBase):
    """Probe hosts' ports from the controller (see DOCUMENTATION)."""

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        if not terms:
            raise AnsibleLookupError("fleet.firmware.reachable_ports: no hosts given: pass at least one host as a term")
        path = self.get_option("path")
        ports = self.get_option("ports")
        try:
            if not ports:
                ports = fleet_ports.path_ports(path, self._agent_port())
            results, warnings = check(
                list(terms), ports, timeout=self.get_option("timeout"), family=self.get_option("family"), errors=self.get_option("on_unresolved")
            )
        except (ProbeError, ValueError) as exc:
            raise AnsibleLookupError("fleet.firmware.reachable_ports: %s" % exc)
        for warning in warnings:
            display.warning("fleet.firmware.reachable_ports: %s" % warning)
        return results

    def _agent_port(self):
        port = self.get_option("agent_port")
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            raise ProbeError("bad agent_port %r: a port is a number from 1 to 65535" % (port,))
        return port
