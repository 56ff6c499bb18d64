#!/usr/bin/python
# Copyright (c) 2026, fleet.firmware developers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: reach
author: fleet.firmware developers (@fleet-firmware)
short_description: Which ports of other hosts answer, seen from the node
version_added: 0.1.0
description:
  - Probes TCP and UDP ports of the given hosts B(from the managed node), all at once. Used for
    the return direction of a deployment (node -> controller engine port), which is where
    firewalls and routes most often block updates without a clear cause.
  - The probe is the one of the P(fleet.firmware.reachable_ports#lookup) lookup (shared code), with
    the same states. TCP connect accepted = V(open), refused = V(closed), no answer or unreachable =
    V(filtered). UDP V(137) is a NetBIOS node-status query. Other UDP ports are V(open|filtered)
    unless an ICMP port-unreachable says V(closed).
  - Only reads; it never changes the node.
  - On Windows nodes the PowerShell twin C(reach.ps1) probes TCP ports with the same states, and UDP
    ports as V(open|filtered) or V(closed).
options:
  hosts:
    description:
      - Hosts to probe from the node. A name, an IPv4 address, an IPv6 address with or without
        brackets, or a link-local IPv6 address with its zone (V(fe80::1%eth0)).
    type: list
    elements: str
    required: true
  ports:
    description:
      - Ports to probe on every host, each a number (TCP) or V(PORT/PROTO) with V(tcp) or V(udp).
      - The default is the controller's engine port.
    type: list
    elements: raw
    default: ['63002/tcp']
  errors:
    description:
      - What an unresolvable host does. V(strict) fails the module (nothing is probed).
      - V(warn) and V(ignore) give that host's ports the state V(unresolved); V(warn) also warns.
    type: str
    choices: [strict, warn, ignore]
    default: strict
attributes:
  check_mode:
    support: full
    description: The module only reads; in check mode it probes as well.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to compare.
  platform:
    support: full
    platforms: [posix, windows]
    description: Python on Linux nodes, the PowerShell twin C(reach.ps1) on Windows nodes.
extends_documentation_fragment:
  - fleet.firmware.probe
notes:
  - Windows itself cannot run in the collection's test lab; the PowerShell twin is checked by
    sanity only.
seealso:
  - plugin: fleet.firmware.reachable_ports
    plugin_type: lookup
"""

EXAMPLES = r"""
- name: Can the node reach the controller's engine port (return direction)?
  fleet.firmware.reach:
    hosts:
      - 198.18.0.1
      - fd00:f1ee:7ab::1
    ports: [63002/tcp]
    timeout: 2
  register: back

- name: Fail when the engine port is not open from the node
  ansible.builtin.assert:
    that: back.reach['198.18.0.1']['63002/tcp'].state == 'open'
    fail_msg: "63002/tcp from node {{ back.reach['198.18.0.1']['63002/tcp'].state }}: pull delivery impossible, use push or url"

- name: Several ports, names only warn when they do not resolve
  fleet.firmware.reach:
    hosts: [repo.example.com, controller.example.com]
    ports: [443, 63002/tcp, 63001/tcp]
    errors: warn
"""

RETURN = r"""
reach:
  description:
    - One entry per host, keyed by the host as given, each a dictionary keyed by V(PORT/PROTO).
    - Each port holds C(state), C(address), C(family), C(latency_ms), C(error) and C(addresses) as
      in the P(fleet.firmware.reachable_ports#lookup) lookup.
  returned: always
  type: dict
  sample:
    198.18.0.1:
      63002/tcp:
        state: open
        address: 198.18.0.1
        family: ipv4
        latency_ms: 0.31
        addresses:
          - {address: 198.18.0.1, family: ipv4, state: open, latency_ms: 0.31}
all_open:
  description: Whether every port of every host is V(open).
  returned: always
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fleet.firmware.plugins.module_utils.probe import ERRORS, FAMILIES, ProbeError, check


def run_module(module):
    # type: (AnsibleModule) -> None
    params = module.params
    hosts = params["hosts"]
    try:
        results, warnings = check(hosts, params["ports"], timeout=params["timeout"], family=params["family"], errors=params["errors"])
    except ProbeError as exc:
        module.fail_json(msg=str(exc))
    for warning in warnings:
        module.warn(warning)
    reach = dict(zip(hosts, results))
    all_open = all(port["state"] == "open" for ports in results for port in ports.values())
    module.exit_json(changed=False, reach=reach, all_open=all_open)


def main():
    # type: () -> None
    module = AnsibleModule(
        argument_spec=dict(
            hosts=dict(type="list", elements="str", required=True),
            ports=dict(type="list", elements="raw", default=["63002/tcp"]),
            timeout=dict(type="float", default=1.0),
            family=dict(type="str", choices=list(FAMILIES), default="auto"),
            errors=dict(type="str", choices=list(ERRORS), default="strict"),
        ),
        supports_check_mode=True,
    )
    run_module(module)


if __name__ == "__main__":
    main()
